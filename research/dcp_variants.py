"""Dark channel prior dehazing (:func:`ddip.haze.dehaze_dcp`) with two airlight rules and several guided-filter
radii on synthetic haze cases with ground truth: how much the baseline depends on choices the paper leaves open.

    python research/dcp_variants.py --set "13 dev cases" CASES_DIR [CASES_DIR ...] \\
        --set "10 held out" CASES_DIR [...] [--cases] [--out results/haze_cases/dcp_variants.md]

Airlight: He et al.'s rule (the brightest, in R + G + B, of the haze-opaque pixels: the top 0.1 % of the dark
channel; this project's baseline) and the mean of the same pixels (the rule of many implementations).
Radius: of the guided filter, as a share of the shorter side (``--radii``; the baseline's 0.15). Writes a
markdown table of mean PSNR per set (and per case with ``--cases``) to ``--out`` and prints it.
"""

from __future__ import annotations

import json
import shlex
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from haze_table import emit, parsed_sets, set_parser

from ddip.haze import dehaze_dcp, estimate_airlight, mean_airlight
from ddip.io import load_image
from ddip.metrics import psnr

RULES = {"He et al. (brightest)": estimate_airlight, "mean": mean_airlight}


def dehaze_cases(folders: list[Path]) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """(name, hazy, clean) of every dehazing case listed in the folders' ``cases.json``."""
    found = []
    for folder in folders:
        path = folder / "cases.json"
        if not path.is_file():
            raise SystemExit(f"error: {path} not found")
        for name, case in json.loads(path.read_text()).items():
            if case.get("task") == "dehaze":
                found.append((name, load_image(folder / name / case["image"])[None], load_image(folder / name / case["truth"]["clean"])[None]))
    return found


def scores(cases: list, radii: list[float]) -> dict[tuple[str, float], dict[str, float]]:
    """PSNR of DCP per (rule, radius) and case."""
    table: dict[tuple[str, float], dict[str, float]] = {}
    for name, hazy, clean in cases:
        for rule, airlight in RULES.items():
            for radius in radii:
                dehazed = dehaze_dcp(hazy, radius=radius, airlight=airlight(hazy))["clear"]
                table.setdefault((rule, radius), {})[name] = psnr(dehazed, clean)
    return table


def main() -> None:
    parser = set_parser(__doc__.splitlines()[0])
    parser.add_argument("--radii", nargs="+", type=float, default=[0.04, 0.08, 0.15, 0.3])
    parser.add_argument("--cases", action="store_true", help="also one row per case")
    args = parser.parse_args()
    columns = [f"{rule}, radius {radius:g}" for rule in RULES for radius in args.radii]
    lines = ["| cases | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for name, folders in parsed_sets(parser, args):
        table = scores(dehaze_cases(folders), args.radii)
        if args.cases:
            for case in next(iter(table.values())):
                lines.append(f"| {case} | " + " | ".join(f"{table[key][case]:.2f}" for key in table) + " |")
        lines.append(f"| **mean of the {name}** | " + " | ".join(f"{statistics.mean(v.values()):.2f}" for v in table.values()) + " |")
    emit(f"`python research/dcp_variants.py {shlex.join(sys.argv[1:])}`\n\nPSNR (dB) of DCP dehazing\n\n" + "\n".join(lines) + "\n", args.out)


if __name__ == "__main__":
    main()
