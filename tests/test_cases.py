"""Benchmark suites: the same command makes the same cases, a photo never serves two splits, every structure is
what it says, the ground truth is consistent with the image, and evaluate.py reports a suite's split per case and
per method."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from conftest import ROOT

from ddip.cases import PHOTOS, SEG_STRUCTURES, object_mask, photo, seeded, separation_layers, suite
from ddip.haze import hazy_image
from ddip.io import load_image
from ddip.synthetic import lanczos_downscale
from ddip.tasks.separate import Separation
from ddip.unmix import TV_WEIGHT, ica_unmix


def test_the_splits_share_no_photo_and_every_case_uses_its_splits_photos():
    assert not set(PHOTOS["tune"]) & set(PHOTOS["test"])
    for kind in ("seg", "haze", "noise", "inpaint", "sr", "mixtures", "separation", "watermark"):
        for split in PHOTOS:
            for case in suite(kind, split, size=32, count=3, per_structure=1):
                assert set(case.facts["photos"]) <= set(PHOTOS[split]), case.name


@pytest.mark.parametrize("kind", ["seg", "haze", "noise", "inpaint", "sr", "mixtures", "separation", "watermark"])
def test_a_suite_is_the_same_every_time(kind):
    first, second = (suite(kind, "test", size=32, count=3, per_structure=1) for _ in range(2))
    assert [case.name for case in first] == [case.name for case in second]
    for a, b in zip(first, second):
        assert a.facts == b.facts and all(torch.equal(a.images[k], b.images[k]) for k in a.images), a.name


def components(mask: np.ndarray) -> int:
    return cv2.connectedComponents(mask.astype(np.uint8))[0] - 1


@pytest.mark.parametrize("seed", range(4))
def test_each_segmentation_structure_is_what_it_says(seed):
    size = 128
    masks = {structure: object_mask(seeded("test", seed, structure), size, structure) for structure in SEG_STRUCTURES}
    assert 0.035 < masks["small"].mean() < 0.065 and 0.5 < masks["large"].mean() < 0.68
    assert components(masks["several"]) >= 3 and not (masks["several"][[0, -1]].any() or masks["several"][:, [0, -1]].any())
    border = masks["border"]
    assert border[[0, -1]].any() or border[:, [0, -1]].any()
    opened = cv2.morphologyEx(masks["thin"].astype(np.uint8), cv2.MORPH_OPEN, np.ones((5, 5), np.uint8))
    assert masks["thin"].sum() - opened.sum() > 40  # legs and a tail a few pixels wide vanish under an opening
    assert components(masks["one"]) == 1 and 0.1 < masks["one"].mean() < 0.35


def test_segmentation_ground_truth_marks_where_the_pasted_photo_is():
    for case in suite("seg", "tune", size=64, per_structure=1):
        inside, outside = (photo(name, 64) for name in case.facts["photos"])
        mask = case.images[case.truth["mask"]][0].bool()
        assert torch.allclose(case.images["image"][:, ~mask], outside[:, ~mask])
        if case.facts["structure"] != "low_contrast":
            assert torch.allclose(case.images["image"][:, mask], inside[:, mask])


def test_haze_ground_truth_reproduces_the_hazy_image():
    for case in suite("haze", "test", size=48, count=6):
        airlight = torch.tensor(case.facts["airlight"])[:, None, None]
        expected = hazy_image(case.images["clean"], case.images["gt_transmission"], airlight)
        assert torch.allclose(case.images["image"], expected.clamp(0, 1), atol=1e-6), case.name
        assert 0 < float(case.images["gt_transmission"].min()) and float(case.images["gt_transmission"].max()) < 1


def test_noise_has_its_sigma():
    for case in suite("noise", "tune", size=64):
        residual = case.images["image"] - case.images["clean"]
        assert float(residual.std()) == pytest.approx(case.facts["sigma"] / 255, rel=0.25), case.name


def test_inpainting_cases_are_the_photo_without_their_missing_pixels():
    for case in suite("inpaint", "test", size=64):
        clean, known = case.images["clean"], case.images["mask"]
        assert set(known.unique().tolist()) == {0.0, 1.0} and torch.equal(case.images["image"], clean * known), case.name
        expected = (0.45, 0.55) if case.facts["holes"] == "pixels" else (0.05, 0.35)
        assert expected[0] < case.facts["missing_fraction"] < expected[1], case.name


def test_super_resolution_cases_are_the_photo_shrunk_by_their_factor():
    for case in suite("sr", "tune", size=64):
        factor, clean = case.facts["factor"], case.images["clean"]
        assert case.images["image"].shape[-2:] == (64 // factor, 64 // factor)
        assert torch.equal(case.images["image"], lanczos_downscale(clean, factor)), case.name


def test_watermark_cases_change_the_photo_inside_their_hint_box_only():
    cases = suite("watermark", "tune", size=64)
    assert len(cases) == 2 * len(PHOTOS["tune"]) and len({case.facts["text"] for case in cases}) > 2
    for case in cases:
        image, clean, hint = case.images["image"], case.images["clean"], case.images["hint"][0]
        assert set(hint.unique().tolist()) == {0.0, 1.0} and 0.02 < float(hint.mean()) < 0.6, case.name
        assert torch.equal(image[:, ~hint.bool()], clean[:, ~hint.bool()]), case.name
        assert float((image - clean).abs().amax()) > 0.1, case.name  # the watermark shows
        x0, y0, x1, y1 = case.facts["box"]
        assert float(hint[y0:y1, x0:x1].mean()) == 1.0 and float(hint.sum()) == (x1 - x0) * (y1 - y0), case.name


def test_make_suite_and_evaluate_a_split(tmp_path):
    made = subprocess.run(
        [sys.executable, "scripts/make_suite.py", "seg", "--out", str(tmp_path / "suite"), "--size", "32", "--per-structure", "1"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "14 seg cases" in made.stdout and "(7 tune, 7 test)" in made.stdout
    cases = json.loads((tmp_path / "suite" / "cases.json").read_text())
    test = [name for name, case in cases.items() if case["split"] == "test"][:3]
    tune = next(name for name, case in cases.items() if case["split"] == "tune")
    command = [sys.executable, "scripts/evaluate.py", "--cases", str(tmp_path / "suite"), "--split", "test", "--steps", "2"]
    command += ["--out", str(tmp_path / "eval"), "--only", *test, tune]  # the tune case is not in the split: not run
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    records = json.loads((tmp_path / "eval" / "evaluate.json").read_text())
    assert sorted({record["case"] for record in records}) == sorted(test)
    report = (tmp_path / "eval" / "evaluate.md").read_text()
    assert "| method | metric | cases | mean | median | worst decile | worst |" in report
    assert report.count("| iou | 3 |") == 2  # ddip and GrabCut, three cases each


def test_evaluate_refuses_ground_truth_outside_the_truth_block_in_one_line(tmp_path):
    """A ``cases.json`` of the layout before ``truth`` (the ground truth as a case's own keys) is refused, not skipped."""
    (tmp_path / "cases.json").write_text(json.dumps({"haze": {"task": "dehaze", "image": "image.png", "clean": "clean.png"}}))
    command = [sys.executable, "scripts/evaluate.py", "--cases", str(tmp_path), "--out", str(tmp_path / "eval")]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith(f"evaluate: error: {tmp_path / 'cases.json'}: haze: give the ground truth as \"truth\": {{\"clean\"")


def test_a_case_manifest_gives_its_ground_truth_in_its_truth_block():
    seg, video = suite("seg", "tune", size=32, per_structure=1)[0], suite("video", "tune", size=32)[0]
    assert seg.manifest()["truth"] == {"mask": "mask.png"} and "mask" not in seg.manifest() and seg.manifest()["image"] == "image.png"
    assert video.manifest()["truth"] == {"mask": "masks"} and video.manifest()["images"] == "frames"


def evaluate_module():
    """``scripts/evaluate.py`` as a module."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("evaluate", ROOT / "scripts" / "evaluate.py")
    evaluate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(evaluate)
    return evaluate


@pytest.mark.slow  # ~20 s: four tasks' fits through evaluate.py (test_benchmark covers the hooks); run with -m slow
def test_evaluate_scores_inpainting_super_resolution_mixtures_and_watermarks_beside_their_baselines(tmp_path):
    evaluate = evaluate_module()
    small = ["logger=none", "threads=1", "backbone.channels=[8,8,8,8,8]", "backbone.skip_channels=[4,4,4,4,4]"]
    kinds = (("inpaint", ["OpenCV Telea", "OpenCV Navier–Stokes"]), ("sr", ["bicubic ×2"]), ("watermark", ["OpenCV Telea (hint box)", "watermarked input"]))
    for kind, baselines in kinds:
        subprocess.run([sys.executable, "scripts/make_suite.py", kind, "--out", str(tmp_path / kind), "--size", "32", "--split", "test"], cwd=ROOT, check=True)
        cases = json.loads((tmp_path / kind / "cases.json").read_text())
        name = next(iter(cases))
        rows = evaluate.evaluate_case(name, cases[name], tmp_path / kind / name, tmp_path / "eval", 2, small)
        methods = [row["method"] for row in rows]
        assert methods[0].startswith("ddip") and set(baselines) <= set(methods), methods
        assert all(15 < row["psnr"] < 60 for row in rows if row["method"] in baselines), rows
    subprocess.run([sys.executable, "scripts/make_suite.py", "mixtures", "--out", str(tmp_path / "mix"), "--size", "32", "--split", "test"], cwd=ROOT, check=True)
    cases = json.loads((tmp_path / "mix" / "cases.json").read_text())
    name = next(iter(cases))
    rows = evaluate.evaluate_case(name, cases[name], tmp_path / "mix" / name, tmp_path / "eval", 2, small[:2])
    assert [row["method"] for row in rows] == ["ddip (Double-DIP, two mixtures) logger=none threads=1", "mixtures as the layers", "ICA of gradients (Farid & Adelson)"]
    assert 0 <= rows[0]["alpha_error"] < 1 and rows[2]["alpha_error"] < 0.05 and rows[2]["psnr"] > rows[1]["psnr"]


def test_two_mixture_cases_weigh_their_layers_and_ica_unmixes_a_photo_from_a_texture():
    """``I_k = α_k·L1 + (1 − α_k)·L2`` with the case's weights, layers of every kind in each split; ICA of the
    gradients (the classical baseline) recovers a photo and a texture and their weights."""
    cases = suite("mixtures", "test", size=64)
    assert sorted({case.facts["layers"] for case in cases}) == ["photo_photo", "photo_texture", "texture_texture"]
    for case in cases:
        first, second = case.images["layer1"], case.images["layer2"]
        for k, alpha in enumerate(case.facts["alphas"], 1):
            torch.testing.assert_close(case.images[f"image{k}"], alpha * first + (1 - alpha) * second)
    case = next(case for case in cases if case.facts["layers"] == "photo_texture")
    *layers, alphas = ica_unmix(case.images["image1"], case.images["image2"])
    truth = {"layer1": case.images["layer1"], "layer2": case.images["layer2"]}
    _, psnrs, swapped = Separation.matched({"layer1": layers[0][None], "layer2": layers[1][None]}, truth)
    assert min(psnrs) > 35
    matched = [1 - a for a in alphas] if swapped else alphas
    assert np.allclose(matched, case.facts["alphas"], atol=0.01)


def test_separation_cases_are_one_mixture_of_the_layers_task_separate_outputs():
    """``I = (y1 + y2)/2 = s·(α·L1 + (1 − α)·L2)``: every kind of layer pair, equal and unequal weights, the stronger
    layer its image in full and the fainter one dimmed by the ratio of the weights."""
    cases = suite("separation", "tune", size=32)
    assert len(cases) >= 12 and sorted({case.facts["layers"] for case in cases}) == ["photo_photo", "photo_texture", "texture_texture"]
    assert {case.facts["alpha"] for case in cases} == {0.3, 0.5, 0.7} and len({tuple(case.facts["photos"]) for case in cases}) == 9
    for case in cases:
        first, second, image = case.images["layer1"], case.images["layer2"], case.images["image"]
        torch.testing.assert_close(image, (first + second) / 2)
        assert float(torch.stack([first, second]).amax()) <= 1.0 and float(image.amax()) <= 1.0
    alpha, photos = 0.3, [photo(name, 32) for name in ("kate", "cave")]
    faint, strong = separation_layers(*photos, alpha)
    torch.testing.assert_close(strong, photos[1])
    torch.testing.assert_close(faint, photos[0] * 3 / 7)
    torch.testing.assert_close((faint + strong) / 2, (alpha * photos[0] + (1 - alpha) * photos[1]) / 1.4)


def test_separation_suite_files_mix_their_layers_to_8_bit_and_evaluate_scores_the_baselines(tmp_path):
    subprocess.run([sys.executable, "scripts/make_suite.py", "separation", "--out", str(tmp_path / "suite"), "--size", "32"], cwd=ROOT, check=True)
    cases = json.loads((tmp_path / "suite" / "cases.json").read_text())
    assert sum(case["split"] == "test" for case in cases.values()) == sum(case["split"] == "tune" for case in cases.values()) == 12
    for name, case in cases.items():
        assert case["task"] == "separate" and set(case["photos"]) <= set(PHOTOS[case["split"]]), name
        files = (case["image"], case["truth"]["layer1"], case["truth"]["layer2"])
        image, first, second = (load_image(tmp_path / "suite" / name / file) for file in files)
        photos = [photo(label, 32) for label in case["photos"]]
        if len(photos) == 2:  # the mixture of the photos themselves, at the case's weights
            mixed = (case["alpha"] * photos[0] + (1 - case["alpha"]) * photos[1]) / (2 * max(case["alpha"], 1 - case["alpha"]))
            assert float((image - mixed).abs().amax()) <= 1 / 255 + 1e-6, name
        assert float((image - (first + second) / 2).abs().amax()) <= 1 / 255 + 1e-6, name
    test = [name for name, case in cases.items() if case["split"] == "test"][:2]
    command = [sys.executable, "scripts/evaluate.py", "--cases", str(tmp_path / "suite"), "--split", "test", "--no-ddip"]
    command += ["--tv-weight", "0.03", "0.1", "--out", str(tmp_path / "eval"), "--only", *test]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    records = json.loads((tmp_path / "eval" / "evaluate.json").read_text())
    methods = ["mixture as each layer", "mixture doubled about its mean, and the mean", "TV structure–texture (weight 0.03)", "TV structure–texture (weight 0.1)"]
    assert [record["method"] for record in records] == methods * 2 and all(10 < record["psnr"] < 60 for record in records)
    assert [record["case"] for record in records] == [name for name in test for _ in methods]
    rows = evaluate_module().evaluate_case(test[0], cases[test[0]], tmp_path / "suite" / test[0], tmp_path / "eval", 2, ["logger=none", "threads=1"])
    assert rows[0]["method"] == "ddip (Double-DIP separation) logger=none threads=1" and rows[0]["steps"] == 2
    assert [row["method"] for row in rows[1:]] == methods[:2] + [f"TV structure–texture (weight {TV_WEIGHT:g})"]
