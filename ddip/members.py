"""Batched members: K runs of one config that differ only in their seed (and learning rate), fitted in one process
as one grouped network (``members.seed=[0,1,2,3]``, ``members.lr=[...]``).

Each member is built exactly as the run alone would be (:func:`member_configs`: the run's config with its ``seed``
and ``optimizer.lr``): every RNG seeded with its seed, then its task, data, weights and noise inputs; its per-step
jitter comes from its own generator (:attr:`ddip.module.DecompositionModule.rng`). The members' generators are then
stacked into one :class:`ddip.nets.grouped.GeneratorBank` (grouped convolutions; BatchNorm is per channel, so per
member), the step's loss is the sum of the members' losses (their parameters are disjoint, so each receives its own
gradient) and Adam's update is per element. A per-member learning rate scales the member's slice of the step's update
(:meth:`MemberBatch.optimizer_step`; one step of Adam, AdamW or SGD is linear in the learning rate). So member k's
result is the run's alone with its seed within fp32 rounding (``tests/test_members.py``).

Each member keeps its own evaluations and stopping rule (:class:`MemberCallbacks`): a member whose rule stops is
frozen (no loss, no update) while the others go on. Each is written to its own run dir ``<run dir>/member_<k>/``
(config, results, ``metrics.json``) and becomes its own W&B run, its logs recorded during the fit and replayed
after it (:class:`MemberLog`; W&B keeps one run open per process), grouped by the run dir.

Not supported in this first increment (a one-line error, :func:`check_supported`): augmentation, a curriculum,
resuming, supervised tasks, a task that fits a window of its images a step (``task.frames_per_step``: each member's
windows would follow its seed). Members write no checkpoints.
"""

from __future__ import annotations

import copy
import time
from functools import partial
from pathlib import Path

import lightning.pytorch as pl
import torch
from hydra.utils import get_class
from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar
from omegaconf import DictConfig, OmegaConf
from torch import nn

from ddip.errors import DdipError, check_range
from ddip.io import write_json
from ddip.module import DecompositionModule
from ddip.nets.grouped import GeneratorBank
from ddip.run import (
    Fitted,
    build,
    build_component,
    callbacks,
    check_run_settings,
    report,
    run_logger,
    save_fit,
    seeded_parts,
    set_threads,
    stack_generators,
)
from ddip.rundir import check_writable, claimed, clear_results
from ddip.tasks.base import Layers, Task

KEYS = {"seed": "seed", "lr": "optimizer.lr"}  # members.<key> → the config key each member sets


def member_values(cfg: DictConfig) -> dict[str, list]:
    """The given ``members.<key>`` lists (each of the same length K ≥ 1); empty when the run has no members."""
    given = {key: values for key, values in (cfg.get("members") or {}).items() if values is not None}
    unknown = sorted(set(given) - set(KEYS))
    if unknown:
        raise DdipError(f"members.{unknown[0]}: batched members vary only {', '.join(f'members.{key}' for key in KEYS)}")
    if any(not OmegaConf.is_list(values) or not values for values in given.values()) or len({len(v) for v in given.values()}) > 1:
        raise DdipError("members.seed and members.lr take non-empty lists of the same length, e.g. members.seed=[0,1,2]")
    return {key: list(values) for key, values in given.items()}


def check_supported(cfg: DictConfig) -> None:
    """A one-line :class:`DdipError` for what batched members do not support yet."""
    if not issubclass(get_class(cfg.task._target_), Task):
        raise DdipError(f"members: task={cfg.task._target_.rsplit('.', 1)[-1]} is not a decomposition; batched members fit decompositions")
    refused = {
        "data.augment=true": cfg.data.get("augment", False),
        "a curriculum (scheduler other than none)": not cfg.scheduler._target_.endswith("NoCurriculum"),
        "resume=true": cfg.get("resume", False),
        "ckpt_path": cfg.get("ckpt_path"),
    }
    for setting, given in refused.items():
        if given:
            raise DdipError(f"members: {setting} is not supported with batched members yet; run the members as a sweep (-m seed=...)")


def member_configs(cfg: DictConfig, output_dir: Path) -> list[DictConfig]:
    """Each member's config: the run's with the member's ``seed`` and ``optimizer.lr``, no members, its run dir
    ``output_dir/member_<k>`` and its overrides (the run's, ``members.*`` replaced by the member's settings)."""
    given = member_values(cfg)
    check_supported(cfg)
    count = len(next(iter(given.values())))
    kept = [item for item in cfg.get("overrides") or [] if not item.lstrip("+~").startswith("members.")]
    configs = []
    for k in range(count):
        member = copy.deepcopy(cfg)
        settings = {KEYS[key]: values[k] for key, values in given.items()}
        for key, value in settings.items():
            OmegaConf.update(member, key, value)
        OmegaConf.update(member, "members", {key: None for key in KEYS})
        OmegaConf.update(member, "paths.output_dir", str(output_dir / f"member_{k}"), force_add=True)
        OmegaConf.update(member, "overrides", kept + [f"{key}={value}" for key, value in settings.items()], force_add=True)
        check_run_settings(member)
        check_range("members.lr", member.optimizer.get("lr", 1.0), 0, open_low=True)
        configs.append(member)
    return configs


class MemberLog:
    """A member's scalar logs during the fit (``log_metrics``), sent to its own logger after it (:meth:`replay`)."""

    def __init__(self) -> None:
        self.records: list[tuple[dict, int]] = []

    def log_metrics(self, metrics: dict, step: int) -> None:
        self.records.append((dict(metrics), step))

    def replay(self, logger) -> None:
        for metrics, step in self.records:
            logger.log_metrics(metrics, step=step)


class MemberTrainer:
    """The trainer as a member's callbacks see it: the real one, with the member's own logger and stop flag."""

    def __init__(self, trainer: pl.Trainer, logger) -> None:
        self.trainer, self.logger, self.should_stop = trainer, logger, False

    def __getattr__(self, name: str):
        return getattr(self.trainer, name)


class MemberBatch(pl.LightningModule):
    """K members (:class:`DecompositionModule`, each built alone with ``stack_generators=False``) fitted as one.

    Their generators move into one :class:`GeneratorBank` (named ``<k>.<generator>``, stacked with ``stack``); each
    member keeps its noise inputs, jitter generator, task, evaluations state and output average, and its noise-free
    output comes from one forward of the whole bank per step (:meth:`noise_free`). ``lrs``: the members' learning
    rates, against the optimiser's own.
    """

    def __init__(self, members: list[DecompositionModule], optimizer, lrs: list[float], stack: bool, cuda_graphs: bool = False):
        super().__init__()
        networks = {}
        for k, member in enumerate(members):
            networks |= {f"{k}.{name}": network for name, network in member.generators.named_networks().items()}
            del member.generators
            member.optimizer, member.noise_free = None, partial(self.noise_free, k)
        self.members = nn.ModuleList(members)
        self.generators = GeneratorBank(networks, stack=stack, cuda_graphs=cuda_graphs).to(memory_format=members[0].memory_format)
        self.optimizer = optimizer(self.generators.parameters())
        base = self.optimizer.param_groups[0].get("lr", 1.0)
        self.lr_scales = [lr / base for lr in lrs]
        self.frozen = [False] * len(members)
        self.stopped_at: list[int | None] = [None] * len(members)
        self._noise_free: tuple[int, list[Layers]] | None = None

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.optimizer

    def split(self, outputs: dict[str, torch.Tensor]) -> list[Layers]:
        """The bank's outputs as each member's layers."""
        return [{name: outputs[f"{k}.{name}"] for name in member.task.generators} for k, member in enumerate(self.members)]

    def bank_inputs(self, transform: int, jitters: list[float]) -> dict[str, torch.Tensor]:
        """Every member's generator inputs under ``transform``, member k's jittered by ``jitters[k]`` from its own RNG."""
        inputs = {}
        for k, (member, jitter) in enumerate(zip(self.members, jitters)):
            inputs |= {f"{k}.{name}": z for name, z in member.generator_inputs(transform, jitter).items()}
        return inputs

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        """The sum of the live members' losses (:meth:`DecompositionModule.layers_loss`) of one forward of the bank;
        a frozen member's inputs go in without jitter and its loss is left out."""
        step, transform = batch["step"], batch["transform"]
        jitters = [0.0 if frozen else member.task.reg_noise_std(step, member.steps) for member, frozen in zip(self.members, self.frozen)]
        layers = self.split(self.generators(self.bank_inputs(transform, jitters)))
        losses = [member.layers_loss(out, step, transform) for member, out, frozen in zip(self.members, layers, self.frozen) if not frozen]
        loss = torch.stack(losses).sum()
        if step % self.members[0].log_every == 0:
            self.log("train/loss", loss.detach() / len(losses), on_step=True, prog_bar=True, logger=False)
        return loss

    @torch.no_grad()
    def noise_free(self, k: int) -> Layers:
        """Member k's outputs for its untransformed inputs without jitter: one forward of the bank per step, shared
        by the members' evaluations (:meth:`DecompositionModule.noise_free`)."""
        if self._noise_free is None or self._noise_free[0] != self.global_step:
            outputs = self.generators(self.bank_inputs(0, [0.0] * len(self.members)))
            self._noise_free = (self.global_step, self.split(outputs))
        return self._noise_free[1][k]

    def update_scales(self) -> list[tuple[nn.Parameter, torch.Tensor]] | None:
        """Each parameter with the factor of each row of its step's update: its member's learning rate over the
        optimiser's, 0 once frozen; ``None`` when every factor is 1."""
        factors = [0.0 if frozen else scale for scale, frozen in zip(self.lr_scales, self.frozen)]
        if all(factor == 1.0 for factor in factors):
            return None
        scaled = []
        for parameter, owners in self.generators.parameter_owners():
            rows = torch.tensor([factors[int(name.split(".")[0])] for name in owners], device=parameter.device)
            scaled.append((parameter, rows.repeat_interleave(len(parameter) // len(owners)).view(-1, *[1] * (parameter.dim() - 1))))
        return scaled

    def optimizer_step(self, epoch: int, batch_idx: int, optimizer, optimizer_closure=None) -> None:
        """The optimiser's step, each member's slice of the update scaled by :meth:`update_scales`."""
        scaled = self.update_scales()
        before = [parameter.detach().clone() for parameter, _ in scaled or []]
        super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)
        with torch.no_grad():
            for (parameter, factor), old in zip(scaled or [], before):
                parameter.copy_(old + (parameter - old) * factor)

    def freeze(self, k: int) -> None:
        """Member k's stopping rule ended its fit at this step: its time stops, no loss or update from now on."""
        self.frozen[k], self.stopped_at[k] = True, self.global_step
        self.members[k].on_train_end()

    def on_fit_start(self) -> None:
        for member in self.members:
            member.on_fit_start()

    def on_train_start(self) -> None:
        for member in self.members:
            member.on_train_start()

    def on_train_end(self) -> None:
        for member, frozen in zip(self.members, self.frozen):
            if not frozen:
                member.on_train_end()


class MemberCallbacks(pl.Callback):
    """Each member's own callbacks (``listed[k]``: its evaluations and stopping rule), called with the member as their
    module and a :class:`MemberTrainer`. A member whose trainer is told to stop is frozen (its callbacks' fit ends
    then: :meth:`MemberBatch.freeze`); the fit ends when every member has stopped."""

    def __init__(self, listed: list[list[pl.Callback]], logs: list) -> None:
        self.listed, self.logs = listed, logs

    def call(self, hook: str, batch: MemberBatch, *args) -> None:
        for k, (member, listed, trainer) in enumerate(zip(batch.members, self.listed, self.trainers)):
            if not batch.frozen[k]:
                for callback in listed:
                    getattr(callback, hook)(trainer, member, *args)

    def setup(self, trainer: pl.Trainer, batch: MemberBatch, stage: str) -> None:
        self.trainers = [MemberTrainer(trainer, log) for log in self.logs]
        self.call("setup", batch, stage)

    def on_train_start(self, trainer: pl.Trainer, batch: MemberBatch) -> None:
        self.call("on_train_start", batch)

    def on_train_batch_end(self, trainer: pl.Trainer, batch: MemberBatch, outputs, data, batch_idx: int) -> None:
        self.call("on_train_batch_end", batch, outputs, data, batch_idx)
        for k, member_trainer in enumerate(self.trainers):
            if member_trainer.should_stop and not batch.frozen[k]:
                for callback in self.listed[k]:
                    callback.on_fit_end(member_trainer, batch.members[k])
                batch.freeze(k)
        trainer.should_stop = trainer.should_stop or all(batch.frozen)

    def on_fit_end(self, trainer: pl.Trainer, batch: MemberBatch) -> None:
        self.call("on_fit_end", batch)


def member_callbacks(cfg: DictConfig) -> tuple[list[pl.Callback], list[pl.Callback]]:
    """A member's callbacks (:func:`ddip.run.callbacks`) as (the progress bars, for the trainer; its own, without the
    checkpoint: members write none)."""
    listed = [callback for callback in callbacks(cfg) if not isinstance(callback, ModelCheckpoint)]
    bars = [callback for callback in listed if isinstance(callback, ProgressBar)]
    return bars, [callback for callback in listed if callback not in bars]


def fit_members(cfg: DictConfig, configs: list[DictConfig], started: float) -> list[dict]:
    """Fit the members of ``configs`` as one :class:`MemberBatch` and write each one's run dir; their metrics."""
    set_threads(cfg)
    parts, modules = [], []
    for member in configs:  # each built as alone: its weights and noise inputs drawn right after its seeding
        task, data = seeded_parts(member)
        parts.append((task, data))
        modules.append(build(member, data, task, stack_generators=False, cuda_graphs=False))
    if modules[0].images_per_step:  # each member's windows would follow its seed, as its augmentation would
        raise DdipError(
            "members: a task that fits a window of its images a step (task.frames_per_step) is not supported with batched "
            "members yet; run the members as a sweep (-m seed=...)"
        )
    batch = MemberBatch(
        modules,
        build_component(cfg, "optimizer"),
        [member.optimizer.get("lr", 1.0) for member in configs],
        stack=stack_generators(cfg),
        cuda_graphs=cfg.module.get("cuda_graphs", False),
    )
    logs = [MemberLog() if member.get("logger") else None for member in configs]
    for module, log in zip(modules, logs):
        module.member_logger = log
    split = [member_callbacks(member) for member in configs]
    reporters = [report(module, own) for module, (_, own) in zip(modules, split)]
    every = MemberCallbacks([own for _, own in split], logs)
    trainer = build_component(cfg, "trainer", logger=False, max_steps=cfg.steps, callbacks=[*split[0][0], every], enable_checkpointing=False)
    trainer.fit(batch, datamodule=parts[0][1])
    return [
        save_member(member, k, len(configs), started, Fitted(module, batch.stopped_at[k] or trainer.global_step, reporter, data, task), log)
        for k, (member, module, reporter, (task, data), log) in enumerate(zip(configs, modules, reporters, parts, logs))
    ]


def save_member(cfg: DictConfig, k: int, count: int, started: float, fitted: Fitted, log: MemberLog | None) -> dict:
    """Member k's run dir: its config (``.hydra/config.yaml``, ``.hydra/overrides.yaml``, as a sweep job's), results and
    ``metrics.json``; its W&B run (its recorded logs replayed), in the group of its batch's run dir."""
    output_dir = Path(cfg.paths.output_dir)
    (output_dir / ".hydra").mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, output_dir / ".hydra" / "config.yaml")
    OmegaConf.save(OmegaConf.create(list(cfg.overrides)), output_dir / ".hydra" / "overrides.yaml")
    name = f"{output_dir.parent.name}/member_{k}: seed={cfg.seed} lr={cfg.optimizer.get('lr')}"
    identity = {"group": str(output_dir.parent), "name": name[:120], "tags": [f"seed={cfg.seed}"]}
    with run_logger(cfg, output_dir, identity) as logger:
        if logger and log is not None:
            log.replay(logger)
        metrics = save_fit(cfg, output_dir, started, fitted, logger) | {"member": k, "members": count}
    write_json(output_dir / "metrics.json", metrics)
    return metrics


def run_members(cfg: DictConfig, output_dir: str | Path) -> list[dict]:
    """Fit the run's members (``members.seed``, ``members.lr``) as one batch into ``output_dir/member_<k>`` and write
    ``members.json`` (the member dirs and the batch's time) into ``output_dir``; returns the members' metrics."""
    started = time.perf_counter()
    output_dir = Path(output_dir)
    check_writable(output_dir)
    with claimed(output_dir):
        OmegaConf.update(cfg, "paths.output_dir", str(output_dir), force_add=True)
        configs = member_configs(cfg, output_dir)
        for member in configs:
            Path(member.paths.output_dir).mkdir(parents=True, exist_ok=True)
            clear_results(Path(member.paths.output_dir), resuming=False)
        metrics = fit_members(cfg, configs, started)
        seconds = time.perf_counter() - started
        write_json(output_dir / "members.json", {"members": [f"member_{k}" for k in range(len(configs))], "wall_seconds": seconds, "seconds_per_fit": seconds / len(configs)})
    return metrics
