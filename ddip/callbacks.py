"""Lightning callbacks for what is not optimisation: the run's checkpoint and the image panels.

The run's callbacks are the ``callbacks`` config group (``ddip/conf/callbacks/``); beside these, the stopping rule
(:mod:`ddip.stopping`) and the faithful curriculum's resets (:class:`ddip.curriculum.StageResets`).
"""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException

from ddip.errors import check_flag, check_range
from ddip.loggers import log_panel


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
