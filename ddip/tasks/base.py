"""What every task declares: its generators and their noise inputs, its physics, losses and outputs.

A task is a plain object built by Hydra from ``ddip/conf/task/<name>.yaml``. :class:`ddip.module.DecompositionModule`
owns the networks and the optimisation; the task only says *what* is optimised and *what* a result is.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from ddip.errors import DdipError, check_range, is_number
from ddip.metrics import psnr

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from ddip.benchmark import BenchmarkCase

Layers = dict[str, torch.Tensor]


def two_stage_start(step: int, first_stage_steps: int) -> int:
    """The first step of the stage ``step`` is in, for a task of two stages whose first lasts ``first_stage_steps``
    (seg's hint warm-up, the watermark's clean-layer stage)."""
    return first_stage_steps if step >= first_stage_steps else 0


def loss_weights(defaults: dict[str, float], given: dict | None) -> dict[str, float]:
    """A task's loss weights: its ``defaults`` updated by the config's ``task.weights``, each a number ≥ 0 and
    each the name of one of the task's terms (else a one-line :class:`DdipError`)."""
    weights = defaults | (given or {})
    for name, value in weights.items():
        if name not in defaults:
            raise DdipError(f"task.weights.{name} is not a loss term of this task ({', '.join(defaults)})")
        if not is_number(value) or value < 0:  # a NaN passes here and is reported as a non-finite loss
            raise DdipError(f"task.weights.{name}={value!r} must be a number, 0 or more")
    return weights


@dataclass(frozen=True)
class NoiseInput:
    """A fixed network input: ``channels`` maps of U(−0.5, 0.5)·``scale`` noise (``kind="uniform"``) or an
    x/y ``"meshgrid"`` in [0, 1]; ``perturb`` adds the per-step Gaussian jitter (reg-noise) to it.

    ``per_image``: one input per stacked image (a clip's frames, :attr:`Task.image_count`), as a batch, each the
    previous one plus U(−0.5, 0.5)·``scale``·``increment`` noise: inputs correlated in time, so the generators'
    outputs change smoothly from frame to frame (Double-DIP Sec. 4.5)."""

    channels: int
    scale: float = 0.1
    kind: str = "uniform"
    perturb: bool = True
    per_image: bool = False
    increment: float = 0.0

    def __post_init__(self) -> None:
        check_range("task.input_channels", self.channels, 1, whole=True)
        check_range("task.input_scale", self.scale, 0)
        check_range("task.input_increment", self.increment, 0)
        if self.per_image and self.kind != "uniform":
            raise ValueError("per-image inputs are uniform noise")


@dataclass(frozen=True)
class GeneratorSpec:
    """A generator: how many channels it outputs and which :class:`NoiseInput` it reads. ``network``, when given,
    builds it instead of the run's backbone (called with ``in_channels`` and ``out_channels``): a task's own
    unknowns that are no image, such as a learned mixing weight (:class:`ddip.nets.scalar.Scalar`)."""

    out_channels: int
    input: str
    network: Callable[..., nn.Module] | None = None


@dataclass(frozen=True)
class RegNoise:
    """Per-step Gaussian perturbation of the noise inputs (the DIP "reg_noise_std").

    Within each stage the std rises in ten equal steps from 0 to ``peak`` over the first ``ramp`` fraction
    of the run, then stays at ``std`` (Double-DIP segmentation: ``(it // 100) / 1000`` for ``it < 1000``,
    then 1e-3, for 6000 steps: ramp = 1/6, peak = 0.01, std = 0.001).
    """

    std: float = 0.0
    peak: float = 0.0
    ramp: float = 0.0

    def __post_init__(self) -> None:
        for name in ("std", "peak", "ramp"):
            check_range(f"task.reg_noise.{name}", getattr(self, name), 0)

    def __call__(self, stage_step: int, steps: int) -> float:
        ramp_steps = self.ramp * steps
        if stage_step < ramp_steps:
            return self.peak * math.floor(10 * stage_step / ramp_steps) / 10
        return self.std


def each_image(name: str, image: torch.Tensor) -> dict[str, torch.Tensor]:
    """``{name: image}`` for a C×H×W image of up to 3 channels; several RGB images stacked along the channel axis
    (3n×H×W, :attr:`Task.image_count`) as ``{name1: first, name2: second, …}``."""
    if image.shape[0] <= 3:
        return {name: image}
    return {f"{name}{index}": part for index, part in enumerate(image.split(3), 1)}


class Task(ABC):
    """Base class of all tasks.

    Args:
        reg_noise: the input perturbation schedule.
        net_defaults: per-backbone architecture defaults of this task (``{unet: {...}, segnet: {...}}``),
            read by ``ddip/conf/backbone/*.yaml``; listed here only so the resolved config records them.
    """

    generators: dict[str, GeneratorSpec]
    inputs: dict[str, NoiseInput]
    primary_metric: str
    """The ground-truth metric that says how good a result is; :meth:`finalize` reports it for the chosen and the
    final iterate as ``<primary_metric>_chosen`` and ``<primary_metric>_final`` when ground truth is given."""
    scale: int = 1
    """The generators' outputs are ``scale`` times the image's size on each side (super-resolution: its factor);
    :meth:`compose` brings them to the image's size, and the result images keep theirs."""
    image_count: tuple[int, int | None] = (1, 1)
    """How many images the task decomposes together, (min, max) (``None``: no upper end): one (``data.image``) for
    most, two mixtures of the same layers for ``separate_pair`` (``data.images``). Several images reach the task
    stacked along the channel axis (3n×H×W), and :meth:`compose` returns them so."""
    images_per_step: int | None = None
    """How many of the stacked images (:attr:`image_count`: a clip's frames) one optimisation step fits, a window of
    consecutive ones drawn per step by the data module (:meth:`ddip.data.ImageDataModule.fit_windows`); ``None``:
    all of them. The step's per-image inputs (:class:`NoiseInput` ``per_image``), the image's channels and the maps
    of one entry per image are cut to the window; the evaluations run over all images in consecutive windows of
    this size (the last one ending at the last image), so that BatchNorm normalises over as many images as in
    training. The loss terms see the window as the whole batch."""
    data_maps: tuple[str, ...] = ()
    """Maps the task reads from the data beside the image (``data.<name>``, e.g. inpainting's known-pixel ``mask``),
    passed with :meth:`prepare`'s maps; a run without one of them is a one-line error."""
    truth_kinds: ClassVar[dict[str, str]] = {}
    """The ground truth the task accepts (``data.truth={name: path}``; reporting only), name → how it is read, one of
    :data:`ddip.data.TRUTH_KINDS` (``"image"``: an RGB image, ``"mask"``: a mask, white = foreground); the metrics
    receive it as ``truth[name]``. A name given that is not here is a one-line error."""
    benchmark_facts: ClassVar[tuple[str, ...]] = ()
    """Facts a benchmark case of the task gives beside its files (keys of its ``cases.json`` entry) that its
    :meth:`benchmark` reads (denoise: the noise's ``sigma``); a case without one is not evaluated."""
    case_settings: ClassVar[tuple[str, ...]] = ()
    """Facts a benchmark case of the task gives that are task settings, passed to its fit as ``task.<key>`` (sr: its
    ``factor``); a case without one is not evaluated."""
    benchmark_options: ClassVar[dict[str, dict[str, Any]]] = {}
    """Options of ``scripts/evaluate.py`` that concern the task's benchmark: flag → ``argparse`` keyword arguments
    (``--invdn``: denoise's supervised baseline); their values reach :meth:`benchmark` as the case's ``options``, by
    their ``dest``. A case evaluated without them (no such key) gets the task's default."""
    fit_label: ClassVar[str | None] = None
    """The method name of ddip's fit in the benchmark's records (:meth:`fit_record`); ``None``: ``ddip (<class name>)``."""
    benchmark_metric: ClassVar[str | None] = None
    """The value of :meth:`benchmark`'s records that says how good a method is (what the evaluation's summary ranks);
    ``None``: :attr:`primary_metric`."""

    def __init__(self, reg_noise: RegNoise | dict | None = None, net_defaults: dict | None = None):
        self.reg_noise = reg_noise if isinstance(reg_noise, RegNoise) else RegNoise(**(reg_noise or {}))
        self.net_defaults = net_defaults or {}

    def given_images(self, count: int) -> None:
        """Told how many images were given (within :attr:`image_count`) once they are loaded, before the generators
        are built: a task whose generators depend on it (``watermark_many``: one clean generator per image) declares
        them here; most need not know."""

    def own_maps(self, size: tuple[int, int]) -> dict[str, torch.Tensor]:
        """Maps of :attr:`data_maps` the task makes from its own settings, H×W at the input's ``size``, in place of the
        data's (watermark: the hint from ``task.box``); giving one both ways is a one-line error."""
        return {}

    def check_truth(self, names: set[str]) -> None:
        """A one-line :class:`DdipError` when the ground truth given (``names``, of :attr:`truth_kinds`) cannot be
        scored as it is (separation: one layer without the other); by default any of them can."""

    def prepare(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """Auxiliary maps (H×W, at the image's size) the task needs beside the image, e.g. hints."""
        return {}

    @abstractmethod
    def compose(self, layers: Layers) -> torch.Tensor:
        """The physics: how the generators' outputs form the image."""

    @abstractmethod
    def loss_terms(
        self, layers: Layers, target: torch.Tensor, maps: dict[str, torch.Tensor], step: int, steps: int
    ) -> dict[str, torch.Tensor]:
        """The weighted loss terms at ``step`` of ``steps``; the optimised loss is their sum."""

    def stage_start(self, step: int, steps: int) -> int:
        """First step of the stage ``step`` belongs to (single-stage tasks: 0)."""
        return 0

    def reg_noise_std(self, step: int, steps: int) -> float:
        """Std of the Gaussian jitter added to the perturbable noise inputs at ``step``."""
        return self.reg_noise(step - self.stage_start(step, steps), steps)

    def selectable_from(self, steps: int) -> int:
        """First step whose output may be chosen as the result (e.g. after the hint warm-up)."""
        return 0

    def selection_score(self, layers: Layers, image: torch.Tensor, maps: dict[str, torch.Tensor]) -> float:
        """How good an output is without ground truth (higher is better), given the task's ``maps`` (H×W, at the
        image's size): the reconstruction PSNR, the rule of the Double-DIP reference."""
        reconstruction = self.compose(layers).clamp(0.0, 1.0)
        return psnr(reconstruction, image)

    def decision(self, layers: Layers) -> torch.Tensor | None:
        """The task's answer in ``layers``, in [0, 1], whose settling :class:`ddip.stopping.Settled` waits for: a
        discrete one (segmentation: which pixels are foreground) or a map the result is read from (dehazing: the
        transmission); ``None``: the task has none (its outputs are the images the fit keeps refining)."""
        return None

    @property
    def has_decision(self) -> bool:
        """Whether the task gives an answer (:meth:`decision`) for :class:`ddip.stopping.Settled` to wait for."""
        return type(self).decision is not Task.decision

    def panel(self, layers: Layers) -> dict[str, torch.Tensor]:
        """The images shown in progress grids and W&B panels (C×H×W, first item of the batch); several images
        (:attr:`image_count`) as one panel each."""
        return each_image("reconstruction", self.compose(layers)[0]) | {name: value[0] for name, value in layers.items()}

    def ground_truth_metrics(self, layers: Layers, truth: dict[str, torch.Tensor], image: torch.Tensor) -> dict[str, float]:
        """Quality against ground truth (reporting only) of one set of 1×C×H×W layers of ``image``; empty
        without ground truth."""
        return {}

    def evaluation_metrics(self, layers: Layers, truth: dict[str, torch.Tensor], image: torch.Tensor, maps: dict[str, torch.Tensor]) -> dict[str, float]:
        """What the module calls at every evaluation: :meth:`ground_truth_metrics`. A task whose output reads its
        :attr:`data_maps` (H×W, at the image's size: watermark removal keeps the input outside the hint) overrides this
        to score the output as it would be saved."""
        return self.ground_truth_metrics(layers, truth, image)

    def result(self, chosen: Layers, final: Layers, image: torch.Tensor, truth: dict[str, torch.Tensor], maps: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict]:
        """What the module calls at the end: :meth:`finalize`. A task whose result reads its :attr:`data_maps` (H×W,
        at the input's size: inpainting keeps the known pixels) overrides this to pass them on."""
        return self.finalize(chosen, final, image, truth)

    @abstractmethod
    def finalize(
        self,
        chosen: Layers,
        final: Layers,
        image: torch.Tensor,
        truth: dict[str, torch.Tensor],
    ) -> tuple[dict[str, torch.Tensor], dict]:
        """Turn the chosen and final layers (1×C×H×W, at the size of the C×H×W ``image``) into result images
        and metrics.

        Returns ``(images, metrics)``: ``images`` maps file stems (``"mask"``) to C×H×W tensors in [0, 1].
        """

    @classmethod
    def benchmark(cls, case: BenchmarkCase) -> list[dict]:
        """The records of a benchmark case (:class:`ddip.benchmark.BenchmarkCase`, one per method, each led by its
        :attr:`benchmark_metric`): ddip's fit (:meth:`fit_record`) unless the case's options leave it out, then the
        classical baselines (:meth:`baseline_records`). A task whose baselines read the fit overrides this."""
        rows = [cls.fit_record(case, *case.fit(cls.case_settings))] if case.fits else []
        return rows + cls.baseline_records(case)

    @classmethod
    def fit_record(cls, case: BenchmarkCase, cfg: DictConfig, metrics: dict) -> dict:
        """The record of ddip's fit of the case (``cfg``: its composed config, ``metrics``: its ``metrics.json``).
        Default: the :attr:`primary_metric` of the chosen output, of the final one and the oracle's, and the timings."""
        name = cls.primary_metric
        quality = {name: metrics[f"{name}_chosen"], f"{name}_final": metrics[f"{name}_final"], f"oracle_{name}": metrics.get(f"oracle_{name}")}
        timings = {"seconds": metrics["wall_seconds"], "seconds_per_step": metrics["seconds_per_step"], "steps": metrics["steps_run"]}
        return case.record(case.method(cls.fit_label or f"ddip ({cls.__name__})"), **quality, **timings)

    @classmethod
    def baseline_records(cls, case: BenchmarkCase) -> list[dict]:
        """The records of the classical methods (:mod:`ddip.baselines`) on the case's inputs, scored as
        :meth:`fit_record` scores ddip. Default: none."""
        return []
