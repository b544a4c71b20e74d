"""The dehazing table of docs/results/dehazing.md from ``scripts/evaluate.py`` outputs: PSNR per case of the hazy
input, DCP, ddip and the oracles, a mean row per set of cases, and the summary of ddip − DCP (mean, median, worst,
cases better).

    python research/haze_table.py --set "13 dev cases" EVAL_DIR [EVAL_DIR ...] --set "10 held out" EVAL_DIR [...] \\
        [--compare LABEL EVAL_DIR] --cases CASES_DIR [...] [--out results/haze_cases/table.md]

``--set NAME FOLDER ...``: evaluate.py ``--out`` folders (their ``evaluate.json``), one table block each.
``--compare LABEL FOLDER``: an extra column with ddip's PSNR from every ``evaluate.json`` below FOLDER (another
setting on the same cases). ``--cases``: folders searched for ``cases.json`` (the haze density β of each case).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

BASELINES = {"hazy": "hazy input", "DCP (He et al.)": "DCP (He et al.)"}
MEAN_AIRLIGHT = "DCP, mean airlight"
ORACLES = {
    "DCP, mean A": MEAN_AIRLIGHT,
    "DCP with ddip's A and prior": "DCP with ddip's airlight and prior",
    "DCP, true A (oracle)": "DCP, true airlight (oracle)",
    "true t, ddip's A (oracle)": "true t, ddip's airlight (oracle)",
}


def is_ddip(method: str) -> bool:
    """The ddip row of an evaluation: the output a default run saves (evaluate.py marks it "(default)")."""
    return method.startswith("ddip") and method.endswith("(default)")


def load(folder: Path) -> dict[str, dict[str, dict]]:
    """case → method → record, from ``folder/evaluate.json``."""
    path = folder / "evaluate.json"
    if not path.is_file():
        raise SystemExit(f"error: {path} not found (run scripts/evaluate.py --out {folder} first)")
    table: dict[str, dict[str, dict]] = {}
    for record in json.loads(path.read_text()):
        method = "ddip" if is_ddip(record["method"]) else record["method"]
        table.setdefault(record["case"], {})[method] = record
    return table


def files_below(folder: Path, name: str) -> list[Path]:
    """Every file called ``name`` below ``folder``, in order, outside the run folders of evaluate.py."""
    return [path for path in sorted(folder.rglob(name)) if "runs" not in path.relative_to(folder).parts]


def load_tree(folder: Path) -> dict[str, float]:
    """case → ddip's PSNR from every evaluate.json below ``folder`` (run folders skipped)."""
    found: dict[str, float] = {}
    for path in files_below(folder, "evaluate.json"):
        found |= {case: methods["ddip"]["psnr"] for case, methods in load(path.parent).items() if "ddip" in methods}
    return found


def betas(folders: list[Path]) -> dict[str, float]:
    """case → haze density β, from the ``cases.json`` files below ``folders``."""
    found: dict[str, float] = {}
    for path in (path for folder in folders for path in files_below(folder, "cases.json")):
        found |= {case: spec["beta"] for case, spec in json.loads(path.read_text()).items() if "beta" in spec}
    return found


def signed(value: float) -> str:
    return f"{value:+.2f}".replace("-", "−")


def summary(name: str, rows: list[dict]) -> str:
    """ddip − DCP over one set: mean, median, worst, how many cases ddip wins, and the SSIM means; the same
    against DCP with the mean airlight where the rows have it."""
    gains = [row["ddip"]["psnr"] - row["DCP (He et al.)"]["psnr"] for row in rows]
    ssim = {key: statistics.mean(row[key]["ssim"] for row in rows) for key in ("ddip", "DCP (He et al.)")}
    line = (
        f"- {name}: ddip − DCP mean {signed(statistics.mean(gains))} dB, median {signed(statistics.median(gains))}, "
        f"worst {signed(min(gains))}, best {signed(max(gains))}, better on {sum(g > 0 for g in gains)} of {len(gains)}; "
        f"SSIM {ssim['ddip']:.3f} vs DCP {ssim['DCP (He et al.)']:.3f}"
    )
    if all(MEAN_AIRLIGHT in row for row in rows):
        other = [row["ddip"]["psnr"] - row[MEAN_AIRLIGHT]["psnr"] for row in rows]
        line += f"; against DCP with the mean airlight {signed(statistics.mean(other))} dB, better on {sum(g > 0 for g in other)}"
    return line


def table(sets: list[tuple[str, list[Path]]], compare: list[tuple[str, dict[str, float]]], beta: dict[str, float]) -> str:
    columns = [*BASELINES, "**ddip (default)**", "ddip − DCP", *(label for label, _ in compare), *ORACLES]
    lines = ["| case (β) | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    notes = []
    for name, folders in sets:
        rows = {case: methods for folder in folders for case, methods in load(folder).items()}
        for case, methods in rows.items():
            if "ddip" not in methods:
                raise SystemExit(f"error: no default ddip row for {case} in {folders}")
            values = [methods[m]["psnr"] for m in BASELINES.values()] + [methods["ddip"]["psnr"]]
            cells = [f"{v:.2f}" for v in values] + [signed(values[2] - values[1])]
            cells += [f"{other[case]:.2f}" if case in other else "" for _, other in compare]
            cells += [f"{methods[m]['psnr']:.2f}" if m in methods else "" for m in ORACLES.values()]
            label = f"{case} ({beta[case]:.1f})" if case in beta else case
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        mean = {key: statistics.mean(m[key]["psnr"] for m in rows.values()) for key in [*BASELINES.values(), "ddip"]}
        cells = [f"{mean[m]:.2f}" for m in BASELINES.values()] + [f"**{mean['ddip']:.2f}**", f"**{signed(mean['ddip'] - mean['DCP (He et al.)'])}**"]
        cells += [f"{statistics.mean(other[c] for c in rows):.2f}" if all(c in other for c in rows) else "" for _, other in compare]
        cells += [f"{statistics.mean(m[o]['psnr'] for m in rows.values()):.2f}" if all(o in m for m in rows.values()) else "" for o in ORACLES.values()]
        lines.append(f"| **mean of the {name}** | " + " | ".join(cells) + " |")
        notes.append(summary(name, [rows[c] for c in rows]))
    return "\n".join(lines) + "\n\n" + "\n".join(notes) + "\n"


def set_parser(description: str) -> argparse.ArgumentParser:
    """A parser with ``--set NAME FOLDER ...`` (repeated; named groups of case folders) and ``--out FILE``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--set", nargs="+", action="append", required=True, metavar=("NAME", "FOLDER"), dest="sets")
    parser.add_argument("--out", type=Path, default=None)
    return parser


def parsed_sets(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[tuple[str, list[Path]]]:
    """``--set`` as (name, folders) pairs; a set without a folder is the parser's one-line error."""
    if any(len(s) < 2 for s in args.sets):
        parser.error("--set needs a name and at least one folder")
    return [(s[0], [Path(f) for f in s[1:]]) for s in args.sets]


def emit(text: str, out: Path | None) -> None:
    """Print ``text`` and write it to ``out`` when given."""
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
    print(text)


def main() -> None:
    parser = set_parser(__doc__.splitlines()[0])
    parser.add_argument("--compare", nargs=2, action="append", default=[], metavar=("LABEL", "FOLDER"))
    parser.add_argument("--cases", nargs="*", type=Path, default=[])
    args = parser.parse_args()
    sets = parsed_sets(parser, args)
    compare = [(label, load_tree(Path(folder))) for label, folder in args.compare]
    emit(table(sets, compare, betas(args.cases)), args.out)


if __name__ == "__main__":
    main()
