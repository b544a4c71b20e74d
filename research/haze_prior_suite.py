"""Dehazing's classical prior on a haze suite, without a fit: which airlight rule and ω beat DCP on most cases?

    python research/haze_prior_suite.py --cases suites/haze --split tune [--rules quadtree dark_channel mean min]
                                        [--grid omega=1,0.98,0.97,0.95 refine_radius=0.1,0.15 ...]
                                        [--out results/haze_prior_suite]

Since the transmission prior's pull became an MSE (τ 0.5), a default fit of ``task=dehaze`` ends within about
0.05 dB of its own classical prior's recovery on a suite's mean ("DCP with ddip's airlight and prior" in
``scripts/evaluate.py``; docs/results/dehazing.md): DCP with ddip's airlight, ω and closed ``t``. That recovery
takes a fraction of a second a case, so this script scores variants of the prior in place of whole fits: each
``--rules`` airlight (``quadtree``, ``dark_channel``: the task's ``airlight_estimate`` rules; ``mean``, ``min``: the
per-channel mean or minimum of those two estimates) raised to the gamut as the task raises it, with every
combination of the ``--grid`` values of the prior's settings (``omega`` and :data:`PRIOR_KEYS`; the others as in
``ddip/conf/task/dehaze.yaml``). Per variant: the mean, median and worst
PSNR and on how many cases it is at least DCP's (He et al.: its own airlight, ω 0.95), the issue-29 goal.
Writes ``haze_prior_suite.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ddip.haze import dehaze_dcp, raise_airlight_to_gamut
from ddip.io import load_image
from ddip.metrics import psnr
from ddip.tasks.dehaze import AIRLIGHT_RULES, Dehazing

COMBINED = {"mean": lambda a, b: (a + b) / 2, "min": torch.minimum}
PRIOR_KEYS = ("airlight_patch", "airlight_fraction", "airlight_gamut", "transmission_prior_closing", "refine_radius", "refine_eps", "t_min")
DEFAULTS = OmegaConf.load(Path(__file__).resolve().parents[1] / "ddip/conf/task/dehaze.yaml")


def airlight(task: Dehazing, hazy: torch.Tensor, rule: str) -> torch.Tensor:
    """The 1×3 airlight of ``rule`` for a 1×3×H×W hazy image, raised to the gamut with ``task``'s prior."""
    estimate = {name: AIRLIGHT_RULES[name](hazy, task.airlight_patch, task.airlight_fraction) for name in ("quadtree", "dark_channel")}
    start = estimate[rule] if rule in estimate else COMBINED[rule](estimate["quadtree"], estimate["dark_channel"])
    return raise_airlight_to_gamut(hazy, start, task.refined_prior, task.airlight_gamut)


def settings(grid: list[str]) -> list[dict[str, float]]:
    """Every combination of ``--grid``'s ``key=v1,v2,…`` values over the defaults of the prior's settings."""
    values = {"omega": [DEFAULTS["omega"]]} | {key: [DEFAULTS[key]] for key in PRIOR_KEYS}
    for item in grid:
        key, _, listed = item.partition("=")
        if key not in values:
            raise SystemExit(f"--grid {item}: the key is one of {', '.join(values)}")
        values[key] = [type(values[key][0])(float(v)) if values[key][0] is not None else float(v) for v in listed.split(",")]
    return [dict(zip(values, combination)) for combination in itertools.product(*values.values())]


def scores(folder: Path, variants: list[tuple[str, dict]]) -> tuple[float, list[float]]:
    """DCP's PSNR and each (airlight rule, settings) prior's recovery PSNR on one case folder."""
    hazy, clean = load_image(folder / "image.png")[None], load_image(folder / "clean.png")[None]
    recovered = []
    for rule, setting in variants:
        task = Dehazing(airlight="constant", **setting)
        prior = {"patch": task.airlight_patch, "omega": task.omega, "closing": task.transmission_prior_closing,
                 "radius": task.refine_radius, "eps": task.refine_eps, "t_min": task.t_min}  # fmt: skip
        recovered.append(psnr(dehaze_dcp(hazy, airlight=airlight(task, hazy, rule), **prior)["clear"], clean))
    return psnr(dehaze_dcp(hazy)["clear"], clean), recovered


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=Path, required=True, help="a haze suite (scripts/make_suite.py haze)")
    parser.add_argument("--split", choices=["tune", "test"], required=True)
    parser.add_argument("--grid", nargs="*", default=[], help="KEY=V1,V2,…: the prior's settings to combine (omega, refine_radius, …)")
    parser.add_argument("--rules", nargs="+", choices=["quadtree", "dark_channel", *COMBINED], default=["quadtree", "dark_channel", *COMBINED])
    parser.add_argument("--out", type=Path, default=Path("results/haze_prior_suite"))
    args = parser.parse_args()
    manifest = json.loads((args.cases / "cases.json").read_text())
    names = [name for name, case in manifest.items() if case["task"] == "dehaze" and case.get("split") == args.split]
    variants = [(rule, setting) for rule in args.rules for setting in settings(args.grid)]
    varied = [key for key in variants[0][1] if len({str(setting[key]) for _, setting in variants}) > 1]
    dcp, recovered = zip(*(scores(args.cases / name, variants) for name in names))
    dcp, recovered = np.array(dcp), np.array(recovered)
    lines = [f"`python {' '.join(sys.argv)}`", "", f"{len(names)} cases; DCP (He et al.): mean {dcp.mean():.2f} dB", ""]
    lines += ["| airlight rule | " + " | ".join(varied) + " | mean | median | worst | at least DCP | worst against DCP |"]
    lines += ["|---" * (len(varied) + 6) + "|"]
    for (rule, setting), values in zip(variants, recovered.T):
        lines.append(
            f"| {rule} | " + "".join(f"{setting[key]:g} | " for key in varied) + f"{values.mean():.2f} | {np.median(values):.2f} | "
            f"{values.min():.2f} | {int((values >= dcp).sum())} of {len(values)} | {(values - dcp).min():+.2f} |"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "haze_prior_suite.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
