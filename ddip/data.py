"""One image is one dataset: loading and checking it, and the dihedral augmentation drawn at each step (the
transforms, padding and resizing themselves: :mod:`ddip.geometry`).

A task that decomposes several images of one scene (two mixtures of the same layers: Double-DIP Sec. 4.2) reads
them from ``data.images``, stacked along the channel axis into one 3n×H×W image, so that padding, resizing and
augmentation treat them as one (:attr:`ddip.tasks.base.Task.image_count` says how many a task takes).

The :class:`ImageDataModule` loads and checks the inputs (the image, its ground truth, the maps a task reads) and hands
them to the module once (:class:`FitInputs`); the module pads them and keeps them. The ground truth is given by name
(``data.truth={clean:gt.png}``), each name one the task accepts (:attr:`ddip.tasks.base.Task.truth_kinds`), and read
as its kind says (:data:`TRUTH_KINDS`). At every optimisation step the data
module yields only the step and which of the 8 flips/rotations it applies (:class:`StepTransforms`): the module
applies that transform to its image, its maps and its fixed noise inputs, an augmented (noise, image) pair. A task
that fits a window of its stacked images per step (a clip's frames: :attr:`ddip.tasks.base.Task.images_per_step`)
also gets the step's window from it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ddip.errors import DdipError, check_flag, check_range
from ddip.geometry import NUM_DIHEDRAL, fit_size, resize
from ddip.io import VIDEO_SUFFIXES, asset, load_image, load_map, load_video, reading

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
"""The files of a folder given as ``data.images`` that are read (sorted by name); others are ignored."""


@dataclass(frozen=True)
class DataMap:
    """A map a task may read from the data (``data.<name>``): what it is, what a map with no white pixel (and,
    where that is wrong too, one that is white everywhere) fails to give, and the task's own setting that may stand
    in for it (:meth:`ddip.tasks.base.Task.own_maps`)."""

    what: str
    empty: str
    full: str | None = None
    alternative: str | None = None


DATA_MAPS = {
    "mask": DataMap("the known pixels, an image of the input's size, white = known (data.mask=holes.png)", "marks no pixel as known (white = known)"),
    "hint": DataMap(
        "where the watermark is, an image of the input's size, white = watermark (data.hint=box.png), or task.box=[x0,y0,x1,y1] in pixels",
        "marks no pixel (white = where the watermark is)",
        "marks every pixel: the clean image is learnt from the pixels outside the hint",
        "task.box",
    ),
}
"""The maps a task may read from the data (:meth:`ImageDataModule.maps`), with what each is."""

TRUTH_KINDS = ("image", "mask", "images")
"""How a ground truth a task accepts is read (:attr:`ddip.tasks.base.Task.truth_kinds`): an RGB ``image``, a
``mask`` (white = foreground; for several images, a clip's frames, a folder of masks, one per image), or ``images``:
one RGB image per image given (a folder, sorted by name, or a list), stacked along the channel axis as the images
are (3n×H×W)."""
DEFAULT_SAMPLE = {"image": "zebra_crop.png"}
"""The bundled sample of ``data.sample`` when none is configured."""


@dataclass(frozen=True)
class FitInputs:
    """What one decomposition is fitted to and reported against, as :class:`ImageDataModule` loaded and checked it.

    ``image`` is the C×H×W image the generators fit (``data.max_side`` applied), ``maps`` the task's data maps (H×W)
    and ``truth`` the ground truth (each ``truth_scale`` times larger) at that size; ``original``,
    ``original_maps`` and ``original_truth`` are the same at the input's size, for the result.
    """

    image: torch.Tensor
    maps: dict[str, torch.Tensor]
    truth: dict[str, torch.Tensor]
    original: torch.Tensor
    original_maps: dict[str, torch.Tensor]
    original_truth: dict[str, torch.Tensor]


class StepTransforms(Dataset):
    """One item per optimisation step: ``{"step": i, "transform": k}``, k the dihedral transform of step i; with
    :meth:`fit_windows` set, also ``"images": (start, stop)``, the window of consecutive stacked images (a clip's
    frames) that step i fits.

    With ``augment`` k is drawn from a generator seeded by (seed, i), so a run is reproducible and independent of
    how items are fetched; without it every k is the identity, 0. The window is drawn next from the same generator:
    its start uniform over ``1 − per_step … count − 1``, then moved inside the clip. So every image is in at least
    ``per_step / (count + per_step − 1)`` of the steps' windows (the mean is ``per_step / count``); with a start
    uniform over the windows that fit, the first and the last would be in only ``1 / (count − per_step + 1)``.
    """

    def __init__(self, length: int, augment: bool, seed: int):
        self.length, self.augment, self.seed = length, augment, seed
        self.count, self.per_step = 0, 0

    def __len__(self) -> int:
        return self.length

    def fit_windows(self, count: int, per_step: int | None) -> None:
        """Give each step a window of ``per_step`` of the ``count`` stacked images (``None``: every step fits all)."""
        self.count, self.per_step = count, per_step or 0

    def generator(self, index: int) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed * 1_000_003 + index)

    def transform_index(self, index: int, generator: torch.Generator | None = None) -> int:
        if not self.augment:
            return 0
        return int(torch.randint(NUM_DIHEDRAL, (1,), generator=generator or self.generator(index)))

    def window(self, generator: torch.Generator) -> tuple[int, int]:
        """A window of ``per_step`` consecutive images, (start, stop), drawn from ``generator``."""
        start = int(torch.randint(1 - self.per_step, self.count, (1,), generator=generator))
        start = min(max(start, 0), self.count - self.per_step)
        return start, start + self.per_step

    def __getitem__(self, index: int) -> dict:
        generator = self.generator(index)
        item = {"step": index, "transform": self.transform_index(index, generator)}
        if self.per_step:
            item["images"] = self.window(generator)
        return item


class StepSampler(Sampler[int]):
    """Item i is step i: the indices ``start, …, length − 1``. Its length stays ``length``, the number of steps
    in the (single) epoch, so a fit resumed at step ``start`` keeps Lightning's step count."""

    def __init__(self, length: int, start: int = 0):
        self.length, self.start = length, start

    def __iter__(self):
        return iter(range(self.start, self.length))

    def __len__(self) -> int:
        return self.length


def one_item_batch(items: list[dict]) -> dict:
    """Collate a batch of one item as it is: Python ints, so that reading them never waits for an accelerator."""
    (item,) = items
    return item


class StepLoader(DataLoader):
    """A loader that resumes by construction (:class:`StepSampler` starts at the trainer's step), declared
    stateful so Lightning neither warns nor fast-forwards it."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class ImageDataModule(pl.LightningDataModule):
    """The one-image data module.

    Args:
        image: path of the image to decompose; ``None`` uses the bundled ``sample``.
        images: several images of the same size instead (a task that takes more than one, e.g. two mixtures or
            a clip's frames): a list of paths, a folder (its image files, sorted by name) or a video file
            (:data:`ddip.io.VIDEO_SUFFIXES`); stacked along the channel axis into one 3n×H×W image. Not together
            with ``image``.
        truth: optional ground truth (reporting only), name → path, each name one the task accepts
            (:attr:`ddip.tasks.base.Task.truth_kinds`), read when the task is known (:meth:`read_truth`).
        mask: optional map of the known pixels, white = known, of the image's size (``task=inpaint``): a map the
            task's loss reads (:attr:`ddip.tasks.base.Task.data_maps`), not ground truth.
        hint: optional map of where the watermark is, white = watermark, of the image's size (``task=watermark``): a
            map the task's loss reads, like ``mask``.
        truth_scale: the ground truth's size over the input's on each side (``task=sr``: its factor, the truth
            being the high-resolution image).
        augment: apply a random one of the 8 flips/rotations at every step.
        seed: fixes the augmentation sequence.
        steps: the optimisation steps, one item each (the run's ``steps``).
        max_side: above this longer side the generators fit a downscaled copy (``image``); the results are
            brought back to the input's size (``original``) at the end. ``None``: always the full size.
        sample: the bundled example in ``ddip/assets``, used when ``image`` and ``images`` are ``None``: its
            ``image`` (a file, or a list of files used as ``images``), its ground truth ``truth`` (name → file) and
            its maps (``mask``, ``hint``); the user's own truth and maps take the place of the sample's
            (:data:`DEFAULT_SAMPLE` when ``None``).
    """

    def __init__(
        self,
        image: str | None = None,
        images: list[str] | str | None = None,
        truth: Mapping[str, str] | None = None,
        augment: bool = False,
        seed: int = 0,
        steps: int = 3000,
        max_side: int | None = None,
        sample: Mapping | None = None,
        mask: str | None = None,
        hint: str | None = None,
        truth_scale: int = 1,
    ):
        super().__init__()
        check_range("data.steps", steps, 1, whole=True)
        if max_side is not None:
            check_range("data.max_side", max_side, 16, whole=True)
        check_flag("data.augment", augment)
        check_range("data.truth_scale", truth_scale, 1, whole=True)
        if image and images is not None:
            raise DdipError("give data.image (one image) or data.images (several), not both")
        self.map_paths = {name: path for name, path in (("mask", mask), ("hint", hint)) if path}
        self.truth_paths = named_paths("data.truth", truth)
        self.sample_maps: set[str] = set()  # the maps that came with the bundled sample, not from the user
        self.sample_truth: set[str] = set()  # the ground truth that came with it
        if not image and images is None:
            image, images = self.take_sample(DEFAULT_SAMPLE if sample is None else sample)
        self.path = image
        self.paths = [image] if images is None else image_paths(images)
        self.original = load_image(self.path) if images is None else stacked_images(self.paths)
        size = tuple(self.original.shape[-2:])
        self.truth_scale = truth_scale
        self.given_truth: dict[str, torch.Tensor] | None = None  # read once the task is known (read_truth)
        self.given_maps = {name: load_data_map(name, path, size) for name, path in self.map_paths.items()}
        self.max_side = max_side
        self.image = resize(self.original, fit_size(size, max_side))
        self.dataset = StepTransforms(steps, augment, seed)

    def take_sample(self, sample: Mapping) -> tuple[str | None, list[str] | None]:
        """The bundled ``sample``'s image (or images: ``(None, paths)``), its ground truth and maps taken where the user
        gave none of their own (:attr:`sample_truth`, :attr:`sample_maps`); a file that is not bundled is a one-line
        error naming its key."""
        if not isinstance(sample, Mapping):
            raise DdipError(f"data.sample={sample!r}: the bundled example is a block now, data.sample.image=FILE")
        for name, file in named_paths("data.sample.truth", sample.get("truth")).items():
            if name not in self.truth_paths:
                self.truth_paths[name] = str(sample_image_path(file, f"data.sample.truth.{name}"))
                self.sample_truth.add(name)
        for name in DATA_MAPS:
            if sample.get(name) and name not in self.map_paths:
                self.map_paths[name] = str(sample_image_path(sample[name], f"data.sample.{name}"))
                self.sample_maps.add(name)
        files = sample.get("image", DEFAULT_SAMPLE["image"])
        if isinstance(files, str):
            return str(sample_image_path(files, "data.sample.image")), None
        return None, [str(sample_image_path(file, f"data.sample.image[{index}]")) for index, file in enumerate(files)]

    @property
    def size(self) -> tuple[int, int]:
        """The input's size (the outputs' size)."""
        return int(self.original.shape[-2]), int(self.original.shape[-1])

    @property
    def count(self) -> int:
        """How many images are stacked in :attr:`original` (3 channels each)."""
        return len(self.original) // 3

    @property
    def facts(self) -> dict:
        """The input, for ``metrics.json``: its path (``images``: their paths), its size and the size fitted."""
        given = {"image": self.path} if self.path else {"images": self.paths}
        return given | {"size": list(self.size), "fit_size": list(self.image.shape[-2:])}

    def check_count(self, accepted: tuple[int, int | None]) -> None:
        """A one-line error unless the number of images given is within the task's ``accepted`` (min, max)."""
        low, high = accepted
        if self.count < low or (high is not None and self.count > high):
            wanted = f"{low}" if low == high else f"{low} to {high}" if high else f"{low} or more"
            how = "data.image=photo.png" if high == 1 else "data.images=[a.png,b.png,...] or data.images=FOLDER"
            raise DdipError(f"this task takes {wanted} image{'s' if high != 1 else ''} ({how}); {self.count} given")

    def fit_windows(self, per_step: int | None) -> None:
        """Each step fits a window of ``per_step`` consecutive images of the ones given (a task's
        :attr:`~ddip.tasks.base.Task.images_per_step`; ``None``: all of them, every step); more than are given is a
        one-line error."""
        if per_step and per_step > self.count:
            raise DdipError(f"{per_step} images a step, but {self.count} given: fit at most {self.count} a step")
        self.dataset.fit_windows(self.count, per_step)

    def truth_key(self, name: str) -> str:
        """The config key that gave the ground truth ``name``: ``data.truth.<name>``, or the sample's."""
        return f"data.sample.truth.{name}" if name in self.sample_truth else f"data.truth.{name}"

    def read_truth(self, kinds: Mapping[str, str]) -> None:
        """Read the ground truth given, each name one the task accepts and read as its kind says (``kinds``: the task's
        :attr:`~ddip.tasks.base.Task.truth_kinds`, name → one of :data:`TRUTH_KINDS`), each of the input's size times
        ``truth_scale``; a name the task does not accept, or masks of another number than the images, is a one-line
        error."""
        for name in self.truth_paths:
            if name not in kinds:
                accepted = ", ".join(kinds) or "none"
                raise DdipError(f"{self.truth_key(name)}: this task accepts no ground truth {name!r} (it accepts: {accepted})")
        self.given_truth = {}
        for name, kind in kinds.items():
            if name in self.truth_paths:
                self.given_truth[name] = self.read_one_truth(name, kind)

    def read_one_truth(self, name: str, kind: str) -> torch.Tensor:
        """The ground truth ``name`` read as ``kind``: an RGB image (C×H×W), a mask (H×W) or a folder of masks
        (n×H×W), one per image given, or one RGB image per image given (a folder or a list; 3n×H×W)."""
        path, key = self.truth_paths[name], self.truth_key(name)
        if kind == "image":
            return load_truth(path, key, self.size, scale=self.truth_scale)
        if kind == "images":
            files = image_paths(path, key)
            if len(files) != self.count:
                raise DdipError(f"{key} holds {len(files)} images for {self.count} images given: give one per image")
            return torch.cat([load_truth(file, key, self.size, scale=self.truth_scale) for file in files])
        masks = load_masks(path, key, self.size, self.truth_scale)
        count = len(masks) if masks.dim() == 3 else 1
        if count != self.count:
            raise DdipError(f"{key} holds {count} masks for {self.count} images: give one per image")
        return masks

    def truth(self, fitted: bool = False) -> dict[str, torch.Tensor]:
        """The ground truth read (:meth:`read_truth`), name → tensor, at the input's size or, with ``fitted``, at the
        size the generators fit (each times ``truth_scale``)."""
        if self.given_truth is None:
            raise RuntimeError("the ground truth is read once the task is known: call read_truth first")
        if not fitted:
            return dict(self.given_truth)
        size = tuple(side * self.truth_scale for side in self.image.shape[-2:])
        return {name: resize(value, size) if value.dim() == 3 else resize(value[None], size)[0] for name, value in self.given_truth.items()}

    def maps(self, names: tuple[str, ...], fitted: bool = True, own: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """The maps a task reads from the data (``names``: its :attr:`~ddip.tasks.base.Task.data_maps`), H×W at the
        size the generators fit or, without ``fitted``, at the input's; ``own`` are maps at the input's size that the
        task made from its own settings (:meth:`~ddip.tasks.base.Task.own_maps`: a hint from ``task.box``), in place
        of the data's. One missing, one given both ways, or one given that the task does not read, is a one-line
        error."""
        given = dict(self.given_maps)
        for name, value in (own or {}).items():
            if name in given and name not in self.sample_maps:
                raise DdipError(f"data.{name} and {DATA_MAPS[name].alternative} both give the {name}: give one of them")
            given[name] = check_data_map(name, value, DATA_MAPS[name].alternative or name)
        for name in names:
            if name not in given:
                raise DdipError(f"this task needs data.{name}: {DATA_MAPS[name].what}")
        unread = sorted(given.keys() - set(names))
        if unread:
            raise DdipError(f"data.{unread[0]} is given, but this task does not read it")
        size = tuple(self.image.shape[-2:]) if fitted else self.size
        return {name: (resize(given[name][None], size)[0] > 0.5).float() for name in names}

    def inputs(self, names: tuple[str, ...], own: dict[str, torch.Tensor] | None = None) -> FitInputs:
        """The image, the maps ``names`` (a task's :attr:`~ddip.tasks.base.Task.data_maps`, ``own`` as in
        :meth:`maps`) and the ground truth, at the fitted size and at the input's: what a decomposition reads."""
        return FitInputs(
            image=self.image,
            maps=self.maps(names, own=own),
            truth=self.truth(fitted=True),
            original=self.original,
            original_maps=self.maps(names, fitted=False, own=own),
            original_truth=self.truth(),
        )

    def train_dataloader(self) -> DataLoader:
        """The steps' items in order, from the trainer's current step on (so a resumed fit continues the
        sequence where the checkpoint left it)."""
        start = self.trainer.global_step if self.trainer is not None else 0
        sampler = StepSampler(len(self.dataset), start)
        return StepLoader(self.dataset, batch_size=1, sampler=sampler, num_workers=0, collate_fn=one_item_batch)

    def predict_dataloader(self) -> DataLoader:
        """The input image once, at its size (a trained network applied to it: ``task=invdn``)."""
        return DataLoader([self.original], batch_size=1)


def load_truth(
    path: str, key: str, size: tuple[int, int], loader: Callable[[str], torch.Tensor] = load_image, scale: int = 1
) -> torch.Tensor:
    """Ground truth read by ``loader`` (an RGB image, or a mask with :func:`ddip.io.load_map`), which must have the
    input's ``size`` times ``scale``: a score against a resized truth would measure the resizing."""
    with reading(key):
        truth = loader(path)
        if tuple(truth.shape[-2:]) != (size[0] * scale, size[1] * scale):
            times = f" × {scale}" if scale > 1 else ""
            raise DdipError(f"{path} is {tuple(truth.shape[-2:])}, the image is {size}{times}")
    return truth


def image_paths(images: list[str] | str, key: str = "data.images") -> list[str]:
    """The files of ``data.images`` (or of another config ``key`` that takes several images): the list as given, or a
    folder's image files (:data:`IMAGE_SUFFIXES`) sorted by name; an empty list or folder, or a string that is no
    folder, is a one-line error."""
    if isinstance(images, str) and Path(images).suffix.lower() in VIDEO_SUFFIXES and key == "data.images":
        return [images]
    if isinstance(images, str):
        folder = Path(images)
        if not folder.is_dir():
            video = ", a folder of images or a video file" if key == "data.images" else " or a folder of images"
            raise DdipError(f"{key}={images!r}: give a list [a.png,b.png]{video}")
        paths = sorted(str(path) for path in folder.iterdir() if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES)
        if not paths:
            raise DdipError(f"{key}: no image files ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
        return paths
    if not images:
        raise DdipError(f"{key} is empty: give a list [a.png,b.png] or a folder of images")
    return [str(path) for path in images]


def stacked_images(paths: list[str]) -> torch.Tensor:
    """The images at ``paths`` (3×H×W each, all of one size) stacked along the channel axis: 3n×H×W; or a video
    file's frames so (:func:`ddip.io.load_video`)."""
    if len(paths) == 1 and Path(paths[0]).suffix.lower() in VIDEO_SUFFIXES:
        with reading("data.images"):
            return load_video(paths[0])
    loaded = []
    for index, path in enumerate(paths):
        with reading(f"data.images[{index}]"):
            loaded.append(load_image(path))
            if loaded[-1].shape != loaded[0].shape:
                size, first = tuple(loaded[-1].shape[-2:]), tuple(loaded[0].shape[-2:])
                raise DdipError(f"{path} is {size}, {paths[0]} is {first}: the images must have one size")
    return torch.cat(loaded)


def load_masks(path: str, key: str, size: tuple[int, int], scale: int = 1) -> torch.Tensor:
    """A ground-truth mask (the config ``key`` gave ``path``): one H×W mask, or a folder of masks (one per image of a
    clip, sorted by name) as n×H×W; each of the input's ``size`` times ``scale``."""
    if not Path(path).is_dir():
        return load_truth(path, key, size, load_map, scale)
    return torch.stack([load_truth(file, key, size, load_map, scale) for file in image_paths(path)])


def named_paths(key: str, given: Mapping | None) -> dict[str, str]:
    """The ground truth of the config ``key`` (``data.truth``, ``data.sample.truth``) as name → path, names given
    null left out; anything but a mapping of names to paths is a one-line error."""
    if given is None:
        return {}
    if not isinstance(given, Mapping):
        raise DdipError(f"{key}={given!r}: give the ground truth by name, {key}={{clean:gt.png}}")
    for name, path in given.items():
        several = isinstance(path, Sequence) and not isinstance(path, str) and all(isinstance(item, str) for item in path)
        if path is not None and not isinstance(path, str) and not several:
            raise DdipError(f"{key}.{name}={path!r}: give one path (a folder of masks for a clip), or a list of images")
    return {str(name): path if isinstance(path, str) else [str(item) for item in path] for name, path in given.items() if path is not None}


def load_data_map(name: str, path: str, size: tuple[int, int]) -> torch.Tensor:
    """``data.<name>`` (one of :data:`DATA_MAPS`) read from ``path`` as an H×W map, 1 where the file is white (above
    mid-grey); it must have the image's ``size`` and mark at least one pixel (:func:`check_data_map`)."""
    key = f"data.{name}"
    return check_data_map(name, (load_truth(path, key, size, load_map) > 0.5).float(), f"{key}: {path}")


def check_data_map(name: str, value: torch.Tensor, source: str) -> torch.Tensor:
    """``value``, a binary H×W map ``name`` from ``source``, unless it marks no pixel (or, for a map that must leave
    some out, every pixel): then a one-line :class:`DdipError`."""
    if not value.any():
        raise DdipError(f"{source} {DATA_MAPS[name].empty}")
    if DATA_MAPS[name].full and value.all():
        raise DdipError(f"{source} {DATA_MAPS[name].full}")
    return value


def sample_image_path(name: str = "zebra_crop.png", key: str = "data.sample.image") -> Path:
    """A bundled sample in ``ddip/assets``: ``zebra_crop.png``, the zebra crop of the DIP repository (the classic
    Double-DIP example), and ``hazy_zebra.png`` / ``noisy_zebra.png`` made from it by ``scripts/make_samples.py``;
    or a folder of them (a ground truth of one image per image). An unknown ``name`` is a one-line error naming the
    config ``key`` and the bundled samples."""
    folder = asset()
    path = folder / name
    if not (path.is_file() or path.is_dir()):
        samples = sorted(entry.name for entry in folder.iterdir() if entry.name.endswith(".png"))
        raise DdipError(f"{key}={name!r} is not a bundled sample; one of {', '.join(samples)}")
    return path
