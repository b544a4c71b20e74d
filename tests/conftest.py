"""Shared fixtures: config composition through Hydra's compose API and tiny test images."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import get_class
from PIL import Image

from ddip.run import compose_train
from ddip.synthetic import texture_composite
from ddip.tasks.base import Task

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "ddip" / "conf"
DATA = ROOT / "tests" / "data"


@pytest.fixture(autouse=True)
def _torch_threads_restored():
    """A run sets torch's process-wide thread count (``threads=1``); restore it so no test inherits another's."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def options(group: str) -> list[str]:
    """The options of a config group, e.g. ``options("task") == ["seg", ...]``."""
    return sorted(path.stem for path in (CONF / group).glob("*.yaml"))


def is_decomposition(overrides: list[str]) -> bool:
    """Whether the run these overrides compose fits generators to one image (its task is a
    :class:`ddip.tasks.base.Task`); a task that is a LightningModule of its own (``task=invdn``, ``invdn_train``: a
    supervised network) has its own tests."""
    return issubclass(get_class(compose_train(overrides).task._target_), Task)


DECOMPOSITION_TASKS = [task for task in options("task") if is_decomposition([f"task={task}"])]


def two_texture_composite(size: int = 64, inside: str = "books", outside: str = "grass") -> tuple[np.ndarray, np.ndarray]:
    """An off-centre ellipse of one real texture (``tests/data``) pasted over another.

    Returns (H×W×3 uint8 image, H×W bool mask of the ellipse)."""
    inside_array, outside_array = (np.asarray(Image.open(DATA / f"{n}.png").convert("RGB").resize((size, size))) for n in (inside, outside))
    return texture_composite(inside_array, outside_array)


def tiny_texture(folder: Path, size: int = 32) -> Path:
    """A small two-texture image written to ``folder``; its path."""
    image, _ = two_texture_composite(size)
    path = folder / "tiny.png"
    Image.fromarray(image).save(path)
    return path


@pytest.fixture
def composite(tmp_path: Path) -> tuple[Path, Path]:
    """Paths of a 64-px composite (grass ellipse over zebra stripes) and its mask (white = foreground)."""
    image, mask = two_texture_composite(64, inside="grass", outside="stripes")
    image_path, mask_path = tmp_path / "composite.png", tmp_path / "mask.png"
    Image.fromarray(image).save(image_path)
    Image.fromarray((mask * 255).astype(np.uint8)).save(mask_path)
    return image_path, mask_path


def data_inputs(overrides: list[str], image: Path) -> list[str]:
    """Overrides giving the task of ``overrides`` its input: ``data.image=image``, or for a task that takes several
    images (its ``image_count``) that many flipped and rotated copies of ``image`` (``data.images``); and the maps it reads
    from the data (its ``data_maps``: inpainting's ``data.mask``, the watermark's ``data.hint``), each white on the
    centre half of ``image`` (inpainting: those pixels known; watermark: the watermark there) and black around it; the
    files written beside ``image``."""
    task = get_class(compose_train(overrides).task._target_)
    with Image.open(image) as opened:
        width, height = opened.size
        copies = [opened.transpose(Image.Transpose.ROTATE_180) if index % 2 else opened for index in range(task.image_count[0])]
    given = [f"data.image={image}"]
    if len(copies) > 1:
        for index, copy in enumerate(copies):
            copy.save(image.parent / f"copy{index}.png")
        given = [f"data.images=[{','.join(str(image.parent / f'copy{index}.png') for index in range(len(copies)))}]"]
    for name in task.data_maps:
        centre = Image.new("L", (width, height), 0)
        centre.paste(255, (width // 4, height // 4, width - width // 4, height - height // 4))
        centre.save(image.parent / f"{name}.png")
    return given + [f"data.{name}={image.parent / f'{name}.png'}" for name in task.data_maps]
