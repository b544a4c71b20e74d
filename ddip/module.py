"""``DecompositionModule``: the image, the generators, their fixed noise inputs and the task's composite loss.

The module receives the image, its maps and its ground truth once (:class:`ddip.data.FitInputs`), pads them to the
generators' multiple and keeps them; the data module yields only each step's number and dihedral transform (and, for
a task that fits a window of its stacked images a step, the window).

One optimisation step: jitter the noise inputs (reg-noise), apply the step's dihedral transform to them and to the
image and its maps (cut to the step's window of images, for a task that fits a few of its stacked images a step:
:attr:`ddip.tasks.base.Task.images_per_step`), run the generators (on the fast path, those sharing an
architecture as one grouped network: :mod:`ddip.nets.grouped`), let the task compose the
layers and compute its loss terms against the curriculum's target, and take an Adam step.

What is not optimisation is done by callbacks (the ``callbacks`` config group): the evaluations and the choice
of the output (:class:`ddip.callbacks.Evaluations`), the stopping rule, the image panels, the faithful curriculum's
resets. The module keeps what they read (the current output, :meth:`DecompositionModule.select`) and what a
checkpoint needs beyond the weights.

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

from ddip.data import FitInputs
from ddip.errors import DdipError, check_flag, check_range
from ddip.geometry import dihedral, dihedral_inverse, pad_to_multiple
from ddip.nets.grouped import GeneratorBank
from ddip.tasks.base import Layers, NoiseInput, Task

Window = tuple[int, int] | None
"""A window of consecutive stacked images (a clip's frames), (start, stop); ``None``: all of them."""


def make_input(spec: NoiseInput, height: int, width: int, count: int = 1) -> torch.Tensor:
    """A fixed 1×C×H×W network input: U(−0.5, 0.5)·scale noise, or an x/y meshgrid in [0, 1]; with
    ``spec.per_image``, ``count``×C×H×W noise whose item t is item t − 1 plus U(−0.5, 0.5)·scale·increment."""
    if spec.kind == "uniform" and spec.per_image:
        steps = torch.rand(count, spec.channels, height, width) - 0.5
        steps[1:] *= spec.increment
        return steps.cumsum(0) * spec.scale
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
        inputs: the image, the task's data maps and the ground truth, at the fitted size and the input's
            (:meth:`ddip.data.ImageDataModule.inputs`).
        backbone: builds one generator from ``in_channels`` and ``out_channels``.
        curriculum: the target at each step.
        optimizer: builds the optimiser from the parameters.
        steps: total optimisation steps.
        log_every: steps between scalar logs of the training loss terms.
        average: weight of the exponential average of the outputs (DIP's ``exp_weight``, e.g. 0.99; 0 = off):
            with it, every evaluated and returned output is the running average of the training outputs.
        stack_generators: run generators that share an architecture as one grouped network (the fast path;
            same function and weights, see :mod:`ddip.nets.grouped`); the config's ``gpu`` is resolved to a bool
            by :func:`ddip.run.stack_generators`.
        channels_last: keep the networks' weights and activations in NHWC layout (faster CPU convolutions).
        cuda_graphs: on a GPU, replay each network's forward and backward pass from CUDA graphs (one launch
            instead of hundreds; same kernels, see :mod:`ddip.nets.graphed`); no effect on a CPU.
        seed: seeds the run's own generator of the per-step jitter (the run's ``seed``), so that the jitter does not
            depend on what else draws from torch's global RNG (a batched member's is its own: :mod:`ddip.members`).
    """

    def __init__(
        self,
        task: Task,
        inputs: FitInputs,
        backbone: Callable[..., nn.Module],
        curriculum,
        optimizer: Callable[..., torch.optim.Optimizer],
        steps: int,
        log_every: int = 10,
        average: float = 0.0,
        stack_generators: bool = True,
        channels_last: bool = True,
        cuda_graphs: bool = False,
        seed: int = 0,
    ):
        super().__init__()
        check_range("module.log_every", log_every, 1, whole=True)
        check_range("module.average", average, 0, 1, open_high=True)
        for key, value in (("channels_last", channels_last), ("cuda_graphs", cuda_graphs)):
            check_flag(f"module.{key}", value)
        self.task, self.curriculum = task, curriculum
        self.steps, self.log_every = steps, log_every
        self.average = average
        self.last_layers: Layers = {}
        self.averaged: Layers | None = None
        self.selected: tuple[int, Layers] | None = None
        self.seed, self.rng = seed, torch.Generator().manual_seed(seed)
        self._pending_rng: torch.Tensor | None = None
        self.member_logger = None  # a batched member's own logger (ddip.members); else the trainer's
        self._resumed_seconds = 0.0
        try:
            networks = {
                name: (spec.network or backbone)(in_channels=task.inputs[spec.input].channels, out_channels=spec.out_channels)
                for name, spec in task.generators.items()
            }
        except (ValueError, TypeError) as error:
            raise DdipError(f"invalid backbone configuration: {error}") from None
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        bank = GeneratorBank(networks, stack=stack_generators, cuda_graphs=cuda_graphs)
        self.generators = bank.to(memory_format=self.memory_format)
        if "lr" in getattr(optimizer, "keywords", {}):
            check_range("optimizer.lr", optimizer.keywords["lr"], 0, open_low=True)
        try:
            self.optimizer = optimizer(self.parameters())
        except (ValueError, TypeError) as error:
            raise DdipError(f"invalid optimizer configuration: {error}") from None
        self.fit_seconds = self.step_seconds = 0.0
        self.inputs, self.truth = inputs, inputs.truth
        self.place(inputs.image, inputs.maps | task.prepare(inputs.image))
        self.images_per_step = task.images_per_step

    # --- set-up ---------------------------------------------------------------------------------------
    @property
    def selectable_from(self) -> int:
        """The fewest steps done for an output to be chosen, by the task's score or a stopping rule: after the
        task's own warm-up (seg's hint stages) and at least one step into the curriculum's last stage, never an
        iterate fitted to a more-noised copy of the image."""
        return max(self.task.selectable_from(self.steps), self.curriculum.last_stage_start + 1)

    @property
    def size_multiple(self) -> int:
        """The fitted image's sides must be multiples of this, so that the generators' (``task.scale`` times larger)
        are multiples of theirs."""
        multiple = self.generators.size_multiple
        return multiple // math.gcd(multiple, self.task.scale)

    @property
    def min_size(self) -> int:
        return -(-self.generators.min_size // self.task.scale)

    def place(self, image: torch.Tensor, maps: dict[str, torch.Tensor]) -> None:
        """Pad the C×H×W ``image`` and its H×W ``maps`` (n×H×W: one per frame of a clip) for the generators
        (:func:`ddip.geometry.pad_to_multiple`) and keep them as buffers (``image``: 1×C×H×W; the maps, 1×1×H×W (1×n×H×W),
        out of checkpoints: they are remade from the
        data); create the fixed noise inputs at the padded size times ``task.scale``; remember the crop."""
        padded, self.crop = pad_to_multiple(image, self.size_multiple, self.min_size)
        self.layer_crop = self.crop.scaled(self.task.scale)
        self.map_names = tuple(maps)
        for name, value in maps.items():
            padded_map = pad_to_multiple(value.reshape(-1, *value.shape[-2:]), self.size_multiple, self.min_size)[0]
            self.register_buffer(f"map_{name}", padded_map[None], persistent=False)
        height, width = padded.shape[-2:]
        count = len(padded) // 3 if len(padded) > 3 else 1  # several stacked images: a clip's frames
        self.image_count = count
        for name, spec in self.task.inputs.items():
            shape = (height * self.task.scale, width * self.task.scale, count if spec.per_image else 1)
            self.register_buffer(f"input_{name}", make_input(spec, *shape))
        self.register_buffer("image", padded[None])

    @property
    def padded_maps(self) -> dict[str, torch.Tensor]:
        """The task's maps as the loss reads them: 1×1×H×W (a clip's: 1×n×H×W) at the padded image's size."""
        return {name: getattr(self, f"map_{name}") for name in self.map_names}

    @property
    def maps(self) -> dict[str, torch.Tensor]:
        """The task's maps as its scores read them: H×W (a clip's: n×H×W) at the image's size."""
        return {name: self.crop(value)[0].squeeze(0) for name, value in self.padded_maps.items()}

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.optimizer

    @property
    def logger(self):
        """The trainer's logger, or a batched member's own (:attr:`member_logger`)."""
        return self.member_logger if self.member_logger is not None else super().logger

    # --- forward ----------------------------------------------------------------------------------------
    def forward(self, transform: int = 0, jitter: float = 0.0, images: Window = None) -> Layers:
        """All generators' outputs for dihedral ``transform`` of the inputs, jittered by N(0, jitter²); for the
        stacked images of the window ``images`` = (start, stop) only, or all (``None``)."""
        return self.generators(self.generator_inputs(transform, jitter, images))

    def per_image(self, name: str) -> bool:
        """Whether generator ``name`` has one input, and so one output, per stacked image (a clip's frames)."""
        return self.task.inputs[self.task.generators[name].input].per_image

    def generator_inputs(self, transform: int = 0, jitter: float = 0.0, images: Window = None) -> dict[str, torch.Tensor]:
        """Each generator's input: dihedral ``transform`` of its noise input (a per-image one cut to the window
        ``images``) plus N(0, jitter²) drawn from the run's own generator (:attr:`rng`)."""
        inputs = {}
        for name, spec in self.task.generators.items():
            z = getattr(self, f"input_{spec.input}")
            z = dihedral(z[slice(*images)] if images and self.per_image(name) else z, transform)
            if jitter > 0 and self.task.inputs[spec.input].perturb:
                z = z + jitter * torch.randn(z.shape, generator=self.rng, device=self.rng.device, dtype=z.dtype).to(z.device)
            inputs[name] = z.contiguous(memory_format=self.memory_format)
        return inputs

    def redraw_inputs(self) -> None:
        """Draw new fixed noise inputs (the faithful curriculum's reset at a stage start:
        :class:`ddip.curriculum.StageResets`)."""
        for name, spec in self.task.inputs.items():
            buffer = getattr(self, f"input_{name}")
            buffer.copy_(make_input(spec, *buffer.shape[-2:], len(buffer)))

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Everything beyond weights and optimiser that the rest of the fit depends on, so that a resumed
        run ends as the uninterrupted one: the stopping rule's choice, the average, the last loss terms and the
        jitter's RNG (the evaluations are their callback's state)."""
        checkpoint["ddip"] = {
            "averaged": self.averaged,
            "selected": self.selected,
            "last_terms": self.last_terms,
            "fit_seconds": self._resumed_seconds + time.perf_counter() - self._fit_start,
            "step_seconds": self.step_seconds,
            "rng": self.rng.get_state(),
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        expected = {name: tuple(value.shape) for name, value in self.state_dict().items()}
        if {name: tuple(value.shape) for name, value in checkpoint["state_dict"].items()} != expected:
            raise DdipError(
                "the checkpoint's networks do not match this config (task, backbone or speed changed since it was "
                "written); resume with the run's own config (its .hydra/config.yaml)"
            )
        state = checkpoint["ddip"]
        self.averaged, self.selected, self.last_terms = state["averaged"], state["selected"], state["last_terms"]
        self._resumed_seconds, self._pending_rng = state["fit_seconds"], state["rng"]
        self.fit_seconds, self.step_seconds = self._resumed_seconds, state.get("step_seconds", 0.0)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        if self._pending_rng is not None:  # restored at the first step, after on_fit_start has placed the generator
            self.rng.set_state(self._pending_rng)
            self._pending_rng = None
        return self.step_loss(batch["step"], batch["transform"], batch.get("images"))

    def optimizer_step(self, epoch: int, batch_idx: int, optimizer, optimizer_closure=None) -> None:
        """The optimisation step (Lightning's closure: forward, loss and backward; then the update), its seconds summed
        in :attr:`step_seconds` on a CPU, so that a run measures its own overhead (evaluations, output choice,
        logging, progress bar, Lightning's loop: ``fit_seconds / step_seconds − 1``) in the same seconds, free of
        the machine's drift between runs. On a GPU the step returns before its kernels finish: not counted there."""
        started = time.perf_counter()
        super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)
        if self.device.type == "cpu":
            self.step_seconds += time.perf_counter() - started

    def step_loss(self, step: int, transform: int = 0, images: Window = None) -> torch.Tensor:
        """The loss of optimisation step ``step`` under dihedral ``transform`` of the inputs, the image and its maps
        (jitter, forward, curriculum target, the task's terms), on the stacked images of the window ``images`` (all:
        ``None``), with its terms logged every ``log_every`` steps."""
        layers = self(transform, self.task.reg_noise_std(step, self.steps), images)
        return self.layers_loss(layers, step, transform, images)

    def layers_loss(self, layers: Layers, step: int, transform: int = 0, images: Window = None) -> torch.Tensor:
        """The loss of this step's generator outputs ``layers`` (remembered, against the curriculum's target under
        ``transform``; of the stacked images of the window ``images``, all if ``None``), with its terms logged every
        ``log_every`` steps."""
        self.remember(layers, transform, images)
        target = self.window_of(self.curriculum.target(dihedral(self.image, transform), step), images)
        maps = {name: dihedral(self.window_of(value, images), transform) for name, value in self.padded_maps.items()}
        terms = self.task.loss_terms(layers, target, maps, step, self.steps)
        loss = torch.stack(list(terms.values())).sum()
        self.last_terms = {name: value.detach() for name, value in terms.items()} | {"loss": loss.detach()}
        if step % self.log_every == 0:
            self.log_terms(step)
        return loss

    def window_of(self, stacked: torch.Tensor, images: Window) -> torch.Tensor:
        """The window ``images`` = (start, stop) of a 1×(n·C)×H×W tensor of the n stacked images (the image, C = 3; a
        map of one entry per image, C = 1); a map of one entry for all, or any tensor when ``images`` is ``None``, as
        it is."""
        if not images or stacked.shape[1] % self.image_count or self.image_count == 1:
            return stacked
        channels = stacked.shape[1] // self.image_count
        return stacked[:, images[0] * channels : images[1] * channels]

    def log_terms(self, step: int) -> None:
        """The last loss to the progress bar (under a trainer) and all terms to the logger."""
        if self._trainer is not None:
            self.log("train/loss", self.last_terms["loss"], on_step=True, prog_bar=True, logger=False)
        if self.logger:  # one device-to-host copy for all terms
            values = torch.stack(list(self.last_terms.values())).tolist()
            self.logger.log_metrics({f"train/{name}": value for name, value in zip(self.last_terms, values)}, step=step)

    @torch.no_grad()
    def remember(self, layers: Layers, transform: int, images: Window = None) -> None:
        """Keep this step's outputs (detached, in the image's frame and crop) for callbacks such as ES-WMV,
        and update their exponential average: of every image, or, for a step that fits the window ``images`` of
        the stacked images, of that window's (the average starts from an evaluation of every image)."""
        self.last_layers = {name: self.layer_crop(dihedral_inverse(value.detach(), transform)) for name, value in layers.items()}
        if not self.average:
            return
        if self.averaged is None:
            start = self.cropped(self.noise_free()) if images else self.last_layers
            self.averaged = {name: value.clone() for name, value in start.items()}
        for name, value in self.last_layers.items():
            average = self.averaged[name]
            (average[slice(*images)] if images and self.per_image(name) else average).lerp_(value, 1.0 - self.average)

    @property
    def output_layers(self) -> Layers:
        """This step's output as the run returns it: the running average when averaging, else the last outputs."""
        return self.averaged if self.averaged is not None else self.last_layers

    def select(self, step: int, layers: Layers) -> None:
        """Make ``layers`` (cropped, as :attr:`output_layers`) the run's output, chosen at ``step`` by a stopping
        rule (e.g. ES-WMV) instead of the task's score."""
        self.selected = (step, {name: value.clone() for name, value in layers.items()})

    # --- output -----------------------------------------------------------------------------------------
    def cropped(self, layers: Layers) -> Layers:
        return {name: self.layer_crop(value) for name, value in layers.items()}

    def current_output(self) -> Layers:
        """The output as evaluated and returned now (cropped): the running average when averaging, else a
        noise-free forward."""
        return self.averaged if self.averaged is not None else self.cropped(self.noise_free())

    def noise_free(self) -> Layers:
        """The generators' outputs for the untransformed inputs without jitter, run over the :meth:`evaluation_windows`
        (a batched member's come from its batch: :class:`ddip.members.MemberBatch`)."""
        return self.joined([self(0, 0.0, window) for window in self.evaluation_windows()])

    def evaluation_windows(self) -> list[Window]:
        """The windows of stacked images the outputs are evaluated in: all at once (``[None]``), or, for a task that
        fits :attr:`images_per_step` a step, consecutive windows of that many, the last one ending at the last image
        (BatchNorm stays in training mode, so each forward normalises over as many images as a training step's)."""
        per_step, count = self.images_per_step, self.image_count
        if not per_step:
            return [None]
        starts = [min(start, count - per_step) for start in range(0, count, per_step)]
        return [(start, start + per_step) for start in starts]

    def joined(self, outputs: list[Layers]) -> Layers:
        """The outputs of :meth:`evaluation_windows`' forwards as one output of every image: the per-image generators'
        concatenated (an image in two windows taken from the first), the others' from the first forward."""
        windows = self.evaluation_windows()
        if len(outputs) == 1:
            return outputs[0]
        done, keep = 0, []
        for start, stop in windows:
            keep.append(done - start)
            done = stop
        return {
            name: torch.cat([output[name][skip:] for output, skip in zip(outputs, keep)]) if self.per_image(name) else outputs[0][name]
            for name in outputs[0]
        }

    def on_fit_start(self) -> None:
        """Bring the ground truth to the module's device, for the evaluations (:class:`ddip.callbacks.Evaluations`),
        and the jitter's generator (seeded afresh: no step has drawn from it yet)."""
        self.truth = {name: value.to(self.device) for name, value in self.truth.items()}
        if self.rng.device != self.device:
            self.rng = torch.Generator(self.device).manual_seed(self.seed)

    def on_train_start(self) -> None:
        self._fit_start = time.perf_counter()

    def on_train_end(self) -> None:
        self.fit_seconds = self._resumed_seconds + time.perf_counter() - self._fit_start
