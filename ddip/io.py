"""Image reading and writing.

Every image enters ddip through :func:`load_image` (any PIL-readable file; grayscale, palette, RGBA and
16-bit converted to float RGB in [0, 1]) or :func:`load_map` (a single-channel map such as a hint or a
ground-truth mask, resized to the image), and leaves through :func:`save_image` as an 8-bit PNG.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from ddip.errors import DdipError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".gif")
"""Files :func:`load_video` reads as a clip (``data.images=clip.mp4``)."""

MIN_SIDE = 4
"""Smallest height/width ddip accepts: below it there is nothing for a prior to model."""


def asset(*parts: str) -> Path:
    """The path of a file shipped in ``ddip/assets`` (sample images, the suites' photos, the InvDN checkpoint)."""
    return Path(str(files("ddip").joinpath("assets", *parts)))


@contextmanager
def reading(key: str) -> Iterator[None]:
    """Name the config key whose file is being read in any :class:`DdipError` raised meanwhile, so that
    ``image not found: PATH`` says which of several given files it was (``data.truth.clean: image not found: PATH``)."""
    try:
        yield
    except DdipError as error:
        raise DdipError(f"{key}: {error}") from None


def _open(path: str | os.PathLike) -> Image.Image:
    path = Path(path)
    if not path.exists():
        raise DdipError(f"image not found: {path}")
    if path.is_dir():
        raise DdipError(f"expected an image file, got a directory: {path}")
    try:
        image = Image.open(path)
        image.load()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        raise DdipError(f"not a readable image: {path} ({error.__class__.__name__})") from None
    return ImageOps.exif_transpose(image)


def _to_float_array(image: Image.Image) -> np.ndarray:
    """Pixel values in [0, 1], shape H×W or H×W×C, whatever the bit depth."""
    array = np.asarray(image)
    if array.dtype == np.bool_:
        return array.astype(np.float32)
    if np.issubdtype(array.dtype, np.floating):
        return np.clip(np.nan_to_num(array.astype(np.float32)), 0.0, 1.0)
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    # 16-bit PNG/TIFF arrive as uint16 or int32 ("I;16", "I"): scale by the 16-bit range.
    peak = 65535.0 if array.max(initial=0) > 255 or array.dtype == np.uint16 else 255.0
    return np.clip(array.astype(np.float32) / peak, 0.0, 1.0)


def _flatten_alpha(rgba: np.ndarray) -> np.ndarray:
    """Composite an RGBA array over white, so transparent pixels do not show arbitrary colours."""
    alpha = rgba[..., 3:4]
    return rgba[..., :3] * alpha + (1.0 - alpha)


def load_image(path: str | os.PathLike) -> torch.Tensor:
    """Read an image as a float32 RGB tensor 3×H×W in [0, 1].

    Grayscale (L, I, I;16, F, 1) is replicated to three channels, palette and CMYK images are converted,
    and RGBA/LA is composited over white.
    """
    image = _open(path)
    if image.mode in ("P", "PA"):
        image = image.convert("RGBA")
    elif image.mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        image = image.convert("RGB")
    elif image.mode == "LA":
        image = image.convert("RGBA")
    array = _to_float_array(image)
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    if array.shape[2] == 4:
        array = _flatten_alpha(array)
    check_size(array.shape[0], array.shape[1], path)
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


def check_size(height: int, width: int, path: str | os.PathLike) -> None:
    """Reject images too small to fit, with the size in the message."""
    if min(height, width) < MIN_SIDE:
        raise DdipError(f"image {path} is {width}×{height} px; ddip needs at least {MIN_SIDE} px per side")


def load_map(path: str | os.PathLike, size: tuple[int, int] | None = None) -> torch.Tensor:
    """Read a single-channel map (hint, mask) in [0, 1] as an H×W tensor, resized bilinearly to ``size`` (``None``:
    its own size)."""
    image = _open(path)
    if image.mode not in ("L", "I", "I;16", "F", "1"):
        image = image.convert("L")
    array = _to_float_array(image)
    tensor = torch.from_numpy(np.ascontiguousarray(array))[None, None]
    if size is not None and tuple(tensor.shape[-2:]) != tuple(size):
        tensor = F.interpolate(tensor, size=size, mode="bilinear", align_corners=False)
    return tensor[0, 0].clamp(0.0, 1.0)


def to_uint8(tensor: torch.Tensor) -> np.ndarray:
    """A C×H×W or H×W tensor in [0, 1] as an H×W(×3) uint8 array."""
    array = tensor.detach().float().cpu().clamp(0.0, 1.0).numpy()
    if array.ndim == 3:
        array = array.transpose(1, 2, 0)
        if array.shape[2] == 1:
            array = array[..., 0]
    return (array * 255.0 + 0.5).astype(np.uint8)


def save_image(path: str | os.PathLike, tensor: torch.Tensor) -> None:
    """Write a C×H×W (C = 1 or 3) or H×W tensor in [0, 1] as an 8-bit PNG."""
    Image.fromarray(to_uint8(tensor)).save(path)


def save_animation(path: str | os.PathLike, frames: torch.Tensor, seconds_per_frame: float = 0.125) -> None:
    """Write n×C×H×W frames in [0, 1] as an animated GIF that loops."""
    first, *rest = (Image.fromarray(to_uint8(frame)) for frame in frames)
    first.save(path, save_all=True, append_images=rest, duration=round(1000 * seconds_per_frame), loop=0)


def save_result(folder: Path, stem: str, tensor: torch.Tensor) -> None:
    """A result image as ``<folder>/<stem>.png`` or, for a clip (n×C×H×W), ``<stem>.gif``; a stem may name a
    sub-folder (``mask/000``)."""
    path = folder / stem
    path.parent.mkdir(parents=True, exist_ok=True)
    if tensor.dim() == 4:
        save_animation(f"{path}.gif", tensor)
    else:
        save_image(f"{path}.png", tensor)


def load_video(path: str | os.PathLike) -> torch.Tensor:
    """A video file's frames stacked along the channel axis, 3n×H×W in [0, 1]. Read with OpenCV's video reader:
    OpenCV is already a dependency and its wheels carry FFmpeg, so MP4, AVI, MOV, MKV, WebM and GIF read with no
    further library."""
    import cv2

    if not Path(path).is_file():
        raise DdipError(f"video not found: {path}")
    capture, frames = cv2.VideoCapture(str(path)), []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame[..., ::-1])  # OpenCV's BGR order to RGB
    capture.release()
    if not frames:
        raise DdipError(f"not a readable video: {path}")
    check_size(*frames[0].shape[:2], path)
    array = np.stack(frames).astype(np.float32) / 255.0
    return torch.from_numpy(array).permute(0, 3, 1, 2).reshape(-1, *array.shape[1:3]).contiguous()


def write_json(path: str | os.PathLike, data: dict) -> None:
    """Write JSON atomically: a half-written metrics file never looks like a finished result."""
    path = Path(path)
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    temporary.replace(path)


def write_history(path: str | os.PathLike, history: list[dict]) -> None:
    """``history.csv``: one row an evaluation (its step, loss terms, selection score and any ground-truth metrics),
    the numbers behind ``progress.png``; a key an evaluation lacks is left empty."""
    columns = ["step", *sorted({key for record in history for key in record} - {"step"})]
    with Path(path).open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(history)


def save_progress(path: str | os.PathLike, history: list[dict], snapshots: list[tuple[int, dict]], quality: list[str]) -> None:
    """``progress.png``: loss terms and ``quality`` (the history's ground-truth metrics, with the selection score)
    over steps (top), intermediate results (bottom grid, drawn as one mosaic: an axes per panel made saving the
    slowest part of a short run)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = max((len(panel) for _, panel in snapshots), default=1)
    rows = len(snapshots)
    width, height = 2.2 * max(columns, 4), 3.2 + 2.2 * rows
    figure = plt.figure(figsize=(width, height))
    grid = figure.add_gridspec(
        2 if rows else 1, 2, height_ratios=[1.5, rows] if rows else [1],
        left=0.55 / width, right=1 - 0.55 / width, top=1 - 0.3 / height, bottom=0.1 / height, hspace=0.12 + 0.6 / height, wspace=0.25,
    )  # fmt: skip
    losses = sorted({key for record in history for key in record} - {"step", "score", *quality})
    _plot_losses(figure.add_subplot(grid[0, 0]), history, losses)
    _plot_quality(figure.add_subplot(grid[0, 1]), history, ["score", *quality])
    if rows:
        _draw_snapshots(figure.add_subplot(grid[1, :]), snapshots, columns)
    figure.savefig(path, dpi=80)
    plt.close(figure)


def _draw_snapshots(axis, snapshots: list[tuple[int, dict]], columns: int) -> None:
    """The snapshots' panels as one RGB mosaic (a row per snapshot, a cell per layer, each titled ``name @ step``)."""
    panels = [[(f"{name} @ {step}", to_uint8(image)) for name, image in panel.items()] for step, panel in snapshots]
    cell_h = max(array.shape[0] for row in panels for _, array in row)
    cell_w = max(array.shape[1] for row in panels for _, array in row)
    gap, title = max(cell_w // 12, 2), max(cell_h // 6, 8)
    mosaic = np.full((len(panels) * (cell_h + title + gap), columns * (cell_w + gap), 3), 255, np.uint8)
    for row, panel in enumerate(panels):
        for column, (label, array) in enumerate(panel):
            top, left = row * (cell_h + title + gap) + title, column * (cell_w + gap)
            rgb = np.repeat(array[..., None], 3, axis=2) if array.ndim == 2 else array
            mosaic[top : top + array.shape[0], left : left + array.shape[1]] = rgb
            axis.text(left + array.shape[1] / 2, top - 1, label, fontsize=8, ha="center", va="bottom")
    axis.imshow(mosaic, interpolation="nearest", aspect="equal")
    axis.axis("off")


def _curve(history: list[dict], name: str) -> tuple[list[int], list[float]]:
    return [record["step"] for record in history], [record.get(name, float("nan")) for record in history]


def _plot_losses(axis, history: list[dict], names: list[str]) -> None:
    """Loss terms at the evaluation steps, on a log axis."""
    for index, name in enumerate(names):
        axis.plot(*_curve(history, name), label=name, color=f"C{index}")
    axis.set_yscale("log")
    axis.set_xlabel("step")
    axis.set_title("loss terms (at evaluation steps)", fontsize=9, y=1.0)  # a fixed y skips a slow layout pass
    axis.legend(fontsize=7, loc="upper left")


def _plot_quality(axis, history: list[dict], names: list[str]) -> None:
    """The selection score and the ground-truth metrics: those within [0, 1] throughout (IoU, SSIM) on a twin
    axis, the others (PSNR-like, in dB) on the left."""
    unit = [name for name in names if all(0.0 <= value <= 1.0 for value in _curve(history, name)[1] if math.isfinite(value))]
    unit_axis = axis.twinx() if unit else None
    for index, name in enumerate(names):
        target = unit_axis if name in unit else axis
        target.plot(*_curve(history, name), label="reconstruction PSNR (score)" if name == "score" else name, color=f"C{index}")
    if unit_axis is not None:
        unit_axis.set_ylim(0, 1)
        unit_axis.legend(fontsize=7, loc="lower right")
    axis.set_xlabel("step")
    axis.set_title("quality (dB left, [0, 1] right)", fontsize=9, y=1.0)
    axis.legend(fontsize=7, loc="upper left")
