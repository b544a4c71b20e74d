"""Benchmark cases (``cases.json``, :mod:`ddip.cases`) evaluated the same way for every task: ddip's fit and the
classical baselines on the same inputs, scored against the case's ground truth, as records (one per method).

What a task is compared with and how its records are made is the task's own (:meth:`ddip.tasks.base.Task.benchmark`);
here are what every task's benchmark shares: the case (:class:`BenchmarkCase`: its files, its fit, its records), the
task a case names (:func:`task_class`) and what a case must give to be evaluated (:func:`required_keys`).
``scripts/evaluate.py`` names no task: it reads these.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from ddip.data import DATA_MAPS
from ddip.io import load_image

if TYPE_CHECKING:
    from ddip.tasks.base import Task

TASK_CONF = Path(__file__).resolve().parent / "conf" / "task"


@dataclass(frozen=True)
class BenchmarkCase:
    """One case of a suite as a task's benchmark sees it: its entry of ``cases.json`` (``spec``), its folder, where
    its runs go (``out/runs``), the fit's ``steps`` (``None``: the task's default) and ddip ``overrides``, and the
    evaluation's ``options`` (``fit``: whether ddip runs; the tasks' own, :meth:`ddip.tasks.base.Task.benchmark_options`)."""

    name: str
    spec: dict
    folder: Path
    out: Path
    steps: int | None = None
    overrides: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def fits(self) -> bool:
        """Whether ddip's fit is wanted (``--no-ddip`` says no, to tasks whose baselines need no fit)."""
        return self.options.get("fit", True)

    def path(self, key: str) -> Path:
        """The file (or folder) the case gives as ``key`` (``image``, ``mask``, ``hint``, ``images``)."""
        return self.folder / self.spec[key]

    def truth_path(self, name: str) -> Path:
        """The file (a clip's masks: the folder) of the case's ground truth ``name``."""
        return self.folder / self.spec["truth"][name]

    def image(self) -> torch.Tensor:
        """The case's image (C×H×W in [0, 1])."""
        return load_image(self.path("image"))

    def truth_image(self, name: str) -> torch.Tensor:
        """The case's ground-truth image ``name`` (C×H×W in [0, 1])."""
        return load_image(self.truth_path(name))

    def method(self, label: str) -> str:
        """A ddip fit's method name: ``label`` and the overrides it ran with."""
        return " ".join([label, *self.overrides])

    def record(self, method: str, **values: Any) -> dict:
        """A record of the case: the method and its values (its quality first, what the summaries rank)."""
        return {"case": self.name, "method": method, **values}

    def fit(self, settings: tuple[str, ...] = ()) -> tuple[DictConfig, dict]:
        """ddip's fit of the case's task on its files, with its ground truth, the case's facts named in ``settings``
        as task settings (``task.<key>``), its steps and overrides: the composed config and the run's metrics."""
        task_settings = [f"task.{key}={self.spec[key]}" for key in settings if key in self.spec]
        steps = [f"steps={self.steps}"] if self.steps else []
        return self.run(self.spec["task"], [*task_settings, *steps, *self.overrides], self.name)

    def run(self, task: str, overrides: list[str], run_name: str) -> tuple[DictConfig, dict]:
        """``task`` (another than the case's: e.g. a trained network) on the case's files with ``overrides``, in
        ``out/runs/<run_name>``: the composed config and the run's metrics."""
        from ddip.cli import quiet_third_parties
        from ddip.run import compose_train, run

        cfg = compose_train([f"task={task}", "logger=csv", "trainer.enable_progress_bar=false", *self.data_overrides(), *overrides])
        quiet_third_parties()  # here, so that the worker processes of evaluate.py --jobs are quiet too
        return cfg, run(cfg, self.out / "runs" / run_name)

    def data_overrides(self) -> list[str]:
        """The ``data.*`` overrides of the case's files: its image(s), the maps it gives and its ground truth."""
        images = self.spec.get("images")
        if isinstance(images, str):  # a clip: its folder of frames
            overrides = [f"data.images={self.folder / images}"]
        elif images:  # several images of one scene
            overrides = [f"data.images=[{','.join(str(self.folder / path) for path in images)}]"]
        else:
            overrides = [f"data.image={self.path('image')}"]
        overrides += [f"data.{key}={self.path(key)}" for key in DATA_MAPS if key in self.spec]
        if self.spec.get("truth"):
            overrides.append("data.truth={" + ",".join(f"{name}:{self.truth_path(name)}" for name in self.spec["truth"]) + "}")
        return overrides


def timed(method: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    """What ``method`` returns for ``args``, and its wall-clock seconds."""
    started = time.perf_counter()
    result = method(*args)
    return result, time.perf_counter() - started


def psnr_fit_record(case: BenchmarkCase, label: str, metrics: dict, **more_quality: float) -> dict:
    """The record of a ddip fit scored by PSNR/SSIM against its clean image (its chosen output, the final one and the
    oracle), named :meth:`BenchmarkCase.method` of ``label``; ``more_quality``: further values of the chosen output,
    after its SSIM."""
    return case.record(
        case.method(label),
        psnr=metrics["psnr_chosen"],
        ssim=metrics["ssim_chosen"],
        **more_quality,
        chosen_step=metrics["chosen_step"],
        psnr_final=metrics["psnr_final"],
        oracle_psnr=metrics["oracle_psnr"],
        oracle_step=metrics["oracle_psnr_step"],
        seconds=metrics["wall_seconds"],
        seconds_per_step=metrics["seconds_per_step"],
        steps=metrics["steps_run"],
    )


@cache
def task_class(name: str, overrides: tuple[str, ...] = ()) -> type:
    """The class ``task=<name>`` builds with ``overrides`` (which may add a config search path or replace the task's
    ``_target_``); a name ddip does not know is a one-line :class:`ddip.errors.DdipError`."""
    from ddip.run import compose_train

    return get_class(compose_train([f"task={name}", *overrides]).task._target_)


def task_classes() -> list[type[Task]]:
    """The decomposition tasks of ``ddip/conf/task`` (those a benchmark evaluates), one class each."""
    from ddip.tasks.base import Task

    targets = [OmegaConf.load(path).get("_target_") for path in sorted(TASK_CONF.glob("*.yaml"))]
    classes = [get_class(target) for target in dict.fromkeys(targets) if target]
    return [cls for cls in classes if issubclass(cls, Task)]


def add_task_options(parser: argparse.ArgumentParser) -> list[str]:
    """Every task's benchmark options (:attr:`ddip.tasks.base.Task.benchmark_options`, once each) added to ``parser``:
    their ``dest`` names."""
    options = {flag: kwargs for cls in task_classes() for flag, kwargs in cls.benchmark_options.items()}
    return [parser.add_argument(flag, **kwargs).dest for flag, kwargs in options.items()]


def required_keys(cls: type[Task]) -> tuple[str, ...]:
    """What a case of the task must give to be evaluated: ``images`` when it takes several, ``truth.<name>`` for
    each ground truth it accepts, the maps it reads and the facts its benchmark reads or passes as settings."""
    several = cls.image_count != (1, 1)
    truth = tuple(f"truth.{name}" for name in cls.truth_kinds)
    return ("images",) * several + truth + tuple(cls.data_maps) + cls.benchmark_facts + cls.case_settings


def evaluable(spec: dict, overrides: list[str]) -> bool:
    """Whether a case can be evaluated: its task (built with ``overrides``) is a decomposition and the case gives what
    the task needs (:func:`required_keys`); a task ddip does not know is a one-line :class:`ddip.errors.DdipError`."""
    from ddip.tasks.base import Task

    cls = task_class(spec["task"], tuple(overrides))
    return issubclass(cls, Task) and all(gives(spec, key) for key in required_keys(cls))


def ranked_metric(cls: type[Task]) -> str:
    """The value of the task's benchmark records that says how good a method is (what summaries rank)."""
    return cls.benchmark_metric or cls.primary_metric


def gives(spec: dict, key: str) -> bool:
    """Whether a case gives ``key``: one of its files or facts, or ``truth.<name>`` its ground truth of that name."""
    if key.startswith("truth."):
        return key.removeprefix("truth.") in spec.get("truth", {})
    return key in spec


def benchmark_records(case: BenchmarkCase) -> list[dict]:
    """The records of one case: its task's benchmark (:meth:`ddip.tasks.base.Task.benchmark`), the task resolved
    with the case's overrides."""
    return task_class(case.spec["task"], tuple(case.overrides)).benchmark(case)
