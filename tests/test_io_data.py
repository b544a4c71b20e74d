"""Image loading (every mode and bit depth), padding, cropping and the dihedral augmentation."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from PIL import Image

from ddip.data import ImageDataModule, StepTransforms, one_item_batch
from ddip.errors import DdipError
from ddip.geometry import dihedral, dihedral_inverse, fit_size, pad_to_multiple, reflect_pad
from ddip.io import load_image, load_map, save_image
from ddip.run import build, build_component, compose_train, run


def test_rgb_roundtrip(tmp_path):
    array = np.random.default_rng(0).integers(0, 256, (7, 9, 3), dtype=np.uint8)
    Image.fromarray(array).save(tmp_path / "rgb.png")
    image = load_image(tmp_path / "rgb.png")
    assert image.shape == (3, 7, 9) and image.dtype == torch.float32
    save_image(tmp_path / "out.png", image)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out.png")), array)


def test_grayscale_is_replicated(tmp_path):
    Image.fromarray(np.full((6, 5), 128, np.uint8), mode="L").save(tmp_path / "gray.png")
    image = load_image(tmp_path / "gray.png")
    assert image.shape == (3, 6, 5)
    assert torch.allclose(image, torch.full_like(image, 128 / 255))


def test_sixteen_bit_uses_the_full_range(tmp_path):
    Image.fromarray(np.full((6, 6), 65535, np.uint16)).save(tmp_path / "deep.png")
    Image.fromarray(np.full((6, 6), 32768, np.uint16)).save(tmp_path / "mid.png")
    assert torch.allclose(load_image(tmp_path / "deep.png"), torch.ones(3, 6, 6))
    assert torch.allclose(load_image(tmp_path / "mid.png"), torch.full((3, 6, 6), 32768 / 65535))


def test_rgba_is_composited_over_white(tmp_path):
    rgba = np.zeros((5, 5, 4), np.uint8)
    rgba[..., 0] = 255  # red, but fully transparent on the left half
    rgba[:, 3:, 3] = 255
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "rgba.png")
    image = load_image(tmp_path / "rgba.png")
    assert torch.allclose(image[:, :, 0], torch.ones(3, 5))  # transparent → white
    assert torch.allclose(image[:, 0, 4], torch.tensor([1.0, 0.0, 0.0]))  # opaque red


def test_palette_image(tmp_path):
    Image.fromarray(np.full((5, 6, 3), (0, 0, 255), np.uint8)).convert("P").save(tmp_path / "pal.png")
    image = load_image(tmp_path / "pal.png")
    assert torch.allclose(image[:, 0, 0], torch.tensor([0.0, 0.0, 1.0]))


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: None, "image not found"),
        (lambda p: p.write_text("not an image"), "not a readable image"),
        (lambda p: Image.new("RGB", (1, 1)).save(p, format="PNG"), "at least"),
        (lambda p: Image.new("RGB", (30, 2)).save(p, format="PNG"), "at least"),
    ],
)
def test_bad_images_give_one_line_errors(tmp_path, make, message):
    path = tmp_path / "bad.png"
    make(path)
    with pytest.raises(DdipError, match=message) as error:
        load_image(path)
    assert "\n" not in str(error.value)


def test_empty_file(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(DdipError, match="not a readable image"):
        load_image(tmp_path / "empty.jpg")


def test_map_is_resized(tmp_path):
    Image.fromarray(np.full((10, 20), 255, np.uint8)).save(tmp_path / "hint.png")
    hint = load_map(tmp_path / "hint.png", (37, 45))
    assert hint.shape == (37, 45) and torch.allclose(hint, torch.ones_like(hint))


@pytest.mark.parametrize("size", [(45, 37), (4, 4), (5, 130)])
def test_pad_then_crop_is_identity(size):
    image = torch.rand(3, *size)
    padded, crop = pad_to_multiple(image, multiple=32, min_size=64)
    assert padded.shape[-2] % 32 == 0 and padded.shape[-1] % 32 == 0 and min(padded.shape[-2:]) >= 64
    assert torch.equal(crop(padded), image)


def test_padding_reflects():
    image = torch.arange(4.0).view(1, 1, 4).expand(1, 4, 4).clone()
    padded, crop = pad_to_multiple(image, multiple=8)
    row = padded[0, crop.top]
    assert row.tolist() == [2.0, 1.0, 0.0, 1.0, 2.0, 3.0, 2.0, 1.0]


def test_dihedral_group():
    x = torch.rand(2, 3, 4, 6)
    outputs = [dihedral(x, k) for k in range(8)]
    assert len({tuple(o.flatten().tolist()) for o in outputs}) == 8
    for k in range(8):
        assert torch.equal(dihedral_inverse(dihedral(x, k), k), x)


def test_each_step_yields_its_transform_reproducibly():
    dataset = StepTransforms(16, augment=True, seed=3)
    assert [dataset[i] for i in range(3)] == [{"step": 0, "transform": 0}, {"step": 1, "transform": 3}, {"step": 2, "transform": 2}]
    assert [dataset[i]["transform"] for i in range(16)] == [0, 3, 2, 3, 2, 6, 3, 4, 3, 2, 3, 0, 6, 3, 3, 6]  # fixed: a seed reruns as before
    assert {StepTransforms(4, augment=False, seed=3)[i]["transform"] for i in range(4)} == {0}


def test_batches_keep_the_step_and_transform_on_the_host():
    dataset = StepTransforms(4, augment=True, seed=3)
    assert one_item_batch([dataset[2]]) == dataset[2]
    batch = next(iter(ImageDataModule(augment=True, seed=3, steps=4).train_dataloader()))
    assert batch == {"step": 0, "transform": 0} and all(isinstance(value, int) for value in batch.values())


def test_the_module_pads_the_image_and_its_maps_and_transforms_them_with_each_step(tmp_path, monkeypatch):
    save_image(tmp_path / "image.png", torch.rand(3, 13, 10))
    known = torch.rand(13, 10) > 0.3
    save_image(tmp_path / "mask.png", known.float()[None].expand(3, -1, -1))
    overrides = ["task=inpaint", f"data.image={tmp_path / 'image.png'}", f"data.mask={tmp_path / 'mask.png'}", "logger=none"]
    cfg = compose_train([*overrides, "backbone.channels=[8,8,8]", "backbone.skip_channels=[4,4,4]"])
    data, task = build_component(cfg, "data"), build_component(cfg, "task")
    module = build(cfg, data, task)
    assert module.image.shape == (1, 3, 16, 16) and torch.equal(module.crop(module.image)[0], data.image)
    assert torch.equal(module.maps["mask"], known.float()) and module.padded_maps["mask"].shape == (1, 1, 16, 16)
    seen = {}
    monkeypatch.setattr(task, "loss_terms", lambda layers, target, maps, step, steps: seen.update(target=target, maps=maps) or {"x": target.sum()})
    module.step_loss(0, transform=5)
    assert torch.equal(seen["target"], dihedral(module.image, 5)) and torch.equal(seen["maps"]["mask"], dihedral(module.padded_maps["mask"], 5))


CLEAN = {"clean": "image"}  # the ground truth a task of a clean image accepts (Task.truth_kinds)


def test_datamodule_uses_bundled_sample_without_image():
    data = ImageDataModule()
    data.read_truth(CLEAN)
    assert data.size == (160, 256) and data.path.endswith("zebra_crop.png") and data.truth() == {}


def test_a_task_sample_comes_with_its_ground_truth_only_when_no_image_is_given(tmp_path):
    """``sample.image``/``sample.truth`` stand in for a missing ``image``/``truth``; a given image is never paired
    with the sample's ground truth, and a given truth takes the place of the sample's of that name; an unknown
    sample is a one-line error naming its key and the bundled ones."""
    hazy_sample = {"image": "hazy_zebra.png", "truth": {"clean": "zebra_crop.png"}}
    hazy = ImageDataModule(sample=hazy_sample)
    hazy.read_truth(CLEAN)
    clean = hazy.truth()["clean"]
    assert hazy.path.endswith("hazy_zebra.png") and torch.equal(clean, load_image(hazy.path.replace("hazy_zebra", "zebra_crop")))
    assert float((hazy.original - clean).abs().mean()) > 0.1
    Image.new("RGB", (256, 160)).save(tmp_path / "own.png")
    own = ImageDataModule(image=str(tmp_path / "own.png"), sample=hazy_sample)
    own.read_truth(CLEAN)
    assert own.path == str(tmp_path / "own.png") and own.truth() == {}
    instead = ImageDataModule(sample=hazy_sample, truth={"clean": str(tmp_path / "own.png")})
    instead.read_truth(CLEAN)
    assert instead.path.endswith("hazy_zebra.png") and float(instead.truth()["clean"].abs().max()) == 0  # the user's black image
    with pytest.raises(DdipError, match=r"^data.sample.image='fog.png' is not a bundled sample; one of .*hazy_zebra.png"):
        ImageDataModule(sample={"image": "fog.png"})
    with pytest.raises(DdipError, match=r"^data.sample.truth.clean='fog.png' is not a bundled sample"):
        ImageDataModule(sample={"image": "hazy_zebra.png", "truth": {"clean": "fog.png"}})
    with pytest.raises(DdipError, match=r"^data.sample='hazy_zebra.png': the bundled example is a block now, data.sample.image=FILE$"):
        ImageDataModule(sample="hazy_zebra.png")


def test_the_bundled_task_samples_are_what_make_samples_makes(tmp_path):
    import subprocess
    import sys

    from conftest import ROOT

    subprocess.run([sys.executable, "scripts/make_samples.py", "--out", str(tmp_path)], cwd=ROOT, check=True, capture_output=True)
    made = ("hazy_zebra.png", "noisy_zebra.png", "zebra_known.png", "zebra_holes.png", "zebra_x2.png", "zebra_x4.png", "zebra_x8.png")
    for name in made + ("mixed_zebra1.png", "mixed_zebra2.png"):
        assert torch.equal(load_image(tmp_path / name), load_image(ROOT / "ddip" / "assets" / name)), name


@pytest.mark.parametrize("name, kind", [("clean", "image"), ("mask", "mask"), ("layer1", "image")])
def test_ground_truth_of_another_size_is_rejected(tmp_path, name, kind):
    """A score against a resized ground truth would measure the resizing: every kind of truth must have the
    image's size."""
    Image.new("RGB", (10, 10)).save(tmp_path / "a.png")
    Image.new("RGB", (12, 10)).save(tmp_path / "b.png")
    data = ImageDataModule(image=str(tmp_path / "a.png"), truth={name: str(tmp_path / "b.png")})
    with pytest.raises(DdipError, match=re.escape(f"data.truth.{name}: {tmp_path / 'b.png'} is (10, 12), the image is (10, 10)")):
        data.read_truth({name: kind})


def test_ground_truth_is_read_as_the_task_says_and_a_name_it_does_not_accept_is_refused(tmp_path):
    """The task's ``truth_kinds`` decide how each name is read (an RGB image, a mask in [0, 1]); a name it does not
    accept is a one-line error naming the key, the name and the names it accepts; the truth is read only then."""
    Image.new("RGB", (10, 10), (255, 255, 255)).save(tmp_path / "white.png")
    given = {"clean": str(tmp_path / "white.png"), "mask": str(tmp_path / "white.png")}
    data = ImageDataModule(image=str(tmp_path / "white.png"), truth=given)
    with pytest.raises(RuntimeError, match="read_truth first"):
        data.truth()
    data.read_truth({"mask": "mask", "clean": "image"})
    assert data.truth()["clean"].shape == (3, 10, 10) and data.truth()["mask"].shape == (10, 10)
    with pytest.raises(DdipError, match=r"^data.truth.clean: this task accepts no ground truth 'clean' \(it accepts: mask\)$"):
        data.read_truth({"mask": "mask"})
    with pytest.raises(DdipError, match=r"^data.truth.mask: this task accepts no ground truth 'mask' \(it accepts: none\)$"):
        ImageDataModule(image=str(tmp_path / "white.png"), truth={"mask": given["mask"]}).read_truth({})
    with pytest.raises(DdipError, match=r"^data.truth='gt.png': give the ground truth by name, data.truth=\{clean:gt.png\}$"):
        ImageDataModule(image=str(tmp_path / "white.png"), truth="gt.png")


@pytest.mark.parametrize("size, max_side, fitted", [((8, 4000), 384, (4, 384)), ((10, 1000), 64, (4, 64)), ((300, 200), 150, (150, 100))])
def test_downscaling_keeps_every_side_at_least_the_minimum(size, max_side, fitted):
    assert fit_size(size, max_side) == fitted


def test_a_one_pixel_side_is_padded_by_repeating_it():
    strip = torch.arange(6.0).reshape(1, 1, 1, 6)
    padded = reflect_pad(strip, 2, 1, 1, 1)
    assert padded.shape == (1, 1, 4, 8) and torch.equal(padded[0, 0, 3], torch.tensor([0.0, 0, 1, 2, 3, 4, 5, 5]))


def test_a_strip_that_downscales_to_a_few_pixels_runs_at_its_size(tmp_path):
    Image.new("RGB", (1000, 10), (100, 50, 20)).save(tmp_path / "strip.png")
    run(compose_train(["steps=2", "logger=none", "data.max_side=64", f"data.image={tmp_path / 'strip.png'}"]), tmp_path / "run")
    assert Image.open(tmp_path / "run" / "mask.png").size == (1000, 10)


def write_images(folder, sizes: list[tuple[int, int]]) -> list:
    """Random RGB images of the (height, width) ``sizes`` in ``folder``, named a0.png, a1.png, …; their paths."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"a{index}.png" for index in range(len(sizes))]
    for path, (height, width) in zip(paths, sizes):
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)
    return paths


def test_several_images_are_stacked_along_channels_from_a_list_or_a_folder(tmp_path):
    paths = write_images(tmp_path / "mixtures", [(20, 30)] * 3)
    (tmp_path / "mixtures" / "notes.txt").write_text("not an image")
    listed = ImageDataModule(images=[str(path) for path in paths[::-1]])
    folder = ImageDataModule(images=str(tmp_path / "mixtures"), max_side=16)
    assert listed.original.shape == (9, 20, 30) and listed.count == 3
    assert torch.equal(listed.original[:3], load_image(paths[2])) and torch.equal(folder.original[:3], load_image(paths[0]))
    assert folder.facts["images"] == [str(path) for path in paths] and "image" not in folder.facts
    assert folder.image.shape == (9, 11, 16)  # resized as one image
    folder.read_truth({})
    assert folder.inputs(()).image.shape == (9, 11, 16) and pad_to_multiple(folder.image, 8, 16)[0].shape == (9, 16, 16)
    assert ImageDataModule(image=str(paths[0])).facts["image"] == str(paths[0])  # one image: as before


@pytest.mark.parametrize(
    "given, message",
    [
        ("sizes", r"data.images\[1\]: .*a1.png is \(20, 31\), .*a0.png is \(20, 30\): the images must have one size"),
        ("empty", r"data.images: no image files \(.png, .*\) in .*empty"),
        ("missing", r"data.images\[1\]: image not found: .*nothing.png"),
        ("file", r"data.images='.*a0.png': give a list \[a.png,b.png\], a folder of images or a video file"),
        ("both", r"give data.image \(one image\) or data.images \(several\), not both"),
    ],
)
def test_bad_image_lists_are_one_line_errors(tmp_path, given, message):
    first, second = write_images(tmp_path, [(20, 30), (20, 31)])
    (tmp_path / "empty").mkdir()
    arguments = {
        "sizes": {"images": [str(first), str(second)]},
        "empty": {"images": str(tmp_path / "empty")},
        "missing": {"images": [str(first), str(tmp_path / "nothing.png")]},
        "file": {"images": str(first)},
        "both": {"image": str(first), "images": [str(first), str(first)]},
    }[given]
    with pytest.raises(DdipError, match=message):
        ImageDataModule(**arguments)


def test_a_task_rejects_a_number_of_images_it_does_not_take(tmp_path):
    paths = write_images(tmp_path, [(20, 30)] * 2)
    with pytest.raises(DdipError, match=r"^this task takes 1 image \(data.image=photo.png\); 2 given$"):
        ImageDataModule(images=[str(path) for path in paths]).check_count((1, 1))
    ImageDataModule(images=[str(path) for path in paths]).check_count((2, None))
    with pytest.raises(DdipError, match=r"^this task takes 2 images \(data.images=\[a.png,b.png,...\] or data.images=FOLDER\); 1 given$"):
        ImageDataModule(image=str(paths[0])).check_count((2, 2))
    cfg = compose_train(["task=seg", "steps=1", "logger=none", f"data.images=[{paths[0]},{paths[1]}]"])
    with pytest.raises(DdipError, match="this task takes 1 image"):
        run(cfg, tmp_path / "run")


def test_progress_png_draws_grey_and_colour_snapshots_of_different_sizes(tmp_path):
    """The snapshot grid is one mosaic: panels of any size and channel count land in it unchanged."""
    from ddip.io import save_progress

    red = torch.zeros(3, 24, 20)
    red[0] = 1.0
    snapshots = [(5, {"mask": torch.full((1, 16, 16), 0.5), "foreground": red}), (10, {"mask": torch.ones(16, 16)})]
    history = [{"step": 5, "loss": 0.5, "score": 20.0}, {"step": 10, "loss": 0.2, "score": 25.0}]
    save_progress(tmp_path / "progress.png", history, snapshots, [])
    pixels = np.asarray(Image.open(tmp_path / "progress.png").convert("RGB")).reshape(-1, 3)
    assert ((pixels[:, 0] > 240) & (pixels[:, 1] < 15) & (pixels[:, 2] < 15)).sum() > 100  # the red panel
    assert (np.abs(pixels.astype(int) - 128).max(axis=1) < 3).sum() > 50  # the grey mask
