"""ddip entry point: ``python train.py task=seg backbone=unet data.image=my.jpg steps=3000 seed=1``.

Problems with the input or the configuration end the run with one line on stderr, exit code 2, and a
``FAILED.txt`` in the run dir (never a ``metrics.json``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from ddip.errors import DdipError


def user_message(error: BaseException) -> str:
    """One line for an error: the :class:`DdipError` behind it, else the innermost cause (Hydra wraps
    errors raised while instantiating a component)."""
    innermost = error
    while error is not None:
        if isinstance(error, DdipError):
            return str(error)
        innermost, error = error, error.__cause__
    if isinstance(innermost, OmegaConfBaseException):
        return f"invalid configuration: {str(innermost).splitlines()[0]}"
    return f"invalid configuration: {innermost.__class__.__name__}: {str(innermost).splitlines()[0]}"


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> dict:
    from ddip.run import run

    output_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        return run(cfg, output_dir)
    except (DdipError, InstantiationException, OmegaConfBaseException) as error:
        message = user_message(error)
        (output_dir / "FAILED.txt").write_text(message + "\n")
        print(f"ddip: error: {message}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
