"""Bad input ends with one clear line and a non-zero exit, never a deep traceback or a fake result."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from conftest import ROOT, two_texture_composite
from PIL import Image

from ddip.errors import DdipError
from ddip.run import build_component, compose_train, run


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "image.png"
    Image.new("RGB", (32, 24), (120, 80, 40)).save(path)
    return path


def run_with(tmp_path, overrides):
    return run(compose_train(["logger=none", "steps=2"] + overrides), tmp_path / "run")


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["data.image=/nonexistent/photo.jpg"], "image not found"),
        (["task.hints=files", "task.fg_hint=/nonexistent/fg.png", "task.bg_hint=/nonexistent/bg.png"], "task.fg_hint: image not found"),
        (["task=dehaze", "data.truth={clean:/nonexistent/clean.png}"], "data.truth.clean: image not found: /nonexistent/clean.png"),
        (["+data.truth.mask=/nonexistent/mask.png"], "data.truth.mask: image not found"),
        (["task=separate", "data.truth={layer1:/nonexistent/a.png,layer2:/nonexistent/b.png}"], "data.truth.layer1: image not found: /nonexistent/a.png"),
        (["data.truth={clean:/nonexistent/clean.png}"], "data.truth.clean: this task accepts no ground truth 'clean' (it accepts: mask)"),
        (["task.hints=files"], "needs both task.fg_hint"),
        (["task.hints=maybe"], "task.hints='maybe' is not one of"),
        (["steps=0"], "at least one optimisation step"),
        (["steps=abc"], "steps='abc': need a whole number"),
        (["steps=2.5"], "steps=2.5: need a whole number"),
        (["seed=x"], "seed='x' must be a whole number"),
        (["seed=-1"], "seed=-1 must be a whole number in [0, 4294967295]"),
        ([f"seed={2**32}"], "seed=4294967296 must be a whole number in [0, 4294967295]"),
        (["threads=0"], "threads=0 must be a whole number"),
        (["backbone.kernel_size=4"], "invalid backbone configuration"),
        (["backbone=segnet", "backbone.width=0"], "invalid backbone configuration"),
        (["optimizer.lr=fast"], "optimizer.lr='fast' must be a number > 0"),
    ],
)
def test_configuration_errors(tmp_path, image, overrides, message):
    with pytest.raises(DdipError, match=re.escape(message)):
        run_with(tmp_path, [f"data.image={image}"] + overrides)
    assert not (tmp_path / "run" / "metrics.json").exists()


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["task.threshold=2"], "task.threshold=2 must be a number in (0, 1)"),
        (["task.hint_band=-0.1"], "task.hint_band=-0.1 must be a number in [0, 1]"),
        (["task.refine_eps=0"], "task.refine_eps=0 must be a number > 0"),
        (["task=dehaze", "task.t_min=0"], "task.t_min=0 must be a number in (0, 1)"),
        (["task=dehaze", "task.airlight_fraction=abc"], "task.airlight_fraction='abc' must be a number in (0, 1]"),
        (["task=dehaze", "task.airlight_patch=0"], "task.airlight_patch=0 must be a whole number ≥ 1"),
        (["task=dehaze", "task.transmission_prior_fraction=1.5"], "task.transmission_prior_fraction=1.5 must be a number in [0, 1]"),
        (["task.input_scale=abc"], "task.input_scale='abc' must be a number"),
        (["task.reg_noise.std=-1"], "task.reg_noise.std=-1 must be a number ≥ 0"),
        (["task.hints=none", "callbacks.evaluation.every=0"], "callbacks.evaluation.every=0 must be a whole number ≥ 1"),
        (["task.hints=none", "module.log_every=abc"], "module.log_every='abc' must be a whole number"),
        (["data.augment=maybe"], "data.augment='maybe' must be true or false"),
        (["data.max_side=abc"], "data.max_side='abc' must be a whole number"),
        (["task.hints=none", "stopping=es_wmv", "stopping.patience=abc"], "stopping.patience='abc' must be a whole number"),
    ],
)
def test_task_settings_out_of_range(tmp_path, image, overrides, message):
    with pytest.raises(DdipError, match=re.escape(message)):
        run_with(tmp_path, [f"data.image={image}"] + overrides)
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_unreadable_hint_map(tmp_path, image):
    broken = tmp_path / "hint.png"
    broken.write_text("definitely not a PNG")
    with pytest.raises(DdipError, match="not a readable image"):
        run_with(tmp_path, [f"data.image={image}", "task.hints=files", f"task.fg_hint={broken}", f"task.bg_hint={broken}"])


def test_empty_hint_map(tmp_path, image):
    black = tmp_path / "black.png"
    Image.new("L", (8, 8), 0).save(black)
    with pytest.raises(DdipError, match="hint map is empty"):
        run_with(tmp_path, [f"data.image={image}", "task.hints=files", f"task.fg_hint={black}", f"task.bg_hint={black}"])


def test_uniform_image_with_automatic_hints(tmp_path, image):
    with pytest.raises(DdipError, match="task.hints=auto found no salient region"):
        run_with(tmp_path, [f"data.image={image}", "task=seg", "task.hints=auto"])
    assert not (tmp_path / "run" / "metrics.json").exists()


@pytest.mark.parametrize(
    "override, message",
    [
        ("task.weights.exclusion=abc", "task.weights.exclusion='abc' must be a number, 0 or more"),
        ("task.weights.hint=-1", "task.weights.hint=-1 must be a number, 0 or more"),
        ("+task.weights.exclusoin=0.1", "task.weights.exclusoin is not a loss term of this task (reconstruction, exclusion, binarization, hint)"),
    ],
)
def test_bad_loss_weights_are_one_line_errors(tmp_path, image, override, message):
    with pytest.raises(DdipError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run_with(tmp_path, [f"data.image={image}", override])


def test_non_finite_loss_is_reported(tmp_path, image):
    with pytest.raises(DdipError, match="non-finite"):
        run_with(tmp_path, [f"data.image={image}", "task.weights.reconstruction=nan", "task.hints=none", "callbacks.evaluation.every=1"])
    assert not (tmp_path / "run" / "metrics.json").exists()


def cli(tmp_path, *overrides):
    command = [sys.executable, "train.py", "logger=none", "steps=2", f"hydra.run.dir={tmp_path / 'run'}", *overrides]
    return subprocess.run(command, check=False, cwd=ROOT, capture_output=True, text=True)


def test_cli_prints_one_line_and_marks_the_run_failed(tmp_path):
    result = cli(tmp_path, "data.image=/nonexistent/photo.jpg")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == "ddip: error: image not found: /nonexistent/photo.jpg"
    assert (tmp_path / "run" / "FAILED.txt").exists() and not (tmp_path / "run" / "metrics.json").exists()


@pytest.mark.parametrize("group", ["task", "backbone", "logger", "scheduler"])
def test_cli_rejects_unknown_config_values(tmp_path, group):
    result = cli(tmp_path, f"{group}=nonsense")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert f"Could not find '{group}/nonsense'" in result.stderr


def test_scripts_compose_refuses_a_bad_override_in_one_line():
    """evaluate.py and benchmark.py compose through ddip.run.compose_train: an override Hydra refuses is one line."""
    assert compose_train(["task=dehaze", "task.weights.exclusion=0"]).task.weights.exclusion == 0
    with pytest.raises(DdipError, match=r"^invalid override: Could not override 'task.nonsense'\.$"):
        compose_train(["task=dehaze", "task.nonsense=1"])
    with pytest.raises(DdipError, match=r"^invalid override: .*'task/nonsense'"):
        compose_train(["task=nonsense"])



@pytest.mark.parametrize(
    "override, replacement",
    [
        ("data.clean=gt.png", "data.truth={clean:PATH}"),
        ("data.gt_mask=mask.png", "data.truth={mask:PATH}"),
        ("data.layers=[a.png,b.png]", "data.truth={layer1:PATH,layer2:PATH}"),
        ("+data.clean=gt.png", "data.truth={clean:PATH}"),
        ("data.sample_clean=zebra_crop.png", "data.sample.truth={clean:FILE}"),
        ("data.sample_mask=zebra_known.png", "data.sample.mask=FILE"),
        ("data.sample_hint=zebra_watermark_hint.png", "data.sample.hint=FILE"),
    ],
)
def test_replaced_ground_truth_settings_tell_the_new_form_in_one_line(tmp_path, override, replacement):
    """The settings that ``data.truth`` and the ``data.sample`` block replaced: one line naming what to write instead,
    from the scripts' compose and from the command line (before Hydra, which would only say it cannot override)."""
    key = override.lstrip("+").split("=")[0]
    with pytest.raises(DdipError, match=f"^{re.escape(f'{key} is replaced: give {replacement}')}$"):
        compose_train(["task=seg", override])
    result = cli(tmp_path, override)
    assert result.returncode == 2 and result.stderr.strip() == f"ddip: error: {key} is replaced: give {replacement}"


def test_removed_options_are_one_line_errors():
    """Options removed in issue 35 (off by default, not better when measured) are refused, not ignored."""
    with pytest.raises(DdipError, match=r"^invalid override: Could not override 'task.passes'\.$"):
        compose_train(["task=dehaze", "task.passes=2"])
    for rule in ("haze_lines", "dark_channel_mean"):
        cfg = compose_train(["task=dehaze", f"task.airlight_estimate={rule}"])
        with pytest.raises(DdipError, match=f"^task.airlight_estimate='{rule}' is not one of dark_channel, quadtree$"):
            build_component(cfg, "task")

def test_cli_runs_a_quoted_path_with_spaces_and_non_ascii_letters(tmp_path):
    """The quoting of docs/guide/configuration.md: once for the shell (here: one argv item), once for Hydra (double quotes)."""
    image, _ = two_texture_composite(32)
    path = tmp_path / "my photo (été).png"
    Image.fromarray(image).save(path)
    result = cli(tmp_path, f'data.image="{path}"', "trainer.enable_progress_bar=false")
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["image"] == str(path)
