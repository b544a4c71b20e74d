"""Seconds per optimisation step and FLOP throughput of each task's default configuration on three paths,
measured in one run, and this CPU's convolution throughput.

    python scripts/benchmark.py [--tasks seg dehaze denoise] [--sizes 64 128 256] [--steps 20] [--warmup 5]
                                [--repeats 3] [--out results/benchmark/benchmark.json] [--threads N ...]
                                [--override KEY=VALUE ...] [--whole-run] [--whole-steps 300]
                                [--sweep K] [--sweep-task seg] [--sweep-steps 300]

Cases (``--tasks``): ``seg``, ``dehaze`` (the task defaults), ``denoise`` (one DIP network,
``task.ensemble=1``: the network the conv-throughput goal is about), ``denoise-ensemble`` (the denoise
default: two fits, separate networks), ``denoise-ensemble-stacked`` (the two fits as one grouped network) and
``separate`` (the task default).
For every case and size, its config on a texture image of that size, timed as

- ``plain``: the reference path (``speed=plain``): the same networks and losses, each generator run on its
  own, contiguous NCHW tensors, PyTorch's per-tensor Adam, in a bare loop of forward, loss, backward, step;
- ``fast``: the default module (``speed=fast``: stacked generators, channels-last, fused Adam) in the same
  bare loop;
- ``lightning``: ``trainer.fit`` of the default module as ``train.py`` runs it (lean: no logger, no progress
  bar, no checkpoints; the noise-free evaluation every ``callbacks.evaluation.every`` = 50 steps, one extra forward,
  is left out of all three paths).

- ``fast eager`` (with ``--eager``): the fast loop with ``module.cuda_graphs=false``: on a GPU, the fast path
  without its CUDA graphs (on a CPU the two are the same path);
- ``bf16`` (with ``--bf16``): the Lightning path with ``trainer.precision=bf16-mixed`` (convolutions in
  bfloat16 under autocast): faster where the CPU has bfloat16 instructions, but not the same numbers, so it is
  an option, not the default.

Each path first runs ``--warmup`` untimed steps; then the paths take turns, ``--repeats`` rounds of one block
each (``--steps / --repeats`` steps: the loops continue their run, each Lightning block is a fresh fit timing
the same steps), so drifts in the machine's speed hit all paths alike; the median block gives s/step. FLOPs of one forward + backward come from ``torch.utils.flop_counter``. ``conv_peak`` times a
128→128-channel 3×3 convolution (forward + backward, 128×128, channels-last): the CPU's convolution
throughput that the DIP denoising net is compared with. ``--profile SIZE`` adds, per task, where the fast
step's time goes at that size (convolution, batch norm, optimiser, other operators; ``torch.profiler``).
``--threads N ...`` repeats the whole run at each torch thread count (``torch.set_num_threads``; one table
per count, the records carry ``threads``), so the paths' use of the cores is compared in one run.
``--override KEY=VALUE ...`` sets Hydra overrides on every path alike (an A/B of one
setting is two runs, e.g. ``--tasks dehaze --sizes 128 --override task.weights.exclusion=0``).

Whole runs and sweeps (``train.py`` as a user runs it, a subprocess each, timed by wall clock):

- ``--whole-run``: after the paths of each case and size, ``train.py`` with the case's defaults (evaluations, output
  choice, stopping rule, progress bar, checkpoint) for ``--whole-steps`` steps on the same image, once with the
  default logger (W&B, offline) and once with ``logger=none``. Its s/step is the fit's own (``fit_seconds /
  steps_run`` of its ``metrics.json``: every callback included, start-up and result writing not), its overhead the
  excess over the lightning and the fast path's s/step of the same run (timed apart: the machine's drift between
  the two is in it) and, on a CPU, over its own optimisation steps (``loop_overhead`` of its ``metrics.json``: the
  fit's seconds over those of its steps, both counted in the same run); the process's seconds (start-up included)
  are recorded beside it. ``--whole-steps 0`` runs the task's own steps, its stopping rule ending the fit (seg: once
  the mask has settled): the process's seconds are then the time to a result.
- ``--sweep K``: fits per hour of a K-seed ``--sweep-task`` sweep (default ``seg``) of ``--sweep-steps`` steps at the
  first ``--sizes`` size, lean as the paths (no logger, no checkpoint, no progress bar, no stopping rule), start-up
  included: ``joblib J×T``, ``-m hydra/launcher=joblib hydra.launcher.n_jobs=J seed=0,…,K-1`` for every divisor J of
  the cores (T = cores // J threads a job); ``members J×T``, batched members ``members.seed=[...]`` in J batches of
  about K / J seeds (J = 1: one process on all cores; J > 1: a joblib sweep of the batches). The ratio is the best
  members' fits per hour over the best joblib split's.

Writes ``--out`` (records: task, size, path, s_per_step, gflop_per_step, gflops; a whole run's adds steps_run,
fit_seconds, process_seconds and its overheads in percent; a sweep's jobs, threads, fits, seconds and fits_per_hour)
and markdown tables beside it. With a CUDA device
(``--accelerator gpu``, the default when one is present) everything runs there (``trainer=gpu``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from omegaconf import OmegaConf

from ddip.errors import DdipError
from ddip.run import build, build_component, compose_train
from ddip.sweep import cpu_cores

PLAIN = ["speed=plain"]
LEAN = ["logger=none", "checkpoint=null", "trainer.enable_progress_bar=false", "stopping=none"]


def clock(device: torch.device) -> float:
    """``time.perf_counter()`` once the device has finished its queued work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def texture(size: int, folder: Path) -> Path:
    path = folder / f"bench_{size}.png"
    Image.open(ROOT / "tests" / "data" / "grass.png").convert("RGB").resize((size, size)).save(path)
    return path


CASES = {
    "seg": ["task=seg"],
    "dehaze": ["task=dehaze"],
    "denoise": ["task=denoise", "task.ensemble=1"],
    "denoise-ensemble": ["task=denoise"],
    "denoise-ensemble-stacked": ["task=denoise"],
    "separate": ["task=separate"],
}
FAST_ONLY = {"denoise-ensemble-stacked": ["module.stack_generators=true"]}  # the plain path never stacks


def configure(case: str, image: Path, args, extra: list[str]):
    """The case's config (its task's default ``steps``: the schedule of a real run) on ``image``, lean, with the
    run's ``--override`` settings (the same on every path) and then the path's own ``extra``."""
    overrides = [*CASES[case], f"data.image={image}", f"trainer={args.accelerator}", *LEAN, *args.override, *extra]
    cfg = compose_train(overrides)
    OmegaConf.update(cfg, "paths.output_dir", str(image.parent), force_add=True)
    return cfg


def loop_step(module, batch: dict[str, int]) -> None:
    """One optimisation step without Lightning: the module's own step loss (jitter, forward, curriculum target,
    loss terms, as ``training_step`` computes it), backward, optimiser step."""
    loss = module.step_loss(batch["step"], batch["transform"])
    module.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    module.optimizer.step()


class Loop:
    """The bare loop over the data module's batches: steps 0, 1, … of the default schedule, as the Lightning
    path runs them. Built, warmed up and FLOP-counted on creation; :meth:`block` times the next steps."""

    def __init__(self, cfg, warmup: int, device: torch.device) -> None:
        data, task = build_component(cfg, "data"), build_component(cfg, "task")
        self.module, self.device = build(cfg, data, task).to(device), device
        self.batches = iter(data.train_dataloader())
        with FlopCounterMode(display=False) as counter:
            loop_step(self.module, next(self.batches))
        self.gflop = counter.get_total_flops() / 1e9
        for _ in range(warmup - 1):
            loop_step(self.module, next(self.batches))

    def block(self, steps: int) -> float:
        """s/step of the next ``steps`` steps."""
        started = clock(self.device)
        for _ in range(steps):
            loop_step(self.module, next(self.batches))
        return (clock(self.device) - started) / steps


def lightning_fit(cfg, steps: int, warmup: int, device: torch.device) -> float:
    """s/step of a fresh ``trainer.fit`` stopped after ``warmup + steps`` steps, its first ``warmup`` untimed."""
    data, task = build_component(cfg, "data"), build_component(cfg, "task")
    module = build(cfg, data, task)
    done = 0
    stamps: list[float] = []

    def stamp(*args, **kwargs) -> None:  # waits for the device only at the block's two ends, as the bare loop does
        nonlocal done
        done += 1
        if done in (warmup, warmup + steps):
            stamps.append(clock(device))

    module.on_train_batch_end = stamp
    trainer = build_component(cfg, "trainer", logger=False, max_steps=warmup + steps, enable_checkpointing=False)
    trainer.fit(module, datamodule=data)
    return (stamps[1] - stamps[0]) / steps


def time_paths(task: str, image: Path, args, device: torch.device) -> tuple[dict[str, float], float]:
    """Median s/step of every path and the GFLOP per step. The paths take turns, one block each per repeat,
    so drifts of the machine's speed hit all of them alike."""
    warmup, block = max(1, args.warmup), max(1, args.steps // args.repeats)
    fast = configure(task, image, args, FAST_ONLY.get(task, []))
    loops = {"plain": Loop(configure(task, image, args, PLAIN), warmup, device), "fast": Loop(fast, warmup, device)}
    if args.eager:
        eager = configure(task, image, args, [*FAST_ONLY.get(task, []), "module.cuda_graphs=false"])
        loops["fast eager"] = Loop(eager, warmup, device)
    fits = {"lightning": fast}
    if args.bf16:
        fits["bf16"] = configure(task, image, args, [*FAST_ONLY.get(task, []), "trainer.precision=bf16-mixed"])
    samples: dict[str, list[float]] = {name: [] for name in [*loops, *fits]}
    for _ in range(args.repeats):
        for name, loop in loops.items():
            samples[name].append(loop.block(block))
        for name, cfg in fits.items():
            samples[name].append(lightning_fit(cfg, block, warmup, device))
    return {name: statistics.median(values) for name, values in samples.items()}, loops["plain"].gflop


def train_command(case: str, image: Path, args, extra: list[str]) -> list[str]:
    """``python train.py`` with the case's config on ``image``, the run's ``--override`` settings and ``extra``."""
    return [sys.executable, "train.py", *CASES[case], f"data.image={image}", f"trainer={args.accelerator}", *args.override, *extra]


def timed(command: list[str]) -> float:
    """Wall-clock seconds of ``command`` run from the checkout, W&B offline; a failure ends the benchmark with the
    command and the end of its error output."""
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=os.environ | {"WANDB_MODE": "offline"}, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"benchmark: {' '.join(command[1:])} failed:\n{done.stderr[-2000:]}")
    return time.perf_counter() - started


WHOLE_RUNS = {"whole run": [], "whole run, no logger": ["logger=none"]}  # the default logger: W&B, offline


def whole_runs(case: str, image: Path, args, threads: int, times: dict[str, float]) -> dict[str, dict]:
    """Every :data:`WHOLE_RUNS` row of ``case`` on ``image``: ``train.py`` with the case's defaults for
    ``--whole-steps`` steps; its s/step (``fit_seconds / steps_run`` of its ``metrics.json``), its overheads in
    percent over the lightning and the fast path's ``times``, and the process's seconds, start-up included."""
    rows = {}
    for name, extra in WHOLE_RUNS.items():
        folder = image.parent / f"{case}_{image.stem}_{threads}_{len(rows)}"
        steps = [f"steps={args.whole_steps}"] if args.whole_steps else []  # 0: the recipe's, its stopping rule ending the fit
        command = train_command(case, image, args, [*steps, f"threads={threads}", f"hydra.run.dir={folder}", *extra])
        process = timed(command)
        metrics = json.loads((folder / "metrics.json").read_text())
        seconds = metrics["fit_seconds"] / metrics["steps_run"]
        rows[name] = {
            "s_per_step": seconds,
            "steps_run": metrics["steps_run"],
            "fit_seconds": metrics["fit_seconds"],
            "process_seconds": process,
            "overhead_vs_lightning_pct": 100 * (seconds / times["lightning"] - 1),
            "overhead_vs_fast_pct": 100 * (seconds / times["fast"] - 1),
            "in_run_overhead_pct": 100 * metrics["loop_overhead"] if "loop_overhead" in metrics else None,
        }
    return rows


def divisors(n: int) -> list[int]:
    """1, …, ``n``: the numbers that divide ``n``."""
    return [d for d in range(1, n + 1) if n % d == 0]


def batches(seeds: list[int], count: int) -> list[list[int]]:
    """``seeds`` cut into ``count`` consecutive batches whose sizes differ by at most one."""
    cuts = [round(b * len(seeds) / count) for b in range(count + 1)]
    return [seeds[start:end] for start, end in itertools.pairwise(cuts)]


def multirun(command: list[str], jobs: int, swept: str, folder: Path) -> list[str]:
    """``command`` as a joblib sweep of ``jobs`` parallel jobs over ``swept`` into ``folder``."""
    launcher = ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={jobs}", f"hydra.sweep.dir={folder}"]
    return [*command[:2], "-m", *command[2:], *launcher, swept]


def sweep_commands(image: Path, args) -> dict[str, tuple[int, list[str]]]:
    """The sweeps of ``--sweep`` seeds by name (``joblib J×T``, ``members J×T``): each one's jobs J and command."""
    cores, seeds = cpu_cores(), list(range(args.sweep))
    base = train_command(args.sweep_task, image, args, [f"steps={args.sweep_steps}", *LEAN])
    commands = {}
    for jobs in divisors(cores):
        commands[f"joblib {jobs}×{cores // jobs}"] = (jobs, multirun(base, jobs, f"seed={','.join(map(str, seeds))}", image.parent / f"joblib_{jobs}"))
    for jobs in (j for j in divisors(cores) if j <= len(seeds)):
        swept = "members.seed=" + ",".join(f"[{','.join(map(str, batch))}]" for batch in batches(seeds, jobs))
        folder = image.parent / f"members_{jobs}"
        command = [*base, swept, f"hydra.run.dir={folder}"] if jobs == 1 else multirun(base, jobs, swept, folder)
        commands[f"members {jobs}×{cores // jobs}"] = (jobs, command)
    return commands


def time_sweeps(args) -> list[dict]:
    """The records of ``--sweep``: fits per hour of every sweep of :func:`sweep_commands`, and the best members'
    fits per hour over the best joblib split's."""
    size, cores = args.sizes[0], cpu_cores()
    records = []
    with tempfile.TemporaryDirectory(prefix="ddip-sweep-") as folder:
        for name, (jobs, command) in sweep_commands(texture(size, Path(folder)), args).items():
            seconds = timed(command)
            rate = 3600 * args.sweep / seconds
            records.append({"task": args.sweep_task, "size": size, "path": name, "jobs": jobs, "threads": cores // jobs})
            records[-1] |= {"fits": args.sweep, "steps": args.sweep_steps, "seconds": seconds, "fits_per_hour": rate}
            print(f"sweep {name}: {args.sweep} fits in {seconds:.1f} s, {rate:.0f} fits/hour", flush=True)
    best = {kind: max((r for r in records if r["path"].startswith(kind)), key=lambda r: r["fits_per_hour"]) for kind in ("members", "joblib")}
    ratio = best["members"]["fits_per_hour"] / best["joblib"]["fits_per_hour"]
    summary = {"members": best["members"]["path"], "joblib": best["joblib"]["path"], "ratio": ratio}
    return [*records, {"task": args.sweep_task, "size": size, "path": "members / joblib", **summary}]


PROFILE_CATEGORIES = {"convolution": ("conv",), "batch norm": ("batch_norm",), "optimiser": ("adam",)}


def profile_fast(task: str, image: Path, args, device: torch.device) -> dict[str, float]:
    """Milliseconds per step of the fast loop's operators by category (self time of every ATen op under
    ``torch.profiler``, over ``--steps`` steps after the warm-up): convolution (forward and backward), batch norm,
    optimiser, other, and the step's wall time."""
    from torch.profiler import profile

    loop = Loop(configure(task, image, args, FAST_ONLY.get(task, [])), max(1, args.warmup), device)
    started = clock(device)
    with profile() as profiler:
        loop.block(args.steps)
    wall = clock(device) - started
    totals = dict.fromkeys([*PROFILE_CATEGORIES, "other"], 0.0)
    for event in profiler.key_averages():
        if not event.key.startswith("aten::"):
            continue
        category = next((c for c, keys in PROFILE_CATEGORIES.items() if any(k in event.key for k in keys)), "other")
        totals[category] += event.self_cpu_time_total / 1e3 / args.steps
    return totals | {"step (wall, profiled)": 1e3 * wall / args.steps}


def conv_peak(steps: int, repeats: int, device: torch.device) -> float:
    """GFLOP/s of a 128→128-channel 3×3 convolution, forward + backward (input and weight gradients), 128×128."""
    conv = torch.nn.Conv2d(128, 128, 3, padding=1).to(device, memory_format=torch.channels_last)
    x = torch.randn(1, 128, 128, 128, device=device).to(memory_format=torch.channels_last).requires_grad_()
    flop = 3 * 2 * 128 * 128 * 9 * 128 * 128 / 1e9
    blocks = []
    for _ in range(repeats + 1):
        started = clock(device)
        for _ in range(steps):
            conv(x).sum().backward()
        blocks.append((clock(device) - started) / steps)
    return flop / statistics.median(blocks[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="*", choices=list(CASES), default=["seg", "dehaze", "denoise"], metavar="CASE")
    parser.add_argument("--sizes", nargs="*", type=int, default=[64, 128, 256])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("results/benchmark/benchmark.json"))
    parser.add_argument("--accelerator", choices=["cpu", "gpu"], default="gpu" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--bf16", action="store_true", help="also time trainer.precision=bf16-mixed")
    parser.add_argument("--eager", action="store_true", help="also time the fast loop without CUDA graphs")
    parser.add_argument("--profile", type=int, default=None, metavar="SIZE", help="also profile the fast step at this size")
    parser.add_argument("--threads", nargs="*", type=int, default=[], metavar="N", help="time everything at each of these torch thread counts (default: torch's own), e.g. 1 2")
    parser.add_argument("--override", nargs="*", default=[], metavar="KEY=VALUE", help="Hydra overrides for every path, e.g. task.weights.exclusion=0")
    parser.add_argument("--whole-run", action="store_true", help="also time train.py with the case's defaults (logger, evaluations, progress bar)")
    parser.add_argument("--whole-steps", type=int, default=300, help="steps of each --whole-run fit; 0: the task's default (its cap and stopping rule: the time to a result)")
    parser.add_argument("--sweep", type=int, default=0, metavar="K", help="also time K-seed sweeps: joblib at each jobs × threads split, batched members")
    parser.add_argument("--sweep-task", choices=list(CASES), default="seg", metavar="CASE", help="the case --sweep fits (default seg)")
    parser.add_argument("--sweep-steps", type=int, default=300, help="steps of each --sweep fit")
    args = parser.parse_args()
    if any(n < 1 for n in args.threads):
        parser.error(f"--threads {' '.join(map(str, args.threads))}: thread counts must be 1 or more")
    if args.sweep < 0 or (args.sweep and not args.sizes):
        parser.error("--sweep K: K must be 1 or more (0: no sweep), and --sizes give its size")
    warnings.filterwarnings("ignore", message=".*self.log.*")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for task in args.tasks:  # an override Hydra refuses ends the run here, in one line, before any timing
        try:
            compose_train([*CASES[task], *LEAN, *args.override])
        except DdipError as error:
            parser.exit(2, f"benchmark: error: {error}\n")
    device = torch.device("cuda" if args.accelerator == "gpu" else "cpu")
    counts = args.threads or [torch.get_num_threads()]
    records = []
    for threads in counts:
        torch.set_num_threads(threads)
        records += time_all(args, device, threads)
    sweeps = time_sweeps(args) if args.sweep else []
    args.out.write_text(json.dumps(records + sweeps, indent=2) + "\n")
    command = "python scripts/benchmark.py " + " ".join(sys.argv[1:])
    tables = markdown(records) + (f"\n{sweep_table(sweeps)}" if sweeps else "")
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU, " + " and ".join([*map(str, counts[:-1]), thread_count(counts[-1])])
    args.out.with_suffix(".md").write_text(f"`{command}`\n\n{where}, torch {torch.__version__}\n\n{tables}")
    print(tables)


def time_all(args, device: torch.device, threads: int) -> list[dict]:
    """The records of one thread count: the convolution peak, then every case, size and path (and profiles)."""
    peak = conv_peak(max(3, args.steps // 4), args.repeats, device)
    records = [{"task": "conv_peak", "size": 128, "path": "conv", "s_per_step": None, "gflop_per_step": None, "gflops": peak}]
    print(f"{thread_count(threads)}, conv peak: {peak:.1f} GFLOP/s", flush=True)
    with tempfile.TemporaryDirectory(prefix="ddip-bench-") as images:
        for task in args.tasks:
            for size in args.sizes:
                image = texture(size, Path(images))
                times, gflop = time_paths(task, image, args, device)
                rows = {path: {"s_per_step": seconds} for path, seconds in times.items()}
                if args.whole_run:
                    rows |= whole_runs(task, image, args, threads, times)
                for path, row in rows.items():
                    records.append({"task": task, "size": size, "path": path, **row, "gflop_per_step": gflop, "gflops": gflop / row["s_per_step"]})
                print(f"{task} {size}px: " + ", ".join(f"{k} {v['s_per_step']:.4f}" for k, v in rows.items()) + " s/step", flush=True)
            if args.profile:
                breakdown = profile_fast(task, texture(args.profile, Path(images)), args, device)
                records.append({"task": task, "size": args.profile, "path": "fast profile", "ms_per_step": breakdown})
    return [record | {"threads": threads} for record in records]


def markdown(records: list[dict]) -> str:
    """One table per thread count (:func:`table`), headed by the count when the run timed more than one."""
    counts = list(dict.fromkeys(r["threads"] for r in records))
    if len(counts) == 1:
        return table(records)
    return "\n".join(f"**{thread_count(n)}**\n\n" + table([r for r in records if r["threads"] == n]) for n in counts)


def thread_count(threads: int) -> str:
    """``1 thread``, ``2 threads``."""
    return f"{threads} thread{'' if threads == 1 else 's'}"


def table(records: list[dict]) -> str:
    """One row per task and size: s/step of each path, the speed-up plain / lightning, Lightning's overhead over
    the fast loop, GFLOP per step and the default path's GFLOP/s as a share of the convolution peak."""
    peak = records[0]["gflops"]
    by_case: dict[tuple, dict] = {}
    profiles = [r for r in records if r["path"] == "fast profile"]
    wholes = [r for r in records if r["path"] in WHOLE_RUNS]
    for r in records[1:]:
        if r in profiles or r in wholes:
            continue
        by_case.setdefault((r["task"], r["size"]), {})[r["path"]] = r
    bf16 = any("bf16" in paths for paths in by_case.values())
    eager = any("fast eager" in paths for paths in by_case.values())
    lines = [
        f"Convolution peak (128→128 3×3, 128×128, forward + backward): {peak:.1f} GFLOP/s\n",
        "| task | size | plain s/step | fast s/step |" + (" fast without CUDA graphs s/step |" if eager else "")
        + " lightning s/step | speed-up | Lightning overhead | GFLOP/step "
        "| GFLOP/s (share of peak) |" + (" bf16-mixed s/step (speed-up) |" if bf16 else ""),
        "|---|---|---|---|---|---|---|---|---|" + ("---|" if eager else "") + ("---|" if bf16 else ""),
    ]
    for (task, size), p in by_case.items():
        plain, fast, light = (p[k]["s_per_step"] for k in ("plain", "fast", "lightning"))
        without_graphs = f" {p['fast eager']['s_per_step']:.4f} |" if eager else ""
        row = (
            f"| {task} | {size} | {plain:.4f} | {fast:.4f} |{without_graphs} {light:.4f} | {plain / light:.2f}× | {100 * (light / fast - 1):+.1f} % "
            f"| {p['lightning']['gflop_per_step']:.2f} | {p['lightning']['gflops']:.1f} ({100 * p['lightning']['gflops'] / peak:.0f} %) |"
        )
        if bf16:
            row += f" {p['bf16']['s_per_step']:.4f} ({plain / p['bf16']['s_per_step']:.2f}×) |"
        lines.append(row)
    if profiles:
        names = list(profiles[0]["ms_per_step"])
        lines += ["", "Where a fast step's time goes (ms per step, self time of the ATen operators under the profiler):", ""]
        lines += ["| task | size | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
        lines += [f"| {r['task']} | {r['size']} | " + " | ".join(f"{r['ms_per_step'][n]:.1f}" for n in names) + " |" for r in profiles]
    if wholes:
        lines += ["", whole_table(wholes)]
    return "\n".join(lines) + "\n"


def percent(value: float | None) -> str:
    """A signed percentage, or "n/a" where it was not measured."""
    return "n/a" if value is None else f"{value:+.1f} %"


def whole_table(records: list[dict]) -> str:
    """One row per ``--whole-run`` fit: its steps, the fit's seconds and s/step, its overheads over the lightning
    and the fast path and over its own steps (CPU), and the process's seconds."""
    heading = (
        "Whole runs (`train.py` with the case's defaults: evaluations, output choice, stopping, progress bar, checkpoint; "
        "W&B offline unless the run says no logger); overhead: the fit's s/step over the path's of the same run:"
    )
    lines = [
        heading,
        "",
        "| task | size | run | steps run | fit s | s/step | overhead over lightning | overhead over fast | overhead over its own steps | process s (start-up included) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['task']} | {r['size']} | {r['path']} | {r['steps_run']} | {r['fit_seconds']:.1f} | {r['s_per_step']:.4f} "
        f"| {r['overhead_vs_lightning_pct']:+.1f} % | {r['overhead_vs_fast_pct']:+.1f} % | {percent(r['in_run_overhead_pct'])} | {r['process_seconds']:.1f} |"
        for r in records
    ]
    return "\n".join(lines)


def sweep_table(records: list[dict]) -> str:
    """One row per ``--sweep`` sweep (seconds, fits per hour) and the line of the best members over the best joblib split."""
    *sweeps, ratio = records
    first = sweeps[0]
    heading = f"Sweeps of {first['fits']} seeds of `{first['task']}`, {first['steps']} steps, {first['size']} px, {cpu_cores()} cores"
    lines = [f"{heading} (wall clock, start-up included; jobs × threads a job):", "", "| sweep | seconds | fits per hour |", "|---|---|---|"]
    lines += [f"| {r['path']} | {r['seconds']:.1f} | {r['fits_per_hour']:.0f} |" for r in sweeps]
    lines += ["", f"Best members / best joblib, fits per hour: {ratio['ratio']:.2f}× ({ratio['members']} / {ratio['joblib']})"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
