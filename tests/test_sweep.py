"""Sweeps: one offline W&B run per multirun job in one group, failed jobs don't stop a sweep, compare_runs
tables a sweep, Optuna runs, and the SLURM launcher config composes (it cannot run here)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest
from conftest import CONF, ROOT, tiny_texture
from hydra import compose, initialize_config_dir

QUIET = ["trainer.enable_progress_bar=false"]


def multirun(tmp_path, *overrides: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "train.py", "-m", *overrides, *QUIET, f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    return subprocess.run(command, check=False, cwd=ROOT, capture_output=True, text=True, timeout=300)


def run_record(run_dir) -> dict:
    """The "run" record of an offline W&B run's transaction log (id, group, tags, name)."""
    lines = subprocess.run([sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(run_dir)], capture_output=True, text=True, check=True).stdout
    return next(record["run"] for record in map(json.loads, lines.splitlines()) if record.get("type") == "run")


def test_each_job_is_its_own_wandb_run_in_one_group_and_compare_runs_tables_them(tmp_path):
    image = tiny_texture(tmp_path)
    result = multirun(tmp_path, "task=seg", "steps=3", "seed=0,1", "logger=wandb", f"data.image={image}")
    assert result.returncode == 0, result.stderr[-2000:]
    sweep = tmp_path / "sweep"
    runs = sorted(sweep.glob("*/wandb/offline-run-*"))
    assert len(runs) == 2 and len(list(sweep.glob("*/metrics.json"))) == 2
    records = [run_record(run) for run in runs]
    assert records[0]["run_id"] != records[1]["run_id"]
    assert records[0]["run_group"] == records[1]["run_group"] == str(sweep)
    assert {"task=seg", "seed=0"} <= set(records[0]["tags"]) and "seed=1" in records[1]["tags"]
    assert f"wandb sync {sweep}/*/wandb/offline-run-*" in result.stdout
    table = subprocess.run([sys.executable, "scripts/compare_runs.py", str(sweep)], cwd=ROOT, capture_output=True, text=True, check=True)
    rows = (sweep / "runs.csv").read_text().splitlines()
    assert len(rows) == 3 and rows[0].startswith("job,seed")  # header + one row per job; seed is the swept key
    assert "| 2 |" in (sweep / "summary.md").read_text() and (sweep / "summary.png").exists()
    assert "±" in table.stdout


def test_a_failed_job_does_not_stop_the_sweep_but_is_named_and_fails_it_and_a_relaunch_skips_finished_jobs(tmp_path):
    image = tiny_texture(tmp_path)
    result = multirun(tmp_path, "task=seg", "steps=0,2", "logger=none", f"data.image={image}")
    message = "steps=0: need a whole number, at least one optimisation step"
    assert result.returncode == 1, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-2:] == ["ddip: 1 job(s) failed:", f"  0: {message}"]
    finished = tmp_path / "sweep" / "1" / "metrics.json"
    assert (tmp_path / "sweep" / "0" / "FAILED.txt").exists() and finished.exists()
    table = subprocess.run([sys.executable, "scripts/compare_runs.py", str(tmp_path / "sweep")], check=False, cwd=ROOT, capture_output=True, text=True)
    assert table.returncode == 0 and f"job 0 failed: {message}" in table.stdout
    rows = list(csv.DictReader((tmp_path / "sweep" / "runs.csv").open()))
    assert [(row["job"], row["steps"], row["status"]) for row in rows] == [("0", "0", f"failed: {message}"), ("1", "2", "ok")]
    before = finished.stat().st_mtime_ns
    again = multirun(tmp_path, "task=seg", "steps=0,2", "logger=none", f"data.image={image}")
    assert "is complete (metrics.json); skipped" in again.stderr and finished.stat().st_mtime_ns == before
    other = multirun(tmp_path, "task=seg", "steps=1,3", "logger=none", f"data.image={image}")  # both jobs are new ones
    assert other.returncode == 0, other.stderr[-2000:]
    assert "skipped" not in other.stderr and json.loads(finished.read_text())["steps"] == 3
    assert not (tmp_path / "sweep" / "0" / "FAILED.txt").exists()  # the earlier failure is not left beside the new result


@pytest.mark.slow  # ~40 s idle: a 2-trial Optuna sweep; run with -m slow
def test_an_optuna_search_keeps_its_own_study_in_its_sweep_dir(tmp_path):
    """A search on a new image is a new study: the study lives in the sweep dir, never joined by another search."""
    import optuna

    image = tiny_texture(tmp_path)
    for name, trials in (("first", 2), ("second", 1)):
        overrides = ["hparams_search=optuna", f"hydra.sweeper.n_trials={trials}", "steps=2", f"data.image={image}"]
        result = subprocess.run(
            [sys.executable, "train.py", "-m", *overrides, *QUIET, f"hydra.sweep.dir={tmp_path / name}"],
            check=False, cwd=ROOT, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-2000:]
        assert len(list((tmp_path / name).glob("*/metrics.json"))) == trials
        study = optuna.load_study(study_name="ddip", storage=f"sqlite:///{tmp_path / name / 'optuna.db'}")
        assert len(study.trials) == trials
        assert (tmp_path / name / "optimization_results.yaml").exists()


def test_slurm_and_joblib_launchers_compose():
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        slurm = compose("train", overrides=["hydra/launcher=slurm", "hydra.launcher.partition=gpu"], return_hydra_config=True)
        joblib = compose("train", overrides=["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"], return_hydra_config=True)
    assert slurm.hydra.launcher._target_.endswith("SlurmLauncher") and slurm.hydra.launcher.partition == "gpu"
    assert slurm.hydra.launcher.gpus_per_node == 1 and slurm.hydra.launcher.array_parallelism > 0
    assert joblib.hydra.launcher._target_.endswith("JoblibLauncher") and joblib.hydra.launcher.n_jobs == 2


def test_compare_runs_lists_jobs_in_numeric_order(tmp_path):
    sweep = tmp_path / "sweep"
    for job in (10, 2):
        (sweep / str(job) / ".hydra").mkdir(parents=True)
        (sweep / str(job) / ".hydra" / "overrides.yaml").write_text(f"- seed={job}\n")
        (sweep / str(job) / "metrics.json").write_text(json.dumps({"psnr_final": 20.0 + job}))
    subprocess.run([sys.executable, "scripts/compare_runs.py", str(sweep)], cwd=ROOT, capture_output=True, text=True, check=True)
    jobs = [row.split(",")[0] for row in (sweep / "runs.csv").read_text().splitlines()[1:]]
    assert jobs == ["2", "10"]
