"""Target scheduling: what the generators must reconstruct at each step.

``scheduler=none`` fits the image itself (:class:`NoCurriculum`). ``scheduler=linear|cosine`` fits DDPM-forward-noised
copies of the image, most-noised first (:class:`DDPMCurriculum`, after the Guided-DIP reference code,
``larrychen20011120/Guided-DIP``; docs/guide/configuration.md). Both implement ``target(image, step)``.

Time convention (Ho et al. 2020): t ∈ {1, …, T}, β_1 = ``beta_start``, β_T = ``beta_end``, ᾱ_t = ∏_{s=1}^{t} (1 − β_s).
Schedules are returned as float64 tensors of length T whose element t − 1 belongs to time t.
"""

from __future__ import annotations

import math
from bisect import bisect_right

import lightning.pytorch as pl
import numpy as np
import torch

from ddip.errors import DdipError, is_number, is_whole


class NoCurriculum:
    """The target is the image itself at every step (plain DIP / Double-DIP)."""

    def target(self, image: torch.Tensor, step: int) -> torch.Tensor:
        """The target of optimisation step ``step`` for a (possibly augmented) image."""
        return image

    @property
    def last_stage_start(self) -> int:
        """The first step of the last target: every step fits the image."""
        return 0


# --- β schedules ----------------------------------------------------------------------------------------
def linear_betas(beta_start: float, beta_end: float, T: int) -> torch.Tensor:
    """The linear schedule of DDPM (Ho et al. 2020, §4): β_t evenly spaced from β_1 = ``beta_start``
    to β_T = ``beta_end``."""
    return torch.linspace(beta_start, beta_end, T, dtype=torch.float64)


def cosine_betas(T: int, s: float = 0.008, min_beta: float = 0.0, max_beta: float = 0.999) -> torch.Tensor:
    """The cosine schedule (Nichol & Dhariwal 2021, Eq. 17): f(t) = cos²(((t/T + s)/(1 + s))·π/2), ᾱ_t = f(t)/f(0),
    β_t = 1 − ᾱ_t/ᾱ_{t−1}, clipped to [``min_beta``, ``max_beta``] (their clip is 0.999, to avoid β_T = 1)."""
    t = torch.arange(T + 1, dtype=torch.float64)
    f = torch.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2
    alpha_bar = f / f[0]
    return (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(min_beta, max_beta)


def alphas_cumprod(betas: torch.Tensor) -> torch.Tensor:
    """ᾱ_t = ∏_{s=1}^{t} (1 − β_s) (Ho et al. 2020, Eq. 4: q(x_t | x_0) = N(√ᾱ_t·x_0, (1 − ᾱ_t)·I))."""
    return torch.cumprod(1 - betas, dim=0)


# --- the curriculum -------------------------------------------------------------------------------------
SCHEDULES = ("linear", "cosine")
REDRAWS = ("stage", "step")  # how often a stage's ε is drawn
DEFAULT_C = {"linear": 250.0, "cosine": 400.0}  # reference notebook, hard-coded per schedule
REFERENCE_COSINE_CLIP = (1e-4, 0.999)  # the reference code's cosine clip, whatever beta_start/beta_end say


def stage_times(t_start: int, t_end: int, count: int) -> list[int]:
    """``int(linspace(t_start, t_end, count))``, most-noised first, in exact integer arithmetic."""
    if count == 1:
        return [t_start]
    return [(t_start * (count - 1) - i * (t_start - t_end)) // (count - 1) for i in range(count)]


def largest_remainder(weights: list[float], total: int) -> list[int]:
    """Integers ∝ ``weights`` summing exactly to ``total`` (Hamilton's method); ties go to the later stage."""
    quotas = [total * w for w in weights]
    counts = [math.floor(q) for q in quotas]
    order = sorted(range(len(quotas)), key=lambda i: (counts[i] - quotas[i], -i))
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return counts


def remainder_to_last(weights: list[float], total: int) -> list[int]:
    """The reference's rounding: n_i = int(N·w_i) for every stage but the last, which gets the remainder."""
    counts = [math.floor(total * w) for w in weights[:-1]]
    return counts + [total - sum(counts)]


def stage_seed(seed: int, *keys: int) -> int:
    """A well-mixed 64-bit generator seed from (run seed, stage[, step]), independent of the run's global torch
    stream."""
    return int(np.random.SeedSequence([seed % 2**64, *keys]).generate_state(1, dtype=np.uint64)[0])


class DDPMCurriculum:
    """DDPM-guided DIP: stage i fits x_{t_i} = √ᾱ_{t_i}·x_0 + √(1 − ᾱ_{t_i})·ε_i (Ho et al. 2020, Eq. 4) for n_i steps.

    The stage times t_i = int(linspace(t_start, t_end, count)) are trained most-noised first; the budgets are
    n_i ∝ exp(−c·β_{t_i}) and sum exactly to ``steps``. ε_i is drawn once per stage from a generator seeded by
    (seed, i) and kept for the whole stage, as the reference draws one noisy target per stage; with
    ``redraw="step"`` a new ε is drawn at every step (seeded by (seed, i, step)), as DDPM's own training draws it
    (Ho et al. 2020, Algorithm 1): the generators then cannot memorise any one draw, and the stage's expected
    target is √ᾱ_{t_i}·x_0. The last
    ``clean_fraction`` of the steps fits the image itself (ddip's default 1/3 in the scheduler configs): the
    output is chosen among iterates fitted to the image, never to a noised copy, and a stopping rule such as
    ES-WMV finds its minimum there; the DDPM stages share the other steps. With ``clean_fraction=0`` (the
    reference) the last stage fits the t_end-noised copy up to the final step.

    With ``clean_at_floor`` the clean stage may start early: a stopping rule that knows the image's noise floor
    (ES-WMV's ``noise_floor``) calls :meth:`start_clean_stage` once the output is that close to the image during a
    noised stage. A DIP fit that close to the noisy image is already taking in its noise (the discrepancy principle
    of the floor), whatever target it is fitting; the lightly noised last stages otherwise carry it past DIP's peak
    before the clean stage, where the output is chosen, begins.

    With data augmentation the same ε is added to every flip/rotation of the image of a given shape, so the
    noise is not tied to the image content across transforms.

    Corrected mode (default, the write-up): ε ~ N(0, 1); cosine β clipped to [beta_start, beta_end]; time t
    uses ᾱ_t and β_t; budgets rounded by largest remainder. ``faithful=True`` replicates the reference code:
    ε ~ N(0.5, 0.5²) (``0.5·randn + 0.5``, a bias of +0.5·√(1 − ᾱ)); cosine β clipped to [1e-4, 0.999]
    ignoring beta_start/beta_end; the 0-based arrays indexed by t, i.e. ᾱ_{t+1} and β_{t+1}; budgets
    int(N·w_i) with the remainder to the last stage. The faithful mode also re-creates z and the optimiser at
    every stage start: :class:`StageResets` does that, from :meth:`is_stage_start`.

    Args:
        steps: total optimisation steps N.
        schedule: ``linear`` or ``cosine``.
        seed: the run's seed; fixes every stage's ε.
        count: number of stages.
        t_start: the first (most-noised) stage's time.
        t_end: the last (least-noised) stage's time.
        c: budget exponent; ``None`` = the reference's 250 (linear) or 400 (cosine).
        beta_start: β_1 of the linear schedule, the lower cosine clip in corrected mode.
        beta_end: β_T of the linear schedule, the upper cosine clip in corrected mode.
        timesteps: T.
        faithful: replicate the reference code's deviations from its write-up.
        clean_fraction: share of ``steps`` at the end that fits the image itself (0 = none, the reference).
        redraw: ``stage`` (one ε per stage, the reference) or ``step`` (a new ε at every step).
        clean_at_floor: let a stopping rule start the clean stage early (:meth:`start_clean_stage`).
    """

    def __init__(
        self,
        steps: int,
        schedule: str = "cosine",
        seed: int = 0,
        count: int = 20,
        t_start: int = 500,
        t_end: int = 40,
        c: float | None = None,
        beta_start: float = 1e-4,
        beta_end: float = 0.02,
        timesteps: int = 1000,
        faithful: bool = False,
        clean_fraction: float = 0.0,
        redraw: str = "stage",
        clean_at_floor: bool = False,
    ):
        c = DEFAULT_C.get(schedule, 0.0) if c is None else c
        validate(schedule, count, t_start, t_end, c, beta_start, beta_end, timesteps, faithful)
        if not (is_number(clean_fraction) and 0 <= clean_fraction < 1):
            raise DdipError(f"scheduler.clean_fraction={clean_fraction!r} must be a number in [0, 1)")
        if redraw not in REDRAWS:
            raise DdipError(f"scheduler.redraw={redraw!r}: choose one of {', '.join(REDRAWS)}")
        if not isinstance(clean_at_floor, bool):
            raise DdipError(f"scheduler.clean_at_floor={clean_at_floor!r} must be true or false")
        self.clean_at_floor = clean_at_floor
        self.steps, self.schedule, self.seed, self.faithful, self.redraw = steps, schedule, seed, faithful, redraw
        self.betas = self.make_betas(schedule, beta_start, beta_end, timesteps, faithful)
        self.alpha_bars = alphas_cumprod(self.betas)
        self.times = stage_times(t_start, t_end, count)
        index = [t if faithful else t - 1 for t in self.times]
        self.stage_betas = [float(self.betas[i]) for i in index]
        self.stage_alpha_bars = [float(self.alpha_bars[i]) for i in index]
        weights = np.exp(-c * np.array(self.stage_betas))
        weights = list(weights / weights.sum())
        self.clean_steps = round(clean_fraction * steps)
        self.budgets = (remainder_to_last if faithful else largest_remainder)(weights, steps - self.clean_steps)
        self.ends = np.cumsum(self.budgets).tolist()
        self.clean_from: int | None = None  # set by start_clean_stage
        self._noise: dict[tuple, torch.Tensor] = {}

    @staticmethod
    def make_betas(schedule: str, beta_start: float, beta_end: float, timesteps: int, faithful: bool) -> torch.Tensor:
        if schedule == "linear":
            return linear_betas(beta_start, beta_end, timesteps)
        low, high = REFERENCE_COSINE_CLIP if faithful else (beta_start, beta_end)
        return cosine_betas(timesteps, min_beta=low, max_beta=high)

    @property
    def count(self) -> int:
        return len(self.times)

    # --- stages -----------------------------------------------------------------------------------------
    def stage(self, step: int) -> int:
        """The stage that optimisation step ``step`` (0-based) belongs to; ``count`` past the last DDPM stage
        (the clean stage, whose target is the image). Stages with a budget of 0 are skipped."""
        if self.clean_from is not None and step >= self.clean_from:
            return self.count
        return bisect_right(self.ends, step)

    def stage_start(self, stage: int) -> int:
        """The first step of ``stage`` (its budget may be 0, then the next stage starts at the same step);
        ``count`` is the clean stage."""
        start = self.ends[stage - 1] if stage > 0 else 0
        return start if self.clean_from is None else min(start, self.clean_from)

    @property
    def boundaries(self) -> list[int]:
        """The first step of every stage with a nonzero budget, the clean stage's included."""
        starts = [self.stage_start(i) for i in range(self.count) if self.budgets[i] > 0 and self.stage(self.stage_start(i)) == i]
        return starts + [self.stage_start(self.count)] * (self.clean_steps > 0 or self.clean_from is not None)

    @property
    def last_stage_start(self) -> int:
        """The first step of the last stage, the clean stage or else the least-noised target: no output may be
        chosen before it (an iterate fitted to a more-noised copy is not a result)."""
        return self.boundaries[-1]

    def is_stage_start(self, step: int) -> bool:
        """Whether a new stage (a new target) begins at ``step``; the faithful mode then resets z and the optimiser."""
        stage = self.stage(step)
        return step == self.stage_start(stage) and (stage < self.count or self.clean_steps > 0 or self.clean_from is not None)

    def start_clean_stage(self, step: int) -> None:
        """Fit the image itself from ``step`` on (``clean_at_floor``): the noised stages still to come are skipped.
        Only moves the clean stage earlier; a curriculum without ``clean_at_floor`` refuses."""
        if not self.clean_at_floor:
            raise DdipError("this curriculum keeps its stages (scheduler.clean_at_floor=false)")
        if step < self.stage_start(self.count):
            self.clean_from = step

    # --- targets ----------------------------------------------------------------------------------------
    def noise(self, stage: int, like: torch.Tensor, step: int = 0) -> torch.Tensor:
        """ε of ``stage`` (and of ``step`` with ``redraw="step"``) at ``like``'s shape, drawn on the CPU and moved to
        ``like``'s device and dtype; cached while the draw is in use."""
        draw = (stage, step) if self.redraw == "step" else (stage,)
        key = (draw, tuple(like.shape), like.device, like.dtype)
        if key not in self._noise:
            self._noise = {k: v for k, v in self._noise.items() if k[0] == draw}
            generator = torch.Generator().manual_seed(stage_seed(self.seed, *draw))
            eps = torch.randn(like.shape, generator=generator)
            if self.faithful:
                eps = 0.5 * eps + 0.5
            self._noise[key] = eps.to(like)
        return self._noise[key]

    def target(self, image: torch.Tensor, step: int) -> torch.Tensor:
        """x_t = √ᾱ_t·image + √(1 − ᾱ_t)·ε for the stage of ``step`` (Ho et al. 2020, Eq. 4); not clipped."""
        stage = self.stage(step)
        if stage == self.count:
            return image
        alpha_bar = self.stage_alpha_bars[stage]
        return math.sqrt(alpha_bar) * image + math.sqrt(1 - alpha_bar) * self.noise(stage, image, step)


def validate(
    schedule: str,
    count: int,
    t_start: int,
    t_end: int,
    c: float,
    beta_start: float,
    beta_end: float,
    timesteps: int,
    faithful: bool,
) -> None:
    """Raise :class:`DdipError` with a one-line message for a configuration the curriculum cannot run."""
    given = {"count": count, "t_start": t_start, "t_end": t_end, "timesteps": timesteps, "c": c, "beta_start": beta_start, "beta_end": beta_end}
    for name, value in given.items():
        whole = name in ("count", "t_start", "t_end", "timesteps")
        if not (is_whole(value) if whole else is_number(value)):
            raise DdipError(f"scheduler.{name}={value!r} must be a {'whole number' if whole else 'number'}")
    last = timesteps - 1 if faithful else timesteps  # the reference indexes its 0-based arrays with t
    problems = [
        (schedule not in SCHEDULES, f"scheduler.schedule={schedule!r}: choose one of {', '.join(SCHEDULES)}"),
        (timesteps < 1, f"scheduler.timesteps={timesteps}: need at least one diffusion step"),
        (count < 1, f"scheduler.count={count}: need at least one stage"),
        (not 1 <= t_start <= last, f"scheduler.t_start={t_start}: must lie in [1, {last}]"),
        (not 1 <= t_end <= last, f"scheduler.t_end={t_end}: must lie in [1, {last}]"),
        (t_end > t_start, f"scheduler.t_end={t_end} > t_start={t_start}: stages run from most to least noised"),
        (c < 0, f"scheduler.c={c}: the budget exponent must be >= 0"),
        (
            not 0 < beta_start <= beta_end < 1,
            f"scheduler.beta_start={beta_start}, beta_end={beta_end}: need 0 < start <= end < 1",
        ),
    ]
    for bad, message in problems:
        if bad:
            raise DdipError(message)


class StageResets(pl.Callback):
    """The faithful curriculum's resets (``scheduler.faithful=true``): the reference Guided-DIP code draws new noise
    inputs and a new Adam at every curriculum stage; by default (or with no curriculum) both persist through the run.
    Before the first step of each stage but the first, the module's inputs are redrawn
    (:meth:`ddip.module.DecompositionModule.redraw_inputs`) and its optimiser's state cleared."""

    def on_train_batch_start(self, trainer: pl.Trainer, module, batch: dict[str, int], batch_idx: int) -> None:
        curriculum, step = module.curriculum, batch["step"]
        if getattr(curriculum, "faithful", False) and step > 0 and curriculum.is_stage_start(step):
            module.redraw_inputs()
            module.optimizer.state.clear()
