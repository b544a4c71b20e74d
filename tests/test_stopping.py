"""ES-WMV: the windowed moving variance (Eq. 2) and where the stopping rule stops; the settled-mask rule."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch
from conftest import ROOT, tiny_texture
from omegaconf import OmegaConf

from ddip.curriculum import DDPMCurriculum, NoCurriculum
from ddip.errors import DdipError
from ddip.noise_level import noise_sigma
from ddip.run import build_component, compose_train, run
from ddip.stopping import ESWMV, Settled, WindowedVariance


def test_windowed_variance_matches_the_definition():
    values = [torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(i)) for i in range(12)]
    variance = WindowedVariance(window=5)
    results = [variance.push(v) for v in values]
    assert results[:4] == [None] * 4
    for end in range(5, 13):
        window = torch.stack(values[end - 5 : end]).double()
        expected = float(((window - window.mean(0)) ** 2).mean())
        assert results[end - 1] == pytest.approx(expected, rel=1e-9)


class Trainer:
    should_stop, global_step = False, 0


class FakeTask:
    def compose(self, layers):
        return layers["x"]


class Module:
    """The surface ES-WMV uses: the step's outputs, the task's composition, select(), a logger."""

    def __init__(self):
        self.task, self.logger, self.log_every, self.average = FakeTask(), None, 10, 0.0
        self.output_layers, self.selected, self.selectable_from = {}, None, 1
        self.curriculum = NoCurriculum()

    def select(self, step, layers):
        self.selected = (step, layers)


def drive(callback: ESWMV, curve, average: float = 0.0, selectable_from: int = 1) -> tuple[Module, int]:
    """Feed outputs whose step-to-step change follows ``curve``; returns the module and the steps run.
    The module's "output" at step i is i itself, so the selected output tells when it was taken."""
    module, trainer, value = Module(), Trainer(), torch.zeros(1, 1, 8, 8)
    module.average, module.selectable_from = average, selectable_from
    generator = torch.Generator().manual_seed(0)
    for index, scale in enumerate(curve):
        value = value + scale * torch.randn(value.shape, generator=generator)
        module.last_layers, module.output_layers = {"x": value.clone()}, {"x": torch.tensor(float(index + 1))}
        trainer.global_step = index + 1
        callback.on_train_batch_end(trainer, module, None, None, index)
        if trainer.should_stop:
            return module, index + 1
    return module, len(curve)


def test_stops_at_the_valley_of_the_change_rate_after_patience():
    # change rate falls until step 300 (structure fitted), then rises (noise being fitted)
    curve = [1.0 / (1 + i / 10) if i < 300 else 1.0 / 31 * math.exp((i - 300) / 100) for i in range(1000)]
    callback = ESWMV(window=20, patience=100)
    module, steps_run = drive(callback, curve)
    assert 280 <= callback.best_step <= 330
    assert steps_run == callback.best_step + 100
    assert module.selected[0] == callback.best_step and float(module.selected[1]["x"]) == callback.best_step


def test_nothing_before_the_first_choosable_iterate_is_chosen():
    """The valley at step 300 lies in a curriculum's earlier stage (the last starts at 500): the detection is made
    among the later iterates only."""
    curve = [1.0 / (1 + i / 10) if i < 300 else 1.0 / 31 * math.exp((i - 300) / 100) for i in range(1000)]
    callback = ESWMV(window=20, patience=100)
    module, _ = drive(callback, curve, selectable_from=500)
    assert callback.best_step >= 500 + 20 - 1 and module.selected[0] == callback.best_step


@pytest.mark.parametrize("task, scheduler", [("seg", "linear"), ("dehaze", "cosine"), ("denoise", "cosine"), ("separate", "linear")])
def test_with_a_curriculum_the_output_comes_from_its_last_stage(tmp_path, task, scheduler):
    """Whatever chooses the output (the task's score, or ES-WMV for denoising), never an iterate fitted to a
    more-noised target than the last stage's."""
    overrides = [f"task={task}", f"scheduler={scheduler}", "steps=40", "logger=none", "callbacks.evaluation.every=1"]
    overrides += [f"data.image={tiny_texture(tmp_path)}", "scheduler.count=4"]
    if task == "denoise":
        overrides += ["backbone.channels=[8,8,8,8,8]", "stopping.window=3", "stopping.stop=false"]
    cfg = compose_train(overrides)
    last_stage_start = build_component(cfg, "scheduler").last_stage_start
    assert 0 < last_stage_start < 39
    metrics = run(cfg, tmp_path / "run")
    assert metrics["chosen_step"] > last_stage_start, metrics["chosen_step"]


def test_with_averaged_outputs_the_average_is_taken_one_lag_after_the_detection():
    curve = [1.0 / (1 + i / 10) if i < 300 else 1.0 / 31 * math.exp((i - 300) / 100) for i in range(1000)]
    callback = ESWMV(window=20, patience=200)
    module, _ = drive(callback, curve, average=0.99)
    assert module.selected[0] == callback.best_step  # labelled with the detected step
    assert float(module.selected[1]["x"]) == callback.best_step + 99  # the average 99 steps later


def test_without_stop_every_step_runs_and_the_detection_is_kept():
    curve = [1.0 / (1 + i) if i < 50 else 0.02 * (i - 49) for i in range(200)]
    callback = ESWMV(window=10, patience=5, stop=False)
    module, steps_run = drive(callback, curve)
    assert steps_run == 200 and module.selected[0] == callback.best_step < 80


@pytest.mark.parametrize(
    "kwargs, message",
    [({"window": 1}, "stopping.window=1 must be a whole number ≥ 2"), ({"patience": 0}, "stopping.patience=0"), ({"stop": "yes"}, "true or false")],
)
def test_bad_values_are_one_line_errors(kwargs, message):
    with pytest.raises(DdipError, match=message):
        ESWMV(**kwargs)


def test_stopping_gaps_reports_the_longest_wait_between_new_minima(tmp_path):
    run = tmp_path / "run"
    (run / "csv").mkdir(parents=True)
    variances = {10: 5.0, 20: 4.0, 30: 4.5, 40: 4.2, 50: 3.0, 60: 3.5, 70: 2.9, 80: 3.1}  # minima at 10, 20, 50, 70
    rows = ["step,stopping/variance,train/loss"] + [f"{step},{value},0.1" for step, value in variances.items()]
    rows.insert(3, "25,,0.1")  # rows of other metrics are skipped
    (run / "csv" / "metrics.csv").write_text("\n".join(rows) + "\n")
    result = subprocess.run([sys.executable, "research/stopping_gaps.py", str(run)], cwd=ROOT, capture_output=True, text=True, check=True)
    assert f"| {run} | 70 | 30 |" in result.stdout


def smooth_image(size: int = 48) -> torch.Tensor:
    y, x = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    return torch.stack([0.3 + 0.4 * x, 0.5 + 0.3 * torch.sin(3 * y), 0.2 + 0.5 * x * y])


@pytest.mark.parametrize("sigma", [0.05, 0.1, 0.2])
def test_the_noise_level_is_estimated_from_the_noisy_image_alone(sigma):
    clean = smooth_image()
    noise = sigma * torch.randn(clean.shape, generator=torch.Generator().manual_seed(1))
    assert noise_sigma(clean + noise) == pytest.approx(float(noise.std()), rel=0.1)
    assert noise_sigma(clean) < 0.01


def drive_to_the_noisy_image(callback: ESWMV, steps: int = 200, curriculum=None) -> tuple[Module, int]:
    """Outputs moving linearly from a clean image to its noisy copy (the image fitted), as a DIP fit that ends
    fitting the noise: the residual RMS falls from σ to 0, reaching σ/2 at step steps/2. With a ``curriculum``, the
    first choosable step follows its last stage, as :attr:`DecompositionModule.selectable_from` does."""
    clean = smooth_image(32)[None]
    noisy = clean + 0.1 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(2))
    module, trainer = Module(), Trainer()
    module.image, module.crop = noisy, lambda x: x
    module.curriculum = curriculum or module.curriculum
    callback.on_train_start(trainer, module)
    for step in range(1, steps + 1):
        module.selectable_from = module.curriculum.last_stage_start + 1
        output = clean + (noisy - clean) * step / steps
        module.last_layers = module.output_layers = {"x": output}
        trainer.global_step = step
        callback.on_train_batch_end(trainer, module, None, None, step - 1)
        if trainer.should_stop:
            return module, step
    return module, steps


def test_the_noise_floor_chooses_the_first_output_below_it_when_nothing_was_detected():
    callback = ESWMV(window=150, patience=500, noise_floor=0.5)  # the window is not full before the floor
    module, steps_run = drive_to_the_noisy_image(callback)
    assert 95 <= module.selected[0] <= 105 and steps_run == module.selected[0]


def test_at_the_noise_floor_an_earlier_detection_stands():
    callback = ESWMV(window=5, patience=500, noise_floor=0.5, stop=False)
    module, steps_run = drive_to_the_noisy_image(callback)
    assert steps_run == 200 and callback.floored
    assert callback.best_step is not None and module.selected[0] == callback.best_step < 105


def test_under_a_curriculum_the_noise_floor_starts_its_clean_stage_early():
    """The clean stage of a 200-step curriculum starts at step 150; the outputs reach the floor (σ/2) near step 100,
    in a noised stage: the clean stage then starts at the next step, whose iterate is chosen and ends the fit."""
    curriculum = DDPMCurriculum(200, "cosine", count=4, clean_fraction=0.25, clean_at_floor=True)
    callback = ESWMV(window=150, patience=500, noise_floor=0.5)
    module, steps_run = drive_to_the_noisy_image(callback, curriculum=curriculum)
    assert 95 <= callback.clean_from <= 105 and curriculum.clean_from == callback.clean_from
    assert curriculum.last_stage_start == callback.clean_from and curriculum.stage(callback.clean_from) == curriculum.count
    assert module.selected[0] == steps_run == callback.clean_from + 1


def test_without_clean_at_floor_the_curriculum_keeps_its_stages():
    curriculum = DDPMCurriculum(200, "cosine", count=4, clean_fraction=0.25)
    callback = ESWMV(window=150, patience=500, noise_floor=0.5)
    module, steps_run = drive_to_the_noisy_image(callback, curriculum=curriculum)
    assert callback.clean_from is None and curriculum.last_stage_start == 150
    assert module.selected[0] == steps_run == 151  # the first choosable iterate is already below the floor
    with pytest.raises(DdipError, match="clean_at_floor=false"):
        curriculum.start_clean_stage(100)


def test_a_resumed_fit_keeps_the_clean_stage_the_floor_started():
    curriculum = DDPMCurriculum(200, "cosine", count=4, clean_fraction=0.25, clean_at_floor=True)
    callback = ESWMV(window=150, patience=500, noise_floor=0.5)
    drive_to_the_noisy_image(callback, curriculum=curriculum)
    resumed, module = ESWMV(window=150, patience=500, noise_floor=0.5), Module()
    resumed.load_state_dict(callback.state_dict())
    module.image, module.crop = torch.zeros(1, 3, 8, 8), lambda x: x
    module.curriculum = DDPMCurriculum(200, "cosine", count=4, clean_fraction=0.25, clean_at_floor=True)
    resumed.on_train_start(Trainer(), module)
    assert module.curriculum.last_stage_start == callback.clean_from


def test_without_a_noise_floor_the_output_fitting_the_noise_is_chosen():
    callback = ESWMV(window=150, patience=500)
    module, steps_run = drive_to_the_noisy_image(callback)
    assert steps_run == 200 and module.selected[0] > 150


class DecidingTask:
    def decision(self, layers):
        return layers["mask"] > 0.5


class MapTask:
    def decision(self, layers):
        return layers["mask"]


class DecidingModule:
    """The surface of :class:`Settled`: the task's decision on the current output, the first choosable step, a logger."""

    def __init__(self, selectable_from: int, task=None):
        self.task, self.logger, self.selectable_from, self.output = task or DecidingTask(), None, selectable_from, None

    def current_output(self):
        return {"mask": self.output}


def settle(callback: Settled, masks, selectable_from: int = 1, task=None) -> int:
    """Run ``callback`` over one mask a step; returns the steps run."""
    module, trainer = DecidingModule(selectable_from, task), Trainer()
    module.output = masks[0]
    callback.on_train_start(trainer, module)
    for step, mask in enumerate(masks, start=1):
        module.output, trainer.global_step = mask, step
        callback.on_train_batch_end(trainer, module, None, None, step - 1)
        if trainer.should_stop:
            return step
    return len(masks)


def growing(steps: int, until: int) -> list[torch.Tensor]:
    """A 20×20 mask that takes one more pixel a step until step ``until``, then stays."""
    masks = []
    for step in range(1, steps + 1):
        mask = torch.zeros(400)
        mask[: min(step, until)] = 1.0
        masks.append(mask.view(1, 1, 20, 20))
    return masks


def test_settled_stops_patience_steps_after_the_mask_stops_changing():
    # one of 400 pixels a step until step 300: 50 steps change 12.5 % of the mask, then none
    assert settle(Settled(every=10, tolerance=0.005, patience=50), growing(1000, 300)) == 350
    # a slow drift (1 pixel in 10 steps, 0.25 % a check) adds up over the patience: 1.25 % in 50 steps
    slow = [mask for mask in growing(100, 100) for _ in range(10)]
    assert settle(Settled(every=10, tolerance=0.005, patience=50), slow) == 1000
    # a tolerance above what the patience's steps change counts the growing mask as settled
    assert settle(Settled(every=10, tolerance=0.15, patience=50), growing(1000, 300)) == 60


def test_settled_waits_for_the_first_choosable_iterate_and_never_stops_a_mask_that_keeps_moving():
    still = [torch.ones(1, 1, 8, 8)] * 1000
    assert settle(Settled(every=10, patience=50), still, selectable_from=200) == 250
    flicker = [torch.full((1, 1, 8, 8), float((step // 10) % 2)) for step in range(1, 1001)]
    assert settle(Settled(every=10, patience=50), flicker) == 1000


def test_settled_watches_a_map_by_its_mean_absolute_change():
    # a 4×4 map rising by 0.002 a step until step 300, then still: 0.1 over 50 steps, then nothing
    rising = [torch.full((1, 1, 4, 4), 0.002 * min(step, 300)) for step in range(1, 1001)]
    assert settle(Settled(every=10, tolerance=0.01, patience=50), rising, task=MapTask()) == 350
    # one pixel of 16 moving by 0.1 over the patience is a mean change of 0.1 / 16
    single = [torch.zeros(1, 1, 4, 4) for _ in range(1000)]
    for step, frame in enumerate(single, start=1):
        frame[0, 0, 0, 0] = 0.002 * step
    assert settle(Settled(every=10, tolerance=0.1 / 16 + 1e-6, patience=50), single, task=MapTask()) == 60
    assert settle(Settled(every=10, tolerance=0.1 / 16 - 1e-6, patience=50), single, task=MapTask()) == 1000


@pytest.mark.parametrize("task, rule, message", [("denoise", "settled", "has none: use stopping=none"), ("video", "es_wmv", "images a step: use stopping=none")])
def test_a_rule_the_task_cannot_use_is_refused_before_the_data_is_read(tmp_path, task, rule, message):
    """The image does not exist: the rule's error comes first, as soon as the task is built."""
    missing = tmp_path / "missing.png"
    data = [f"data.images=[{missing},{missing}]", "task.frames_per_step=1"] if task == "video" else [f"data.image={missing}"]
    cfg = compose_train([f"task={task}", f"stopping={rule}", "logger=none", *data])
    with pytest.raises(DdipError, match=message):
        run(cfg, tmp_path / "run")


def test_the_seg_recipe_uses_settled_yaml_as_it_is():
    """recipe/seg.yaml spells out stopping/settled.yaml's rule (a recipe cannot pull another group's option into its
    own key): the two must agree, so that `stopping=settled` and the default are one rule."""
    settled = OmegaConf.load(ROOT / "ddip" / "conf" / "stopping" / "settled.yaml")
    assert OmegaConf.to_container(compose_train(["task=seg"]).stopping) == OmegaConf.to_container(settled)


def test_settled_knows_its_settings():
    with pytest.raises(DdipError, match="stopping=settled has no setting patiense"):
        Settled(patiense=3)
    assert Settled(window=100, noise_floor=0.95).patience == 200  # ES-WMV's settings, merged in by Hydra, are ignored


def test_a_segmentation_ends_once_its_mask_has_settled(tmp_path):
    """The default rule of task=seg: on a small two-texture composite the mask settles well before the cap, after
    the hint stages; the output is still the best-scored evaluated iterate."""
    overrides = ["steps=600", "logger=none", "stopping.every=20", "stopping.patience=100", "callbacks.evaluation.every=20"]
    metrics = run(compose_train([*overrides, f"data.image={tiny_texture(tmp_path)}"]), tmp_path / "run")
    assert 400 <= metrics["steps_run"] < 600, metrics["steps_run"]
    assert 300 <= metrics["chosen_step"] <= metrics["steps_run"] and metrics["chosen_by"] == "score"
