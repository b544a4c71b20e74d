"""A run dir's life: a finished run is never changed by a resume or a new run, a run killed after its last
checkpoint resumes to the uninterrupted result, SIGTERM leaves a resumable checkpoint and a non-zero exit, two
runs never write into one dir, an earlier result never stands beside a new run's, and a finished run keeps no
checkpoint unless asked."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from conftest import ROOT, tiny_texture
from PIL import Image

import ddip.run
from ddip.errors import DdipError, one_line
from ddip.run import compose_train, run
from ddip.rundir import LOCK, RunDirInUse

QUIET = ["trainer.enable_progress_bar=false"]


def train(*overrides: str, timeout: int = 300) -> subprocess.CompletedProcess:
    command = [sys.executable, "train.py", "logger=none", *QUIET, *overrides]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path))


def test_resuming_a_finished_run_leaves_it_as_it_is(tmp_path):
    overrides = ["steps=6", "logger=none", "callbacks.evaluation.every=2", f"data.image={tiny_texture(tmp_path)}"]
    finished = run(compose_train(overrides), tmp_path / "run")
    before = {path.name: path.read_bytes() for path in (tmp_path / "run").iterdir() if path.is_file()}
    assert run(compose_train(overrides + ["resume=true"]), tmp_path / "run") == finished
    assert {path.name: path.read_bytes() for path in (tmp_path / "run").iterdir() if path.is_file()} == before


def test_train_refuses_a_finished_run_dir_and_says_a_finished_run_has_nothing_to_resume(tmp_path):
    run_dir = tmp_path / "run"
    image = f"data.image={tiny_texture(tmp_path)}"
    assert train("steps=2", image, f"hydra.run.dir={run_dir}").returncode == 0
    kept = {path: path.read_bytes() for path in [run_dir / "metrics.json", run_dir / ".hydra" / "config.yaml"]}
    again = train("steps=3", image, f"hydra.run.dir={run_dir}")
    assert again.returncode == 2 and again.stderr.strip().splitlines()[-1] == (
        f"ddip: error: {run_dir} holds a finished run (metrics.json); choose another hydra.run.dir (or delete it)"
    )
    resumed = train("steps=2", image, "resume=true", f"hydra.run.dir={run_dir}")
    assert resumed.returncode == 0 and "nothing to resume" in resumed.stderr
    assert {path: path.read_bytes() for path in kept} == kept  # neither the result nor its config changed
    assert not (run_dir / "FAILED.txt").exists()


@pytest.mark.parametrize("task", ["seg", "denoise"])
def test_a_run_killed_after_its_last_checkpoint_resumes_to_the_uninterrupted_result(tmp_path, task):
    """The last checkpoint is written before the last step's evaluation; a kill between it and metrics.json
    (simulated: the result files removed) resumes to the result of the uninterrupted run."""
    extra = ["backbone.channels=[8,8,8,8,8]", "stopping.window=3", "stopping.stop=false"] if task == "denoise" else []
    overrides = [f"task={task}", "steps=12", "logger=none", "callbacks.evaluation.every=5", "checkpoint.every_n_train_steps=4", "checkpoint.keep=true"]
    overrides += [f"data.image={tiny_texture(tmp_path)}", *extra]
    full = run(compose_train(overrides), tmp_path / "full")
    killed = tmp_path / "killed"
    run(compose_train(overrides), killed)
    assert torch.load(killed / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 12
    for path in [killed / "metrics.json", *killed.glob("*.png")]:
        path.unlink()
    resumed = run(compose_train(overrides + ["resume=true"]), killed)
    for key in ("chosen_step", "chosen_by", "chosen_score", "final_loss", "final_score", "steps_run"):
        assert resumed[key] == full[key], key
    main = "mask" if task == "seg" else "denoised"
    assert np.array_equal(pixels(killed / f"{main}.png"), pixels(tmp_path / "full" / f"{main}.png"))


def test_sigterm_exits_non_zero_without_a_result_and_the_run_resumes_from_its_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    image = Image.fromarray(np.asarray(Image.open(tiny_texture(tmp_path)))[:16, :16])
    image.save(tmp_path / "small.png")
    command = [sys.executable, "train.py", "logger=none", *QUIET, "steps=1000000", "checkpoint.every_n_train_steps=5"]
    command += [f"data.image={tmp_path / 'small.png'}", f"hydra.run.dir={run_dir}"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (run_dir / "checkpoints" / "last.ckpt").exists():  # the fit is under way
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr[-2000:]
    assert not (run_dir / "metrics.json").exists() and not (run_dir / LOCK).exists()
    step = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    assert step >= 5 and f"terminated (SIGTERM) after step {step}" in (run_dir / "FAILED.txt").read_text()
    assert stderr.strip().splitlines()[-1].startswith("ddip: error: terminated (SIGTERM)")
    resumed = train(f"steps={step + 2}", f"data.image={tmp_path / 'small.png'}", "resume=true", f"hydra.run.dir={run_dir}")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert json.loads((run_dir / "metrics.json").read_text())["steps_run"] == step + 2
    assert not (run_dir / "FAILED.txt").exists()


def test_a_second_run_into_a_dir_in_use_is_refused_and_a_stale_lock_is_taken_over(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / LOCK).write_text(f"{os.getpid()}\n")  # a live process holds it
    cfg = compose_train(["steps=2", "logger=none", f"data.image={tiny_texture(tmp_path)}"])
    with pytest.raises(RunDirInUse, match=f"in use by another ddip run \\(pid {os.getpid()}\\)"):
        run(cfg, run_dir)
    assert (run_dir / LOCK).read_text().strip() == str(os.getpid()) and not (run_dir / "FAILED.txt").exists()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    (run_dir / LOCK).write_text(gone.stdout)  # its process has ended
    assert run(cfg, run_dir)["steps"] == 2 and not (run_dir / LOCK).exists()


def test_a_new_run_replaces_what_an_earlier_run_left(tmp_path):
    run_dir = tmp_path / "run"
    image = tiny_texture(tmp_path)
    run(compose_train(["steps=2", "logger=csv", "checkpoint.keep=true", f"data.image={image}"]), run_dir)
    (run_dir / "FAILED.txt").write_text("an earlier failure\n")
    (run_dir / "stale.png").write_bytes(b"")
    with pytest.raises(DdipError, match="steps=0"):  # a failed run leaves no earlier metrics.json behind
        run(compose_train(["steps=0", "logger=none", f"data.image={image}"]), run_dir)
    assert not [path for path in run_dir.iterdir() if path.name != ".hydra"]
    run(compose_train(["steps=3", "logger=none", f"data.image={image}"]), run_dir)
    assert json.loads((run_dir / "metrics.json").read_text())["steps"] == 3
    assert not (run_dir / "FAILED.txt").exists() and not (run_dir / "stale.png").exists()


def test_a_run_into_a_folder_without_an_earlier_result_touches_none_of_its_files(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    image = tiny_texture(folder)  # the user's own image, in the folder the run writes into
    run(compose_train(["steps=2", "logger=none", f"data.image={image}"]), folder)
    assert image.exists() and (folder / "metrics.json").exists()


@pytest.mark.parametrize("keep", [False, True])
def test_a_finished_run_keeps_its_checkpoint_only_when_asked(tmp_path, keep):
    overrides = ["steps=4", "logger=none", "checkpoint.every_n_train_steps=2", f"checkpoint.keep={keep}"]
    run(compose_train(overrides + [f"data.image={tiny_texture(tmp_path)}"]), tmp_path / "run")
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").exists() == keep


def test_an_unwritable_run_dir_is_one_line_naming_it(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    result = train("steps=2", f"data.image={tiny_texture(tmp_path)}", f"hydra.run.dir={blocker / 'run'}")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"ddip: error: cannot write the run dir {blocker / 'run'}: Not a directory"]


def test_a_full_disk_leaves_no_result_that_looks_finished(tmp_path, monkeypatch):
    def full(path, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(ddip.run, "write_json", full)
    with pytest.raises(OSError) as error:
        run(compose_train(["steps=2", "logger=none", f"data.image={tiny_texture(tmp_path)}"]), tmp_path / "run")
    assert one_line(error.value) == f"cannot write {tmp_path / 'run' / 'metrics.json'}: No space left on device"
    assert not (tmp_path / "run" / "metrics.json").exists() and not (tmp_path / "run" / LOCK).exists()


@pytest.mark.parametrize(
    "content, problem",
    [
        (b"", "is not a readable checkpoint"),
        (b"garbage, not a checkpoint", "is not a readable checkpoint"),
        ("truncated", "is not a readable checkpoint"),
        ("foreign", "is not a ddip run's checkpoint"),
    ],
)
def test_a_broken_or_foreign_checkpoint_is_one_line_naming_the_file(tmp_path, content, problem):
    image = tiny_texture(tmp_path)
    path = tmp_path / "given.ckpt"
    if content == "truncated":
        run(compose_train(["steps=2", "logger=none", "checkpoint.keep=true", f"data.image={image}"]), tmp_path / "first")
        data = (tmp_path / "first" / "checkpoints" / "last.ckpt").read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif content == "foreign":
        torch.save({"state_dict": {"weight": torch.zeros(2)}, "epoch": 3}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(DdipError) as error:
        run(compose_train(["steps=2", "logger=none", f"ckpt_path={path}", f"data.image={image}"]), tmp_path / "run")
    message = str(error.value)
    assert message.startswith(f"ckpt_path: {path} {problem}") and "\n" not in message
