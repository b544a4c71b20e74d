"""Which dark-channel airlight rule is closest to the truth? Synthetic haze over many clear photos.

    python research/airlight_study.py --images DIR [DIR ...] [--size 128]
                                      [--out results/airlight_study]

Every image found (PNG/JPEG, masks skipped) is resized to ``--size``², hazed with ``t = exp(−β·d)`` for a
vertical depth ramp 1.0 → 0.2 (:func:`ddip.synthetic.synthetic_haze`), β ∈ {1.0, 1.6, 2.5} and three airlight
colours. The dark channel rules pick the airlight from the brightest 0.1 % of the 15×15 dark channel; the
haze-lines rule (:func:`haze_lines.estimate_airlight_haze_lines`, beside this script) and the quad-tree search
(:func:`ddip.haze.quadtree_airlight`) use the whole image; the last row is the
mean of He et al.'s and the haze-lines estimate. ``--omegas`` and ``--closings`` add rows of DCP with other ω
(Eq. 12: the share of haze removed) and with its coarse ``t`` closed (:func:`ddip.haze.close_transmission`), every
combination, for He et al.'s rule, the true airlight and the ``--gamut`` rules; ``--gamut Q ...`` adds He et al.'s
estimate (or, with ``--gamut-starts``, also the per-channel mean of the haze-opaque pixels or the quad-tree search's) raised per channel until
the recovery with ddip's prior (ω 1, closed over 31², refined) stays ≤ 1 at the quantile Q
(:func:`ddip.haze.raise_airlight_to_gamut`, ddip's ``task.airlight_gamut``); ``--true-transmission`` adds the recovery (Eq. 22) with
the true ``t`` and He et al.'s airlight: how far a perfect transmission gets with it. The table gives each rule's
mean absolute error and the PSNR of dark channel prior dehazing (:func:`ddip.haze.dehaze_dcp`) with it,
beside the true airlight (oracle), on how many cases that PSNR beats and trails He et al.'s rule under the same ω
and closing (the true-``t`` row: He et al.'s DCP), and its mean per β. Writes ``airlight_study.md`` and ``.json`` into ``--out``.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))  # evaluate.py's result writer

from evaluate import write_results
from haze_lines import estimate_airlight_haze_lines

from ddip.geometry import resize
from ddip.haze import (
    dehaze_dcp,
    haze_opaque_pixels,
    mean_airlight,
    quadtree_airlight,
    raise_airlight_to_gamut,
    recover_clear,
)
from ddip.io import load_image
from ddip.metrics import psnr
from ddip.synthetic import synthetic_haze
from ddip.tasks.dehaze import Dehazing

AIRLIGHTS = [(0.9, 0.9, 0.92), (0.8, 0.85, 0.9), (0.95, 0.9, 0.8)]
BETAS = [1.0, 1.6, 2.5]


def among_opaque(rule: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    """A rule that picks the airlight from the haze-opaque pixels (3×N), as a function of the 1×3×H×W hazy image."""
    return lambda hazy: rule(haze_opaque_pixels(hazy)[0])


BASELINE = "brightest R+G+B (He et al.)"
HAZE_LINES = "haze-lines (Berman et al.)"
QUADTREE = "quad-tree search (Kim et al.)"
RULES = {
    BASELINE: among_opaque(lambda pixels: pixels[:, pixels.sum(0).argmax()]),
    "per-channel median": among_opaque(lambda pixels: pixels.median(1).values),
    "per-channel mean": lambda hazy: mean_airlight(hazy)[0],
    "per-channel max": among_opaque(lambda pixels: pixels.max(1).values),
    HAZE_LINES: lambda hazy: estimate_airlight_haze_lines(hazy)[0],
    QUADTREE: lambda hazy: quadtree_airlight(hazy)[0],
}
COMBINED = "mean of He et al.'s and haze-lines"
ORACLE = "oracle (true airlight)"
HE_OMEGA = 0.95  # He et al.'s ω, the default of dehaze_dcp
TRUE_T = -1.0  # in place of ω: the recovery with the true transmission instead of DCP's


GAMUT_STARTS = {
    "brightest": (BASELINE, "He et al.'s"),
    "mean": ("per-channel mean", "per-channel mean"),
    "quadtree": (QUADTREE, "quad-tree search's"),
}


def gamut_name(start: str, quantile: float) -> str:
    return f"{GAMUT_STARTS[start][1]}, raised to the gamut at q = {quantile:g}"


def gamut_rule(start: str, quantile: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """The ``start`` rule's estimate raised as ddip's dehazing task raises it (its default prior), as a rule of the
    hazy image."""
    prior = Dehazing(airlight="constant", omega=1.0, transmission_prior_closing=31).refined_prior
    rule = RULES[GAMUT_STARTS[start][0]]
    return lambda hazy: raise_airlight_to_gamut(hazy, rule(hazy)[None], prior, quantile)[0]


def method_name(airlight: str, omega: float, closing: int) -> str:
    if omega == TRUE_T:
        return f"J = (I − (1 − t)·A)/t with the true t (oracle), airlight = {airlight}"
    return f"DCP, airlight = {airlight}" + ("" if omega == HE_OMEGA else f", ω = {omega:g}") + (f", t closed over {closing}²" if closing else "")


def images(folders: list[Path], size: int) -> list[torch.Tensor]:
    paths = sorted(p for folder in folders for p in folder.rglob("*") if p.suffix.lower() in {".png", ".jpg", ".jpeg"})
    return [resize(load_image(p), (size, size)) for p in paths if "mask" not in p.stem]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, nargs="+", required=True)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--omegas", type=float, nargs="*", default=[], help="also DCP with these ω (default 0.95 only)")
    parser.add_argument("--closings", type=int, nargs="*", default=[], help="also DCP with its t closed over these windows")
    parser.add_argument("--gamut", type=float, nargs="*", default=[], help="also He et al.'s airlight raised to the gamut at these quantiles")
    parser.add_argument("--gamut-starts", nargs="+", choices=list(GAMUT_STARTS), default=["brightest"], help="the estimates --gamut raises")
    parser.add_argument("--true-transmission", action="store_true", help="also recover J with the true t (oracle)")
    parser.add_argument("--out", type=Path, default=Path("results/airlight_study"))
    args = parser.parse_args()
    priors = [prior for prior in itertools.product([HE_OMEGA, *args.omegas], [0, *args.closings]) if prior != (HE_OMEGA, 0)]
    gamuts = {gamut_name(start, q): gamut_rule(start, q) for start in args.gamut_starts for q in args.gamut}
    rules = RULES | gamuts
    methods = [(name, HE_OMEGA, 0) for name in [ORACLE, *rules, COMBINED]]
    methods += [(name, *prior) for prior in priors for name in (BASELINE, ORACLE, *gamuts)]
    if args.true_transmission:
        methods.append((BASELINE, TRUE_T, 0))
    scores: dict[tuple[str, float, int], list[tuple[float, float]]] = {method: [] for method in methods}
    hazy_psnr, betas = [], []
    clears = images(args.images, args.size)
    for clear, airlight, beta in itertools.product(clears, AIRLIGHTS, BETAS):
        hazy, true_t = synthetic_haze(clear, airlight, beta=beta)
        hazy = hazy[None]
        truth = torch.tensor([airlight])
        hazy_psnr.append(psnr(hazy, clear))
        betas.append(beta)
        estimates = {ORACLE: truth[0]} | {name: rule(hazy) for name, rule in rules.items()}
        estimates[COMBINED] = (estimates[BASELINE] + estimates[HAZE_LINES]) / 2
        for name, omega, closing in methods:
            if omega == TRUE_T:
                dehazed = recover_clear(hazy, true_t[None], estimates[name][None, :, None, None])
            else:
                dehazed = dehaze_dcp(hazy, omega=omega, closing=closing, airlight=estimates[name][None])["clear"]
            scores[name, omega, closing].append((float((estimates[name] - truth[0]).abs().mean()), psnr(dehazed, clear)))
    rows = [{"method": "hazy input", "psnr": float(np.mean(hazy_psnr)), "cases": len(hazy_psnr)}]
    for (name, omega, closing), values in scores.items():
        errors, psnrs = (np.array(column) for column in zip(*values))
        same_prior = (BASELINE, omega, closing) if omega != TRUE_T else (BASELINE, HE_OMEGA, 0)
        baseline = np.array([value for _, value in scores[same_prior]])
        rows.append(
            {
                "method": method_name(name, omega, closing),
                "airlight_error": float(errors.mean()),
                "psnr": float(psnrs.mean()),
                "psnr_median": float(np.median(psnrs)),
                "better_than_he": int((psnrs > baseline + 1e-6).sum()),
                "worse_than_he": int((psnrs < baseline - 1e-6).sum()),
                "cases": len(values),
            }
            | {f"psnr_beta_{beta:g}": float(psnrs[np.array(betas) == beta].mean()) for beta in BETAS}
        )
    args.out.mkdir(parents=True, exist_ok=True)
    columns = ["method", "airlight_error", "psnr", "psnr_median", "better_than_he", "worse_than_he", "cases", *(f"psnr_beta_{b:g}" for b in BETAS)]
    write_results(rows, args.out, "airlight_study", ("psnr",), columns=columns)


if __name__ == "__main__":
    main()
