"""``scripts/evaluate.py`` is task-agnostic: a task it has never seen (a class and its yamls, here made by the test)
is evaluated by its own benchmark hooks (:meth:`ddip.tasks.base.Task.benchmark`), and the script names no task and
no metric."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from conftest import ROOT
from PIL import Image
from test_cases import evaluate_module

from ddip.benchmark import BenchmarkCase, evaluable, ranked_metric, required_keys, task_class, task_classes
from ddip.io import load_map
from ddip.tasks.seg import Segmentation, iou

TASK = "whole_image_seg"
SMALL = ["logger=none", "threads=1", "backbone.channels=[8,8,8,8,8]", "backbone.skip_channels=[4,4,4,4,4]"]


class WholeImageSegmentation(Segmentation):
    """Segmentation compared with a baseline of its own: every pixel taken as foreground."""

    fit_label = "ddip (whole-image test task)"

    @classmethod
    def baseline_records(cls, case: BenchmarkCase) -> list[dict]:
        truth = load_map(case.truth_path("mask"))
        return [case.record("every pixel foreground", iou=iou(torch.ones_like(truth), truth))]


def new_task_suite(root: Path) -> tuple[dict, list[str]]:
    """A config folder that adds ``task=whole_image_seg`` (its task and recipe yamls, as a new task's), a one-case
    suite of it, and the override that puts the folder on Hydra's search path."""
    conf = root / "conf"
    for group in ("task", "recipe"):
        (conf / group).mkdir(parents=True)
        text = (ROOT / "ddip" / "conf" / group / "seg.yaml").read_text()
        (conf / group / f"{TASK}.yaml").write_text(text.replace("ddip.tasks.seg.Segmentation", f"{__name__}.WholeImageSegmentation"))
    folder = root / "suite" / "square"
    folder.mkdir(parents=True)
    image = np.random.default_rng(0).integers(0, 100, (32, 32, 3), dtype=np.uint8)
    image[8:24, 8:24] += 150
    Image.fromarray(image).save(folder / "image.png")
    Image.fromarray(((image[..., 0] > 128) * 255).astype(np.uint8)).save(folder / "mask.png")
    cases = {"square": {"task": TASK, "image": "image.png", "truth": {"mask": "mask.png"}}}
    (root / "suite" / "cases.json").write_text(json.dumps(cases))
    return cases, [f"hydra.searchpath=[file://{conf}]"]


def test_a_new_task_is_evaluated_by_its_own_hooks_with_no_change_to_the_script(tmp_path):
    cases, searchpath = new_task_suite(tmp_path)
    assert task_class(TASK, tuple(searchpath)) is WholeImageSegmentation and evaluable(cases["square"], searchpath)
    assert required_keys(WholeImageSegmentation) == ("truth.mask",) and ranked_metric(WholeImageSegmentation) == "iou"
    rows = evaluate_module().evaluate_case("square", cases["square"], tmp_path / "suite" / "square", tmp_path / "eval", 2, [*searchpath, *SMALL])
    assert [row["method"] for row in rows] == [" ".join(["ddip (whole-image test task)", *searchpath, *SMALL]), "every pixel foreground"]
    assert rows[0]["steps"] == 2 and 0 <= rows[0]["iou"] <= 1 and rows[1]["iou"] == 0.25  # a 16² square of 32²
    command = [sys.executable, "scripts/evaluate.py", "--cases", str(tmp_path / "suite"), "--no-ddip", "--out", str(tmp_path / "cli")]
    command += ["--override", *searchpath, "threads=1"]
    environment = os.environ | {"PYTHONPATH": str(ROOT / "tests")}  # where the task's module is found
    result = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((tmp_path / "cli" / "evaluate.json").read_text()) == rows[1:]
    assert "| every pixel foreground | iou | 1 | 0.250 |" in (tmp_path / "cli" / "evaluate.md").read_text()


def test_a_case_short_of_what_its_task_needs_is_not_evaluated():
    assert not evaluable({"task": "denoise", "image": "image.png", "truth": {"clean": "clean.png"}}, [])  # no sigma
    assert evaluable({"task": "denoise", "image": "image.png", "truth": {"clean": "clean.png"}, "sigma": 25}, [])
    assert not evaluable({"task": "invdn", "image": "image.png"}, [])  # a supervised network: no decomposition


def test_the_evaluation_script_names_no_task_and_no_metric():
    """A guard beside the behavioural test: no word of ``scripts/evaluate.py`` is a task's name (its yaml or its
    class) or begins with a task's metric."""
    names = {path.stem for path in (ROOT / "ddip" / "conf" / "task").glob("*.yaml")}
    classes = {cls.__name__.lower() for cls in task_classes()}
    metrics = {"psnr", "ssim", "iou", *(cls.primary_metric for cls in task_classes())}
    words = set(re.findall(r"[a-z_]+", (ROOT / "scripts" / "evaluate.py").read_text().lower()))
    assert not words & (names | classes)
    assert not [word for word in words if word.startswith(tuple(metrics))]


def test_a_case_of_a_task_ddip_does_not_know_is_one_error_line(tmp_path):
    (tmp_path / "cases.json").write_text(json.dumps({"odd": {"task": "no_such_task", "image": "image.png"}}))
    command = [sys.executable, "scripts/evaluate.py", "--cases", str(tmp_path), "--out", str(tmp_path / "eval")]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith(f"evaluate: error: {tmp_path / 'cases.json'}: odd: task 'no_such_task': ")
