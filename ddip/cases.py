"""Benchmark suites: cases with known answers made from the photos shipped in ``ddip/assets/photos``, varied in
structure, each in a fixed ``tune`` or ``test`` split (a photo belongs to one split only, so defaults chosen on
``tune`` are measured on photos they never saw).

- **seg**: a region of one photo pasted over another, shaped as one object, several separate objects, objects
  touching the border, an object with thin parts, a small one (≈ 5 % of the image), a large one (≈ 60 %), or one
  of low contrast with the background (the pasted region pulled to the background's mean colour, half its contrast).
- **haze**: ``I = t·J + (1 − t)·A``, ``t = exp(−β·d)`` (Koschmieder; He et al., TPAMI 2011, Eq. 1), with the depth
  ``d`` following objects (a photo's region pasted over another, nearer than a smoothly receding background), a
  ramp in any direction, or a smooth random field; the airlight from white to coloured, β from light to dense haze.
- **noise**: every photo with additive white Gaussian noise of σ 15, 25 and 50 (of 255), clipped.
- **inpaint**: every photo with half its pixels missing, drawn independently (DIP's inpainting table), and with
  random strokes missing (scribbles over the photo); the missing pixels black, the mask of the known ones given.
- **sr**: every photo shrunk 2, 4 and 8 times with Lanczos (as DIP makes its inputs); the photo is the ground truth.
- **mixtures**: two mixtures ``I_k = α_k·L1 + (1 − α_k)·L2`` of the same two layers (Double-DIP Sec. 4.2), the layers
  a photo and a texture, two photos, or two textures (seeded coloured gratings, :func:`texture`), each with the
  weights (0.3, 0.7) and (0.6, 0.4).
- **separation**: one mixture of two layers (a photo and a texture, two photos, or two textures), in equal parts or
  with the first layer's weight α 0.3 or 0.7 (a faint layer over a strong one, as a reflection over the scene
  behind glass), in the layers of ``task=separate``: ``I = (y1 + y2)/2`` with ``y1 = 2sα·L1`` and
  ``y2 = 2s(1 − α)·L2``, so ``I = s·(α·L1 + (1 − α)·L2)`` (:func:`separation_layers`).
- **video**: a clip of :data:`VIDEO_FRAMES` frames, one photo's region (an ellipse, its texture moving with it)
  travelling in a straight line over another photo held still (Double-DIP Sec. 4.5), fast (across 55 % of the
  side) or slow (30 %: the object covers its middle pixels in most frames, the hard case for a median background);
  the ground truth is each frame's mask.
- **watermark**: every photo with two semi-transparent text watermarks, one at a time (Double-DIP Sec. 4.4:
  ``I = m·w + (1 − m)·c``), of varied text, size, stroke, colour (white, black or a hue), opacity and position; the
  hint is the box around the text grown by a margin (white = watermark).
- **watermark_many**: five photos of a split under one such watermark (Double-DIP Sec. 4.4, several images sharing a
  watermark, no hint); the ground truth is the photos.

Every case is drawn from a generator seeded by (task, split, index): the same command makes the same suite.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ddip.geometry import resize
from ddip.haze import hazy_image
from ddip.io import asset, load_image
from ddip.synthetic import bounding_box, box_map, gaussian_noise, lanczos_downscale, pixel_mask, text_size, watermark

PHOTOS = {
    "tune": ("building", "f16", "butterfly1", "barbara", "snail", "vase", "zebra"),
    "test": ("kate", "monkey", "library", "cave", "butterfly2", "butterfly3"),
}
SPLITS = tuple(PHOTOS)
SEG_STRUCTURES = ("one", "several", "border", "thin", "small", "large", "low_contrast")
DEPTHS = ("objects", "ramp", "field")
SIGMAS = (15, 25, 50)
HOLES = ("pixels", "strokes")
MISSING = 0.5  # the fraction of pixels missing in the "pixels" cases
FACTORS = (2, 4, 8)
MIXINGS = ((0.3, 0.7), (0.6, 0.4))  # the weights of the first layer in the two mixtures of a "mixtures" case
LAYER_PAIRS = ("photo_texture", "photo_photo", "texture_texture")
SEPARATION_WEIGHTS = (0.5, 0.3, 0.5, 0.7)  # the weight α of the first layer in the one mixture of a "separation" case
WATERMARKS_PER_PHOTO = 2
WATERMARK_TEXTS = ("SAMPLE", "© ddip", "PROOF", "DRAFT", "stock", "© 2026", "preview")
WATERMARK_MANY_CASES = 3  # cases a split of the watermark_many suite
WATERMARK_MANY_IMAGES = 5  # photos a case, under one watermark
WATERMARK_COLOURS = {"white": (1.0, 1.0, 1.0), "black": (0.0, 0.0, 0.0), "red": (0.9, 0.15, 0.1), "blue": (0.15, 0.3, 0.95), "yellow": (1.0, 0.85, 0.1)}
TASK_OF = {
    "seg": "seg",
    "haze": "dehaze",
    "noise": "denoise",
    "inpaint": "inpaint",
    "sr": "sr",
    "mixtures": "separate_pair",
    "separation": "separate",
    "watermark": "watermark",
    "watermark_many": "watermark_many",
    "video": "video",
}
VIDEO_FRAMES = 8
VIDEO_MOTIONS = {"fast": 0.55, "slow": 0.3}  # the object's travel over the clip, as a fraction of the side
VIDEO_PAIRS = 3  # photo pairs per motion and split
LAYER_TRUTH = {"layer1": "layer1", "layer2": "layer2"}  # the ground truth of a mixture: its layers' images


@dataclass
class Case:
    """One case: its name, the ddip task, its images (file stem → C×H×W in [0, 1]; a stem ``folder/name`` is a file of
    a folder), its other facts and its ground truth (a name of ``data.truth`` → the stem of its image, or the folder of
    a clip's masks)."""

    name: str
    task: str
    images: dict[str, torch.Tensor]
    facts: dict
    truth: dict[str, str] = field(default_factory=dict)

    def manifest(self) -> dict:
        """The case's entry in ``cases.json`` (the layout of ``scripts/evaluate.py``): its files by stem (a folder's
        files: the folder, in its facts), its ground truth as ``truth`` (name → file or folder) and its facts."""
        files = {stem: f"{stem}.png" for stem in self.images if "/" not in stem and stem not in self.truth.values()}
        truth = {name: f"{stem}.png" if stem in self.images else stem for name, stem in self.truth.items()}
        return {"task": self.task} | files | {"truth": truth} | self.facts


def photo(name: str, size: int) -> torch.Tensor:
    """A shipped photo, centre-cropped to a square and resized to ``size``² (3×size×size in [0, 1])."""
    image = load_image(asset("photos", f"{name}.jpg"))
    height, width = image.shape[-2:]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return resize(image[:, top : top + side, left : left + side], (size, size))


def seeded(*key: str | int) -> np.random.Generator:
    """A generator seeded by ``key`` (stable across runs and machines)."""
    return np.random.default_rng([sum(ord(c) * 31**i for i, c in enumerate(str(part))) % 2**32 for part in key])


def ellipse(size: int, centre: tuple[float, float], radii: tuple[float, float], angle: float) -> np.ndarray:
    """A size×size bool mask of a rotated ellipse; centre and radii as fractions of the side."""
    y, x = (np.mgrid[0:size, 0:size] + 0.5) / size
    dy, dx = y - centre[0], x - centre[1]
    cos, sin = math.cos(angle), math.sin(angle)
    u, v = dx * cos + dy * sin, -dx * sin + dy * cos
    return (u / radii[1]) ** 2 + (v / radii[0]) ** 2 <= 1.0


def bar(size: int, start: tuple[float, float], end: tuple[float, float], width: float) -> np.ndarray:
    """A size×size bool mask of a straight bar of ``width`` (fraction of the side) between two points."""
    y, x = (np.mgrid[0:size, 0:size] + 0.5) / size
    (y0, x0), (y1, x1) = start, end
    along = ((y - y0) * (y1 - y0) + (x - x0) * (x1 - x0)) / max((y1 - y0) ** 2 + (x1 - x0) ** 2, 1e-9)
    along = np.clip(along, 0.0, 1.0)
    return np.hypot(y - (y0 + along * (y1 - y0)), x - (x0 + along * (x1 - x0))) <= width / 2


def area_radii(rng: np.random.Generator, area: float, spread: float = 1.6) -> tuple[float, float]:
    """Ellipse radii (fractions) covering ``area`` of the image, with an aspect ratio from 1/``spread`` to ``spread``."""
    aspect = math.exp(rng.uniform(-math.log(spread), math.log(spread)))
    radius = math.sqrt(area / math.pi)
    return radius * math.sqrt(aspect), radius / math.sqrt(aspect)


def object_mask(rng: np.random.Generator, size: int, structure: str) -> np.ndarray:
    """The foreground of a segmentation case of ``structure`` (:data:`SEG_STRUCTURES`), size×size bool."""
    angle = rng.uniform(0, math.pi)
    if structure in ("one", "low_contrast"):
        radii = area_radii(rng, rng.uniform(0.15, 0.3))
        return ellipse(size, tuple(rng.uniform(0.35, 0.65, 2)), radii, angle)
    if structure == "small":
        return ellipse(size, tuple(rng.uniform(0.2, 0.8, 2)), area_radii(rng, 0.05), angle)
    if structure == "large":
        return ellipse(size, (0.5, 0.5), area_radii(rng, 0.6, spread=1.12), angle)
    if structure == "several":
        mask = np.zeros((size, size), bool)
        for centre in rng.permutation([(0.25, 0.25), (0.25, 0.75), (0.75, 0.25), (0.75, 0.75), (0.5, 0.5)])[: rng.integers(3, 6)]:
            jitter = tuple(np.asarray(centre) + rng.uniform(-0.04, 0.04, 2))
            mask |= ellipse(size, jitter, area_radii(rng, rng.uniform(0.02, 0.045)), rng.uniform(0, math.pi))
        return mask
    if structure == "border":
        mask = np.zeros((size, size), bool)
        for side in rng.permutation(4)[: rng.integers(2, 4)]:
            along = rng.uniform(0.25, 0.75)
            centre = [(0.0, along), (along, 1.0), (1.0, along), (along, 0.0)][side]
            mask |= ellipse(size, centre, area_radii(rng, rng.uniform(0.08, 0.14)), rng.uniform(0, math.pi))
        return mask
    if structure == "thin":  # a body with legs and a tail, each a few pixels wide
        centre = tuple(rng.uniform(0.4, 0.6, 2))
        mask = ellipse(size, centre, (0.12, 0.22), 0.0)
        width = max(2.5 / size, 0.02)
        for dx in (-0.15, -0.05, 0.05, 0.15):
            foot = (min(centre[0] + rng.uniform(0.28, 0.36), 0.97), centre[1] + dx + rng.uniform(-0.03, 0.03))
            mask |= bar(size, (centre[0] + 0.05, centre[1] + dx), foot, width)
        tail = (centre[0] - rng.uniform(0.1, 0.25), min(centre[1] + rng.uniform(0.3, 0.4), 0.97))
        return mask | bar(size, (centre[0], centre[1] + 0.2), tail, width)
    raise ValueError(f"unknown structure {structure!r}; one of {', '.join(SEG_STRUCTURES)}")


def pairs(split: str, count: int, rng: np.random.Generator) -> list[tuple[str, str]]:
    """``count`` (foreground, background) pairs of different photos of ``split``."""
    names = PHOTOS[split]
    every = [(a, b) for a in names for b in names if a != b]
    return [every[i] for i in rng.permutation(len(every))[:count]]


def paste(foreground: torch.Tensor, background: torch.Tensor, mask: np.ndarray) -> torch.Tensor:
    region = torch.from_numpy(mask)[None].float()
    return region * foreground + (1 - region) * background


def seg_cases(split: str, size: int, per_structure: int) -> list[Case]:
    cases = []
    for structure in SEG_STRUCTURES:
        rng = seeded("seg", split, structure)
        for index, (inside, outside) in enumerate(pairs(split, per_structure, rng)):
            foreground, background = photo(inside, size), photo(outside, size)
            if structure == "low_contrast":
                mean = background.mean(dim=(1, 2), keepdim=True)
                foreground = (mean + 0.5 * (foreground - foreground.mean(dim=(1, 2), keepdim=True))).clamp(0, 1)
            mask = object_mask(rng, size, structure)
            name = f"seg_{structure}_{index}_{inside}_on_{outside}"
            images = {"image": paste(foreground, background, mask), "mask": torch.from_numpy(mask)[None].float()}
            facts = {"structure": structure, "photos": [inside, outside], "foreground_fraction": round(float(mask.mean()), 4)}
            cases.append(Case(name, "seg", images, facts, {"mask": "mask"}))
    return cases


def smooth_field(rng: np.random.Generator, size: int, cells: int = 4) -> torch.Tensor:
    """A smooth random field in [0, 1]: a cells×cells grid of uniform values, bicubically upsampled."""
    grid = torch.from_numpy(rng.uniform(0, 1, (1, 1, cells, cells))).float()
    field = F.interpolate(grid, size=(size, size), mode="bicubic", align_corners=True)[0, 0]
    return (field - field.min()) / (field.max() - field.min()).clamp_min(1e-6)


def ramp(rng: np.random.Generator, size: int) -> torch.Tensor:
    """A linear ramp in [0, 1] along a random direction."""
    angle = rng.uniform(0, 2 * math.pi)
    y, x = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    values = x * math.cos(angle) + y * math.sin(angle)
    return (values - values.min()) / (values.max() - values.min())


def depth_map(rng: np.random.Generator, size: int, kind: str) -> tuple[torch.Tensor, np.ndarray | None]:
    """Depth in (0, 1] (1 = far) of a haze case and, for ``objects``, the near objects' mask."""
    if kind == "ramp":
        return 0.2 + 0.8 * ramp(rng, size), None
    if kind == "field":
        return 0.1 + 0.9 * smooth_field(rng, size), None
    if kind == "objects":
        mask = object_mask(rng, size, str(rng.choice(["one", "several", "border", "large"])))
        far = 0.7 + 0.3 * ramp(rng, size)
        near = float(rng.uniform(0.1, 0.45))
        return torch.where(torch.from_numpy(mask), torch.tensor(near), far), mask
    raise ValueError(f"unknown depth {kind!r}; one of {', '.join(DEPTHS)}")


def airlight(rng: np.random.Generator) -> list[float]:
    """An airlight from near white to coloured: a brightness of 0.7–0.98 times a tint of up to ±12 % per channel."""
    brightness, tint = rng.uniform(0.7, 0.98), rng.uniform(-0.12, 0.12, 3) * rng.choice([0.0, 0.5, 1.0])
    return [round(float(v), 4) for v in np.clip(brightness * (1 + tint), 0.05, 1.0)]


def haze_cases(split: str, size: int, count: int) -> list[Case]:
    cases, names = [], PHOTOS[split]
    for index in range(count):
        rng = seeded("haze", split, index)
        kind = DEPTHS[index % len(DEPTHS)]
        scene = names[index % len(names)]
        depth, mask = depth_map(rng, size, kind)
        clear = photo(scene, size)
        photos = [scene]
        if mask is not None:  # the near objects are another photo's region: depth edges are image edges
            other = str(rng.choice([name for name in names if name != scene]))
            clear, photos = paste(photo(other, size), clear, mask), [other, scene]
        beta = round(float(math.exp(rng.uniform(math.log(0.6), math.log(3.0)))), 3)
        colour = airlight(rng)
        transmission = torch.exp(-beta * depth)[None]
        hazy = hazy_image(clear, transmission, torch.tensor(colour)[:, None, None]).clamp(0, 1)
        images = {"image": hazy, "clean": clear, "gt_transmission": transmission}
        facts = {"depth": kind, "photos": photos, "beta": beta, "airlight": colour}
        cases.append(Case(f"haze_{kind}_{index}_{scene}", "dehaze", images, facts, {"clean": "clean"}))
    return cases


def noise_cases(split: str, size: int) -> list[Case]:
    cases = []
    for index, (scene, sigma) in enumerate((scene, sigma) for scene in PHOTOS[split] for sigma in SIGMAS):
        clean = photo(scene, size)
        noisy = gaussian_noise(clean, sigma, seed=int(seeded("noise", split, index).integers(2**31)))
        images, facts = {"image": noisy, "clean": clean}, {"sigma": sigma, "photos": [scene]}
        cases.append(Case(f"noise_{sigma}_{scene}", "denoise", images, facts, {"clean": "clean"}))
    return cases


def strokes(rng: np.random.Generator, size: int) -> np.ndarray:
    """A size×size bool mask of 5–8 random strokes, each a polyline of 2–4 straight segments 2.5–5 % of the side
    wide: scribbled-over pixels, the holes of an inpainting case."""
    mask = np.zeros((size, size), bool)
    for _ in range(rng.integers(5, 9)):
        width, point = rng.uniform(0.025, 0.05), rng.uniform(0.1, 0.9, 2)
        for _ in range(rng.integers(2, 5)):
            end = np.clip(point + rng.uniform(-0.3, 0.3, 2), 0.02, 0.98)
            mask |= bar(size, tuple(point), tuple(end), width)
            point = end
    return mask


def known_pixels(kind: str, rng: np.random.Generator, size: int) -> torch.Tensor:
    """The 1×size×size map of the known pixels (1) of an inpainting case of ``kind`` (:data:`HOLES`)."""
    if kind == "pixels":
        return pixel_mask((size, size), MISSING, seed=int(rng.integers(2**31)))[None]
    if kind == "strokes":
        return torch.from_numpy(~strokes(rng, size))[None].float()
    raise ValueError(f"unknown holes {kind!r}; one of {', '.join(HOLES)}")


def inpaint_cases(split: str, size: int) -> list[Case]:
    cases = []
    for index, (scene, kind) in enumerate((scene, kind) for scene in PHOTOS[split] for kind in HOLES):
        clean = photo(scene, size)
        known = known_pixels(kind, seeded("inpaint", split, index), size)
        images = {"image": clean * known, "mask": known, "clean": clean}
        facts = {"holes": kind, "photos": [scene], "missing_fraction": round(1.0 - float(known.mean()), 4)}
        cases.append(Case(f"inpaint_{kind}_{scene}", "inpaint", images, facts, {"clean": "clean"}))
    return cases


def sr_cases(split: str, size: int) -> list[Case]:
    cases = []
    for scene, factor in ((scene, factor) for scene in PHOTOS[split] for factor in FACTORS):
        clean = photo(scene, size)
        images = {"image": lanczos_downscale(clean, factor), "clean": clean}
        cases.append(Case(f"sr_x{factor}_{scene}", "sr", images, {"factor": factor, "photos": [scene]}, {"clean": "clean"}))
    return cases


def texture(rng: np.random.Generator, size: int) -> torch.Tensor:
    """A 3×size×size texture in [0.1, 0.9]: two sinusoidal gratings of random direction and frequency (4–12 cycles
    across), each with its own random colour, over a random mean colour."""
    y, x = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    image = torch.from_numpy(rng.uniform(0.35, 0.65, 3)).float()[:, None, None].expand(3, size, size)
    for _ in range(2):
        angle, cycles, phase = rng.uniform(0, math.pi), rng.uniform(4, 12), rng.uniform(0, 2 * math.pi)
        wave = torch.sin(2 * math.pi * cycles * (x * math.cos(angle) + y * math.sin(angle)) + phase)
        image = image + torch.from_numpy(rng.uniform(-0.2, 0.2, 3)).float()[:, None, None] * wave
    return image.clamp(0.1, 0.9)


def mixture_cases(split: str, size: int) -> list[Case]:
    cases, names = [], PHOTOS[split]
    for index, (pair, alphas) in enumerate((pair, alphas) for pair in LAYER_PAIRS for alphas in MIXINGS):
        rng = seeded("mixtures", split, index)
        kinds = pair.split("_")
        chosen = [str(name) for name in rng.choice(names, size=2, replace=False)]
        layers = [photo(chosen[i], size) if kind == "photo" else texture(rng, size) for i, kind in enumerate(kinds)]
        labels = [chosen[i] if kind == "photo" else f"texture{i + 1}" for i, kind in enumerate(kinds)]
        images = {f"image{k}": alpha * layers[0] + (1 - alpha) * layers[1] for k, alpha in enumerate(alphas, 1)}
        images |= {"layer1": layers[0], "layer2": layers[1]}
        facts = {"layers": pair, "photos": [label for label in labels if label in names], "alphas": list(alphas)}
        facts["images"] = ["image1.png", "image2.png"]
        cases.append(Case(f"mixtures_{split}{index}_{'_'.join(labels)}", "separate_pair", images, facts, LAYER_TRUTH))
    return cases


def separation_layers(first: torch.Tensor, second: torch.Tensor, alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The layers ``y1 = 2sα·L1`` and ``y2 = 2s(1 − α)·L2`` of ``task=separate``'s model ``I = (y1 + y2)/2`` (Double-DIP
    Eq. 1 with ``m = ½``) for the mixture ``I = s·(α·L1 + (1 − α)·L2)`` of two images ``L1``, ``L2`` in [0, 1]. The
    exposure ``s = 1/(2·max(α, 1 − α))`` keeps both layers in [0, 1]: the stronger layer is its image, the fainter
    one its image dimmed by the ratio of the weights (3/7 at 0.3/0.7); in equal parts ``s = 1`` and the layers are
    the images. These are what the task's two generators can output, and what its metrics compare them with."""
    exposure = 1 / (2 * max(alpha, 1 - alpha))
    return 2 * exposure * alpha * first, 2 * exposure * (1 - alpha) * second


def separation_photos(split: str, pair: str, number: int) -> list[str]:
    """The photos of the ``number``-th ``pair`` case of ``split``'s separation suite, from the split's photos in a
    seeded order: the photo+texture cases take them from the end, the photo+photo cases neighbours from the start,
    so that every photo of the split serves and no two cases have the same photos."""
    names = [str(name) for name in seeded("separation", split).permutation(PHOTOS[split])]
    if pair == "photo_texture":
        return [names[-1 - number % len(names)]]
    if pair == "photo_photo":
        return [names[number % len(names)], names[(number + 1) % len(names)]]
    return []


def separation_cases(split: str, size: int) -> list[Case]:
    cases = []
    for index, (pair, alpha) in enumerate((pair, alpha) for pair in LAYER_PAIRS for alpha in SEPARATION_WEIGHTS):
        rng = seeded("separation", split, index)
        chosen = iter(separation_photos(split, pair, index % len(SEPARATION_WEIGHTS)))
        labels = [next(chosen) if kind == "photo" else f"texture{i + 1}" for i, kind in enumerate(pair.split("_"))]
        sources = [texture(rng, size) if label.startswith("texture") else photo(label, size) for label in labels]
        first, second = separation_layers(*sources, alpha)
        images = {"image": (first + second) / 2, "layer1": first, "layer2": second}
        facts = {"layers": pair, "photos": [label for label in labels if label in PHOTOS[split]], "alpha": alpha}
        cases.append(Case(f"separation_{split}{index}_{'_'.join(labels)}", "separate", images, facts, LAYER_TRUTH))
    return cases


def random_watermark(rng: np.random.Generator, size: int) -> dict:
    """A random text watermark for a size×size image, the arguments of :func:`ddip.synthetic.watermark` but the image
    (its colour by name): the text is 10–22 % of the side high (smaller if it would not fit), its stroke 1 px per 14 px
    of height, its opacity 0.3–0.7, its place anywhere it fits."""
    text = str(rng.choice(WATERMARK_TEXTS))
    height = max(8, round(size * rng.uniform(0.10, 0.22)))
    while True:
        bold = max(1, round(height / 14))
        text_height, text_width = text_size(text, height, bold)
        if text_width <= size - 4 or height <= 8:
            break
        height -= 1
    colour_name = str(rng.choice(list(WATERMARK_COLOURS)))
    opacity = round(float(rng.uniform(0.3, 0.7)), 3)
    top = int(rng.integers(2, max(3, size - text_height - 1)))
    left = int(rng.integers(2, max(3, size - text_width - 1)))
    return {"text": text, "top": top, "left": left, "height": height, "colour": colour_name, "opacity": opacity, "bold": bold}


def watermarked(clean: torch.Tensor, spec: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """``clean`` with the watermark of :func:`random_watermark`'s ``spec``: (image, 1×H×W alpha map)."""
    return watermark(clean, **(spec | {"colour": WATERMARK_COLOURS[spec["colour"]]}))


def watermark_case(rng: np.random.Generator, clean: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """A random text watermark (:func:`random_watermark`) over ``clean`` (3×size×size): (watermarked image,
    1×size×size hint box map, facts); the hint box is the text's bounding box grown by 3 % of the side."""
    size = clean.shape[-1]
    spec = random_watermark(rng, size)
    image, alpha = watermarked(clean, spec)
    box = bounding_box(alpha, margin=max(1, round(0.03 * size)))
    facts = {name: spec[name] for name in ("text", "height", "colour", "opacity")} | {"box": list(box)}
    return image, box_map((size, size), box)[None], facts


def watermark_cases(split: str, size: int) -> list[Case]:
    cases = []
    for scene in PHOTOS[split]:
        clean = photo(scene, size)
        for index in range(WATERMARKS_PER_PHOTO):
            image, hint, facts = watermark_case(seeded("watermark", split, scene, index), clean)
            images = {"image": image, "hint": hint, "clean": clean}
            cases.append(Case(f"watermark_{index}_{scene}", "watermark", images, facts | {"photos": [scene]}, {"clean": "clean"}))
    return cases


def watermark_many_cases(split: str, size: int) -> list[Case]:
    """:data:`WATERMARK_MANY_CASES` cases a split, each :data:`WATERMARK_MANY_IMAGES` of its photos (in a seeded
    order, the next ones for the next case) under one random text watermark (:func:`random_watermark`); the ground
    truth is the photos, one per image (a folder, as the images are)."""
    cases, names = [], PHOTOS[split]
    for index in range(WATERMARK_MANY_CASES):
        rng = seeded("watermark_many", split, index)
        order = [str(name) for name in rng.permutation(names)]
        chosen = order[:WATERMARK_MANY_IMAGES]
        spec = random_watermark(rng, size)
        images = {}
        for number, scene in enumerate(chosen):
            clean = photo(scene, size)
            images[f"images/{number:03d}"], _ = watermarked(clean, spec)
            images[f"clean/{number:03d}"] = clean
        facts = {name: spec[name] for name in ("text", "height", "colour", "opacity")} | {"photos": chosen, "images": "images"}
        cases.append(Case(f"watermark_many_{split}{index}_{spec['colour']}", "watermark_many", images, facts, {"clean": "clean"}))
    return cases


def moving_object(rng: np.random.Generator, size: int, travel: float) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """An ellipse of 4–8 % of the image and its shifts (rows, columns) in :data:`VIDEO_FRAMES` frames, moving
    ``travel`` × ``size`` in a straight line through the centre in a random direction."""
    direction = rng.uniform(0, 2 * math.pi)
    step = np.array([math.sin(direction), math.cos(direction)]) * travel
    start = np.array([0.5, 0.5]) - step / 2
    mask = ellipse(size, tuple(start), area_radii(rng, rng.uniform(0.04, 0.08)), rng.uniform(0, math.pi))
    shifts = [tuple(int(v) for v in np.round(step * size * t / (VIDEO_FRAMES - 1))) for t in range(VIDEO_FRAMES)]
    return mask, shifts


def video_cases(split: str, size: int) -> list[Case]:
    cases = []
    for motion, travel in VIDEO_MOTIONS.items():
        rng = seeded("video", split, motion)
        for index, (inside, outside) in enumerate(pairs(split, VIDEO_PAIRS, rng)):
            foreground, background = photo(inside, size), photo(outside, size)
            mask, shifts = moving_object(rng, size, travel)
            images = {}
            for t, (dy, dx) in enumerate(shifts):
                moved = np.roll(mask, (dy, dx), axis=(0, 1))
                images[f"frames/{t:03d}"] = paste(torch.roll(foreground, (dy, dx), dims=(1, 2)), background, moved)
                images[f"masks/{t:03d}"] = torch.from_numpy(moved)[None].float()
            facts = {"motion": motion, "photos": [inside, outside], "images": "frames"}
            cases.append(Case(f"video_{motion}_{index}_{inside}_on_{outside}", "video", images, facts, {"mask": "masks"}))
    return cases


def suite(kind: str, split: str, size: int = 128, count: int = 15, per_structure: int = 3) -> list[Case]:
    """The cases of the ``kind`` suite (``seg``, ``haze``, ``noise``, ``inpaint``, ``sr``, ``mixtures``, ``separation``,
    ``watermark``, ``watermark_many``, ``video``) in ``split``; ``sr`` needs a ``size`` divisible by 8."""
    if split not in PHOTOS:
        raise ValueError(f"unknown split {split!r}; one of {', '.join(SPLITS)}")
    if kind == "seg":
        return seg_cases(split, size, per_structure)
    if kind == "haze":
        return haze_cases(split, size, count)
    if kind == "noise":
        return noise_cases(split, size)
    if kind == "inpaint":
        return inpaint_cases(split, size)
    if kind == "sr":
        return sr_cases(split, size)
    if kind == "mixtures":
        return mixture_cases(split, size)
    if kind == "separation":
        return separation_cases(split, size)
    if kind == "watermark":
        return watermark_cases(split, size)
    if kind == "watermark_many":
        return watermark_many_cases(split, size)
    if kind == "video":
        return video_cases(split, size)
    raise ValueError(f"unknown suite {kind!r}; one of {', '.join(TASK_OF)}")
