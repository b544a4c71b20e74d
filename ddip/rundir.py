"""A run dir's life: one run at a time writes into it, a run starts from a dir without an earlier result, and
``metrics.json``, written last, marks a finished result.

- **Lock**: a run holds ``.ddip.lock`` (its process id) while it writes; a second run into the same dir is
  refused with one line. A lock left by a process that no longer exists is taken over.
- **A finished dir**: ``train.py`` refuses to start a new run into a dir that holds ``metrics.json`` (before
  Hydra writes anything into it, so nothing of the finished run changes), and ``resume=true`` there says the run
  is finished and leaves it as it is. Scripts that choose their dirs (``evaluate.py``) and a sweep relaunched with
  other overrides replace the old result: :func:`clear_results` removes it before the new run writes.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from ddip.errors import DdipError

LOCK = ".ddip.lock"
LOGS = ("csv", "wandb")  # the loggers' folders (ddip/conf/logger)


class RunDirInUse(DdipError):
    """Another run writes into the dir, or it holds a finished result: nothing may be written into it, not even
    ``FAILED.txt``."""


def finished_metrics(output_dir: Path) -> dict | None:
    """The finished run's metrics in ``output_dir`` (``None`` when it holds none)."""
    try:
        return json.loads((output_dir / "metrics.json").read_text())
    except (FileNotFoundError, NotADirectoryError, ValueError):
        return None


def finished_notice(output_dir: Path) -> str:
    """What ``resume=true`` on a finished run says."""
    return f"{output_dir} holds a finished run (metrics.json); nothing to resume, left as it is"


def in_use(output_dir: Path, pid: int | None) -> RunDirInUse:
    return RunDirInUse(f"{output_dir} is in use by another ddip run (pid {pid}); choose another hydra.run.dir")


def running_pid(output_dir: Path) -> int | None:
    """The process id of a live run holding ``output_dir``'s lock, else ``None``."""
    try:
        pid = int((output_dir / LOCK).read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):  # no lock, an unreadable one, or its process is gone
        return None
    return pid


@contextmanager
def claimed(output_dir: Path) -> Iterator[None]:
    """Hold ``output_dir``'s lock while the block runs; :class:`RunDirInUse` if a live run holds it."""
    lock = output_dir / LOCK
    for attempt in range(2):
        try:
            descriptor = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            break
        except FileExistsError:
            pid = running_pid(output_dir)
            if pid is not None or attempt:
                raise in_use(output_dir, pid) from None
            lock.unlink(missing_ok=True)  # left by a run that no longer exists
    with os.fdopen(descriptor, "w") as handle:
        handle.write(f"{os.getpid()}\n")
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def clear_results(output_dir: Path, resuming: bool) -> None:
    """Remove an earlier run's result from ``output_dir`` (``metrics.json``, ``FAILED.txt``, ``history.csv``, the PNGs) and, unless
    ``resuming``, its checkpoints and logs, so that what the dir holds afterwards is the new run's alone. A dir
    without an earlier run's ``metrics.json`` or ``FAILED.txt`` is left as it is (it may be a folder of the user's
    own images)."""
    if not ((output_dir / "metrics.json").exists() or (output_dir / "FAILED.txt").exists()):
        return
    for path in [output_dir / "metrics.json", output_dir / "FAILED.txt", output_dir / "history.csv", *output_dir.glob("*.png")]:
        path.unlink(missing_ok=True)
    for name in () if resuming else ("checkpoints", *LOGS):
        shutil.rmtree(output_dir / name, ignore_errors=True)


def report_failure(output_dir: Path, message: str, record: bool = True) -> None:
    """Print ``message`` as ddip's one error line and, if ``record``, leave it in ``FAILED.txt`` (when the dir can
    be written: a full disk may not let it)."""
    print(f"ddip: error: {message}", file=sys.stderr)
    if record:
        with contextlib.suppress(OSError):
            (output_dir / "FAILED.txt").write_text(message + "\n")


def check_new_run_dir(output_dir: Path, resume: bool) -> str | None:
    """Before ``train.py`` writes into ``output_dir``: a one-line refusal (:class:`RunDirInUse`) if another run
    holds it or it holds a finished result and ``resume`` is false; with ``resume`` on a finished run, the line
    that says so (nothing is to be done); ``None`` when the run may start."""
    pid = running_pid(output_dir)
    if pid is not None:
        raise in_use(output_dir, pid)
    if finished_metrics(output_dir) is None:
        return None
    if resume:
        return f"ddip: {finished_notice(output_dir)}"
    raise RunDirInUse(f"{output_dir} holds a finished run (metrics.json); choose another hydra.run.dir (or delete it)")


def check_writable(output_dir: Path) -> None:
    """A one-line :class:`DdipError` naming ``output_dir`` when it cannot be created or written."""
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        probe = output_dir / ".ddip-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise DdipError(f"cannot write the run dir {output_dir}: {error.strerror or error}") from None


class RunDirGuard(Callback):
    """Hydra callback: the checks of :func:`check_new_run_dir` and :func:`check_writable` for a single run, made
    before Hydra writes the run's ``.hydra/`` config into the dir (a sweep's jobs are checked by :func:`ddip.run.run`)."""

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        output_dir = Path(OmegaConf.select(config, "hydra.run.dir")).absolute()
        try:
            notice = check_new_run_dir(output_dir, bool(config.get("resume")))
            check_writable(output_dir)
        except DdipError as error:
            report_failure(output_dir, str(error), record=False)
            sys.exit(2)
        if notice:
            print(notice, file=sys.stderr)
            sys.exit(0)
