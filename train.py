"""ddip entry point: ``python train.py task=seg backbone=unet data.image=my.jpg steps=3000 seed=1``.

Problems with the input or the configuration end the run with one line on stderr, exit code 2, and a
``FAILED.txt`` in the run dir (never a ``metrics.json``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from ddip.errors import DdipError


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> dict:
    from ddip.run import run

    output_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        return run(cfg, output_dir)
    except (DdipError, OmegaConfBaseException) as error:
        message = str(error) if isinstance(error, DdipError) else f"invalid configuration: {str(error).splitlines()[0]}"
        (output_dir / "FAILED.txt").write_text(message + "\n")
        print(f"ddip: error: {message}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
