"""``DecompositionModule``: the generators, their fixed noise inputs and the task's composite loss.

One optimisation step: jitter the noise inputs (reg-noise), apply the step's dihedral transform to them
(the same one the data module applied to the image), run every generator, let the task compose the
layers and compute its loss terms against the curriculum's target, and take an Adam step.

Every ``eval_every`` steps a noise-free forward is scored: the task's ground-truth-free selection score
(to choose the output), ground-truth metrics when given (reporting only, "oracle"), and a finiteness check.

BatchNorm stays in training mode for every forward, the final one included, as in the DIP and Double-DIP
reference code: with a batch of one image, every output is normalised with its own statistics.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import lightning.pytorch as pl
import torch
from torch import nn

from ddip.data import Crop, dihedral
from ddip.errors import DdipError
from ddip.tasks.base import Layers, NoiseInput, Task


def make_input(spec: NoiseInput, height: int, width: int) -> torch.Tensor:
    """A fixed 1×C×H×W network input: U(−0.5, 0.5)·scale noise, or an x/y meshgrid in [0, 1]."""
    if spec.kind == "uniform":
        return (torch.rand(1, spec.channels, height, width) - 0.5) * spec.scale
    if spec.kind == "meshgrid":
        y, x = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
        grid = torch.stack([x, y])
        return grid.repeat(math.ceil(spec.channels / 2), 1, 1)[None, : spec.channels].contiguous()
    raise ValueError(f"unknown noise input kind {spec.kind!r}")


class DecompositionModule(pl.LightningModule):
    """Fits the task's generators to one image.

    Args:
        task: what is decomposed (generators, physics, losses, outputs).
        backbone: builds one generator from ``in_channels`` and ``out_channels``.
        curriculum: the target at each step.
        optimizer: builds the optimiser from the parameters.
        steps: total optimisation steps.
        eval_every: steps between noise-free evaluations (output choice, metrics, NaN check).
        image_every: steps between image panels sent to the logger.
        log_every: steps between scalar logs of the training loss terms.
        snapshots: intermediate results kept for ``progress.png``.
    """

    def __init__(
        self,
        task: Task,
        backbone: Callable[..., nn.Module],
        curriculum,
        optimizer: Callable[..., torch.optim.Optimizer],
        steps: int,
        eval_every: int = 50,
        image_every: int = 500,
        log_every: int = 10,
        snapshots: int = 6,
    ):
        super().__init__()
        if steps < 1:
            raise DdipError(f"steps={steps}: need at least one optimisation step")
        self.task, self.curriculum = task, curriculum
        self.steps, self.eval_every, self.image_every, self.log_every = steps, max(1, eval_every), image_every, log_every
        try:
            self.generators = nn.ModuleDict(
                {
                    name: backbone(in_channels=task.inputs[spec.input].channels, out_channels=spec.out_channels)
                    for name, spec in task.generators.items()
                }
            )
        except (ValueError, TypeError) as error:
            raise DdipError(f"invalid backbone configuration: {error}") from None
        try:
            self.optimizer = optimizer(self.parameters())
        except (ValueError, TypeError) as error:
            raise DdipError(f"invalid optimizer configuration: {error}") from None
        self.snapshot_steps = {max(1, round(steps * (i + 1) / snapshots)) for i in range(snapshots)}
        self.history: list[dict] = []
        self.snapshots: list[tuple[int, dict[str, torch.Tensor]]] = []
        self.best: tuple[float, int, Layers] | None = None
        self.fit_seconds = 0.0
        self.crop: Crop | None = None
        self.truth: dict[str, torch.Tensor] = {}

    # --- set-up ---------------------------------------------------------------------------------------
    @property
    def size_multiple(self) -> int:
        return max(generator.size_multiple for generator in self.generators.values())

    @property
    def min_size(self) -> int:
        return max(generator.min_size for generator in self.generators.values())

    def attach(self, padded_image: torch.Tensor, crop: Crop, truth: dict[str, torch.Tensor]) -> None:
        """Create the fixed noise inputs for the padded image and remember the crop and the ground truth."""
        height, width = padded_image.shape[-2:]
        for name, spec in self.task.inputs.items():
            self.register_buffer(f"input_{name}", make_input(spec, height, width))
        self.register_buffer("image", padded_image[None].clone())
        self.crop, self.truth = crop, truth

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.optimizer

    # --- forward ----------------------------------------------------------------------------------------
    def forward(self, transform: int = 0, jitter: float = 0.0) -> Layers:
        """All generators' outputs for dihedral ``transform`` of the inputs, jittered by N(0, jitter²)."""
        layers = {}
        for name, spec in self.task.generators.items():
            source = self.task.inputs[spec.input]
            z = dihedral(getattr(self, f"input_{spec.input}"), transform)
            if jitter > 0 and source.perturb:
                z = z + jitter * torch.randn_like(z)
            layers[name] = self.generators[name](z)
        return layers

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        step = self.global_step
        layers = self(int(batch["k"][0]), self.task.reg_noise_std(step, self.steps))
        target = self.curriculum.target(batch["image"], step)
        terms = self.task.loss_terms(layers, target, batch["maps"], step, self.steps)
        loss = torch.stack(list(terms.values())).sum()
        if step % self.log_every == 0:
            self.log_dict({f"train/{name}": value.detach() for name, value in terms.items()}, on_step=True)
            self.log("train/loss", loss.detach(), on_step=True, prog_bar=True)
        self.last_terms = {name: value.detach() for name, value in terms.items()} | {"loss": loss.detach()}
        return loss

    # --- evaluation -------------------------------------------------------------------------------------
    def cropped(self, layers: Layers) -> Layers:
        return {name: self.crop(value) for name, value in layers.items()}

    def on_train_start(self) -> None:
        self._fit_start = time.perf_counter()

    def on_train_end(self) -> None:
        self.fit_seconds = time.perf_counter() - self._fit_start

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        done = batch_idx + 1
        if done % self.eval_every == 0 or done == self.steps:
            self.evaluate(done)

    @torch.no_grad()
    def evaluate(self, done: int) -> None:
        """Score a noise-free forward after ``done`` steps; keep it if it is the best so far."""
        terms = {name: float(value) for name, value in self.last_terms.items()}
        bad = [name for name, value in terms.items() if not math.isfinite(value)]
        if bad:
            raise DdipError(f"the loss became non-finite at step {done} ({', '.join(bad)}); lower the learning rate")
        layers = self.cropped(self(0, 0.0))
        image = self.crop(self.image)
        score = self.task.selection_score(layers, image)
        record = {"step": done, **terms, "score": score, **self.task.ground_truth_metrics(layers, self.truth)}
        self.history.append(record)
        if self.logger:
            self.logger.log_metrics({f"eval/{k}": v for k, v in record.items() if k != "step"}, step=done)
        if done >= self.task.selectable_from(self.steps) and (self.best is None or score >= self.best[0]):
            self.best = (score, done, {name: value.detach().clone() for name, value in layers.items()})
        if done in self.snapshot_steps:
            self.snapshots.append((done, {k: v.cpu() for k, v in self.task.panel(layers).items()}))
        if self.image_every and (done % self.image_every == 0 or done == self.steps):
            self.log_panel(done, self.task.panel(layers))

    def log_panel(self, done: int, panel: dict[str, torch.Tensor]) -> None:
        """Send the task's images to W&B (other loggers keep their images in progress.png)."""
        if type(self.logger).__name__ != "WandbLogger":
            return
        from ddip.io import to_uint8

        self.logger.log_image(key="panel", images=[to_uint8(v) for v in panel.values()], caption=list(panel), step=done)

    # --- result -----------------------------------------------------------------------------------------
    @torch.no_grad()
    def result(self) -> tuple[dict[str, torch.Tensor], dict]:
        """The task's result images and metrics from the chosen and the final iterate."""
        final = self.cropped(self(0, 0.0))
        image = self.crop(self.image)[0]
        chosen_step = self.best[1] if self.best else self.steps
        chosen = self.best[2] if self.best else final
        images, metrics = self.task.finalize(chosen, final, image, self.truth)
        metrics = {"chosen_step": chosen_step, "chosen_score": self.best[0] if self.best else None} | metrics
        metrics |= {f"final_{name}": value for name, value in self.history[-1].items() if name != "step"}
        metrics |= self.oracle()
        return images, metrics

    def oracle(self) -> dict:
        """The best evaluated iterate by each ground-truth metric: reporting only, labelled "oracle"."""
        keys = [key for key in (self.history[0] if self.history else {}) if key.startswith(("iou", "psnr", "ssim"))]
        out = {}
        for key in keys:
            best = max(self.history, key=lambda record: record[key])
            out[f"oracle_{key}"], out[f"oracle_{key}_step"] = best[key], best["step"]
        return out
