"""Quality against ground truth on cases with known answers, ddip beside classical baselines on the same images.

    python scripts/evaluate.py --cases CASES_DIR [--split tune|test] [--steps N] [--tasks NAME ...] [--out eval/x]
                               [--override KEY=VALUE ...] [--no-ddip] [the tasks' options]

``cases.json`` in the cases folder maps each case to its task, its files (``image`` or ``images``, the maps its task
reads) and its ground truth (``truth``: name → file, as ``data.truth``; a clip's masks: their folder). Every case
whose task is a decomposition and that gives what the task needs (:func:`ddip.benchmark.required_keys`) is evaluated
by its task's benchmark (:meth:`ddip.tasks.base.Task.benchmark`): ddip runs with its default settings (the task's
default ``steps`` unless ``--steps`` is given) and the task's classical baselines (:mod:`ddip.baselines`; which ones:
each task's page in docs/tasks) on the same inputs, one record per method. This script names no task: a new task's
cases are evaluated as they are. Writes ``evaluate.md`` (a markdown table per case and method, then per method the
mean, median, worst decile and worst case of the quality its task ranks by) and ``evaluate.json`` (the records) into
``--out``; run dirs go under ``--out/runs``. ``--split`` keeps the cases of a suite's splits
(``scripts/make_suite.py``).
``--jobs N`` evaluates N cases at a time, each in its own process with ``threads`` = cores // N unless an
``--override threads=...`` is given; every case is its own seeded run, so the records are those of ``--jobs 1``
with the same threads, in the same order.

``--no-ddip`` leaves the DIP fits out where a task's baselines do not read them. The tasks add their own options
(:attr:`ddip.tasks.base.Task.benchmark_options`, listed by ``--help``), which reach their benchmarks.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import signal
import sys
import time
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ddip.benchmark import BenchmarkCase, add_task_options, benchmark_records, evaluable, ranked_metric, task_class
from ddip.errors import DdipError
from ddip.sweep import cpu_cores

REPOSITORY = Path(__file__).resolve().parents[1]
OLD_TRUTH_KEYS = ("clean", "gt_mask", "layer1")
"""The ground truth as a case's own keys, the ``cases.json`` layout before ``truth``: refused, not skipped."""


def check_layout(cases: dict, path: Path) -> None:
    """One error line and exit code 2 for a ``cases.json`` that gives ground truth as a case's own keys
    (:data:`OLD_TRUTH_KEYS`)."""
    for name, case in cases.items():
        if any(key in case for key in OLD_TRUTH_KEYS):
            example = '"truth": {"clean": "clean.png"}'
            print(f"evaluate: error: {path}: {name}: give the ground truth as {example} (make_suite.py writes it so)", file=sys.stderr)
            sys.exit(2)


LAST_COLUMNS = ("steps", "seconds", "seconds_per_step")
"""The columns that end a table: the timings."""


def record_columns(rows: list[dict]) -> list[str]:
    """The columns of a table of ``rows``: their keys in the order they first come, the timings last."""
    keys = list(dict.fromkeys(key for row in rows for key in row))
    return [key for key in keys if key not in LAST_COLUMNS] + [key for key in LAST_COLUMNS if key in keys]


def table(rows: list[dict], columns: list[str] | None = None) -> str:
    """A markdown table of ``rows`` with those of ``columns`` (default: :func:`record_columns`) that any row has."""
    columns = [c for c in columns or record_columns(rows) if any(row.get(c) is not None for row in rows)]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [f"{row[c]:.3f}" if isinstance(row.get(c), float) else str(row.get(c, "")) for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def summary(rows: list[dict], metrics: tuple[str, ...]) -> list[dict]:
    """Per method, over its cases: the mean, median, worst decile (10th percentile) and worst of its quality (the
    first of ``metrics`` its records give), for suites where the spread matters as much as the mean."""
    summaries = []
    for method in dict.fromkeys(row["method"] for row in rows):
        own = [row for row in rows if row["method"] == method]
        key = next((metric for metric in metrics if any(row.get(metric) is not None for row in own)), None)
        values = np.array([row[key] for row in own if row.get(key) is not None], float)
        if len(values):
            summaries.append({"method": method, "metric": key, "cases": len(values), "mean": values.mean(),
                              "median": float(np.median(values)), "worst decile": float(np.percentile(values, 10)),
                              "worst": values.min()})  # fmt: skip
    return summaries


SUMMARY_COLUMNS = ["method", "metric", "cases", "mean", "median", "worst decile", "worst"]


def write_results(rows: list[dict], out: Path, stem: str, metrics: tuple[str, ...], columns: list[str] | None = None, echo: bool = True) -> None:
    """``<stem>.json`` (the records) and ``<stem>.md`` (the command, a table per case and method, and the summary
    per method of the first of ``metrics`` its records give) in ``out``; ``echo`` also prints them."""
    (out / f"{stem}.json").write_text(json.dumps(rows, indent=2) + "\n")
    script = Path(sys.argv[0]).resolve()
    shown = script.relative_to(REPOSITORY) if script.is_relative_to(REPOSITORY) else script.name
    command = f"python {shown} " + " ".join(sys.argv[1:])
    summary_rows = [{k: float(v) if isinstance(v, np.floating) else v for k, v in row.items()} for row in summary(rows, metrics)]
    summary_table = table(summary_rows, SUMMARY_COLUMNS)
    (out / f"{stem}.md").write_text(f"`{command}`\n\n" + table(rows, columns) + "\nPer method:\n\n" + summary_table)
    if echo:
        print(table(rows, columns) + "\n" + summary_table)


def evaluate_case(
    name: str, case: dict, folder: Path, out: Path, steps: int | None, extra: list[str], options: dict[str, Any] | None = None
) -> list[dict]:
    """The records of one case: ddip and its task's baselines (:func:`ddip.benchmark.benchmark_records`), with the
    ddip ``extra`` overrides and the evaluation's ``options`` (``fit``, the tasks' own)."""
    return benchmark_records(BenchmarkCase(name, case, folder, out, steps, extra, options or {}))


def per_job_overrides(overrides: list[str], jobs: int) -> list[str]:
    """``overrides`` with ``threads`` = cores // ``jobs`` added when ``jobs`` > 1 and they set no ``threads``."""
    if jobs == 1 or any(override.startswith("threads=") for override in overrides):
        return overrides
    return [*overrides, f"threads={max(1, cpu_cores() // jobs)}"]


def case_records(jobs: list[tuple], workers: int) -> Iterator[list[dict]]:
    """Each job's records (the arguments of :func:`evaluate_case`) in order, ``workers`` cases at a time in
    processes of their own (1: here, one after the other). When one fails or the evaluation is stopped (SIGTERM,
    Ctrl-C), the pending cases are cancelled and the running ones stopped (:func:`stop_workers`)."""
    if workers == 1:
        yield from (evaluate_case(*job) for job in jobs)
        return
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    futures = [pool.submit(evaluate_case, *job) for job in jobs]
    try:
        for future in futures:
            yield wait_for(future)
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        stop_workers(multiprocessing.active_children())
        raise
    pool.shutdown()


def wait_for(future: Future) -> list[dict]:
    """The future's result, waited for in one-second slices: a wait without a timeout would hold off the
    SIGTERM handler until the case ends."""
    while not future.done():
        wait([future], timeout=1.0)
    return future.result()


def stop_workers(workers: list[multiprocessing.Process], grace: float = 20.0) -> None:
    """SIGTERM every worker (a running ddip case then saves its checkpoint, to resume from), SIGKILL those still
    alive after ``grace`` seconds."""
    for worker in workers:
        worker.terminate()
    deadline = time.monotonic() + grace
    for worker in workers:
        worker.join(max(0.0, deadline - time.monotonic()))
        if worker.is_alive():
            worker.kill()


def parse_arguments() -> tuple[argparse.Namespace, dict[str, Any]]:
    """The command line, and the options the cases' benchmarks read: ``fit`` (not ``--no-ddip``) and the tasks' own
    (:func:`ddip.benchmark.add_task_options`)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=Path, required=True, help="folder with cases.json")
    parser.add_argument("--tasks", nargs="*", default=None, help="tasks to evaluate (default: all)")
    parser.add_argument("--only", nargs="*", default=None, help="case names to run (default: all)")
    parser.add_argument("--steps", type=int, default=None, help="override the tasks' default steps")
    parser.add_argument("--out", type=Path, default=Path("results/evaluate"))
    parser.add_argument("--override", nargs="*", default=[], help="extra ddip overrides, e.g. task.layerwise=false")
    parser.add_argument("--jobs", type=int, default=1, help="cases evaluated at a time, each in its own process")
    parser.add_argument("--split", nargs="*", default=None, help="a suite's splits to run (tune, test; default: all)")
    parser.add_argument("--no-ddip", action="store_true", help="the baselines only, no DIP fit, where a task's baselines do not read it")
    task_options = add_task_options(parser)
    args = parser.parse_args()
    if args.jobs < 1:
        parser.error(f"--jobs {args.jobs} must be 1 or more")
    return args, {"fit": not args.no_ddip} | {dest: getattr(args, dest) for dest in task_options}


def selected_cases(cases: dict, args: argparse.Namespace) -> list[tuple[str, dict]]:
    """The cases of ``--tasks``, ``--only`` and ``--split`` that their tasks can evaluate (:func:`ddip.benchmark.evaluable`);
    a case of a task ddip does not know is one error line and exit code 2."""
    chosen = [
        (name, case)
        for name, case in cases.items()
        if (args.tasks is None or case["task"] in args.tasks) and (not args.only or name in args.only)
        and (args.split is None or case.get("split") in args.split)
    ]  # fmt: skip
    return [(name, case) for name, case in chosen if known_and_evaluable(name, case, args)]


def known_and_evaluable(name: str, case: dict, args: argparse.Namespace) -> bool:
    """Whether the case's task can evaluate it (:func:`ddip.benchmark.evaluable`); a task ddip does not know is one
    error line naming the case, and exit code 2."""
    try:
        return evaluable(case, args.override)
    except DdipError as error:
        print(f"evaluate: error: {args.cases / 'cases.json'}: {name}: task {case['task']!r}: {error}", file=sys.stderr)
        sys.exit(2)


def main() -> None:
    args, options = parse_arguments()
    cases = json.loads((args.cases / "cases.json").read_text())
    check_layout(cases, args.cases / "cases.json")
    args.out.mkdir(parents=True, exist_ok=True)
    selected = selected_cases(cases, args)
    metrics = tuple(dict.fromkeys(ranked_metric(task_class(case["task"], tuple(args.override))) for _, case in selected))
    overrides = per_job_overrides(args.override, args.jobs)
    jobs = [(name, case, args.cases / name, args.out, args.steps, overrides, options) for name, case in selected]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a stopped evaluation ends its workers too
    rows, records = [], case_records(jobs, args.jobs)
    for name, _ in selected:
        try:
            rows += next(records)
        except DdipError as error:  # a broken case file or override: keep the finished cases' rows (if any), one line
            if rows:
                write_results(rows, args.out, "evaluate", metrics)
            print(f"evaluate: error: {name}: {error}", file=sys.stderr)
            sys.exit(2)
        print(table([row for row in rows if row["case"] == name]), flush=True)
        write_results(rows, args.out, "evaluate", metrics, echo=False)  # a stopped evaluation keeps the cases it finished
    write_results(rows, args.out, "evaluate", metrics)


if __name__ == "__main__":
    main()
