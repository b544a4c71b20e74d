"""Training data of a supervised denoiser (``task=invdn_train``): random patches of clean images with synthetic noise.

Clean images are the only data a user of ddip has, so the noise is synthetic: additive white Gaussian noise of a
fixed σ or of a σ drawn per patch from a range (InvDN's synthetic mode: σ ~ U[0, 55]), optionally on top of
Poisson (shot) noise, clipped to [0, 1] as a saved noisy image is. Each item is a (clean, noisy, low) triple,
``low`` the bicubic ×1/4 of the clean patch: InvDN's target for its low-resolution output.

Item i of the run's ``steps × batch`` items is drawn from a generator seeded by (seed, i) (the image, the crop,
one of the 8 flips/rotations, σ and the noise), so a run is reproducible and a resumed one continues the sequence
where its checkpoint left it (the sampler starts at the trainer's step).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Dataset

from ddip.cases import PHOTOS
from ddip.data import StepLoader, StepSampler, sample_image_path
from ddip.errors import DdipError, check_range, is_number
from ddip.geometry import NUM_DIHEDRAL, dihedral, resize
from ddip.io import asset, load_image, reading

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
LOW_RES_FACTOR = 4  # InvDN's two Haar levels
HELD_OUT = "zebra"  # the tune photo left out of the default training set: the default validation image is its crop


def image_files(folder: str, key: str) -> list[Path]:
    """The images in ``folder`` (sorted), or a one-line :class:`DdipError` naming the config ``key``."""
    path = Path(folder)
    if not path.is_dir():
        raise DdipError(f"{key}={folder}: not a folder of images")
    found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not found:
        raise DdipError(f"{key}={folder}: no images in it ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return found


def default_training_images() -> list[Path]:
    """The benchmark suites' ``tune`` photos (ddip/assets/photos) but the held-out one: never a ``test`` photo."""
    return [asset("photos", f"{name}.jpg") for name in PHOTOS["tune"] if name != HELD_OUT]


@dataclass(frozen=True)
class NoiseModel:
    """Synthetic noise: Gaussian of ``sigma`` (of 255; ``[low, high]``: drawn uniformly per image), after Poisson
    noise of ``poisson_peak`` photons at white when given; the result clipped to [0, 1]."""

    sigma: float | tuple[float, float] = 25.0
    poisson_peak: float | None = None

    def __post_init__(self) -> None:
        bounds = self.sigma if isinstance(self.sigma, tuple) else (self.sigma, self.sigma)
        if len(bounds) != 2 or not all(is_number(v) and 0 <= v <= 255 for v in bounds) or bounds[0] > bounds[1]:
            raise DdipError(f"data.sigma={list(bounds) if isinstance(self.sigma, tuple) else self.sigma!r}: a σ in [0, 255] or a range [low, high]")
        if self.poisson_peak is not None:
            check_range("data.poisson_peak", self.poisson_peak, 0, open_low=True)

    @property
    def fixed_sigma(self) -> float:
        """The σ of validation images: the fixed one, or the middle of the range."""
        return sum(self.sigma) / 2 if isinstance(self.sigma, tuple) else self.sigma

    def __call__(self, clean: torch.Tensor, generator: torch.Generator, sigma: float | None = None) -> torch.Tensor:
        if sigma is None:
            low, high = self.sigma if isinstance(self.sigma, tuple) else (self.sigma, self.sigma)
            sigma = low + (high - low) * float(torch.rand((), generator=generator))
        noisy = clean
        if self.poisson_peak is not None:
            noisy = torch.poisson(clean * self.poisson_peak, generator=generator) / self.poisson_peak
        return (noisy + torch.randn(clean.shape, generator=generator) * sigma / 255).clamp(0.0, 1.0)


class NoisyPatchDataset(Dataset):
    """``length`` (clean, noisy, low) patches of ``patch``² from ``images``, item i seeded by (``seed``, i)."""

    def __init__(self, images: list[torch.Tensor], patch: int, noise: NoiseModel, length: int, seed: int):
        self.images, self.patch, self.noise, self.length, self.seed = images, patch, noise, length, seed

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + index)

        def draw(high: int) -> int:
            return int(torch.randint(high, (), generator=generator))

        image = self.images[draw(len(self.images))]
        top, left = draw(image.shape[-2] - self.patch + 1), draw(image.shape[-1] - self.patch + 1)
        clean = dihedral(image[:, top : top + self.patch, left : left + self.patch], draw(NUM_DIHEDRAL)).contiguous()
        side = self.patch // LOW_RES_FACTOR
        return {"clean": clean, "noisy": self.noise(clean, generator), "low": resize(clean, (side, side))}


class NoisyPatches(pl.LightningDataModule):
    """Noisy/clean training patches of a folder of clean images, and noisy/clean validation images.

    Args:
        train: folder of clean training images; ``None``: the suites' ``tune`` photos shipped with ddip except
            ``zebra`` (:func:`default_training_images`; never a ``test`` photo).
        val: folder of clean validation images, noised once with the seed; ``None``: the bundled ``zebra_crop.png``
            (a crop of the held-out tune photo); ``false``: no validation.
        patch: side of the training patches (a multiple of 4; InvDN's official 144).
        batch: patches per step (official 14 in the paper, 28 in its code).
        sigma: noise σ of 255, fixed or ``[low, high]`` (official synthetic mode: ``[0, 55]``).
        poisson_peak: Poisson–Gaussian noise: photons at white before the Gaussian part; ``None``: Gaussian only.
        scales: each training image is also used resized by these factors (smaller copies: the statistics of
            downscaled photos, such as the 128-px benchmark cases); a copy smaller than ``patch`` is left out.
        steps: optimisation steps (the run's ``steps``): ``steps × batch`` patches are drawn.
        seed: fixes the patches, their noise and the validation noise.
    """

    def __init__(
        self,
        train: str | None = None,
        val: str | bool | None = None,
        patch: int = 64,
        batch: int = 8,
        sigma: float | Sequence[float] = 25.0,
        poisson_peak: float | None = None,
        scales: Sequence[float] = (1.0,),
        steps: int = 1,
        seed: int = 0,
    ):
        super().__init__()
        check_range("data.patch", patch, LOW_RES_FACTOR, whole=True)
        if patch % LOW_RES_FACTOR:
            raise DdipError(f"data.patch={patch} must be a multiple of {LOW_RES_FACTOR} (InvDN's ×1/4 low-resolution target)")
        check_range("data.batch", batch, 1, whole=True)
        for scale in scales:
            check_range("data.scales", scale, 0, 1, open_low=True)
        self.noise = NoiseModel(tuple(sigma) if isinstance(sigma, Sequence) else sigma, poisson_peak)
        self.patch, self.batch, self.steps, self.seed = patch, batch, steps, seed
        paths = image_files(train, "data.train") if train else default_training_images()
        self.train_source = train or "ddip/assets/photos (tune split, zebra held out)"
        with reading("data.train"):
            originals = [load_image(path) for path in paths]
        self.images = [
            resize(image, (round(image.shape[-2] * scale), round(image.shape[-1] * scale)))
            for image in originals
            for scale in scales
            if min(image.shape[-2:]) * scale >= patch
        ]
        if not self.images:
            raise DdipError(f"data.train: every image is smaller than data.patch={patch} px at data.scales={list(scales)}")
        self.val = self.validation_pairs(val)

    def validation_pairs(self, val: str | bool | None) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(noisy, clean) validation images, the noise of image j seeded by (seed, j) at the noise model's
        :attr:`NoiseModel.fixed_sigma`."""
        if val is False:
            return []
        paths = image_files(val, "data.val") if val else [sample_image_path("zebra_crop.png")]
        with reading("data.val"):
            cleans = [load_image(path) for path in paths]
        generators = [torch.Generator().manual_seed(self.seed * 7_919 + j) for j in range(len(cleans))]
        return [(self.noise(clean, g, self.noise.fixed_sigma), clean) for clean, g in zip(cleans, generators)]

    @property
    def facts(self) -> dict:
        """What the run was trained on, for ``metrics.json``."""
        sigma = list(self.noise.sigma) if isinstance(self.noise.sigma, tuple) else self.noise.sigma
        return {"train": self.train_source, "train_images": len(self.images), "patch": self.patch, "batch": self.batch,
                "sigma": sigma, "poisson_peak": self.noise.poisson_peak, "val_images": len(self.val)}  # fmt: skip

    def train_dataloader(self) -> DataLoader:
        """``batch`` patches per step, from the trainer's current step on."""
        dataset = NoisyPatchDataset(self.images, self.patch, self.noise, self.steps * self.batch, self.seed)
        start = self.trainer.global_step * self.batch if self.trainer is not None else 0
        return StepLoader(dataset, batch_size=self.batch, sampler=StepSampler(len(dataset), start), num_workers=0)

    def val_dataloader(self) -> DataLoader:
        """The validation images one at a time (any size), as ``{"noisy", "clean"}``; none with ``val=false``."""
        return DataLoader([{"noisy": noisy, "clean": clean} for noisy, clean in self.val], batch_size=1)
