"""End to end: every config combination runs, outputs keep the input's size, results are reproducible,
and the W&B / CSV loggers write real files (W&B offline, never mocked)."""

from __future__ import annotations

import csv
import itertools
import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import DECOMPOSITION_TASKS, ROOT, data_inputs, is_decomposition, options, two_texture_composite
from hydra.utils import get_class
from PIL import Image

from ddip.errors import DdipError
from ddip.run import build_component, compose_train, run
from ddip.stopping import ESWMV
from ddip.tasks.base import Task

COMBINATIONS = list(itertools.product(DECOMPOSITION_TASKS, options("backbone"), options("scheduler")))
# every task × backbone runs; every scheduler runs with each task on the small seg/dehaze nets or the unet
RUNS = sorted({(t, b, "none") for t, b, _ in COMBINATIONS} | {(t, "unet", s) for t, _, s in COMBINATIONS})
OUTPUTS = {
    "seg": ["mask", "soft_mask", "foreground", "background", "reconstruction"],
    "dehaze": ["dehazed", "transmission", "airlight", "reconstruction"],
}


def tiny_image(tmp_path, size=(32, 32)):
    image, _ = two_texture_composite(max(size))
    path = tmp_path / "tiny.png"
    Image.fromarray(image[: size[0], : size[1]]).save(path)
    return path


@pytest.mark.parametrize("task, backbone, scheduler", COMBINATIONS)
def test_every_combination_composes_and_instantiates(task, backbone, scheduler):
    cfg = compose_train([f"task={task}", f"backbone={backbone}", f"scheduler={scheduler}"])
    for key in ("task", "scheduler"):
        assert build_component(cfg, key) is not None
    assert callable(build_component(cfg, "backbone"))


@pytest.mark.parametrize("task, backbone, scheduler", RUNS)
def test_combinations_run_two_steps(tmp_path, task, backbone, scheduler):
    overrides = [f"task={task}", f"backbone={backbone}", f"scheduler={scheduler}", "steps=2", "logger=none"]
    image = tiny_image(tmp_path)
    cfg = compose_train(overrides + ["callbacks.evaluation.every=1", *data_inputs(overrides, image)])
    metrics = run(cfg, tmp_path / "run")
    assert metrics["steps"] == 2 and metrics["seconds_per_step"] > 0
    assert 0 < metrics["step_seconds"] < metrics["fit_seconds"]  # the steps' own seconds, counted in the same run
    assert metrics["loop_overhead"] == pytest.approx(metrics["fit_seconds"] / metrics["step_seconds"] - 1)
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["steps"] == 2
    assert (tmp_path / "run" / "progress.png").exists()
    with (tmp_path / "run" / "history.csv").open() as file:
        history = list(csv.DictReader(file))
    assert [int(row["step"]) for row in history] == [1, 2] and all(float(row["loss"]) > 0 for row in history)


def test_every_task_has_a_recipe_and_the_command_line_wins_over_it():
    """Task yamls hold the task object; the recipe of the same name sets the run (steps, lr, stopping), and the
    ``stopping`` and ``speed`` groups chosen on the command line win over it."""
    assert options("task") == [name for name in options("recipe") if name in options("task")]
    for task in options("task"):
        assert set(compose_train([f"task={task}"]).task) - {"_target_", "_convert_"}, task
    denoise = compose_train(["task=denoise"])
    assert denoise.steps == 3000 and denoise.optimizer.lr == 0.01 and denoise.stopping.patience == 500
    assert compose_train(["task=denoise", "stopping=none"]).stopping is None
    assert compose_train(["task=denoise", "speed=plain"]).module.stack_generators is False
    assert compose_train(["task=seg"]).stopping._target_.endswith("Settled") and compose_train(["task=seg", "stopping=none"]).stopping is None
    chosen = build_component(compose_train(["task=seg", "stopping=es_wmv"]), "stopping")
    assert isinstance(chosen, ESWMV) and chosen.patience == 1000
    borrowed = compose_train(["task=seg", "recipe=denoise"])
    assert borrowed.task._target_.endswith("Segmentation") and borrowed.optimizer.lr == 0.01


PRESETS = [f"experiment={name}" for name in options("experiment") if is_decomposition([f"experiment={name}"])]
PRESETS += [f"task={name}" for name in DECOMPOSITION_TASKS]


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("stopping", options("stopping"))
def test_every_preset_and_task_runs_with_every_stopping_rule(tmp_path, preset, stopping):
    """A preset's settings of a stopping rule (``experiment=guided_dip_table``'s ``stopping.stop``) are no stopping
    rule when ``stopping=none`` is chosen."""
    overrides = [preset, f"stopping={stopping}", "steps=2", "logger=none"]
    image = tiny_image(tmp_path)
    cfg = compose_train(overrides + data_inputs(overrides, image))
    if stopping == "settled" and get_class(cfg.task._target_).decision is Task.decision:
        with pytest.raises(DdipError, match="stopping=settled waits for a task's decision"):
            run(cfg, tmp_path / "run")
        return
    assert run(cfg, tmp_path / "run")["steps_run"] == 2


@pytest.mark.parametrize("backbone", options("backbone"))
def test_odd_size_comes_back_at_its_size(tmp_path, backbone):
    image = tiny_image(tmp_path, size=(37, 45))
    cfg = compose_train([f"backbone={backbone}", "steps=3", "logger=none", f"data.image={image}"])
    run(cfg, tmp_path / "run")
    for name in OUTPUTS["seg"]:
        assert Image.open(tmp_path / "run" / f"{name}.png").size == (45, 37), name
    assert set(np.unique(np.asarray(Image.open(tmp_path / "run" / "mask.png")))) <= {0, 255}


@pytest.mark.parametrize("task", ["seg", "dehaze"])
def test_large_image_is_fitted_downscaled_and_comes_back_at_its_size(tmp_path, task):
    image = tiny_image(tmp_path, size=(64, 50))
    cfg = compose_train([f"task={task}", "steps=2", "logger=none", f"data.image={image}", "data.max_side=32"])
    metrics = run(cfg, tmp_path / "run")
    assert metrics["size"] == [64, 50] and metrics["fit_size"] == [32, 25]
    for name in OUTPUTS[task]:
        assert Image.open(tmp_path / "run" / f"{name}.png").size == (50, 64), name


def test_same_seed_same_result_other_seed_other_result(tmp_path):
    image = tiny_image(tmp_path)
    results = []
    for seed, folder in ((1, "a"), (1, "b"), (2, "c")):
        cfg = compose_train(["steps=4", "logger=none", f"seed={seed}", f"data.image={image}", "data.augment=true"])
        results.append(run(cfg, tmp_path / folder)["final_loss"])
    assert results[0] == results[1] != results[2]


def test_csv_logger_writes_metrics_and_never_imports_wandb(tmp_path):
    image = tiny_image(tmp_path)
    code = (
        "import sys; sys.path.insert(0, 'tests'); from ddip.run import compose_train, run; "
        f"run(compose_train(['steps=3', 'logger=csv', 'module.log_every=1', 'data.image={image}']), r'{tmp_path / 'run'}'); "
        "assert 'wandb' not in sys.modules, 'wandb was imported'"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True)
    csv = (tmp_path / "run" / "csv" / "metrics.csv").read_text()
    assert "train/loss" in csv.splitlines()[0]


def test_wandb_offline_run_is_complete_and_inside_the_run_dir(tmp_path):
    image = tiny_image(tmp_path)
    overrides = ["steps=4", "logger=wandb", "callbacks.evaluation.every=2", "callbacks.image_panels.every=2", "module.log_every=1"]
    cfg = compose_train(overrides + [f"data.image={image}"])
    run(cfg, tmp_path / "run")
    runs = list((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    summary = subprocess.run(
        [sys.executable, "-m", "wandb", "leet", "inspect", "--summary", "--json", str(runs[0])], capture_output=True, text=True, check=True
    )
    record = json.loads(summary.stdout)
    text = json.dumps(record)
    assert "finished" in text.lower()
    assert {"eval/score", "train/loss", "result/seconds_per_step"} <= set(record["summary"])  # scalars
    assert "Segmentation" in text  # the resolved config (task._target_)
    assert list((runs[0] / "files" / "media" / "images").glob("panel_*.png"))  # image panels


def test_progress_bar_switch_alone_turns_the_bar_off(tmp_path):
    """``trainer.enable_progress_bar=false`` without removing the configured bar callback: the run goes through
    with no progress bar (Lightning alone refuses that pair)."""
    from lightning.pytorch.callbacks import ProgressBar

    from ddip.run import callbacks

    quiet = ["task=seg", "steps=2", "logger=none", "checkpoint=null", f"data.image={tiny_image(tmp_path)}"]
    cfg = compose_train([*quiet, "trainer.enable_progress_bar=false"])
    assert not any(isinstance(callback, ProgressBar) for callback in callbacks(cfg))
    assert any(isinstance(callback, ProgressBar) for callback in callbacks(compose_train(quiet)))
    assert run(cfg, tmp_path / "run")["steps"] == 2


def test_the_callbacks_group_lists_the_run_callbacks_and_panels_need_a_logger_that_shows_images(tmp_path):
    from lightning.pytorch.loggers import WandbLogger
    from omegaconf import OmegaConf

    from ddip.callbacks import ImagePanels, RunCheckpoint
    from ddip.curriculum import StageResets
    from ddip.errors import DdipError
    from ddip.run import callbacks
    from ddip.stopping import ESWMV

    cfg = compose_train(["task=denoise", "logger=none"])
    OmegaConf.update(cfg, "paths.output_dir", str(tmp_path), force_add=True)
    built = {type(callback) for callback in callbacks(cfg)}
    assert {ESWMV, RunCheckpoint, StageResets} <= built and ImagePanels not in built  # no panels without W&B
    assert ImagePanels in {type(callback) for callback in callbacks(cfg, WandbLogger(offline=True, save_dir=str(tmp_path)))}
    dropped = compose_train(["task=denoise", "stopping=none", "checkpoint=null", "callbacks.stage_resets=null"])
    assert not {ESWMV, RunCheckpoint, StageResets} & {type(callback) for callback in callbacks(dropped)}
    supervised = compose_train(["task=invdn_train", "checkpoint=null"])
    assert list(supervised.callbacks) == ["progress_bar", "stopping", "checkpoint"]  # no decomposition's callbacks
    with pytest.raises(DdipError, match="callbacks.image_panels.every"):
        callbacks(compose_train(["callbacks.image_panels.every=0", "checkpoint=null"]))
    without = compose_train(["steps=2", "logger=none", "checkpoint=null", "callbacks.evaluation=null", f"data.image={tiny_image(tmp_path)}"])
    with pytest.raises(DdipError, match="callbacks.evaluation is null"):
        run(without, tmp_path / "run")


def test_finished_run_prints_what_it_did_and_where_the_results_are(tmp_path, composite):
    image, mask = composite
    run_dir = tmp_path / "run"
    command = [sys.executable, "train.py", "logger=none", "checkpoint=null", "steps=2", "trainer.enable_progress_bar=false"]
    command += [f"data.image={image}", f"data.truth={{mask:{mask}}}", f"hydra.run.dir={run_dir}"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=True)
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("ddip: 2 steps in ") and "; iou_chosen 0." in last
    assert f"; results in {run_dir}: " in last and "mask.png" in last and last.endswith("metrics.json")


@pytest.mark.parametrize("task", ["dehaze", "denoise"])
def test_dehaze_and_denoise_without_an_image_fit_their_bundled_sample_and_score_it(tmp_path, task):
    """``python train.py task=dehaze`` (or ``denoise``) with no ``data.image`` fits the bundled hazy (noisy) zebra
    and, its clean original being bundled too, reports PSNR/SSIM against it."""
    metrics = run(compose_train([f"task={task}", "steps=2", "logger=none", "callbacks.evaluation.every=1"]), tmp_path / "run")
    assert metrics["image"].endswith(f"{'hazy' if task == 'dehaze' else 'noisy'}_zebra.png")
    assert np.isfinite(metrics["psnr_chosen"]) and 0 < metrics["ssim_chosen"] <= 1
