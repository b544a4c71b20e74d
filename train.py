"""ddip entry point: ``python train.py task=seg backbone=unet data.image=my.jpg steps=3000 seed=1``.

Problems with the input or the configuration end the run with one line on stderr, exit code 2, and a
``FAILED.txt`` in the run dir (never a ``metrics.json``); in a sweep (``-m``) the failed job is reported the
same way and the other jobs go on. Re-launching a sweep into its dir (``hydra.sweep.dir=multirun/<date>/<time>``)
skips the jobs whose ``metrics.json`` is complete for the same overrides. The return value is the job's objective (for
``hparams_search=optuna``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ddip.errors import DdipError


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    from ddip.run import objective, run, summary
    from ddip.sweep import in_sweep

    output_dir = Path(HydraConfig.get().runtime.output_dir)
    overrides = list(HydraConfig.get().overrides.task)
    done = output_dir / "metrics.json"
    finished = json.loads(done.read_text()) if in_sweep() and done.exists() else {}
    if finished.get("overrides") == overrides:
        print(f"ddip: {output_dir} is complete (metrics.json); skipped", file=sys.stderr)
        return objective(finished)
    OmegaConf.update(cfg, "overrides", overrides, force_add=True)
    try:
        metrics = run(cfg, output_dir)
    except (DdipError, OmegaConfBaseException) as error:
        message = str(error) if isinstance(error, DdipError) else f"invalid configuration: {str(error).splitlines()[0]}"
        (output_dir / "FAILED.txt").write_text(message + "\n")
        print(f"ddip: error: {message}", file=sys.stderr)
        if not in_sweep():
            sys.exit(2)
        return None
    print(summary(metrics, output_dir))
    return objective(metrics)


if __name__ == "__main__":
    main()
