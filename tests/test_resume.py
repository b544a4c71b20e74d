"""A killed run resumes from its last checkpoint and ends exactly as the uninterrupted run."""

from __future__ import annotations

import json

import lightning.pytorch as pl
import pytest
import torch
from conftest import tiny_texture

import ddip.run
from ddip.errors import DdipError
from ddip.run import compose_train, run


class Count(pl.Callback):
    """Counts the steps this fit runs and remembers the first one."""

    def __init__(self):
        self.steps, self.first = 0, None

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.steps += 1
        self.first = trainer.global_step if self.first is None else self.first


class Kill(pl.Callback):
    """Kills the fit after ``at`` steps, as a crash or a cluster pre-emption would."""

    def __init__(self, at: int):
        self.at = at

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if trainer.global_step == self.at:
            raise RuntimeError("killed")


@pytest.mark.parametrize("extra", [["task=seg", "data.augment=true"], ["task=denoise", "stopping.window=3", "backbone.channels=[8,8,8,8,8]"]])
def test_resumed_run_ends_as_the_uninterrupted_one(tmp_path, monkeypatch, extra):
    image = tiny_texture(tmp_path)
    overrides = ["steps=12", "logger=none", "callbacks.evaluation.every=2", "checkpoint.every_n_train_steps=4", f"data.image={image}", *extra]
    full = run(compose_train(overrides), tmp_path / "full")

    original = ddip.run.callbacks
    monkeypatch.setattr(ddip.run, "callbacks", lambda *args: original(*args) + [Kill(at=6)])
    with pytest.raises(RuntimeError, match="killed"):
        run(compose_train(overrides), tmp_path / "killed")
    monkeypatch.undo()
    assert not (tmp_path / "killed" / "metrics.json").exists()
    saved = torch.load(tmp_path / "killed" / "checkpoints" / "last.ckpt", weights_only=True)["ddip"]["step_seconds"]

    count = Count()
    monkeypatch.setattr(ddip.run, "callbacks", lambda *args: original(*args) + [count])
    resumed = run(compose_train(overrides + ["resume=true"]), tmp_path / "killed")
    assert (count.first, count.steps) == (4, 8)  # continued from the step-4 checkpoint, not from scratch
    for key in ("final_loss", "chosen_step", "chosen_by", "steps_run"):
        assert resumed[key] == full[key], key
    assert resumed["step_seconds"] > saved > 0  # the steps before the checkpoint still count
    history = json.loads((tmp_path / "killed" / "metrics.json").read_text())
    assert history["final_loss"] == full["final_loss"]


def test_resume_without_a_checkpoint_is_a_clear_error(tmp_path):
    cfg = compose_train(["steps=2", "logger=none", "resume=true", f"data.image={tiny_texture(tmp_path)}"])
    with pytest.raises(DdipError, match="no checkpoint to resume from"):
        run(cfg, tmp_path / "fresh")


def test_resume_with_a_config_whose_networks_differ_is_a_clear_error(tmp_path):
    overrides = ["steps=4", "logger=none", "checkpoint.every_n_train_steps=4", f"data.image={tiny_texture(tmp_path)}"]
    run(compose_train(overrides + ["speed=plain", "checkpoint.keep=true"]), tmp_path / "run")
    (tmp_path / "run" / "metrics.json").unlink()  # as if killed before the end
    with pytest.raises(DdipError, match="do not match this config"):
        run(compose_train(overrides + ["steps=8", "speed=fast", "resume=true"]), tmp_path / "run")
