"""The DDPM curriculum: β schedules, stage budgets and order, the noised targets, the Hydra configs and their errors.
Reference values are from the Guided-DIP reference code (larrychen20011120/Guided-DIP: its β table, stage times and
printed budgets)."""

from __future__ import annotations

import math
from itertools import pairwise

import pytest
import torch
from hydra.utils import instantiate

from ddip.curriculum import DDPMCurriculum, alphas_cumprod, cosine_betas, linear_betas
from ddip.errors import DdipError
from ddip.run import compose_train

REFERENCE_TIMES = [500, 475, 451, 427, 403, 378, 354, 330, 306, 282, 257, 233, 209, 185, 161, 136, 112, 88, 64, 40]
REFERENCE_COSINE_BUDGETS = [49, 54, 58, 63, 68, 73, 79, 84, 89, 94, 100, 106, 112, 118, 124, 130, 137, 144, 151, 167]
REFERENCE_LINEAR_BUDGETS = [25, 28, 32, 36, 40, 46, 52, 58, 66, 74, 84, 95, 107, 120, 136, 154, 174, 196, 220, 257]


def constant_image(value: float = 0.5, height: int = 64, width: int = 64) -> torch.Tensor:
    return torch.full((1, 3, height, width), value)


# --- schedules ------------------------------------------------------------------------------------------
def test_linear_betas_run_from_beta_start_to_beta_end():
    betas = linear_betas(1e-4, 0.02, 1000)
    assert len(betas) == 1000
    assert betas[0].item() == pytest.approx(1e-4) and betas[-1].item() == pytest.approx(0.02)


@pytest.mark.parametrize("betas", [linear_betas(1e-4, 0.02, 1000), cosine_betas(1000)], ids=["linear", "cosine"])
def test_alpha_bar_strictly_decreases(betas):
    alpha_bar = alphas_cumprod(betas)
    assert (alpha_bar[1:] < alpha_bar[:-1]).all() and 0 < alpha_bar[-1] < alpha_bar[0] < 1


def test_cosine_end_points_are_clipped_and_span_clean_to_noise():
    betas = cosine_betas(1000)
    alpha_bar = alphas_cumprod(betas)
    assert betas.max().item() <= 0.999 and betas[-1].item() == pytest.approx(0.999)
    assert alpha_bar[0].item() > 0.9999 and alpha_bar[-1].item() < 1e-6
    assert cosine_betas(1000, min_beta=1e-4, max_beta=0.02).aminmax() == (pytest.approx(1e-4), pytest.approx(0.02))


@pytest.mark.parametrize(
    "schedule, t, alpha_bar", [("linear", 40, 0.9798), ("linear", 500, 0.0778), ("cosine", 40, 0.9940), ("cosine", 500, 0.4921)]
)
def test_faithful_alpha_bar_matches_the_reference_table(schedule, t, alpha_bar):
    """The reference indexes its 0-based ᾱ array with t (ᾱ_{t+1}); the corrected mode uses ᾱ_t of Ho et al."""
    faithful = DDPMCurriculum(2000, schedule, count=1, t_start=t, t_end=t, faithful=True)
    corrected = DDPMCurriculum(2000, schedule, count=1, t_start=t, t_end=t)
    assert faithful.stage_alpha_bars[0] == pytest.approx(alpha_bar, abs=5e-5)
    assert corrected.stage_alpha_bars[0] == pytest.approx(corrected.alpha_bars[t - 1].item())
    assert corrected.stage_alpha_bars[0] > faithful.stage_alpha_bars[0]


# --- stages and budgets ---------------------------------------------------------------------------------
@pytest.mark.parametrize("faithful", [False, True])
@pytest.mark.parametrize("schedule", ["linear", "cosine"])
@pytest.mark.parametrize("steps, count", [(1, 20), (2, 20), (7, 20), (19, 20), (20, 20), (2000, 20), (3001, 7), (5, 1)])
def test_budgets_sum_to_steps_and_grow_as_noise_falls(schedule, faithful, steps, count):
    curriculum = DDPMCurriculum(steps, schedule, count=count, faithful=faithful)
    budgets = curriculum.budgets
    assert len(budgets) == count and sum(budgets) == steps and min(budgets) >= 0
    assert all(later >= earlier for earlier, later in pairwise(budgets))


def test_largest_remainder_budgets_track_the_weights():
    curriculum = DDPMCurriculum(2000, "linear")
    weights = torch.exp(-250.0 * torch.tensor(curriculum.stage_betas))
    quotas = 2000 * weights / weights.sum()
    assert all(abs(budget - quota) < 1 for budget, quota in zip(curriculum.budgets, quotas.tolist()))


@pytest.mark.parametrize("schedule, budgets", [("cosine", REFERENCE_COSINE_BUDGETS), ("linear", REFERENCE_LINEAR_BUDGETS)])
def test_faithful_budgets_are_the_reference_ones(schedule, budgets):
    curriculum = DDPMCurriculum(2000, schedule, faithful=True)
    assert curriculum.budgets == budgets
    assert curriculum.stage_start(18) == {"cosine": 1682, "linear": 1523}[schedule]
    assert curriculum.stage_start(19) == {"cosine": 1833, "linear": 1743}[schedule]


def test_stages_run_most_noised_first():
    curriculum = DDPMCurriculum(2000, "cosine")
    assert curriculum.times == REFERENCE_TIMES
    assert all(a < b for a, b in pairwise(curriculum.stage_alpha_bars)) and all(a > b for a, b in pairwise(curriculum.stage_betas))


def test_stage_of_each_step_and_stage_starts():
    curriculum = DDPMCurriculum(7, "linear", count=20)  # fewer steps than stages: most budgets are 0
    stages = [curriculum.stage(step) for step in range(7)]
    assert stages == sorted(stages) and len(set(stages)) == 7 and stages[-1] == 19
    assert [step for step in range(7) if curriculum.is_stage_start(step)] == curriculum.boundaries == list(range(7))
    assert curriculum.stage(7) == 20 and not curriculum.is_stage_start(7)
    big = DDPMCurriculum(2000, "cosine")
    assert big.boundaries[0] == 0 and len(big.boundaries) == 20
    assert all(big.stage(start) == i and big.stage(start - 1) == i - 1 for i, start in enumerate(big.boundaries) if i)


# --- targets ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("schedule", ["linear", "cosine"])
@pytest.mark.parametrize("faithful, mean, scale", [(False, 0.0, 1.0), (True, 0.5, 0.5)])
def test_target_noise_level(schedule, faithful, mean, scale):
    """x_t − √ᾱ·x_0 = √(1 − ᾱ)·ε: ε ~ N(0, 1) corrected, N(0.5, 0.5²) faithful (the reference's 0.5·randn + 0.5)."""
    curriculum = DDPMCurriculum(100, schedule, seed=3, faithful=faithful)
    image = constant_image(0.5)
    for step in (0, 99):
        alpha_bar = curriculum.stage_alpha_bars[curriculum.stage(step)]
        residual = curriculum.target(image, step) - math.sqrt(alpha_bar) * image
        sigma = math.sqrt(1 - alpha_bar)
        assert residual.mean().item() == pytest.approx(mean * sigma, abs=0.05 * sigma)
        assert residual.std().item() == pytest.approx(scale * sigma, rel=0.05)


def test_target_is_not_clipped():
    curriculum = DDPMCurriculum(100, "linear")
    target = curriculum.target(constant_image(1.0), 0)
    assert target.max().item() > 1 and target.min().item() < 0


def test_same_seed_same_target_other_stage_or_seed_other_noise():
    image = constant_image(0.3, 8, 8)
    a, b, c = (DDPMCurriculum(40, "cosine", count=4, seed=seed) for seed in (1, 1, 2))
    assert torch.equal(a.target(image, 0), b.target(image, 0))
    assert torch.equal(a.target(image, 0), a.target(image, a.stage_start(1) - 1))  # ε is fixed within a stage
    assert not torch.equal(a.target(image, 0), c.target(image, 0))
    assert a.stage(0) != a.stage(39)
    assert not torch.allclose(a.noise(a.stage(0), image), a.noise(a.stage(39), image))


def test_redraw_step_draws_a_new_noise_every_step_reproducibly():
    """``redraw="step"``: ε changes from step to step within a stage, is fixed by (seed, stage, step), keeps the
    stage's noise level, and leaves the stage-mode draws (the reference's) as they were."""
    image = constant_image(0.3, 16, 16)
    stage, fresh, again = (DDPMCurriculum(40, "cosine", count=4, seed=1, redraw=r) for r in ("stage", "step", "step"))
    assert torch.equal(fresh.target(image, 5), again.target(image, 5))
    assert not torch.equal(fresh.target(image, 5), fresh.target(image, 6))
    assert torch.equal(stage.target(image, 0), DDPMCurriculum(40, "cosine", count=4, seed=1).target(image, 0))
    sigma = math.sqrt(1 - fresh.stage_alpha_bars[0])
    residual = fresh.target(image, 1) - math.sqrt(fresh.stage_alpha_bars[0]) * image
    assert residual.std().item() == pytest.approx(sigma, rel=0.1)


def test_target_follows_the_image_shape_device_and_dtype():
    curriculum = DDPMCurriculum(10, "linear", count=2)
    wide, tall = torch.rand(1, 3, 4, 6, dtype=torch.float64), torch.rand(1, 3, 6, 4, dtype=torch.float64)
    for image in (wide, tall, wide):
        target = curriculum.target(image, 0)
        assert target.shape == image.shape and target.dtype == torch.float64 and target.device == image.device


def test_past_the_last_stage_the_target_is_the_image():
    curriculum = DDPMCurriculum(10, "linear", count=2)
    image = constant_image(0.5, 4, 4)
    assert not torch.equal(curriculum.target(image, 9), image)
    assert curriculum.target(image, 10) is image


# --- configs ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_scheduler_configs_instantiate(schedule):
    cfg = compose_train([f"scheduler={schedule}", "steps=123", "seed=5"])
    curriculum = instantiate(cfg.scheduler)
    assert isinstance(curriculum, DDPMCurriculum) and curriculum.schedule == schedule and curriculum.seed == 5
    assert curriculum.clean_steps == 41 and sum(curriculum.budgets) == 123 - 41 and curriculum.times == REFERENCE_TIMES
    assert not curriculum.faithful and curriculum.clean_at_floor


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_faithful_configs_have_no_clean_stage(schedule):
    curriculum = instantiate(compose_train([f"scheduler={schedule}_faithful", "steps=123"]).scheduler)
    assert curriculum.faithful and curriculum.clean_steps == 0 and sum(curriculum.budgets) == 123
    assert not curriculum.clean_at_floor


def test_the_clean_stage_fits_the_image_and_is_the_last_stage():
    curriculum = DDPMCurriculum(30, "cosine", count=4, clean_fraction=0.2)
    image = constant_image(0.5, 4, 4)
    assert curriculum.clean_steps == 6 and sum(curriculum.budgets) == 24
    assert curriculum.last_stage_start == 24 == curriculum.boundaries[-1] and curriculum.is_stage_start(24)
    assert all(curriculum.target(image, step) is image for step in range(24, 30))
    assert not torch.equal(curriculum.target(image, 23), image)


@pytest.mark.parametrize("clean_fraction", [0.0, 0.2])
def test_an_early_clean_stage_skips_the_noised_stages_left(clean_fraction):
    curriculum = DDPMCurriculum(30, "cosine", count=4, clean_fraction=clean_fraction, clean_at_floor=True)
    image = constant_image(0.5, 4, 4)
    noised_starts = curriculum.boundaries[:2]
    curriculum.start_clean_stage(noised_starts[1] + 1)  # within the second noised stage
    assert curriculum.boundaries == [*noised_starts, noised_starts[1] + 1] and curriculum.last_stage_start == noised_starts[1] + 1
    assert curriculum.is_stage_start(noised_starts[1] + 1) and not curriculum.is_stage_start(noised_starts[1] + 2)
    assert all(curriculum.target(image, step) is image for step in range(noised_starts[1] + 1, 30))
    assert not torch.equal(curriculum.target(image, noised_starts[1]), image)
    curriculum.start_clean_stage(29)  # never later than it already is
    assert curriculum.last_stage_start == noised_starts[1] + 1


def test_clean_at_floor_must_be_a_flag():
    with pytest.raises(DdipError, match="clean_at_floor='yes' must be true or false"):
        DDPMCurriculum(30, "cosine", clean_at_floor="yes")


@pytest.mark.parametrize("fraction", [-0.1, 1.0, "half"])
def test_a_bad_clean_fraction_is_one_line(fraction):
    with pytest.raises(DdipError, match="clean_fraction"):
        DDPMCurriculum(30, "cosine", clean_fraction=fraction)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"schedule": "quadratic"}, "schedule"),
        ({"count": 0}, "count"),
        ({"t_start": 1001}, "t_start"),
        ({"t_end": 0}, "t_end"),
        ({"t_start": 40, "t_end": 500}, "t_end"),
        ({"c": -1.0}, "scheduler.c"),
        ({"beta_start": 0.03}, "beta_start"),
        ({"faithful": True, "t_start": 1000}, "t_start"),  # the reference's ᾱ[t] has no t = T
        ({"c": "abc"}, "scheduler.c='abc' must be a number"),
        ({"count": 2.5}, "scheduler.count=2.5 must be a whole number"),
        ({"redraw": "epoch"}, "scheduler.redraw='epoch': choose one of stage, step"),
    ],
)
def test_bad_values_raise_a_one_line_error(kwargs, message):
    with pytest.raises(DdipError, match=message) as error:
        DDPMCurriculum(**({"steps": 100} | kwargs))
    assert "\n" not in str(error.value)
