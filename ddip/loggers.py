"""Loggers built by ``ddip/conf/logger/*.yaml``: Lightning's, with what ddip changes about them."""

from __future__ import annotations

from lightning.pytorch.loggers import WandbLogger as LightningWandbLogger


class WandbLogger(LightningWandbLogger):
    """Lightning's W&B logger without the ``anonymous`` argument that it always hands to ``wandb.init`` (as
    ``None``), which makes wandb ≥ 0.22 warn on every run that the setting has no effect."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._wandb_init.pop("anonymous", None)
