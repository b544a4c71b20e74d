"""Ending a fit when it is done, without ground truth: ES-WMV (denoising) and :class:`Settled` (segmentation),
Lightning callbacks.

ES-WMV (Wang, Li, Zhuang, Chen, Liang, Sun, "Early Stopping for Deep Image Prior", TMLR 2023, Sec. 3): a DIP fit
first reproduces the image's structure and later its noise; the reconstructions change least around the
transition. With a FIFO of the last ``W`` reconstructions ``x_{t−W+1..t}`` and their mean ``x̄``, the windowed
moving variance is

    VAR(t) = (1/W) Σ_w ‖x_w − x̄‖² / N                                       (Eq. 2, N = pixel values)

The detected point is the step of the smallest VAR so far (the window's last iterate); the fit stops after
``patience`` steps without a new minimum.

On a textured image VAR can keep falling while the fit takes in the noise, and the detection comes late. The
noise floor (``noise_floor`` = κ) bounds it with the discrepancy principle (Morozov, 1966): an output whose
residual RMS against the noisy image is below κ·σ̂, the noise level estimated from the image itself
(:func:`ddip.noise_level.noise_sigma`), explains part of the noise; the first such iterate ends the search.
"""

from __future__ import annotations

import inspect
from collections import deque

import lightning.pytorch as pl
import torch

from ddip.errors import DdipError, check_flag, check_range
from ddip.noise_level import noise_sigma


class WindowedVariance:
    """VAR of the last ``window`` tensors (Eq. 2), updated in O(N) per step with running sums (float64)."""

    def __init__(self, window: int):
        self.window = window
        self.buffer: deque[torch.Tensor] = deque()
        self.total: torch.Tensor | None = None
        self.total_sq: torch.Tensor | None = None

    def push(self, value: torch.Tensor) -> float | None:
        """Add ``value``; returns VAR once the window is full, else ``None``."""
        value = value.detach().to(torch.float64)
        if self.total is None:
            self.total, self.total_sq = torch.zeros_like(value), torch.zeros_like(value)
        self.buffer.append(value)
        self.total += value
        self.total_sq += value * value
        if len(self.buffer) > self.window:
            old = self.buffer.popleft()
            self.total -= old
            self.total_sq -= old * old
        if len(self.buffer) < self.window:
            return None
        mean = self.total / self.window
        return float((self.total_sq / self.window - mean * mean).clamp_min(0.0).mean())


class ESWMV(pl.Callback):
    """ES-WMV early stopping on the task's reconstruction of each training step (the raw outputs, as in the
    paper).

    Only iterates the module lets be chosen count (:attr:`DecompositionModule.selectable_from`: after a task's
    warm-up, within a curriculum's last stage), so the window fills from the first of them. At every new minimum of
    VAR, at step t, the module's output is selected (:meth:`DecompositionModule.select`),
    so the run's result is the detected iterate, labelled ``chosen_by: stopping rule``. When the module returns
    an exponential average of its outputs (``module.average = w``), the average lags its inputs by
    ``w / (1 − w)`` steps (99 for 0.99), so the output is taken that many steps later, unless a newer minimum
    comes first: the average then centres on the detected iterate. ``stop`` ends the fit ``patience`` steps
    after the last minimum (otherwise all ``steps`` run and the detection is reported).

    With a ``noise_floor`` κ, the first choosable output whose residual RMS against the image falls to κ·σ̂ ends
    the search: the detection made so far stands (its lagged average taken then), or, if there is none, that output
    is chosen; with ``stop`` the fit ends there. Under a curriculum with ``clean_at_floor`` the floor is watched in the
    noised stages too: once the output reaches it, the clean stage starts at the next step, whose iterate the floor
    then chooses (:meth:`ddip.curriculum.DDPMCurriculum.start_clean_stage`).

    Args:
        window: W, the number of reconstructions in the variance window (paper: 100).
        patience: P, steps without a new variance minimum before stopping (paper: 1000).
        stop: end the fit at the patience limit (and at the noise floor).
        noise_floor: κ, the residual RMS in units of the estimated noise σ below which no output is chosen
            (``None``: off, the paper's rule).
    """

    def __init__(self, window: int = 100, patience: int = 1000, stop: bool = True, noise_floor: float | None = None, **other_rules):
        check_other_rules("es_wmv", other_rules)
        check_range("stopping.window", window, 2, whole=True)
        check_range("stopping.patience", patience, 1, whole=True)
        check_flag("stopping.stop", stop)
        if noise_floor is not None:
            check_range("stopping.noise_floor", noise_floor, 0)
        self.window, self.patience, self.stop, self.noise_floor = window, patience, stop, noise_floor
        self.floor: float | None = None  # κ·σ̂, set when the fit starts
        self.floored = False
        self.clean_from: int | None = None  # the step at which the floor started the curriculum's clean stage
        self.variance = WindowedVariance(window)
        self.best = float("inf")
        self.best_step: int | None = None
        self.select_at: int | None = None
        self.waited = 0

    @staticmethod
    def check_task(task) -> None:
        """A one-line error, before anything else is built, for a task whose outputs the windows cannot follow."""
        if task.images_per_step:  # the windows' outputs would be no image's output step after step
            raise DdipError(
                f"stopping=es_wmv watches every image's output at every step, but this task fits {task.images_per_step} "
                "of its images a step: use stopping=none"
            )

    def on_train_start(self, trainer: pl.Trainer, module) -> None:
        if self.noise_floor is not None:
            self.floor = self.noise_floor * noise_sigma(module.crop(module.image)[0].float().cpu())
        if self.clean_from is not None:  # resumed after the floor had started the clean stage
            module.curriculum.start_clean_stage(self.clean_from)

    def on_train_batch_end(self, trainer: pl.Trainer, module, outputs, batch, batch_idx: int) -> None:
        step = trainer.global_step
        if step < module.selectable_from:
            self.start_clean_stage_at_floor(step, module)
            return
        if self.floored:  # the window fills from the first choosable iterate on
            return
        if self.floor is not None and self.below_floor(module):
            self.floored = True
            if self.best_step is None:
                module.select(step, module.output_layers)
            elif self.select_at is not None and self.select_at > step:  # the detection's lagged average, taken now
                module.select(self.best_step, module.output_layers)
                self.select_at = None
            if self.stop:
                trainer.should_stop = True
            return
        if step == self.select_at:
            module.select(self.best_step, module.output_layers)
        variance = self.variance.push(module.task.compose(module.last_layers))
        if variance is None:
            return
        if variance < self.best:
            self.best, self.best_step, self.waited = variance, step, 0
            self.select_at = step + round(module.average / (1.0 - module.average))
            if step == self.select_at:
                module.select(step, module.output_layers)
        else:
            self.waited += 1
            if self.stop and self.waited >= self.patience:
                trainer.should_stop = True
        if module.logger and step % module.log_every == 0:
            module.logger.log_metrics({"stopping/variance": variance}, step=step)

    def start_clean_stage_at_floor(self, step: int, module) -> None:
        """In a noised stage of a curriculum with ``clean_at_floor``: once the output is within the noise floor of the
        image, the clean stage starts at the next step (:meth:`ddip.curriculum.DDPMCurriculum.start_clean_stage`), whose
        iterate the floor then chooses."""
        curriculum = module.curriculum
        if self.floor is None or not getattr(curriculum, "clean_at_floor", False) or curriculum.clean_from is not None:
            return
        if curriculum.stage(step) < curriculum.count and self.below_floor(module):
            curriculum.start_clean_stage(step)
            self.clean_from = step

    def below_floor(self, module) -> bool:
        """Whether this step's output is closer to the image than the noise floor (residual RMS ≤ κ·σ̂)."""
        output = module.task.compose(module.output_layers).clamp(0.0, 1.0)
        residual = (output - module.crop(module.image).to(output.dtype)).square().mean().sqrt()
        return float(residual) <= self.floor

    def on_fit_end(self, trainer: pl.Trainer, module) -> None:
        """The fit ended before the lagged average of the last detection was taken: take it now (at the fit's end,
        not the training's, so that a fit resumed from its last step's checkpoint, which trains no step, does too)."""
        if self.select_at is not None and self.select_at > trainer.global_step:
            module.select(self.best_step, module.output_layers)

    def state_dict(self) -> dict:
        return {
            "window": list(self.variance.buffer),
            "best": self.best,
            "best_step": self.best_step,
            "select_at": self.select_at,
            "waited": self.waited,
            "floor": self.floor,
            "floored": self.floored,
            "clean_from": self.clean_from,
        }

    def load_state_dict(self, state: dict) -> None:
        self.variance = WindowedVariance(self.window)
        for value in state["window"]:
            self.variance.push(value)
        self.best, self.best_step, self.waited = state["best"], state["best_step"], state["waited"]
        self.select_at = state["select_at"]
        self.floor, self.floored = state.get("floor"), state.get("floored", False)
        self.clean_from = state.get("clean_from")



class Settled(pl.Callback):
    """Ends a fit once the task's answer has settled: every ``every`` steps from the first choosable iterate on
    (:attr:`DecompositionModule.selectable_from`, after seg's hint stages), the task's :meth:`~ddip.tasks.base.Task.decision`
    on the noise-free output (seg: the thresholded mask; dehaze: the transmission) is compared with the one
    ``patience`` steps before; the fit stops once its mean absolute change over those steps is at most ``tolerance``
    (for a mask: the share of pixels that changed; a slow drift adds up, so it is not taken for a settled answer).
    The output is chosen as without the rule (the task's score over the evaluated iterates,
    :class:`ddip.callbacks.Evaluations`): it only ends the fit, so ``steps`` is the cap. A DIP fit's reconstruction
    keeps improving long after the decomposition is decided (seg: the layers take in detail while the mask no longer
    moves), so the reconstruction is not what is watched.

    Args:
        every: steps between two checks.
        tolerance: the mean absolute change of the decision over ``patience`` steps (a mask's: the share of its pixels
            that changed) for it to count as settled.
        patience: the steps over which the decision is compared (rounded up to a multiple of ``every``).
    """

    def __init__(self, every: int = 50, tolerance: float = 0.005, patience: int = 200, **other_rules):
        check_other_rules("settled", other_rules)
        check_range("stopping.every", every, 1, whole=True)
        check_range("stopping.tolerance", tolerance, 0, 1)
        check_range("stopping.patience", patience, 1, whole=True)
        self.every, self.tolerance, self.patience = every, tolerance, patience
        self.decisions: deque[torch.Tensor] = deque(maxlen=-(-patience // every) + 1)

    @staticmethod
    def check_task(task) -> None:
        """A one-line error, before anything else is built, for a task without a decision to wait for."""
        if not task.has_decision:
            raise DdipError(f"stopping=settled waits for a task's decision (a mask or a map), and task {type(task).__name__} has none: use stopping=none")

    @torch.no_grad()
    def on_train_batch_end(self, trainer: pl.Trainer, module, outputs, batch, batch_idx: int) -> None:
        step = trainer.global_step
        if step < module.selectable_from or step % self.every:
            return
        self.decisions.append(module.task.decision(module.current_output()).cpu())
        if len(self.decisions) < self.decisions.maxlen:
            return
        changed = float((self.decisions[-1].float() - self.decisions[0].float()).abs().mean())
        if module.logger:
            module.logger.log_metrics({"stopping/changed": changed}, step=step)
        if changed <= self.tolerance:
            trainer.should_stop = True

    def state_dict(self) -> dict:
        return {"decisions": list(self.decisions)}

    def load_state_dict(self, state: dict) -> None:
        self.decisions.extend(state["decisions"])


def rule_settings() -> set[str]:
    """Every setting of every stopping rule."""
    return {name for rule in (ESWMV, Settled) for name in inspect.signature(rule).parameters} - {"other_rules"}


def check_other_rules(rule: str, given: dict) -> None:
    """A rule chosen with ``stopping=NAME`` over a recipe's other rule (seg's ``Settled``, denoise's ES-WMV) also
    receives that rule's settings, as Hydra merges the two: those are ignored; any other name is a one-line error."""
    unknown = sorted(set(given) - rule_settings())
    if unknown:
        raise DdipError(f"stopping={rule} has no setting {', '.join(unknown)}")
