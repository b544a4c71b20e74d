"""Double-DIP watermark removal from several images sharing one watermark: the physics on hand-made tensors (one clean
layer per image, one watermark and mask for all), the output rules, the median-gradient baseline finding the
watermark, a tiny run on three images that comes out cleaner than its input, the per-image ground truth as a folder
or a list, and bad input (images of different sizes, one image, a missing folder, truth of another count) as one-line
errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from ddip.cases import photo
from ddip.errors import DdipError
from ddip.io import save_image
from ddip.run import build_component, compose_train, run
from ddip.synthetic import watermark
from ddip.tasks.watermark_many import WatermarkMany, median_gradient_inpaint, median_gradient_mask

SIZE = 40
SMALL_NET = ["backbone.channels=[8,16,16,16]", "backbone.skip_channels=[0,0,4,4]"]


def smooth_images(count: int, size: int = SIZE) -> list[torch.Tensor]:
    """``count`` different smooth colour images (gradients of different directions and colours), 3×size×size."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    rng = np.random.default_rng(0)
    images = []
    for _ in range(count):
        a, b, c = rng.uniform(0.2, 0.5, 3), rng.uniform(-0.3, 0.3, 3), rng.uniform(-0.3, 0.3, 3)
        images.append(torch.from_numpy(np.stack([a[k] + b[k] * x + c[k] * y for k in range(3)]).astype(np.float32)))
    return images


def many_case(tmp_path, photos: tuple[str, ...] = ("kate", "monkey", "library")) -> dict[str, str]:
    """Bundled photos at SIZE² under one red text watermark at opacity 0.6: the folders of the watermarked images
    (``images``) and of the clean ones (``clean``)."""
    (tmp_path / "images").mkdir()
    (tmp_path / "clean").mkdir()
    for index, name in enumerate(photos):
        clean = photo(name, SIZE)
        image, _ = watermark(clean, "ddip", top=12, left=6, height=16, colour=(0.9, 0.1, 0.1), opacity=0.6, bold=1)
        save_image(tmp_path / "images" / f"{index}.png", image)
        save_image(tmp_path / "clean" / f"{index}.png", clean)
    return {"images": str(tmp_path / "images"), "clean": str(tmp_path / "clean")}


def layers_of(cleans: list[torch.Tensor], ink: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    return {f"clean_{index}": clean for index, clean in enumerate(cleans, 1)} | {"watermark": ink, "mask": mask}


def test_one_clean_generator_per_image_and_one_watermark_and_mask_shared_by_all():
    task = WatermarkMany()
    task.given_images(4)
    assert set(task.generators) == {"clean_1", "clean_2", "clean_3", "clean_4", "watermark", "mask"}
    assert task.generators["mask"].out_channels == 1 and task.inputs["clean_3"].perturb and not task.inputs["mask"].perturb
    cleans, ink, mask = [torch.rand(1, 3, 6, 6) for _ in range(4)], torch.rand(1, 3, 6, 6), torch.rand(1, 1, 6, 6)
    composed = task.compose(layers_of(cleans, ink, mask))
    assert composed.shape == (1, 12, 6, 6)  # stacked along the channels, as data.images are
    for index, clean in enumerate(cleans):
        torch.testing.assert_close(composed[:, 3 * index : 3 * index + 3], mask * ink + (1 - mask) * clean)
    exact = task.loss_terms(layers_of(cleans, ink, mask), composed, {}, 0, 10)
    assert set(exact) == {"reconstruction"} and float(exact["reconstruction"]) < 1e-7
    wrong = task.loss_terms(layers_of(cleans, ink, torch.zeros_like(mask)), composed, {}, 0, 10)
    assert float(wrong["reconstruction"]) > 0.01
    sparse = WatermarkMany(weights={"sparsity": 0.5})
    sparse.given_images(4)
    assert float(sparse.loss_terms(layers_of(cleans, ink, mask), composed, {}, 0, 10)["sparsity"]) == pytest.approx(0.5 * float(mask.mean()))


def test_the_outputs_take_the_learnt_watermark_out_of_each_image():
    cleans, ink = [torch.rand(1, 3, 6, 6) for _ in range(3)], torch.rand(1, 3, 6, 6)
    mask = torch.zeros(1, 1, 6, 6)
    mask[..., 2:4, 1:5] = 0.6
    task = WatermarkMany(output="formula")
    task.given_images(3)
    image = task.compose(layers_of(cleans, ink, mask))[0]
    blurred = [clean.mean(dim=(2, 3), keepdim=True).expand_as(clean) for clean in cleans]  # poor clean layers
    out = task.cleaned(layers_of(blurred, ink, mask), image)
    torch.testing.assert_close(out, torch.cat(cleans))  # the right watermark and mask: the formula gives the photos back
    kept = task.cleaned(layers_of(blurred, ink, mask), image, "mask")  # the input where the mask is below 0.1
    outside = (mask < 0.1).expand(3, 3, 6, 6)
    torch.testing.assert_close(kept[outside], image.reshape(3, 3, 6, 6)[outside])
    torch.testing.assert_close(kept[~outside], torch.cat(blurred)[~outside])
    torch.testing.assert_close(task.cleaned(layers_of(blurred, ink, mask), image, "clean"), torch.cat(blurred))


def test_a_flat_watermark_is_its_generators_mean_colour():
    task = WatermarkMany(flat_watermark=True)
    task.given_images(2)
    ink = torch.rand(1, 3, 5, 5)
    _, flat, _ = task.split(layers_of([torch.rand(1, 3, 5, 5)] * 2, ink, torch.rand(1, 1, 5, 5)))
    torch.testing.assert_close(flat, ink.mean(dim=(-2, -1), keepdim=True).expand_as(ink))


def test_the_median_gradient_finds_the_shared_watermark_and_telea_fills_only_there():
    cleans = smooth_images(5)
    marked = torch.cat([watermark(clean, "ddip", top=12, left=6, height=16, colour=(0.9, 0.1, 0.1), opacity=0.6, bold=1)[0] for clean in cleans])
    alpha = watermark(cleans[0], "ddip", top=12, left=6, height=16, opacity=0.6, bold=1)[1][0] > 0
    found = median_gradient_mask(marked.reshape(5, 3, SIZE, SIZE)).bool()
    assert (found & alpha).sum() > 0.7 * found.sum() and found.sum() > 0.2 * alpha.sum()  # on the text's strokes
    filled, mask = median_gradient_inpaint(marked)
    assert torch.equal(mask.bool(), found) and torch.allclose(filled[:, ~found], marked[:, ~found], atol=0.5 / 255)
    assert not torch.equal(filled[:, found], marked[:, found])


def test_a_tiny_run_on_three_images_removes_their_watermark(tmp_path):
    case = many_case(tmp_path)
    overrides = ["task=watermark_many", "steps=800", "logger=none", "callbacks.evaluation.every=25", "threads=1", *SMALL_NET]
    overrides += [f"data.images={case['images']}", f"data.truth={{clean:{case['clean']}}}"]
    # a few hundred steps leave the mask above 0 around the text: the formula output, which divides the learnt
    # watermark out, is ahead of the default's (the clean layers inside the mask) this early (21.8 dB against the
    # input's 19.1 at seed 0 and 400 steps on an AMD EPYC, 20.3 on an Intel Xeon, which reaches 22.1 at 800; seed 1
    # stays level with the input, docs/results/watermark.md)
    overrides.append("task.output=formula")
    metrics = run(compose_train(overrides), tmp_path / "run")
    assert metrics["psnr_chosen"] > metrics["psnr_input"] + 1.5, metrics
    assert len(metrics["psnr_chosen_images"]) == 3
    for name in ("clean/000", "clean/001", "clean/002", "watermark", "mask"):
        assert Image.open(tmp_path / "run" / f"{name}.png").size == (SIZE, SIZE), name


def test_the_ground_truth_is_one_image_per_image_as_a_folder_or_a_list(tmp_path):
    case = many_case(tmp_path)
    files = sorted(str(path) for path in (tmp_path / "clean").iterdir())
    common = ["task=watermark_many", f"data.images={case['images']}"]
    for truth in (case["clean"], f"[{','.join(files)}]"):
        data = build_component(compose_train([*common, f"data.truth={{clean:{truth}}}"]), "data")
        data.read_truth(WatermarkMany.truth_kinds)
        assert data.truth()["clean"].shape == (9, SIZE, SIZE)


def test_the_bundled_sample_is_five_images_with_their_ground_truth():
    cfg = compose_train(["task=watermark_many"])
    data = build_component(cfg, "data")
    data.read_truth(WatermarkMany.truth_kinds)
    assert data.count == 5 and data.truth()["clean"].shape == data.original.shape == (15, 96, 96)


def test_bad_input_is_a_one_line_error(tmp_path):
    case = many_case(tmp_path)
    Image.new("RGB", (SIZE + 1, SIZE)).save(tmp_path / "wide.png")
    first = f"{case['images']}/0.png"
    common = ["task=watermark_many", "steps=1", "logger=none"]
    cases = {
        f"data.images=[{first},{tmp_path / 'wide.png'}]": r"wide.png is \(40, 41\), .*0.png is \(40, 40\): the images must have one size",
        f"data.images=[{first}]": r"this task takes 2 or more images \(data.images=\[a.png,b.png,...\] or data.images=FOLDER\); 1 given",
        f"data.image={first}": r"this task takes 2 or more images .*; 1 given",
        f"data.images={tmp_path / 'nowhere'}": r"data.images=.*nowhere': give a list \[a.png,b.png\], a folder of images or a video file",
        f"data.images={case['images']} data.truth={{clean:[{first}]}}": r"data.truth.clean holds 1 images for 3 images given: give one per image",
        f"data.images={case['images']} data.truth={{clean:{tmp_path / 'nowhere'}}}": r"data.truth.clean=.*nowhere': give a list \[a.png,b.png\] or a folder",
    }
    for given, message in cases.items():
        with pytest.raises(DdipError, match=message) as error:
            run(compose_train([*common, *given.split(" ")]), tmp_path / "run")
        assert "\n" not in str(error.value)


def test_a_suite_case_is_scored_for_the_input_and_the_baseline(tmp_path):
    """A case of the watermark_many suite, written as make_suite.py writes it, gives what the task needs and its
    baselines' records (the watermarked input, the median gradient with Telea), each led by its mean PSNR."""
    from ddip.benchmark import BenchmarkCase, evaluable
    from ddip.cases import suite
    from ddip.io import save_result

    case = suite("watermark_many", "test", 32)[0]
    for stem, image in case.images.items():
        save_result(tmp_path, stem, image)
    spec = case.manifest()
    assert spec["images"] == "images" and spec["truth"] == {"clean": "clean"} and evaluable(spec, [])
    records = WatermarkMany.baseline_records(BenchmarkCase(case.name, spec, tmp_path, tmp_path / "out"))
    assert [record["method"] for record in records] == ["watermarked input", "median gradient + OpenCV Telea"]
    assert all(list(record)[2:4] == ["psnr", "ssim"] and 5 < record["psnr"] < 60 for record in records)
