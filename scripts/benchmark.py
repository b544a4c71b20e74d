"""Seconds per optimisation step and FLOP throughput of each task's default configuration, through Lightning and
through a plain PyTorch loop over the same module, measured in one run.

    python scripts/benchmark.py [--tasks seg dehaze denoise] [--sizes 64 128 256] [--steps 20] [--warmup 5]
                                [--repeats 3] [--out results/benchmark/benchmark.json]

For every task and size: the default config on a texture image of that size; ``lightning`` is ``trainer.fit``
as ``train.py`` runs it (lean: no logger, no progress bar, no checkpoints), ``plain`` the same module's
forward, loss, backward and Adam step in a bare loop (the reference path). Each path runs ``--warmup`` steps,
then ``--repeats`` timed blocks of ``--steps`` steps; the median block gives s/step. FLOPs of one forward +
backward come from ``torch.utils.flop_counter``. Writes ``--out`` (records: task, size, path, s_per_step,
gflop_per_step, gflops) and a markdown table beside it.
"""

from __future__ import annotations

import argparse
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

LEAN = ["logger=none", "checkpoint=null", "trainer.enable_progress_bar=false", "~trainer.callbacks", "stopping=none"]


def texture(size: int, folder: Path) -> Path:
    path = folder / f"bench_{size}.png"
    Image.open(ROOT / "tests" / "data" / "grass.png").convert("RGB").resize((size, size)).save(path)
    return path


def configure(task: str, image: Path, steps: int):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[f"task={task}", f"steps={steps}", f"data.image={image}", *LEAN])
    OmegaConf.update(cfg, "paths.output_dir", str(image.parent), force_add=True)
    return cfg


def plain_step(module, batch: dict) -> None:
    """One optimisation step without Lightning: jitter, forward, loss terms, backward, Adam."""
    layers = module(0, module.task.reg_noise_std(0, module.steps))
    terms = module.task.loss_terms(layers, batch["image"], batch["maps"], module.steps // 2, module.steps)
    loss = torch.stack(list(terms.values())).sum()
    module.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    module.optimizer.step()


def time_plain(cfg, steps: int, warmup: int, repeats: int) -> tuple[float, float]:
    """(median s/step, GFLOP per step) of the plain loop."""
    data, task = build_component(cfg, "data"), build_component(cfg, "task")
    module = build(cfg, data, task, cfg.steps)
    item = data.dataset[0]
    batch = {"image": item["image"][None], "maps": {k: v[None] for k, v in item["maps"].items()}}
    with FlopCounterMode(display=False) as counter:
        plain_step(module, batch)
    for _ in range(warmup):
        plain_step(module, batch)
    blocks = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(steps):
            plain_step(module, batch)
        blocks.append((time.perf_counter() - started) / steps)
    return statistics.median(blocks), counter.get_total_flops() / 1e9


def time_lightning(cfg, steps: int, warmup: int, repeats: int) -> float:
    """Median s/step of ``trainer.fit`` (each block a fresh fit; its first ``warmup`` steps untimed)."""
    blocks = []
    for _ in range(repeats):
        data, task = build_component(cfg, "data"), build_component(cfg, "task")
        module = build(cfg, data, task, warmup + steps)
        stamps: list[float] = []
        module.on_train_batch_end = lambda *args, **kwargs: stamps.append(time.perf_counter())
        trainer = build_component(cfg, "trainer", logger=False, max_steps=warmup + steps, enable_checkpointing=False)
        trainer.fit(module, datamodule=data)
        blocks.append((stamps[-1] - stamps[warmup - 1]) / (len(stamps) - warmup))
    return statistics.median(blocks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="*", default=["seg", "dehaze", "denoise"])
    parser.add_argument("--sizes", nargs="*", type=int, default=[64, 128, 256])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("results/benchmark/benchmark.json"))
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    records = []
    for task in args.tasks:
        for size in args.sizes:
            cfg = configure(task, texture(size, args.out.parent), args.warmup + args.steps)
            plain, gflop = time_plain(cfg, args.steps, args.warmup, args.repeats)
            lightning = time_lightning(cfg, args.steps, max(1, args.warmup), args.repeats)
            for path, seconds in (("plain", plain), ("lightning", lightning)):
                records.append({"task": task, "size": size, "path": path, "s_per_step": seconds, "gflop_per_step": gflop, "gflops": gflop / seconds})
            print(f"{task} {size}px: plain {plain:.4f} s/step, lightning {lightning:.4f} s/step "
                  f"(overhead {100 * (lightning / plain - 1):+.1f} %), {gflop:.2f} GFLOP/step, {gflop / plain:.1f} GFLOP/s", flush=True)
    args.out.write_text(json.dumps(records, indent=2) + "\n")
    lines = ["| task | size | path | s/step | GFLOP/step | GFLOP/s |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['task']} | {r['size']} | {r['path']} | {r['s_per_step']:.4f} | {r['gflop_per_step']:.2f} | {r['gflops']:.1f} |" for r in records]
    command = "python scripts/benchmark.py " + " ".join(sys.argv[1:])
    table = "\n".join(lines) + "\n"
    args.out.with_suffix(".md").write_text(f"`{command}`\n\n{torch.get_num_threads()} threads, torch {torch.__version__}\n\n{table}")
    print(table)


if __name__ == "__main__":
    main()
