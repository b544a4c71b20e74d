"""One run, end to end: build everything from the composed config, fit, and write the run dir.

``train.py`` calls :func:`run` with Hydra's config; tests call it with a config from the compose API.
The run dir receives the result images, ``progress.png`` and, last of all, ``metrics.json``: a run dir
without ``metrics.json`` is not a finished result (a failed run leaves ``FAILED.txt`` instead).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple, Protocol

import lightning.pytorch as pl
import torch
from hydra import compose, initialize_config_dir
from hydra.errors import HydraException, InstantiationException
from hydra.utils import instantiate
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ddip.callbacks import Evaluations, ImagePanels
from ddip.data import ImageDataModule
from ddip.errors import DdipError, check_range, check_replaced_settings, is_whole
from ddip.io import save_progress, save_result, write_history, write_json
from ddip.loggers import log_panel, shows_images
from ddip.module import DecompositionModule
from ddip.rundir import check_writable, claimed, clear_results, finished_metrics, finished_notice
from ddip.sweep import job_identity, threads_per_job

MAX_SEED = 2**32 - 1  # numpy's and Lightning's seeds are 32-bit


class RunTerminated(Exception):
    """The run was terminated (SIGTERM) and left a checkpoint to resume from; not a finished result."""


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


def build_logger(cfg: DictConfig, output_dir: Path, identity: dict | None = None):
    """The configured Lightning logger (``False`` for ``logger=none``); W&B is imported only when chosen, its run named
    by ``identity`` (W&B ``group``, ``name``, ``tags``; by default a sweep job's, :func:`ddip.sweep.job_identity`)
    where the config leaves them null."""
    if cfg.get("logger") is None:
        return False
    given = identity if identity is not None else job_identity(cfg)
    identity = {}
    if cfg.logger._target_.endswith("WandbLogger"):
        configure_wandb_environment(output_dir)
        identity = {key: value for key, value in given.items() if cfg.logger.get(key) is None}
    logger = build_component(cfg, "logger", **identity)
    logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    return logger


def finish_logger(logger) -> None:
    """Close the W&B run so the next job of a sweep starts its own."""
    if type(logger).__name__ == "WandbLogger":
        import wandb

        wandb.finish()


@contextlib.contextmanager
def run_logger(cfg: DictConfig, output_dir: Path, identity: dict | None = None) -> Iterator:
    """The run's logger (:func:`build_logger`), finished (:func:`finish_logger`) however the block ends."""
    logger = build_logger(cfg, output_dir, identity)
    try:
        yield logger
    finally:
        if logger:
            finish_logger(logger)


def stack_generators(cfg: DictConfig) -> bool:
    """``module.stack_generators``: ``true``, ``false``, or ``gpu`` = stack only when the trainer runs on a GPU
    (wide nets: on a CPU grouped convolutions are slower than separate ones, on a GPU faster; docs/results/speed.md)."""
    value = cfg.module.get("stack_generators", True)
    if isinstance(value, bool):
        return value
    if value != "gpu":
        raise DdipError(f"module.stack_generators={value!r} is not one of true, false, gpu")
    accelerator = str(cfg.trainer.get("accelerator", "cpu"))
    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())


def build(cfg: DictConfig, data, task, **module_settings) -> pl.LightningModule:
    """The module for one fit of ``cfg.steps`` steps on ``data``'s image: backbone, curriculum, optimiser from the
    config, and the image, maps and ground truth the data module loaded (:meth:`ImageDataModule.inputs`). A task that
    is a LightningModule of its own (a supervised network: ``task=invdn_train``, ``task=invdn``) is its module: it owns
    its networks and losses. ``module_settings`` replace the config's ``module.*`` (a batched member's:
    :mod:`ddip.members`). The number of images given must be one the task takes
    (:attr:`ddip.tasks.base.Task.image_count`; the task is told how many, :meth:`ddip.tasks.base.Task.given_images`),
    and the ground truth given of names it accepts, read as it says (:attr:`ddip.tasks.base.Task.truth_kinds`). A task
    that fits a window of its images a step (:attr:`ddip.tasks.base.Task.images_per_step`) gets each step's window
    from the data module."""
    if isinstance(data, ImageDataModule):
        data.check_count(getattr(task, "image_count", (1, 1)))
        data.read_truth(getattr(task, "truth_kinds", {}))
    if isinstance(task, pl.LightningModule):
        return task
    task.given_images(data.count)
    task.check_truth(set(data.truth()))
    steps = cfg.steps
    module = DecompositionModule(
        task=task,
        inputs=data.inputs(task.data_maps, own=task.own_maps(data.size)),
        backbone=build_component(cfg, "backbone"),
        curriculum=build_component(cfg, "scheduler", **({"steps": steps} if "steps" in cfg.scheduler else {})),
        optimizer=build_component(cfg, "optimizer"),
        steps=steps,
        seed=cfg.seed,
        **{**cfg.module, "stack_generators": stack_generators(cfg), **module_settings},
    )
    if isinstance(data, ImageDataModule):
        data.fit_windows(task.images_per_step)
    return module


CONF = Path(__file__).resolve().parent / "conf"


def compose_train(overrides: list[str]) -> DictConfig:
    """``ddip/conf/train.yaml`` composed with ``overrides`` through Hydra's compose API, as the scripts run ddip; an
    override Hydra refuses (unknown key or group value, bad syntax) or a replaced setting
    (:func:`ddip.errors.check_replaced_settings`) is a one-line :class:`DdipError`."""
    check_replaced_settings(overrides)
    try:
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            return compose("train", overrides=overrides)
    except (HydraException, OmegaConfBaseException) as error:
        raise DdipError(f"invalid override: {str(error).splitlines()[0]}") from None


def active(cfg: DictConfig, key: str) -> DictConfig | None:
    """``cfg[key]`` when it names a component (has a ``_target_``), else ``None``. A group chosen as none
    (``stopping=none``, ``checkpoint=null``) may still hold settings a preset merged into it
    (``experiment=guided_dip_table`` sets ``stopping.stop``): settings of no component, ignored."""
    node = cfg.get(key)
    return node if isinstance(node, DictConfig) and "_target_" in node else None


def callbacks(cfg: DictConfig, logger=False) -> list:
    """The trainer's callbacks, fresh for every fit: each entry of the ``callbacks`` group that names a component
    (``callbacks.NAME=null``, ``stopping=none`` and ``checkpoint=null`` leave theirs out), the image panels only with
    a logger that shows them, and no progress bar with ``trainer.enable_progress_bar=false`` (Lightning would refuse
    the pair)."""
    listed = cfg.get("callbacks") or {}
    built = [build_component(listed, name) for name in listed if active(listed, name)]
    if not cfg.trainer.get("enable_progress_bar", True):
        built = [callback for callback in built if not isinstance(callback, pl.callbacks.ProgressBar)]
    return [callback for callback in built if shows_images(logger) or not isinstance(callback, ImagePanels)]


def resume_path(cfg: DictConfig, output_dir: Path) -> str | None:
    """The checkpoint to continue from: ``ckpt_path``, or with ``resume=true`` the run dir's last one; checked
    to be a ddip checkpoint (:func:`check_checkpoint`)."""
    if cfg.get("ckpt_path"):
        key, path = "ckpt_path", Path(cfg.ckpt_path)
    elif cfg.get("resume"):
        key, path = "resume", output_dir / "checkpoints" / "last.ckpt"
    else:
        return None
    if not path.is_file():
        raise DdipError(f"no checkpoint to resume from at {path}")
    check_checkpoint(path, key)
    return str(path)


def check_checkpoint(path: Path, key: str) -> None:
    """A one-line :class:`DdipError` naming ``path`` unless it is a ddip checkpoint (loaded with
    ``weights_only=True``: tensors and plain containers only, never arbitrary code)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 -- an empty, truncated or foreign file raises any of a dozen types
        detail = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise DdipError(f"{key}: {path} is not a readable checkpoint ({detail[:160]})") from None
    if not isinstance(state, dict) or not {"state_dict", "ddip"} <= set(state):
        raise DdipError(f"{key}: {path} is not a ddip run's checkpoint (no ddip state in it)")


def trains(module: pl.LightningModule) -> bool:
    """Whether the run optimises ``module`` (a fit), or only applies it (a prediction: ``task=invdn``)."""
    return getattr(module, "trains", True)


class Report(Protocol):
    """What reports a fit: its evaluations' records (``progress.png``) and its result images and metrics."""

    history: list[dict]
    snapshots: list[tuple[int, dict[str, torch.Tensor]]]
    quality_keys: list[str]

    def result(self) -> tuple[dict[str, torch.Tensor], dict]: ...


def report(module: pl.LightningModule, listed: list) -> Report:
    """What reports the fit: a decomposition's evaluations (``callbacks.evaluation``, among the ``listed``
    callbacks), or a supervised task's module itself."""
    if not isinstance(module, DecompositionModule):
        return module
    found = [callback for callback in listed if isinstance(callback, Evaluations)]
    if not found:
        raise DdipError("callbacks.evaluation is null: a decomposition needs its evaluations (they choose the output)")
    return found[0]


def fit(cfg: DictConfig, data: pl.LightningDataModule, task, logger, ckpt_path: str | None = None) -> tuple[pl.LightningModule, int, Report]:
    """Fit the image (from ``ckpt_path`` when resuming), or run a trained module's prediction on it; returns the
    module, the steps the trainer ran and what reports the fit (:func:`report`)."""
    module = build(cfg, data, task)
    listed = callbacks(cfg, logger)
    reporter = report(module, listed)
    checkpointing = bool(active(cfg, "checkpoint"))
    trainer = build_component(cfg, "trainer", logger=logger, max_steps=cfg.steps, callbacks=listed, enable_checkpointing=checkpointing)
    try:
        if trains(module):
            trainer.fit(module, datamodule=data, ckpt_path=ckpt_path, weights_only=True)
        else:
            trainer.predict(module, datamodule=data, return_predictions=False)
    except SIGTERMException:
        saved = "a checkpoint to resume from" if checkpointing else "no checkpoint (checkpoint=null)"
        raise RunTerminated(f"terminated (SIGTERM) after step {trainer.global_step}; left {saved}") from None
    return module, trainer.global_step, reporter


def check_run_settings(cfg: DictConfig) -> None:
    """One-line errors for the top-level settings (``steps``, ``seed``, ``threads``) before anything is built."""
    if not is_whole(cfg.steps) or cfg.steps < 1:
        raise DdipError(f"steps={cfg.steps!r}: need a whole number, at least one optimisation step")
    check_range("seed", cfg.seed, 0, MAX_SEED, whole=True)
    threads = cfg.get("threads")
    if threads is not None and (not is_whole(threads) or threads < 1):
        raise DdipError(f"threads={threads!r} must be a whole number ≥ 1 or null (all cores)")


def run(cfg: DictConfig, output_dir: str | Path) -> dict:
    """Fit one image as configured and write the results into ``output_dir``; returns the metrics.

    The dir is held for the run (:func:`ddip.rundir.claimed`); an earlier result in it is replaced
    (:func:`ddip.rundir.clear_results`), except with ``resume=true``, where a finished run is left as it is and its
    metrics returned. The checkpoint is deleted once ``metrics.json`` is written, unless ``checkpoint.keep``."""
    started = time.perf_counter()
    output_dir = Path(output_dir)
    check_writable(output_dir)
    with claimed(output_dir):
        finished = finished_metrics(output_dir) if cfg.get("resume") else None
        if finished is not None:
            print(f"ddip: {finished_notice(output_dir)}", file=sys.stderr)
            return finished
        clear_results(output_dir, resuming=bool(cfg.get("resume") or cfg.get("ckpt_path")))
        check_run_settings(cfg)
        metrics = fit_and_save(cfg, output_dir, started)
        checkpoint = active(cfg, "checkpoint")
        if checkpoint is not None and not checkpoint.get("keep", False):
            remove_checkpoint(Path(checkpoint.dirpath))
    return metrics


def remove_checkpoint(folder: Path) -> None:
    """Delete the run's ``last.ckpt`` from ``folder``, and the folder if nothing else is in it."""
    (folder / "last.ckpt").unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        folder.rmdir()


def set_threads(cfg: DictConfig) -> None:
    """torch's CPU threads: ``threads``, or a parallel sweep job's share of the cores (:func:`ddip.sweep.threads_per_job`)."""
    threads = cfg.get("threads") or threads_per_job()
    if threads:
        torch.set_num_threads(threads)


def seeded_parts(cfg: DictConfig) -> tuple:
    """The task and the data module of a run, built after seeding every RNG with ``seed`` (the task first: its settings,
    e.g. ``task.factor``, decide ``data.*``)."""
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    task = build_component(cfg, "task")
    check_stopping(cfg, task)
    return task, build_component(cfg, "data")


def check_stopping(cfg: DictConfig, task) -> None:
    """The stopping rule's one-line error for a task it cannot watch (its ``check_task``), before the data and the
    networks are built."""
    rule = build_component(cfg, "stopping") if active(cfg, "stopping") else None
    if hasattr(rule, "check_task"):
        rule.check_task(task)


def fit_and_save(cfg: DictConfig, output_dir: Path, started: float) -> dict:
    """The fit of :func:`run` and its results written into ``output_dir``, ``metrics.json`` last."""
    OmegaConf.update(cfg, "paths.output_dir", str(output_dir), force_add=True)
    set_threads(cfg)
    task, data = seeded_parts(cfg)
    ckpt_path = resume_path(cfg, output_dir)
    with run_logger(cfg, output_dir) as logger:
        module, steps_run, reporter = fit(cfg, data, task, logger, ckpt_path)
        metrics = save_fit(cfg, output_dir, started, Fitted(module, steps_run, reporter, data, task), logger)
    write_json(output_dir / "metrics.json", metrics)  # last, after the logger has finished
    return metrics


class Fitted(NamedTuple):
    """A finished fit: its module, the steps it ran, what reports it (:func:`report`), its data module and task."""

    module: pl.LightningModule
    steps_run: int
    reporter: Report
    data: pl.LightningDataModule
    task: object


def step_share(module: pl.LightningModule) -> dict:
    """A CPU fit's seconds in its optimisation steps and what the rest of its loop added to them
    (:meth:`DecompositionModule.optimizer_step`); nothing where they were not counted (a GPU, batched members, InvDN)."""
    if not isinstance(module, DecompositionModule) or not module.step_seconds:
        return {}
    return {"step_seconds": module.step_seconds, "loop_overhead": module.fit_seconds / module.step_seconds - 1}


def save_fit(cfg: DictConfig, output_dir: Path, started: float, fitted: Fitted, logger) -> dict:
    """Write a fit's result images and ``progress.png`` into ``output_dir`` and send the final panel and metrics to
    ``logger``; returns the metrics (for ``metrics.json``, which the caller writes last)."""
    module, steps_run, reporter, data, task = fitted
    images, metrics = reporter.result()
    for name, image in images.items():
        save_result(output_dir, name, image)
    if reporter.history:
        save_progress(output_dir / "progress.png", reporter.history, reporter.snapshots, reporter.quality_keys)
        write_history(output_dir / "history.csv", reporter.history)
    metrics |= {
        "steps": int(cfg.steps) if trains(module) else 0,
        "steps_run": steps_run,
        "wall_seconds": time.perf_counter() - started,
        "fit_seconds": module.fit_seconds,
        "seconds_per_step": module.fit_seconds / max(1, steps_run),
        **step_share(module),
        **data.facts,
        "device": str(module.device),
        "torch_threads": torch.get_num_threads(),
        "overrides": list(cfg.get("overrides") or []),
        "primary_metric": next((key for key in (f"{task.primary_metric}_chosen", task.primary_metric) if key in metrics), None),
    }
    if logger:
        log_panel(logger, cfg.steps, images)
        numbers = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        logger.log_metrics({f"result/{k}": v for k, v in numbers.items()}, step=cfg.steps)
    return metrics


def summary(metrics: dict, output_dir: Path) -> str:
    """The line a finished run prints: steps and time, the task's primary metric of the chosen output where
    ground truth was given, and where the results are."""
    primary = metrics.get("primary_metric")
    score = f"; {primary} {metrics[primary]:.3f}" if primary else ""
    files = ", ".join(sorted(path.name for pattern in ("*.png", "*.ckpt") for path in output_dir.glob(pattern)) + ["metrics.json"])
    if metrics["steps"]:
        done = f"{metrics['steps_run']} steps in {metrics['wall_seconds']:.0f} s ({metrics['seconds_per_step']:.3f} s/step)"
    else:  # a prediction (task=invdn)
        done = f"done in {metrics['wall_seconds']:.1f} s"
    return f"ddip: {done}{score}; results in {output_dir}: {files}"


def objective(metrics: dict, optimized_metric: str | None = None) -> float:
    """The number a hyper-parameter search maximises: ``metrics[optimized_metric]``, by default the task's primary
    metric of the chosen output (``metrics["primary_metric"]``, given ground truth), else the negative final
    reconstruction loss."""
    key = optimized_metric or metrics.get("primary_metric")
    if key:
        if not isinstance(metrics.get(key), (int, float)):
            raise DdipError(f"optimized_metric={key!r} is not a number in this run's metrics.json")
        return float(metrics[key])
    return -float(metrics.get("final_reconstruction", metrics.get("final_loss", float("inf"))))
