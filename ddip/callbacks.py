"""Lightning callbacks for what is not optimisation: the evaluations and the choice of the output, the image panels
and the run's checkpoint.

The run's callbacks are the ``callbacks`` config group (``ddip/conf/callbacks/``); beside these, the stopping rule
(:mod:`ddip.stopping`) and the faithful curriculum's resets (:class:`ddip.curriculum.StageResets`).
"""

from __future__ import annotations

import math
from pathlib import Path

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException

from ddip.errors import DdipError, check_flag, check_range
from ddip.loggers import log_panel
from ddip.tasks.base import Layers


class RunCheckpoint(ModelCheckpoint):
    """``checkpoints/last.ckpt`` of a run, to resume it after a kill (``resume=true``).

    Lightning's :class:`ModelCheckpoint` writing ``last.ckpt`` every ``every_n_train_steps`` steps, and also when
    the run is terminated (SIGTERM, e.g. a SLURM time limit: Lightning stops at the end of the current step), so
    the resumed fit continues from where the signal came. ``keep``: whether the run keeps the checkpoint once its
    ``metrics.json`` is written (:func:`ddip.run.run` deletes it otherwise; a finished run needs none).
    """

    def __init__(self, dirpath: str, every_n_train_steps: int = 500, keep: bool = False):
        check_range("checkpoint.every_n_train_steps", every_n_train_steps, 1, whole=True)
        check_flag("checkpoint.keep", keep)
        super().__init__(dirpath=dirpath, save_last=True, save_top_k=0, every_n_train_steps=every_n_train_steps)

    @property
    def last_path(self) -> Path:
        return Path(self.dirpath) / f"{self.CHECKPOINT_NAME_LAST}{self.FILE_EXTENSION}"

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, SIGTERMException):
            trainer.save_checkpoint(self.last_path)


class ImagePanels(pl.Callback):
    """The task's images (:meth:`ddip.tasks.base.Task.panel`) of the module's current output, sent to the logger
    every ``every`` steps and at the last; a run adds it only with a logger that shows images
    (:func:`ddip.loggers.shows_images`)."""

    def __init__(self, every: int = 500):
        check_range("callbacks.image_panels.every", every, 1, whole=True)
        self.every = every

    def on_train_batch_end(self, trainer: pl.Trainer, module, outputs, batch, batch_idx: int) -> None:
        done = trainer.global_step
        if done % self.every == 0 or done == module.steps:
            with torch.no_grad():
                panel = module.task.panel(module.current_output())
            log_panel(trainer.logger, done, panel)


def upsampled(layers: Layers, size: tuple[int, int]) -> Layers:
    """Layers fitted on a downscaled copy brought to the input's ``size`` (bilinear; unchanged if equal)."""
    if tuple(next(iter(layers.values())).shape[-2:]) == size:
        return layers
    return {name: F.interpolate(value, size=size, mode="bilinear", align_corners=False) for name, value in layers.items()}


class Evaluations(pl.Callback):
    """A decomposition's noise-free evaluations and the choice of its output (``callbacks.evaluation``).

    Every ``every`` steps and at the last, the module's current output
    (:meth:`~ddip.module.DecompositionModule.current_output`) is scored: its loss terms must be finite, the task's
    ground-truth-free selection score keeps the best output from :attr:`~ddip.module.DecompositionModule.selectable_from`
    on (the run's result, unless a stopping rule chose one: :meth:`~ddip.module.DecompositionModule.select`), and
    the ground-truth metrics, where given, are reported only (the best evaluated iterate by each as ``oracle_<name>``).
    The records are the run's history (``eval/*`` to the logger, the curves of ``progress.png``) with ``snapshots``
    panels; they are checkpointed, so that a resumed run reports as the uninterrupted one.

    Args:
        every: steps between evaluations.
        snapshots: intermediate results kept for ``progress.png``, evenly spaced over the run.
    """

    def __init__(self, every: int = 50, snapshots: int = 6):
        check_range("callbacks.evaluation.every", every, 1, whole=True)
        check_range("callbacks.evaluation.snapshots", snapshots, 0, whole=True)
        self.every, self.snapshot_count = every, snapshots
        self.history: list[dict] = []
        self.quality_keys: list[str] = []  # the ground-truth metrics in the history's records (the task's names)
        self.snapshots: list[tuple[int, dict[str, torch.Tensor]]] = []
        self.best: tuple[float, int, Layers] | None = None
        self.module = None

    def setup(self, trainer: pl.Trainer, pl_module, stage: str) -> None:
        self.module = pl_module
        steps, count = pl_module.steps, self.snapshot_count
        self.snapshot_steps = {max(1, round(steps * (i + 1) / count)) for i in range(count)}

    def on_train_start(self, trainer: pl.Trainer, module) -> None:
        """After a resume, the evaluation due at the checkpoint's step if the checkpoint was written before it."""
        self.evaluate_if_due(module, trainer.global_step)

    def on_train_batch_end(self, trainer: pl.Trainer, module, outputs, batch, batch_idx: int) -> None:
        done = trainer.global_step
        if done % self.every == 0 or done == module.steps:
            self.evaluate(module, done)

    def on_fit_end(self, trainer: pl.Trainer, module) -> None:
        """A fit resumed from a checkpoint of its last step runs no step and no train hooks: the evaluation due
        then, if the checkpoint has none, is made here."""
        self.evaluate_if_due(module, trainer.global_step)

    def evaluate_if_due(self, module, done: int) -> None:
        """The evaluation after ``done`` steps, if one is due then and has not been made (after a resume)."""
        evaluated = self.history[-1]["step"] if self.history else 0
        if done and (done % self.every == 0 or done == module.steps) and evaluated < done:
            self.evaluate(module, done)

    @torch.no_grad()
    def evaluate(self, module, done: int) -> None:
        """Score the module's current output after ``done`` steps; keep it if it is the best so far."""
        terms = {name: float(value) for name, value in module.last_terms.items()}
        bad = [name for name, value in terms.items() if not math.isfinite(value)]
        if bad:
            raise DdipError(f"the loss became non-finite at step {done} ({', '.join(bad)}); lower the learning rate")
        layers, task = module.current_output(), module.task
        image = module.crop(module.image)
        score = task.selection_score(layers, image, module.maps)
        quality = task.evaluation_metrics(layers, module.truth, image, module.maps)
        self.quality_keys = list(quality)
        record = {"step": done, **terms, "score": score, **quality}
        self.history.append(record)
        if module.logger:
            module.logger.log_metrics({f"eval/{k}": v for k, v in record.items() if k != "step"}, step=done)
        if done >= module.selectable_from and (self.best is None or score >= self.best[0]):
            self.best = (score, done, {name: value.detach().clone() for name, value in layers.items()})
        if done in self.snapshot_steps:
            self.snapshots.append((done, {k: v.cpu() for k, v in task.panel(layers).items()}))

    @torch.no_grad()
    def result(self) -> tuple[dict[str, torch.Tensor], dict]:
        """The task's result images and metrics from the chosen and the final iterate of the fitted module."""
        module = self.module
        final = module.current_output()
        chosen_by, (chosen_step, chosen) = "score", self.best[1:] if self.best else (module.steps, final)
        if module.selected is not None:
            chosen_by, (chosen_step, chosen) = "stopping rule", module.selected
        # after the fit Lightning has moved the module back to the CPU; the kept iterates may still be on the GPU
        device, inputs = module.device, module.inputs
        image = inputs.original.to(device)
        truth, maps = ({k: v.to(device) for k, v in given.items()} for given in (inputs.original_truth, inputs.original_maps))
        size = tuple(side * module.task.scale for side in image.shape[-2:])
        chosen, final = ({k: v.to(device) for k, v in upsampled(layers, size).items()} for layers in (chosen, final))
        images, metrics = module.task.result(chosen, final, image, truth, maps)
        metrics = {"chosen_by": chosen_by, "chosen_step": chosen_step, "chosen_score": self.best[0] if self.best else None} | metrics
        metrics |= {f"final_{name}": value for name, value in self.history[-1].items() if name != "step"}
        return images, metrics | self.oracle()

    def oracle(self) -> dict:
        """The best evaluated iterate by each ground-truth metric: reporting only, labelled "oracle"."""
        out = {}
        for key in self.quality_keys:
            best = max(self.history, key=lambda record: record[key])
            out[f"oracle_{key}"], out[f"oracle_{key}_step"] = best[key], best["step"]
        return out

    def state_dict(self) -> dict:
        return {"history": self.history, "quality_keys": self.quality_keys, "snapshots": self.snapshots, "best": self.best}

    def load_state_dict(self, state: dict) -> None:
        self.history, self.quality_keys = state["history"], state["quality_keys"]
        self.snapshots, self.best = state["snapshots"], state["best"]
