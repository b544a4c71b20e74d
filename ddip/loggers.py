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


def log_panel(logger, step: int, panel: dict[str, torch.Tensor]) -> None:
    """Send a panel of images (name → C×H×W in [0, 1]) to W&B; other loggers keep their images in progress.png."""
    if type(logger).__name__ != "WandbLogger":
        return
    from ddip.io import to_uint8

    logger.log_image(key="panel", images=[to_uint8(v) for v in panel.values()], caption=list(panel), step=step)
