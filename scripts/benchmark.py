"""Seconds per optimisation step and FLOP throughput of each task's default configuration on three paths,
measured in one run, and this CPU's convolution throughput.

    python scripts/benchmark.py [--tasks seg dehaze denoise] [--sizes 64 128 256] [--steps 20] [--warmup 5]
                                [--repeats 3] [--out results/benchmark/benchmark.json]

For every task and size, the default config on a texture image of that size, timed as

- ``plain``: the reference path (``speed=plain``): the same networks and losses, each generator run on its
  own, contiguous NCHW tensors, PyTorch's per-tensor Adam, in a bare loop of forward, loss, backward, step;
- ``fast``: the default module (``speed=fast``: stacked generators, channels-last, fused Adam) in the same
  bare loop;
- ``lightning``: ``trainer.fit`` of the default module as ``train.py`` runs it (lean: no logger, no progress
  bar, no checkpoints; the noise-free evaluation every ``module.eval_every`` = 50 steps, one extra forward,
  is left out of all three paths).

All paths time the same steps of the task's default schedule: steps ``--warmup`` to ``--warmup + --steps``
(the loops in ``--repeats`` consecutive blocks, Lightning in ``--repeats`` fresh fits); the median block gives
s/step. FLOPs of one forward + backward come from ``torch.utils.flop_counter``. ``conv_peak`` times a
128→128-channel 3×3 convolution (forward + backward, 128×128, channels-last): the CPU's convolution
throughput that the DIP denoising net is compared with. Writes ``--out`` (records: task, size, path,
s_per_step, gflop_per_step, gflops) and a markdown table beside it with the speed-ups.
"""

from __future__ import annotations

import argparse
import warnings
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hydra import compose, initialize_config_dir  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from ddip.run import build, build_component  # noqa: E402

PLAIN = ["speed=plain"]
LEAN = ["logger=none", "checkpoint=null", "trainer.enable_progress_bar=false", "~trainer.callbacks", "stopping=none"]


def texture(size: int, folder: Path) -> Path:
    path = folder / f"bench_{size}.png"
    Image.open(ROOT / "tests" / "data" / "grass.png").convert("RGB").resize((size, size)).save(path)
    return path


def configure(task: str, image: Path, extra: list[str]):
    """The task's default config (its default ``steps``: the schedule of a real run) on ``image``, lean."""
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[f"task={task}", f"data.image={image}", *LEAN, *extra])
    OmegaConf.update(cfg, "paths.output_dir", str(image.parent), force_add=True)
    return cfg


def loop_step(module, batch: dict, index: int) -> None:
    """One optimisation step without Lightning: the module's own ``training_step`` (jitter, forward, curriculum
    target, loss terms), backward, optimiser step."""
    loss = module.step_loss(batch, index)
    module.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    module.optimizer.step()


def time_loop(cfg, steps: int, warmup: int, repeats: int) -> tuple[float, float]:
    """(median s/step, GFLOP per step) of the bare loop over the data module's batches: steps 0, 1, … of the
    default schedule, as the Lightning path runs them."""
    data, task = build_component(cfg, "data"), build_component(cfg, "task")
    module = build(cfg, data, task, cfg.steps)
    batches = enumerate(data.train_dataloader())
    with FlopCounterMode(display=False) as counter:
        loop_step(module, *reversed(next(batches)))
    for _ in range(warmup - 1):
        loop_step(module, *reversed(next(batches)))
    blocks = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(steps):
            loop_step(module, *reversed(next(batches)))
        blocks.append((time.perf_counter() - started) / steps)
    return statistics.median(blocks), counter.get_total_flops() / 1e9


def time_lightning(cfg, steps: int, warmup: int, repeats: int) -> float:
    """Median s/step of ``trainer.fit`` stopped after ``warmup + steps`` steps (each block a fresh fit; its first
    ``warmup`` steps untimed)."""
    blocks = []
    for _ in range(repeats):
        data, task = build_component(cfg, "data"), build_component(cfg, "task")
        module = build(cfg, data, task, cfg.steps)
        stamps: list[float] = []
        module.on_train_batch_end = lambda *args, **kwargs: stamps.append(time.perf_counter())
        trainer = build_component(cfg, "trainer", logger=False, max_steps=warmup + steps, enable_checkpointing=False)
        trainer.fit(module, datamodule=data)
        blocks.append((stamps[-1] - stamps[warmup - 1]) / (len(stamps) - warmup))
    return statistics.median(blocks)


def conv_peak(steps: int, repeats: int) -> float:
    """GFLOP/s of a 128→128-channel 3×3 convolution, forward + backward (input and weight gradients), 128×128."""
    conv = torch.nn.Conv2d(128, 128, 3, padding=1).to(memory_format=torch.channels_last)
    x = torch.randn(1, 128, 128, 128).to(memory_format=torch.channels_last).requires_grad_()
    flop = 3 * 2 * 128 * 128 * 9 * 128 * 128 / 1e9
    blocks = []
    for _ in range(repeats + 1):
        started = time.perf_counter()
        for _ in range(steps):
            conv(x).sum().backward()
        blocks.append((time.perf_counter() - started) / steps)
    return flop / statistics.median(blocks[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="*", default=["seg", "dehaze", "denoise"])
    parser.add_argument("--sizes", nargs="*", type=int, default=[64, 128, 256])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("results/benchmark/benchmark.json"))
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message=".*self.log.*")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    peak = conv_peak(max(3, args.steps // 4), args.repeats)
    records = [{"task": "conv_peak", "size": 128, "path": "conv", "s_per_step": None, "gflop_per_step": None, "gflops": peak}]
    print(f"conv peak: {peak:.1f} GFLOP/s", flush=True)
    for task in args.tasks:
        for size in args.sizes:
            image = texture(size, args.out.parent)
            warmup = max(1, args.warmup)
            plain, gflop = time_loop(configure(task, image, PLAIN), args.steps // args.repeats, warmup, args.repeats)
            cfg = configure(task, image, [])
            fast, _ = time_loop(cfg, args.steps // args.repeats, warmup, args.repeats)
            lightning = time_lightning(cfg, args.steps, warmup, args.repeats)
            for path, seconds in (("plain", plain), ("fast", fast), ("lightning", lightning)):
                records.append({"task": task, "size": size, "path": path, "s_per_step": seconds, "gflop_per_step": gflop, "gflops": gflop / seconds})
            print(f"{task} {size}px: plain {plain:.4f}, fast {fast:.4f}, lightning {lightning:.4f} s/step; "
                  f"speed-up {plain / lightning:.2f}x, Lightning overhead {100 * (lightning / fast - 1):+.1f} %", flush=True)
    args.out.write_text(json.dumps(records, indent=2) + "\n")
    command = "python scripts/benchmark.py " + " ".join(sys.argv[1:])
    table = markdown(records)
    args.out.with_suffix(".md").write_text(f"`{command}`\n\n{torch.get_num_threads()} threads, torch {torch.__version__}\n\n{table}")
    print(table)


def markdown(records: list[dict]) -> str:
    """One row per task and size: s/step of each path, the speed-up plain / lightning, Lightning's overhead over
    the fast loop, GFLOP per step and the default path's GFLOP/s as a share of the convolution peak."""
    peak = records[0]["gflops"]
    by_case: dict[tuple, dict] = {}
    for r in records[1:]:
        by_case.setdefault((r["task"], r["size"]), {})[r["path"]] = r
    lines = [
        f"Convolution peak (128→128 3×3, 128×128, forward + backward): {peak:.1f} GFLOP/s\n",
        "| task | size | plain s/step | fast s/step | lightning s/step | speed-up | Lightning overhead | GFLOP/step | GFLOP/s (share of peak) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (task, size), p in by_case.items():
        plain, fast, light = (p[k]["s_per_step"] for k in ("plain", "fast", "lightning"))
        lines.append(
            f"| {task} | {size} | {plain:.4f} | {fast:.4f} | {light:.4f} | {plain / light:.2f}× | {100 * (light / fast - 1):+.1f} % "
            f"| {p['lightning']['gflop_per_step']:.2f} | {p['lightning']['gflops']:.1f} ({100 * p['lightning']['gflops'] / peak:.0f} %) |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
