"""InvDN as a supervised baseline beside the single-image DIPs: training (``task=invdn_train``) and denoising an
image with a trained checkpoint (``task=invdn``).

Unlike the decomposition tasks, both are LightningModules of their own (the task config's ``_target_``;
:func:`ddip.run.build` runs such a task as its module): InvDN learns from clean/noisy pairs
(:mod:`ddip.patches`) rather than fitting one image.

Training objective (Liu et al., CVPR 2021, Sec. 3.3; the official code's weights): with ``(LR, latent)`` the
forward pass of the noisy patch ``y`` and ``x̂`` the reverse pass of ``(LR, z)``, ``z ~ N(0, gaussian_scale² I)``,

    L = λ_f · Σ (LR − bicubic↓4(x))²  +  Σ √((x̂ − x)² + ε)  +  0.1 · L1(∇x̂, ∇x)  +  (1 − SSIM₃ₓ₃(x̂, x)) / 2

sums over C×H×W averaged over the batch, λ_f = 16, ε = 1e-3, ∇ the horizontal and vertical Sobel responses, SSIM
with a 3×3 uniform window (C1 = 0.01², C2 = 0.03²). The latent is not regularised (the official code's
``l_forw_ce`` is 0): the backward loss alone teaches the reverse pass to ignore what the latent carried.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ClassVar

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torchmetrics.functional.image import structural_similarity_index_measure

from ddip.errors import DdipError, check_flag, check_range
from ddip.io import asset
from ddip.loggers import log_panel
from ddip.metrics import psnr, ssim
from ddip.nets.invdn import InvDN
from ddip.tasks.base import loss_weights

CHARBONNIER_EPS = 1e-3
SOBEL_X = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]])


def summed_l2(estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``mean_batch Σ_CHW (a − b)²``: the forward (low-resolution) fit."""
    return (estimate - target).square().flatten(1).sum(1).mean()


def charbonnier_sum(estimate: torch.Tensor, target: torch.Tensor, eps: float = CHARBONNIER_EPS) -> torch.Tensor:
    """``mean_batch Σ_CHW √((a − b)² + ε)``: the backward reconstruction (a smooth L1)."""
    return ((estimate - target).square() + eps).sqrt().flatten(1).sum(1).mean()


def sobel_l1(estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean L1 between the horizontal Sobel responses plus that between the vertical ones, channel by channel."""
    kernels = torch.stack([SOBEL_X, SOBEL_X.T])[:, None].to(estimate)
    channels = estimate.shape[1]

    def gradients(image: torch.Tensor) -> torch.Tensor:
        return F.conv2d(image, kernels.repeat(channels, 1, 1, 1), padding=1, groups=channels)

    return 2 * F.l1_loss(gradients(estimate), gradients(target))  # twice the mean over both responses: l_h + l_v


def ssim_loss(estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``(1 − SSIM) / 2`` with a 3×3 uniform window (torchmetrics), C1 = 0.01², C2 = 0.03²."""
    value = structural_similarity_index_measure(estimate, target, gaussian_kernel=False, kernel_size=3, data_range=1.0, k1=0.01, k2=0.03)
    return (1 - value) / 2


class InvDNTraining(pl.LightningModule):
    """Trains an :class:`~ddip.nets.invdn.InvDN` on (clean, noisy, low) patches; writes ``invdn.ckpt``.

    Args:
        net: the network (``task.net``).
        optimizer: builds the optimiser from the parameters (the run's ``optimizer``: Adam; the paper's lr 2e-4).
        lr_schedule: builds the learning-rate schedule from the optimiser and ``milestones`` (MultiStepLR).
        decay_at: the milestones as fractions of ``steps`` (official: every 100k of 600k steps, halving).
        steps: optimisation steps of the run.
        weights: the loss terms' weights (``forward`` 16, ``charbonnier`` 1, ``gradient`` 0.1, ``ssim`` 1).
        gaussian_scale: std of the latent draw of the backward pass (official: 1).
        log_every: steps between scalar logs of the loss terms.
        snapshots: validation panels kept for ``progress.png``.
        export: where the trained network is written at the end (weights and architecture, no optimiser).
    """

    primary_metric = "psnr_val"

    def __init__(
        self,
        net: InvDN,
        optimizer: Callable[..., torch.optim.Optimizer],
        lr_schedule: Callable[..., torch.optim.lr_scheduler.LRScheduler],
        decay_at: Sequence[float] = (),
        steps: int = 1,
        weights: dict | None = None,
        gaussian_scale: float = 1.0,
        log_every: int = 10,
        snapshots: int = 4,
        export: str = "invdn.ckpt",
    ):
        super().__init__()
        for fraction in decay_at:
            check_range("task.decay_at", fraction, 0, 1, open_low=True, open_high=True)
        check_range("task.gaussian_scale", gaussian_scale, 0)
        check_range("task.log_every", log_every, 1, whole=True)
        check_range("task.snapshots", snapshots, 0, whole=True)
        self.net, self.make_optimizer, self.make_schedule = net, optimizer, lr_schedule
        self.milestones = sorted({max(1, round(fraction * steps)) for fraction in decay_at})
        self.weights = loss_weights({"forward": 16.0, "charbonnier": 1.0, "gradient": 0.1, "ssim": 1.0}, weights)
        self.steps, self.gaussian_scale, self.log_every, self.export = steps, gaussian_scale, log_every, Path(export)
        self.snapshot_count = snapshots
        self.history: list[dict] = []
        self.snapshots: list[tuple[int, dict[str, torch.Tensor]]] = []
        self.quality_keys: list[str] = []
        self.last_terms: dict[str, float] = {}
        self.val_scores: list[float] = []
        self.fit_seconds = self._resumed_seconds = 0.0

    def configure_optimizers(self) -> dict:
        optimizer = self.make_optimizer(self.net.parameters())
        schedule = self.make_schedule(optimizer, milestones=self.milestones)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def loss_terms(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The weighted terms of the module docstring's L on a batch."""
        low, latent = self.net.split(self.net(batch["noisy"]))
        restored = self.net.restore(low, latent.shape, self.gaussian_scale)
        clean = batch["clean"]
        raw = {
            "forward": summed_l2(low, batch["low"]),
            "charbonnier": charbonnier_sum(restored, clean),
            "gradient": sobel_l1(restored, clean),
            "ssim": ssim_loss(restored, clean),
        }
        return {name: self.weights[name] * value for name, value in raw.items()}

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        terms = self.loss_terms(batch)
        loss = torch.stack(list(terms.values())).sum()
        step = self.global_step
        if step % self.log_every == 0:  # one device-to-host copy for all terms
            self.log("train/loss", loss.detach(), prog_bar=True, logger=False)
            values = torch.stack([*terms.values(), loss]).detach().tolist()
            if not all(map(math.isfinite, values)):
                raise DdipError(f"the loss became non-finite at step {step}; lower optimizer.lr")
            self.last_terms = dict(zip([*terms, "loss"], values))
            if self.logger:
                self.logger.log_metrics({f"train/{name}": value for name, value in self.last_terms.items()}, step=step)
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        denoised = self.net.denoise(batch["noisy"]).clamp(0.0, 1.0)
        self.val_scores.append(psnr(denoised, batch["clean"]))
        if batch_idx == 0:
            self.val_panel = {"noisy": batch["noisy"][0], "denoised": denoised[0], "clean": batch["clean"][0]}

    def on_validation_epoch_end(self) -> None:
        """One history record: the latest loss terms and the mean validation PSNR; a panel now and then."""
        if not self.val_scores or self.trainer.sanity_checking:
            return
        step = self.global_step
        score = sum(self.val_scores) / len(self.val_scores)
        self.val_scores.clear()
        self.quality_keys = ["psnr_val"]
        self.history.append({"step": step, **self.last_terms, "psnr_val": score})
        if self.logger:
            self.logger.log_metrics({"val/psnr": score}, step=step)
            log_panel(self.logger, step, self.val_panel)
        taken = len(self.snapshots)  # the first validation at or after each of 0, 1/n, 2/n, ... of the steps
        if taken < self.snapshot_count and step >= self.steps * taken / self.snapshot_count:
            self.snapshots.append((step, {k: v.cpu() for k, v in self.val_panel.items()}))

    def on_train_start(self) -> None:
        self._fit_start = time.perf_counter()

    def on_train_end(self) -> None:
        """Stop the clock and write the trained network (:attr:`export`)."""
        self.fit_seconds = self._resumed_seconds + time.perf_counter() - self._fit_start
        torch.save({"state_dict": self.net.state_dict(), "invdn": self.net.config}, self.export)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """The architecture (so the checkpoint alone rebuilds the network) and the run's records."""
        checkpoint["invdn"] = self.net.config
        elapsed = time.perf_counter() - self._fit_start if hasattr(self, "_fit_start") else 0.0
        checkpoint["ddip"] = {"history": self.history, "snapshots": self.snapshots, "fit_seconds": self._resumed_seconds + elapsed}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if checkpoint.get("invdn") != self.net.config:
            raise DdipError(f"the checkpoint's network {checkpoint.get('invdn')} is not this config's {self.net.config}; resume with the run's own config")
        state = checkpoint["ddip"]
        self.history, self.snapshots, self._resumed_seconds = state["history"], state["snapshots"], state["fit_seconds"]
        self.quality_keys = ["psnr_val"] if self.history else []

    @torch.no_grad()
    def result(self) -> tuple[dict[str, torch.Tensor], dict]:
        """The first validation image denoised by the trained network, and the final validation PSNR."""
        metrics = {"parameters": sum(p.numel() for p in self.net.parameters()), "weights": str(self.export)}
        metrics |= {f"final_{name}": value for name, value in self.last_terms.items()}
        pairs = self.trainer.datamodule.val
        if not pairs:
            return {}, metrics
        outputs = [self.net.denoise(noisy[None]).clamp(0.0, 1.0) for noisy, _ in pairs]
        metrics["psnr_val"] = sum(psnr(out, clean) for out, (_, clean) in zip(outputs, pairs)) / len(pairs)
        metrics["psnr_val_input"] = sum(psnr(noisy, clean) for noisy, clean in pairs) / len(pairs)
        return {"val_denoised": outputs[0][0]}, metrics


BUNDLED_WEIGHTS = "invdn_sigma25.ckpt"
"""The CPU preset trained for σ 25 by its documented command (``ddip/assets``, docs/results/invdn.md): what
``task=invdn`` applies when no ``task.weights`` is given."""


def load_invdn(path: str | None, key: str = "task.weights") -> InvDN:
    """The network of an InvDN checkpoint (``invdn.ckpt`` of a training run, or its ``checkpoints/last.ckpt``),
    loaded with ``weights_only=True``; a missing, corrupt or foreign file is a one-line :class:`DdipError`."""
    if not path:
        raise DdipError(f"{key}: give a trained InvDN checkpoint (ddip task=invdn_train ... writes invdn.ckpt)")
    if not Path(path).is_file():
        raise DdipError(f"{key}={path}: no such file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 -- an empty, truncated or foreign file raises any of a dozen types
        detail = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise DdipError(f"{key}: {path} is not a readable checkpoint ({detail[:160]})") from None
    if not isinstance(state, dict) or not isinstance(state.get("invdn"), dict) or not isinstance(state.get("state_dict"), dict):
        raise DdipError(f"{key}: {path} is not an InvDN checkpoint (no InvDN network in it)")
    try:
        net = InvDN(**state["invdn"])
        weights = {name.removeprefix("net."): value for name, value in state["state_dict"].items()}
        net.load_state_dict(weights)
    except (TypeError, ValueError, RuntimeError) as error:
        raise DdipError(f"{key}: {path} holds an InvDN that does not load ({str(error).splitlines()[0][:160]})") from None
    return net.eval()


class InvDNDenoising(pl.LightningModule):
    """Denoises the run's image with a trained InvDN (a prediction: nothing is optimised).

    Args:
        weights: the trained checkpoint (:func:`load_invdn`); ``None`` applies the bundled one
            (:data:`BUNDLED_WEIGHTS`, σ 25).
        samples: latent draws averaged (the official ``MC_test``; 1 = the plain ``test``).
        gaussian_scale: std of the latent draws (official: 1).
        self_ensemble: also average over the 8 flips/transpositions (the official ``forward_x8``).
    """

    primary_metric = "psnr"
    truth_kinds: ClassVar[dict[str, str]] = {"clean": "image"}
    trains = False

    def __init__(self, weights: str | None = None, samples: int = 1, gaussian_scale: float = 1.0, self_ensemble: bool = False):
        super().__init__()
        check_range("task.samples", samples, 1, whole=True)
        check_range("task.gaussian_scale", gaussian_scale, 0)
        check_flag("task.self_ensemble", self_ensemble)
        weights = weights or str(asset(BUNDLED_WEIGHTS))
        self.net = load_invdn(weights)
        self.weights, self.samples, self.gaussian_scale, self.self_ensemble = weights, samples, gaussian_scale, self_ensemble
        self.history, self.snapshots, self.quality_keys = [], [], []
        self.fit_seconds = 0.0

    def predict_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        started = time.perf_counter()
        denoised = self.net.denoise(batch, self.samples, self.gaussian_scale, self.self_ensemble).clamp(0.0, 1.0)
        self.denoised, self.noisy = denoised[0].cpu(), batch[0].cpu()
        self.fit_seconds = time.perf_counter() - started
        return denoised

    def result(self) -> tuple[dict[str, torch.Tensor], dict]:
        """``denoised`` at the input's size; PSNR/SSIM against the clean image when given (``data.truth.clean``)."""
        metrics = {"weights": str(self.weights), "samples": self.samples, "self_ensemble": self.self_ensemble, "seconds_per_image": self.fit_seconds}
        clean = self.trainer.datamodule.truth().get("clean")
        if clean is not None:
            metrics |= {"psnr": psnr(self.denoised, clean), "ssim": ssim(self.denoised, clean), "psnr_input": psnr(self.noisy, clean)}
        return {"denoised": self.denoised}, metrics
