"""Double-DIP dehazing (Gandelsman, Shocher, Irani, CVPR 2019, Sec. 4.3).

Physics (the atmospheric scattering model, :mod:`ddip.haze`): ``I = t·J + (1 − t)·A``. Generators: the clear
image ``J`` (3 channels) and the transmission ``t`` (1 channel), each from its own fixed noise input, the
transmission's never jittered; the airlight ``A`` either from its own generator fed an x/y meshgrid (a smooth
3-channel map, ``airlight=net``, the reference's setup) or a constant colour (``airlight=constant``).

Airlight: the ``airlight_estimate`` rule's estimate (by default Kim et al.'s quad-tree search, JVCI 2013,
:func:`ddip.haze.quadtree_airlight`; He et al.'s dark-channel pixel is ``dark_channel``), raised per channel
until the recovery with the prior below stays in gamut (``airlight_gamut``; :func:`ddip.haze.raise_airlight_to_gamut`),
unless ``airlight_value=[r, g, b]`` is given. It is the constant of ``airlight=constant``, and with ``airlight=net``
the target of a prior term ``MSE(A, A_dcp)`` during the first ``airlight_prior_fraction`` of the run (the
reference: 1000 of 4000 steps).

Loss (reference): ``MSE(t·J + (1 − t)·A, I) + 0.005·Std(t) [+ 0.1·Std(A)]`` with ``Std`` the local-mean
deviation of :func:`ddip.losses.smoothness_loss`; plus (ddip's default, ``transmission_prior_fraction``) a
transmission prior pulling ``t`` to the dark channel prior's, for the same reason the reference pulls ``A`` to
its estimate: reconstruction alone cannot tell haze from scene (any ``t`` fits with a matching ``J``), and
without the prior the fit settles near ``t ≈ 1``. With ``ω = 1`` the dark channel's ``t = 1 − dark(I/A)`` is a
lower bound of the true ``t`` (``dark(J) ≥ 0``), met where a window holds a dark scene point and too low on
bright objects. So the prior is that ``t`` morphologically closed (:func:`ddip.haze.close_transmission`, the
narrow dips lifted), and the pull is an expectile loss (:func:`ddip.losses.expectile_loss`) of τ 0.5 by default,
the MSE: the fit stays on the closed bound (τ 0.95, the default until 2026-12-07, let ``t`` rise above it at a
twentieth of the cost of falling below, and the fit ended 0.014–0.029 above its prior, up to 4.7 dB below its
recovery in dense haze; docs/results/dehazing.md). And (ddip's default, ``weights.exclusion``) the exclusion loss of
Double-DIP Eq. 1 between ``t`` and ``J`` (:func:`ddip.losses.exclusion_loss`, the weight 0.1 the reference gives it
between separated layers): the transmission follows the depth, not the scene's edges, so where both have an
edge at the same place ``t`` has followed the bound into a bright object.

Result (no ground truth used): the evaluated iterate of best reconstruction PSNR; its ``t`` is refined by a
guided filter with the image as guide and clipped to ``[t_min, 1]``; the dehazed image is, by ``output``,
the formula ``J = (I − (1 − t)·A)/t`` on the full-resolution image (the reference's output) or the
network's ``J``.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, ClassVar

import torch
import torch.nn.functional as F

from ddip.benchmark import timed
from ddip.errors import DdipError, check_range
from ddip.haze import (
    close_transmission,
    dcp_transmission,
    dehaze_dcp,
    estimate_airlight,
    hazy_image,
    mean_airlight,
    quadtree_airlight,
    raise_airlight_to_gamut,
    recover_clear,
    refine_transmission,
)
from ddip.io import load_image
from ddip.losses import exclusion_loss, expectile_loss, smoothness_loss
from ddip.metrics import psnr, quality, ssim
from ddip.tasks.base import GeneratorSpec, Layers, NoiseInput, Task, loss_weights

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from ddip.benchmark import BenchmarkCase

AIRLIGHT_MODES = ("net", "constant")
AIRLIGHT_RULES = {  # name → (B×3×H×W image, dark-channel window, share of its brightest pixels) → B×3 airlight
    "dark_channel": estimate_airlight,
    "quadtree": lambda image, patch, fraction: quadtree_airlight(image),
}
OUTPUT_RULES = ("formula", "network")
DCP_MEAN_AIRLIGHT = "DCP, mean airlight"
"""The benchmark's record of the dark channel prior with the mean of the haze-opaque pixels as airlight, the rule of
many DCP implementations (better on some images, worse on average: docs/results/dehazing.md)."""


class Dehazing(Task):
    """Single-image dehazing by coupled DIPs.

    Args:
        airlight: ``net`` (a generator on a meshgrid) or ``constant``.
        airlight_value: the airlight colour ``[r, g, b]`` in [0, 1]; ``None`` = estimated by ``airlight_estimate``.
        airlight_estimate: ``dark_channel`` (He et al.: the brightest haze-opaque pixel) or ``quadtree`` (Kim et
            al., JVCI 2013: the flattest bright block's pixel nearest white).
        airlight_patch, airlight_fraction: dark-channel window and share of its brightest pixels used for the
            estimate (He et al.: 15, 0.1 %); the window is also that of the transmission prior.
        airlight_gamut: the estimate raised per channel until the classical recovery with this task's prior
            stays ``≤ 1`` at this quantile of the unsaturated pixels (:func:`ddip.haze.raise_airlight_to_gamut`);
            ``None`` keeps the estimate as it is. Not applied to ``airlight_value``.
        transmission_prior_fraction: share of the run during which ``t`` is pulled to the dark channel prior's.
        transmission_prior_refined: the prior is DCP's guided-filtered ``t`` (else its coarse ``t``, Eq. 12).
        omega: the share of the haze the transmission prior removes, ``t = 1 − ω·dark(I/A)`` (He et al. Eq. 12:
            0.95, keeping some haze for depth perception; 1 = the model's haze-free ``J``, a lower bound of ``t``).
        transmission_prior_closing: window (px) of the morphological closing of the prior (0 = none).
        transmission_prior_expectile: τ of the expectile loss pulling ``t`` to the prior (0.5 = MSE).
        airlight_prior_fraction: share of the run during which ``airlight=net`` is pulled to the estimate.
        input_channels, input_scale: depth and amplitude of the noise inputs (reference: 8, 1/10).
        weights: loss weights ``reconstruction``, ``transmission_smoothness``, ``airlight_smoothness``,
            ``airlight_prior``, ``transmission_prior``, ``exclusion`` (between ``t`` and ``J``; 0 = off).
        refine_radius, refine_eps: guided-filter refinement of ``t`` (radius as a fraction of the shorter side).
        t_min: lower clip of ``t`` in the recovery (He et al.'s t0).
        output: ``formula`` or ``network``: which ``J`` is ``dehazed.png``.
    """

    primary_metric = "psnr"
    truth_kinds: ClassVar[dict[str, str]] = {"clean": "image"}

    def __init__(
        self,
        airlight: str = "net",
        airlight_value: list[float] | None = None,
        airlight_estimate: str = "quadtree",
        airlight_patch: int = 15,
        airlight_fraction: float = 0.001,
        airlight_gamut: float | None = None,
        airlight_prior_fraction: float = 0.25,
        transmission_prior_fraction: float = 0.0,
        omega: float = 0.95,
        transmission_prior_refined: bool = False,
        transmission_prior_expectile: float = 0.5,
        transmission_prior_closing: int = 0,
        input_channels: int = 8,
        input_scale: float = 0.1,
        weights: dict | None = None,
        refine_radius: float = 0.15,
        refine_eps: float = 1e-3,
        t_min: float = 0.1,
        output: str = "formula",
        **common,
    ):
        super().__init__(**common)
        if airlight not in AIRLIGHT_MODES:
            raise DdipError(f"task.airlight={airlight!r} is not one of {', '.join(AIRLIGHT_MODES)}")
        if airlight_estimate not in AIRLIGHT_RULES:
            raise DdipError(f"task.airlight_estimate={airlight_estimate!r} is not one of {', '.join(AIRLIGHT_RULES)}")
        check_range("task.omega", omega, 0, 1, open_low=True)
        check_range("task.transmission_prior_expectile", transmission_prior_expectile, 0, 1, open_low=True, open_high=True)
        check_range("task.t_min", t_min, 0, 1, open_low=True, open_high=True)
        check_range("task.airlight_fraction", airlight_fraction, 0, 1, open_low=True)
        check_range("task.airlight_patch", airlight_patch, 1, whole=True)
        check_range("task.transmission_prior_closing", transmission_prior_closing, 0, whole=True)
        for name, value in (("transmission_prior_fraction", transmission_prior_fraction), ("airlight_prior_fraction", airlight_prior_fraction)):
            check_range(f"task.{name}", value, 0, 1)
        check_range("task.refine_radius", refine_radius, 0)
        check_range("task.refine_eps", refine_eps, 0, open_low=True)
        if airlight_gamut is not None:
            check_range("task.airlight_gamut", airlight_gamut, 0, 1, open_low=True)
        if output not in OUTPUT_RULES:
            raise DdipError(f"task.output={output!r} is not one of {', '.join(OUTPUT_RULES)}")
        self.airlight_value = self._checked_airlight(airlight_value)
        self.airlight_mode, self.airlight_patch, self.airlight_fraction = airlight, airlight_patch, airlight_fraction
        self.airlight_prior_fraction, self.airlight_rule, self.omega = airlight_prior_fraction, airlight_estimate, omega
        self.airlight_gamut = airlight_gamut
        defaults = {
            "reconstruction": 1.0,
            "transmission_smoothness": 0.005,
            "airlight_smoothness": 0.1,
            "airlight_prior": 1.0,
            "transmission_prior": 1.0,
            "exclusion": 0.0,
        }
        self.weights = loss_weights(defaults, weights)
        self.transmission_prior_fraction = transmission_prior_fraction
        self.transmission_prior_refined = transmission_prior_refined
        self.transmission_prior_expectile = transmission_prior_expectile
        self.transmission_prior_closing = transmission_prior_closing
        self.refine_radius, self.refine_eps, self.t_min, self.output = refine_radius, refine_eps, t_min, output
        self.inputs = {
            "clear_image": NoiseInput(input_channels, input_scale),
            "transmission": NoiseInput(input_channels, input_scale, perturb=False),
        }
        self.generators = {"clear_image": GeneratorSpec(3, "clear_image"), "transmission": GeneratorSpec(1, "transmission")}
        if airlight == "net":
            self.inputs["airlight"] = NoiseInput(input_channels, kind="meshgrid")
            self.generators["airlight"] = GeneratorSpec(3, "airlight")
        self.airlight_estimate: torch.Tensor | None = None
        self.airlight_before_gamut: torch.Tensor | None = None

    @staticmethod
    def _checked_airlight(value: list[float] | None) -> torch.Tensor | None:
        if value is None:
            return None
        colour = torch.as_tensor(value, dtype=torch.float32).flatten()
        if colour.numel() != 3 or not bool(((colour > 0) & (colour <= 1)).all()):
            raise DdipError(f"task.airlight_value={list(value)} must be three numbers in (0, 1]")
        return colour

    def prepare(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """Estimate the airlight colour (unless given) from the image the generators fit."""
        if image.shape[0] != 3:
            raise DdipError("dehazing needs a colour image")
        self.airlight_estimate = self.estimated_airlight(image)
        if not self.transmission_prior_fraction:
            return {}
        if not self.transmission_prior_refined:
            return {"transmission_prior": self.coarse_prior(image[None], self.airlight_estimate[None])[0, 0]}
        return {"transmission_prior": self.refined_prior(image[None], self.airlight_estimate[None])[0, 0]}

    def estimated_airlight(self, image: torch.Tensor) -> torch.Tensor:
        """The airlight colour (3) for a 3×H×W image: ``airlight_value`` if given, else ``airlight_estimate``'s
        rule, raised to the gamut when ``airlight_gamut`` is set (the estimate before that is kept in
        ``airlight_before_gamut``)."""
        if self.airlight_value is not None:
            return self.airlight_value
        estimate = AIRLIGHT_RULES[self.airlight_rule](image[None], self.airlight_patch, self.airlight_fraction)[0]
        self.airlight_before_gamut = estimate
        if self.airlight_gamut is None:
            return estimate
        return raise_airlight_to_gamut(image[None], estimate[None], self.refined_prior, self.airlight_gamut)[0]

    def coarse_prior(self, image: torch.Tensor, airlight: torch.Tensor) -> torch.Tensor:
        """The transmission prior: DCP's coarse ``t = 1 − ω·dark(I/A)`` (Eq. 12), closed; B×1×H×W."""
        coarse = dcp_transmission(image, airlight, self.airlight_patch, self.omega)
        return close_transmission(coarse, self.transmission_prior_closing)

    def refined_prior(self, image: torch.Tensor, airlight: torch.Tensor) -> torch.Tensor:
        """The prior refined as the fitted ``t`` is at the end (guided filter, clipped to ``[t_min, 1]``)."""
        refined = refine_transmission(self.coarse_prior(image, airlight), image, self.refine_radius, self.refine_eps)
        return refined.clamp(self.t_min, 1.0)

    # --- physics and losses ---------------------------------------------------------------------------
    def airlight_map(self, layers: Layers) -> torch.Tensor:
        """``A`` as a B×3×H×W map (the generator's) or a B×3×1×1 colour (the constant)."""
        if "airlight" in layers:
            return layers["airlight"]
        return self.airlight_estimate.to(layers["clear_image"])[None, :, None, None]

    def compose(self, layers: Layers) -> torch.Tensor:
        """``I = t·J + (1 − t)·A`` (Double-DIP Sec. 4.3; He et al. Eq. 1)."""
        return hazy_image(layers["clear_image"], layers["transmission"], self.airlight_map(layers))

    def loss_terms(self, layers, target, maps, step, steps):
        weights = self.weights
        terms = {
            "reconstruction": weights["reconstruction"] * F.mse_loss(self.compose(layers), target),
            "transmission_smoothness": weights["transmission_smoothness"] * smoothness_loss(layers["transmission"]),
        }
        if weights["exclusion"]:
            terms["exclusion"] = weights["exclusion"] * exclusion_loss(layers["transmission"], layers["clear_image"])
        if step < self.transmission_prior_fraction * steps:
            prior = maps["transmission_prior"]
            terms["transmission_prior"] = weights["transmission_prior"] * expectile_loss(
                layers["transmission"], prior, self.transmission_prior_expectile
            )
        if "airlight" in layers:
            airlight = layers["airlight"]
            terms["airlight_smoothness"] = weights["airlight_smoothness"] * smoothness_loss(airlight)
            if step < self.airlight_prior_fraction * steps:
                prior = self.airlight_estimate.to(airlight)[None, :, None, None].expand_as(airlight)
                terms["airlight_prior"] = weights["airlight_prior"] * F.mse_loss(airlight, prior)
        return terms

    def decision(self, layers: Layers) -> torch.Tensor:
        """The transmission the dehazed image is read from (Eq. 22), and the airlight map where a generator makes
        it: once they stop moving, so does the result."""
        if "airlight" in layers:
            return torch.cat([layers["transmission"], layers["airlight"]], dim=1)
        return layers["transmission"]

    # --- results ----------------------------------------------------------------------------------------
    def recover(self, layers: Layers, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """The refined ``t``, the airlight map and both clear images (formula, network) for B×C×H×W layers."""
        transmission = refine_transmission(layers["transmission"], image, self.refine_radius, self.refine_eps)
        transmission = transmission.clamp(self.t_min, 1.0)
        airlight = self.airlight_map(layers).expand_as(image)
        formula = recover_clear(image, transmission, airlight, self.t_min)
        return {"transmission": transmission, "airlight": airlight, "formula": formula, "network": layers["clear_image"]}

    def ground_truth_metrics(self, layers: Layers, truth: dict[str, torch.Tensor], image: torch.Tensor) -> dict[str, float]:
        if "clean" not in truth:
            return {}
        recovered = self.recover(layers, image)
        return {f"psnr_{rule}": psnr(recovered[rule], truth["clean"]) for rule in OUTPUT_RULES}

    def finalize(self, chosen, final, image, truth):
        recovered = self.recover(chosen, image[None])
        images = {
            "dehazed": recovered[self.output][0],
            "transmission": recovered["transmission"][0],
            "airlight": recovered["airlight"][0],
            "reconstruction": self.compose(chosen)[0].clamp(0.0, 1.0),
            "network_clear": chosen["clear_image"][0],
        }
        metrics = {
            "output_rule": self.output,
            "airlight_mode": self.airlight_mode,
            "airlight_estimate": [round(float(v), 4) for v in self.airlight_estimate],
            "airlight_before_gamut": None if self.airlight_before_gamut is None else [round(float(v), 4) for v in self.airlight_before_gamut],
            "airlight_mean": [round(float(v), 4) for v in recovered["airlight"][0].mean(dim=(1, 2))],
            "transmission_mean": float(recovered["transmission"].mean()),
        }
        if "clean" in truth:
            clean = truth["clean"]
            ends = {"chosen": recovered, "final": self.recover(final, image[None])}
            for end, result in ends.items():
                for rule in OUTPUT_RULES:
                    metrics[f"psnr_{end}_{rule}"] = psnr(result[rule], clean)
                    metrics[f"ssim_{end}_{rule}"] = ssim(result[rule], clean)
            for end, name in itertools.product(ends, ("psnr", "ssim")):
                metrics[f"{name}_{end}"] = metrics[f"{name}_{end}_{self.output}"]
            metrics["psnr_input"] = psnr(image[None], clean)
        return images, metrics

    @classmethod
    def benchmark(cls, case: BenchmarkCase) -> list[dict]:
        """ddip's fit (always: baselines read its airlight and prior), by the PSNR/SSIM of each rule's ``J``
        (:meth:`fit_records`), then the hazy input and the dark channel prior's variants (:meth:`dcp_records`)."""
        cfg, metrics = case.fit(cls.case_settings)
        return cls.fit_records(case, metrics) + cls.dcp_records(case, cfg, metrics)

    @classmethod
    def fit_records(cls, case: BenchmarkCase, metrics: dict) -> list[dict]:
        """One record of the fit per output rule (the chosen output, the final one and the oracle), the rule a run
        saves marked "(default)"."""
        label = case.method("ddip (Double-DIP dehaze)")
        return [
            case.record(
                f"{label}, {rule} J" + (" (default)" if rule == metrics["output_rule"] else ""),
                psnr=metrics[f"psnr_chosen_{rule}"],
                ssim=metrics[f"ssim_chosen_{rule}"],
                psnr_final=metrics[f"psnr_final_{rule}"],
                oracle_psnr=metrics[f"oracle_psnr_{rule}"],
                seconds=metrics["wall_seconds"],
                seconds_per_step=metrics["seconds_per_step"],
                steps=metrics["steps"],
            )
            for rule in OUTPUT_RULES
        ]

    @classmethod
    def dcp_records(cls, case: BenchmarkCase, cfg: DictConfig, metrics: dict) -> list[dict]:
        """The hazy input; the dark channel prior (:func:`ddip.haze.dehaze_dcp`) with its own airlight, with the mean of
        the haze-opaque pixels (:data:`DCP_MEAN_AIRLIGHT`) and with the fit's airlight and prior; as oracles, with the
        case's true airlight and the recovery with its true transmission (``gt_transmission.png``), where it gives them."""
        hazy, clean = case.image()[None], case.truth_image("clean")[None]
        dcp, seconds = timed(dehaze_dcp, hazy)
        rows = [case.record("hazy input", **quality(hazy, clean)), case.record("DCP (He et al.)", **quality(dcp["clear"], clean), seconds=seconds)]
        common = dehaze_dcp(hazy, airlight=mean_airlight(hazy))["clear"]  # what many DCP codes do
        rows.append(case.record(DCP_MEAN_AIRLIGHT, **quality(common, clean)))
        airlight = torch.tensor([metrics["airlight_estimate"]])  # B×3: ddip's airlight
        prior = {"patch": cfg.task.airlight_patch, "omega": cfg.task.omega, "closing": cfg.task.transmission_prior_closing}
        same = dehaze_dcp(hazy, airlight=airlight, **prior)["clear"]
        rows.append(case.record("DCP with ddip's airlight and prior", **quality(same, clean)))
        if "airlight" in case.spec:
            oracle = dehaze_dcp(hazy, airlight=torch.tensor([case.spec["airlight"]]))["clear"]
            rows.append(case.record("DCP, true airlight (oracle)", **quality(oracle, clean)))
        if (case.folder / "gt_transmission.png").exists():  # what a perfect t gives with ddip's airlight
            true_t = load_image(case.folder / "gt_transmission.png")[:1][None]
            oracle = recover_clear(hazy, true_t, airlight[..., None, None])
            rows.append(case.record("true t, ddip's airlight (oracle)", **quality(oracle, clean)))
        return rows
