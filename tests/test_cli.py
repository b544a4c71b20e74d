"""The command line: ``--help`` lists the choices and the chosen task's knobs, a default run's console holds the
progress bar and ddip's own lines only, and an installed package gives a working ``ddip`` command."""

from __future__ import annotations

import os
import subprocess
import sys
import venv

import pytest
from conftest import ROOT, options, tiny_texture


def train(*arguments: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "train.py", *arguments], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False, **kwargs)


def test_help_lists_the_groups_and_the_chosen_tasks_knobs():
    result = train("task=dehaze", "--help")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for group in ("task", "backbone", "scheduler", "stopping", "logger"):
        assert f"{group}: {', '.join(options(group))}" in lines, group
    assert "  airlight_estimate: quadtree" in lines and "  _target_: ddip.tasks.dehaze.Dehazing" in lines
    assert result.stdout.startswith("ddip: Deep Image Prior decompositions")


def test_a_default_run_prints_only_its_progress_and_its_summary(tmp_path):
    """No third-party warning, tip or duplicated log line: stderr stays empty (with the default W&B logger)."""
    run_dir = tmp_path / "run"
    environment = {**os.environ, "WANDB_MODE": "offline"}
    environment.pop("WANDB_SILENT", None)
    result = train("steps=2", f"data.image={tiny_texture(tmp_path)}", f"hydra.run.dir={run_dir}", env=environment)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert lines[-1].startswith("ddip: 2 steps in ") and all(line.startswith(("Epoch 0", "Training", "ddip: ")) for line in lines), lines
    assert list((run_dir / "wandb").glob("offline-run-*"))


@pytest.mark.slow
def test_pip_install_gives_a_ddip_command_that_runs_from_anywhere(tmp_path):
    """``pip install .`` into a fresh venv (its own packages, no ones from this environment), then ``ddip --help``
    and ``ddip steps=5 logger=none`` from another folder: the configs and the sample ship inside the package."""
    venv.create(tmp_path / "venv", with_pip=True)
    pip = [str(tmp_path / "venv" / "bin" / "python"), "-m", "pip", "install", "--quiet", str(ROOT)]
    subprocess.run(pip, check=True, capture_output=True, timeout=1800)
    ddip = str(tmp_path / "venv" / "bin" / "ddip")
    helped = subprocess.run([ddip, "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=300, check=True)
    assert f"task: {', '.join(options('task'))}" in helped.stdout
    ran = subprocess.run([ddip, "steps=5", "logger=none", "hydra.run.dir=run"], cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False)
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert (tmp_path / "run" / "metrics.json").exists() and (tmp_path / "run" / "mask.png").exists()
