"""The ``ddip`` command: ``ddip task=seg backbone=unet data.image=my.jpg steps=3000 seed=1`` (or ``python train.py ...``).

Problems with the input or the configuration end the run with one line on stderr, exit code 2, and a
``FAILED.txt`` in the run dir (never a ``metrics.json``); in a sweep (``-m``) the failed job is reported the
same way, the other jobs go on, and the sweep ends naming the failed jobs, with exit code 1. A run terminated by
SIGTERM exits with 143 and leaves a checkpoint to resume from (``resume=true``). A run dir that holds a finished
run or a running one is refused (:mod:`ddip.rundir`). Re-launching a sweep into its dir (``hydra.sweep.dir=multirun/<date>/<time>``)
skips the jobs whose ``metrics.json`` is complete for the same overrides. The return value is the job's objective (for
``hparams_search=optuna``).
"""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ddip.errors import DdipError, check_replaced_settings, one_line


def quiet_third_parties() -> None:
    """A run's console shows the progress bar and ddip's lines: Lightning's start-up notes (accelerators, its
    litlogger tip, "max_steps reached") and the deprecation warnings that torch raises inside Lightning are
    left out (its warnings are not)."""
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
    warnings.filterwarnings("ignore", message=r".*is smaller than the logging interval.*")
    warnings.filterwarnings("ignore", message=r".*Total length of `DataLoader` across ranks is zero.*")  # data.val=false


def main() -> None:
    """The ``ddip`` command: a replaced setting among the arguments is one error line and exit code 2
    (:func:`ddip.errors.check_replaced_settings`), before Hydra composes the config; then the job (:func:`job`)."""
    try:
        check_replaced_settings(sys.argv[1:])
    except DdipError as error:
        print(f"ddip: error: {error}", file=sys.stderr)
        sys.exit(2)
    job()


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def job(cfg: DictConfig) -> float | None:
    """One job: run it into Hydra's output dir and report it (a summary line, or one error line and its exit code)."""
    from ddip.members import member_values, run_members
    from ddip.run import RunTerminated, objective, run, summary
    from ddip.rundir import RunDirInUse, finished_metrics, report_failure
    from ddip.sweep import in_sweep

    quiet_third_parties()  # after the imports: importing Lightning sets its loggers' levels

    output_dir = Path(HydraConfig.get().runtime.output_dir)
    overrides = list(HydraConfig.get().overrides.task)
    finished = (finished_metrics(output_dir) if in_sweep() else None) or {}
    skipped = finished.get("overrides") == overrides
    OmegaConf.update(cfg, "overrides", overrides, force_add=True)
    try:
        if skipped:
            print(f"ddip: {output_dir} is complete (metrics.json); skipped", file=sys.stderr)
        elif member_values(cfg):  # batched members: one fit, a run dir per member (ddip.members)
            for metrics in run_members(cfg, output_dir):
                print(summary(metrics, output_dir / f"member_{metrics['member']}"))
            return None
        metrics = finished if skipped else run(cfg, output_dir)
        value = objective(metrics, cfg.get("optimized_metric"))
    except RunTerminated as error:
        report_failure(output_dir, f"{error}; resume with: python train.py resume=true hydra.run.dir={output_dir} (and the same overrides)")
        sys.exit(143)  # 128 + SIGTERM, as a process the signal ended
    except (DdipError, OmegaConfBaseException, OSError) as error:
        finished_run = (output_dir / "metrics.json").exists()  # e.g. an optimized_metric the run does not report
        report_failure(output_dir, one_line(error), record=not (isinstance(error, RunDirInUse) or finished_run))
        if not in_sweep():
            sys.exit(2)
        return None
    if not skipped:
        print(summary(metrics, output_dir))
    return value

