"""One run, end to end: build everything from the composed config, fit, and write the run dir.

``train.py`` calls :func:`run` with Hydra's config; tests call it with a config from the compose API.
The run dir receives the result images, ``progress.png`` and, last of all, ``metrics.json``: a run dir
without ``metrics.json`` is not a finished result (a failed run leaves ``FAILED.txt`` instead).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import lightning.pytorch as pl
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from ddip.errors import DdipError

from ddip.io import save_image, save_progress, write_json
from ddip.module import DecompositionModule


def build_component(cfg: DictConfig, key: str, **kwargs):
    """``hydra.utils.instantiate`` of ``cfg[key]``, with a configuration problem raised as one-line
    :class:`DdipError` (Hydra wraps what a constructor raises in an ``InstantiationException``)."""
    try:
        return instantiate(cfg[key], **kwargs)
    except InstantiationException as error:
        cause = error.__cause__
        if isinstance(cause, DdipError):
            raise cause from None
        detail = f"{type(cause).__name__}: {cause}" if cause else str(error).splitlines()[0]
        raise DdipError(f"invalid {key} configuration: {detail}") from None


def configure_wandb_environment(output_dir: Path) -> None:
    """Keep every file W&B writes (runs, cache, config, artifact staging) inside the run dir."""
    root = output_dir / "wandb"
    for variable, sub in (("WANDB_DIR", ""), ("WANDB_DATA_DIR", ".data"), ("WANDB_CACHE_DIR", ".cache"), ("WANDB_CONFIG_DIR", ".config")):
        path = output_dir if not sub else root / sub
        path.mkdir(parents=True, exist_ok=True)
        os.environ[variable] = str(path)
    os.environ.setdefault("WANDB_SILENT", "true")


def build_logger(cfg: DictConfig, output_dir: Path):
    """The configured Lightning logger (``False`` for ``logger=none``); W&B is imported only when chosen."""
    if cfg.get("logger") is None:
        return False
    if cfg.logger._target_.endswith("WandbLogger"):
        configure_wandb_environment(output_dir)
    logger = build_component(cfg, "logger")
    logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    return logger


def finish_logger(logger) -> None:
    """Close the W&B run so the next job of a sweep starts its own."""
    if type(logger).__name__ == "WandbLogger":
        import wandb

        wandb.finish()


def build(cfg: DictConfig) -> tuple[DecompositionModule, pl.LightningDataModule]:
    """Instantiate data, task, backbone, curriculum and module, and wire the padded image in."""
    data = build_component(cfg, "data")
    task = build_component(cfg, "task")
    module = DecompositionModule(
        task=task,
        backbone=build_component(cfg, "backbone"),
        curriculum=build_component(cfg, "scheduler"),
        optimizer=build_component(cfg, "optimizer"),
        steps=cfg.steps,
        **cfg.module,
    )
    maps = task.prepare(data.image)
    padded = data.build(maps, cfg.steps, module.size_multiple, module.min_size)
    truth = {name: value for name, value in (("gt_mask", data.gt_mask), ("clean", data.clean)) if value is not None}
    module.attach(padded, data.crop, truth)
    return module, data


def run(cfg: DictConfig, output_dir: str | Path) -> dict:
    """Fit one image as configured and write the results into ``output_dir``; returns the metrics."""
    started = time.perf_counter()
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.update(cfg, "paths.output_dir", str(output_dir), force_add=True)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    module, data = build(cfg)
    logger = build_logger(cfg, output_dir)
    try:
        trainer = build_component(cfg, "trainer", logger=logger)
        trainer.fit(module, datamodule=data)
        images, metrics = module.result()
        for name, image in images.items():
            save_image(output_dir / f"{name}.png", image)
        save_progress(output_dir / "progress.png", module.history, module.snapshots)
        metrics |= {
            "steps": int(cfg.steps),
            "wall_seconds": time.perf_counter() - started,
            "fit_seconds": module.fit_seconds,
            "seconds_per_step": module.fit_seconds / cfg.steps,
            "image": data.path,
            "size": list(data.size),
            "device": str(module.device),
            "torch_threads": torch.get_num_threads(),
        }
        if logger:
            module.log_panel(cfg.steps, images)
            numbers = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
            logger.log_metrics({f"result/{k}": v for k, v in numbers.items()}, step=cfg.steps)
    finally:
        if logger:
            finish_logger(logger)
    write_json(output_dir / "metrics.json", metrics)
    return metrics
