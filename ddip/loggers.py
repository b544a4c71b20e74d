"""Loggers built by ``ddip/conf/logger/*.yaml``: Lightning's, with what ddip changes about them."""

from __future__ import annotations

import torch
from lightning.pytorch.loggers import WandbLogger as LightningWandbLogger


class WandbLogger(LightningWandbLogger):
    """Lightning's W&B logger without the ``anonymous`` argument that it always hands to ``wandb.init`` (as
    ``None``), which makes wandb ≥ 0.22 warn on every run that the setting has no effect."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._wandb_init.pop("anonymous", None)


def shows_images(logger) -> bool:
    """Whether ``logger`` shows image panels (W&B); the others' images are in ``progress.png`` only."""
    return isinstance(logger, LightningWandbLogger)


def log_panel(logger, step: int, panel: dict[str, torch.Tensor]) -> None:
    """Send a panel of images (name → C×H×W in [0, 1]) to a logger that shows images (:func:`shows_images`)."""
    if not shows_images(logger):
        return
    from ddip.io import to_uint8

    logger.log_image(key="panel", images=[to_uint8(v) for v in panel.values()], caption=list(panel), step=step)
