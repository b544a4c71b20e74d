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
from hydra import compose, initialize_config_dir
from hydra.errors import HydraException, InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ddip.data import ImageDataModule
from ddip.errors import DdipError, is_whole
from ddip.io import save_image, save_progress, write_json
from ddip.module import DecompositionModule
from ddip.sweep import job_identity, threads_per_job
from ddip.tasks.base import Task


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
    identity = {}
    if cfg.logger._target_.endswith("WandbLogger"):
        configure_wandb_environment(output_dir)
        identity = {key: value for key, value in job_identity(cfg).items() if cfg.logger.get(key) is None}
    logger = build_component(cfg, "logger", **identity)
    logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    return logger


def finish_logger(logger) -> None:
    """Close the W&B run so the next job of a sweep starts its own."""
    if type(logger).__name__ == "WandbLogger":
        import wandb

        wandb.finish()


def stack_generators(cfg: DictConfig) -> bool:
    """``module.stack_generators``: ``true``, ``false``, or ``gpu`` = stack only when the trainer runs on a GPU
    (wide nets: on a CPU grouped convolutions are slower than separate ones, on a GPU faster; README "Speed")."""
    value = cfg.module.get("stack_generators", True)
    if isinstance(value, bool):
        return value
    if value != "gpu":
        raise DdipError(f"module.stack_generators={value!r} is not one of true, false, gpu")
    accelerator = str(cfg.trainer.get("accelerator", "cpu"))
    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())


def build(cfg: DictConfig, data, task, steps: int, step_offset: int = 0) -> DecompositionModule:
    """The module for one fit of ``steps`` steps on ``data``'s image: backbone, curriculum, optimiser from the
    config, the task's auxiliary maps and the padded image wired in."""
    module = DecompositionModule(
        task=task,
        backbone=build_component(cfg, "backbone"),
        curriculum=build_component(cfg, "scheduler", **({"steps": steps} if "steps" in cfg.scheduler else {})),
        optimizer=build_component(cfg, "optimizer"),
        steps=steps,
        step_offset=step_offset,
        **{**cfg.module, "stack_generators": stack_generators(cfg)},
    )
    maps = task.prepare(data.image)
    padded = data.build(maps, steps, module.size_multiple, module.min_size)
    module.attach(padded, data.crop, data.truth(fitted=True), original=(data.original, data.truth()))
    return module


CONF = Path(__file__).resolve().parents[1] / "conf"


def compose_train(overrides: list[str]) -> DictConfig:
    """``conf/train.yaml`` composed with ``overrides`` through Hydra's compose API, as the scripts run ddip; an
    override Hydra refuses (unknown key or group value, bad syntax) is a one-line :class:`DdipError`."""
    try:
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            return compose("train", overrides=overrides)
    except (HydraException, OmegaConfBaseException) as error:
        raise DdipError(f"invalid override: {str(error).splitlines()[0]}") from None


def callbacks(cfg: DictConfig) -> list:
    """The trainer's callbacks from its config plus the stopping rule and the checkpointing, if any (fresh
    for every fit). ``trainer.enable_progress_bar=false`` drops the listed progress bar (Lightning would refuse
    the pair)."""
    listed = [instantiate(callback) for callback in cfg.trainer.get("callbacks") or []]
    if not cfg.trainer.get("enable_progress_bar", True):
        listed = [callback for callback in listed if not isinstance(callback, pl.callbacks.ProgressBar)]
    return listed + [build_component(cfg, key) for key in ("stopping", "checkpoint") if cfg.get(key)]


def resume_path(cfg: DictConfig, output_dir: Path) -> str | None:
    """The checkpoint to continue from: ``ckpt_path``, or with ``resume=true`` the run dir's last one."""
    if cfg.get("ckpt_path"):
        path = Path(cfg.ckpt_path)
    elif cfg.get("resume"):
        path = output_dir / "checkpoints" / "last.ckpt"
    else:
        return None
    if not path.is_file():
        raise DdipError(f"no checkpoint to resume from at {path}")
    return str(path)


def fit_passes(
    cfg: DictConfig, data: ImageDataModule, task: Task, logger, ckpt_path: str | None = None
) -> tuple[DecompositionModule, list[dict]]:
    """Fit the image, then, for tasks with several passes, fit each pass's output again (``steps`` split
    evenly between the passes); returns the last module and each pass's results."""
    passes = task.passes
    if passes < 1 or passes > cfg.steps:
        raise DdipError(f"task.passes={passes} must be between 1 and steps={cfg.steps}")
    if ckpt_path and passes > 1:
        raise DdipError(f"resuming works for single-pass runs; task.passes={passes}")
    history, snapshots, results = [], [], []
    for index in range(passes):
        steps = cfg.steps // passes + (index < cfg.steps % passes)
        offset = sum(r["steps"] for r in results)
        module = build(cfg, data, task, steps, offset)
        trainer = build_component(
            cfg, "trainer", logger=logger, max_steps=steps, callbacks=callbacks(cfg), enable_checkpointing=bool(cfg.get("checkpoint"))
        )
        trainer.fit(module, datamodule=data, ckpt_path=ckpt_path if index == 0 else None)
        images, metrics = module.result()
        results.append({"steps": trainer.global_step, "fit_seconds": module.fit_seconds, "images": images, "metrics": metrics})
        history, snapshots = history + module.history, snapshots + module.snapshots
        if index + 1 < passes:
            data.replace_image(task.next_pass_input(images))
    module.history, module.snapshots = history, snapshots
    return module, results


def check_run_settings(cfg: DictConfig) -> None:
    """One-line errors for the top-level settings (``steps``, ``seed``, ``threads``) before anything is built."""
    if not is_whole(cfg.steps) or cfg.steps < 1:
        raise DdipError(f"steps={cfg.steps!r}: need a whole number, at least one optimisation step")
    if not is_whole(cfg.seed):
        raise DdipError(f"seed={cfg.seed!r} must be a whole number")
    threads = cfg.get("threads")
    if threads is not None and (not is_whole(threads) or threads < 1):
        raise DdipError(f"threads={threads!r} must be a whole number ≥ 1 or null (all cores)")


def run(cfg: DictConfig, output_dir: str | Path) -> dict:
    """Fit one image as configured and write the results into ``output_dir``; returns the metrics."""
    started = time.perf_counter()
    check_run_settings(cfg)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.update(cfg, "paths.output_dir", str(output_dir), force_add=True)
    threads = cfg.get("threads") or threads_per_job()
    if threads:
        torch.set_num_threads(threads)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    data, task = build_component(cfg, "data"), build_component(cfg, "task")
    ckpt_path = resume_path(cfg, output_dir)
    logger = build_logger(cfg, output_dir)
    try:
        module, results = fit_passes(cfg, data, task, logger, ckpt_path)
        images, metrics = results[-1]["images"], results[-1]["metrics"]
        if len(results) > 1:
            metrics["passes"] = [{k: v for k, v in r["metrics"].items() if k.startswith(("psnr", "ssim", "chosen"))} for r in results]
        for name, image in images.items():
            save_image(output_dir / f"{name}.png", image)
        save_progress(output_dir / "progress.png", module.history, module.snapshots)
        fit_seconds, steps_run = sum(r["fit_seconds"] for r in results), sum(r["steps"] for r in results)
        metrics |= {
            "steps": int(cfg.steps),
            "steps_run": steps_run,
            "wall_seconds": time.perf_counter() - started,
            "fit_seconds": fit_seconds,
            "seconds_per_step": fit_seconds / max(1, steps_run),
            "image": data.path,
            "size": list(data.size),
            "fit_size": list(data.image.shape[-2:]),
            "device": str(module.device),
            "torch_threads": torch.get_num_threads(),
            "overrides": list(cfg.get("overrides") or []),
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


QUALITY = {"psnr_chosen": "PSNR {:.2f} dB", "psnr_layers_chosen": "PSNR {:.2f} dB", "ssim_chosen": "SSIM {:.3f}", "iou_chosen": "IoU {:.3f}"}


def summary(metrics: dict, output_dir: Path) -> str:
    """The line a finished run prints: steps and time, the chosen output's score where ground truth was given,
    and where the results are."""
    scores = [form.format(metrics[key]) for key, form in QUALITY.items() if isinstance(metrics.get(key), (int, float))]
    files = ", ".join(sorted(path.name for path in output_dir.glob("*.png")) + ["metrics.json"])
    return (
        f"ddip: {metrics['steps_run']} steps in {metrics['wall_seconds']:.0f} s ({metrics['seconds_per_step']:.3f} s/step)"
        + "".join(f"; {score}" for score in scores)
        + f"; results in {output_dir}: {files}"
    )


def objective(metrics: dict) -> float:
    """The number a hyper-parameter search maximises: the chosen output's PSNR or IoU against ground truth
    when given, else the negative final reconstruction loss."""
    for key in ("psnr_chosen", "iou_chosen"):
        if isinstance(metrics.get(key), (int, float)):
            return float(metrics[key])
    return -float(metrics.get("final_reconstruction", metrics.get("final_loss", float("inf"))))
