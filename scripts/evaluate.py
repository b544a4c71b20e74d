"""Quality against ground truth on cases with known answers, ddip beside classical baselines on the same images.

    python scripts/evaluate.py --cases CASES_DIR [--split tune|test] [--steps N] [--tasks seg] [--out eval/x]
                               [--override task.layerwise=false ...]

``cases.json`` in the cases folder maps each case to its task, its files (``image`` or ``images``, the maps
``mask`` and ``hint`` its task reads) and its ground truth (``truth``: name → file, as ``data.truth``; a clip's
masks: their folder). For every case whose task ddip runs (and that has ground truth), ddip runs with its default settings (the task's default ``steps`` unless
``--steps`` is given) and each baseline runs on the same image. Writes ``evaluate.md`` (a markdown table per
case and method, then per method the mean, median, worst decile and worst case) and ``evaluate.json`` (one record
per case and method) into ``--out``; run dirs go under ``--out/runs``. ``--split`` keeps the cases of a suite's
splits (``scripts/make_suite.py``).
``--jobs N`` evaluates N cases at a time, each in its own process with ``threads`` = cores // N unless an
``--override threads=...`` is given; every case is its own seeded run, so the records are those of ``--jobs 1``
with the same threads, in the same order.

Baselines: seg — GrabCut (Rother et al., SIGGRAPH 2004; OpenCV, 5 iterations, box = image minus a
4-px border); denoise — NL-means (scikit-image) and CBM3D (PyPI ``bm3d``; both given the true σ, from
the ``eval`` extra: ``pip install ".[eval]"``); dehaze — the dark channel prior (He et al., CVPR 2009 / TPAMI 2011: 15×15 window, ω 0.95,
t0 0.1, guided-filter refinement; :func:`ddip.haze.dehaze_dcp`) with its own airlight estimate (the paper's rule:
the brightest of the haze-opaque pixels); the same with the mean of those pixels as airlight, the rule of many
DCP implementations (better on some images, worse on average: docs/results/dehazing.md); with the airlight
ddip used and ddip's transmission prior (its ω and closing), so that the gain of the fit is seen apart from
the airlight's and the prior's; and, as oracle rows, with the true airlight when the case gives it, and the
recovery (Eq. 22) with the true transmission (``gt_transmission.png``) and ddip's airlight when the case has it;
separate (one mixture) — the mixture itself taken as each layer, the mixture doubled about its mean colour as one
layer and that mean as the other (the limit of the next at weight 0), and a structure–texture split of the mixture
(total-variation cartoon and residual: Rudin, Osher & Fatemi 1992, Aujol et al. 2006; scikit-image;
:func:`ddip.unmix.structure_texture`, ``--tv-weight``, chosen on the separation suite's tune split), each scored
like ddip's layers under the better assignment; separate_pair (two mixtures) — the
mixtures taken as the layers and ICA of the mixtures' gradients (Farid & Adelson, CVPR 1999; :mod:`ddip.unmix`),
both scored under the better assignment, with the error of the weights where the case gives them; inpaint — OpenCV's Telea and
Navier–Stokes inpainting (radius 3 px); sr — bicubic upscaling; watermark — the input itself and OpenCV's Telea
inpainting of the hint box (what a user without a better tool would do with the box; ``psnr_hint``: PSNR inside the
box). ``--invdn CKPT`` adds, for denoising, the
supervised InvDN (Liu et al., CVPR 2021) with that trained checkpoint (``ddip task=invdn_train`` writes one;
trained on other photos than the test split's); ``--no-ddip`` leaves the DIP fits (15–20 min an image) of
denoising and of one mixture's separation out.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import signal
import sys
import time
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor, wait
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from omegaconf import DictConfig

from ddip.cli import quiet_third_parties
from ddip.data import image_paths, load_masks, stacked_images
from ddip.errors import DdipError
from ddip.haze import dehaze_dcp, mean_airlight, recover_clear
from ddip.io import load_image, load_map
from ddip.metrics import psnr, ssim
from ddip.run import compose_train, run
from ddip.sweep import cpu_cores
from ddip.tasks.seg import iou
from ddip.tasks.separate import LAYERS, Separation
from ddip.tasks.sr import bicubic
from ddip.tasks.video import MIN_MOTION, frames_of, motion_split
from ddip.unmix import TV_WEIGHT, ica_unmix, structure_texture

DCP_MEAN_AIRLIGHT = "DCP, mean airlight"


def grabcut(image_path: Path, border: int = 4, iterations: int = 5) -> np.ndarray:
    """GrabCut foreground (H×W bool) initialised with the image minus ``border`` px as the box."""
    import cv2

    rgb = (load_image(image_path).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    height, width = rgb.shape[:2]
    mask = np.zeros((height, width), np.uint8)
    box = (border, border, width - 2 * border, height - 2 * border)
    background, foreground = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.grabCut(rgb[..., ::-1].copy(), mask, box, background, foreground, iterations, cv2.GC_INIT_WITH_RECT)
    return (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)


def run_ddip(case: dict, folder: Path, run_dir: Path, steps: int | None, extra: list[str], task: str | None = None) -> tuple[DictConfig, dict]:
    """The run's composed config and its metrics (``task``: another task than the case's, on the same files)."""
    overrides = [f"task={task or case['task']}", "logger=csv", "trainer.enable_progress_bar=false"]
    if isinstance(case.get("images"), str):  # a clip: its folder of frames
        overrides.append(f"data.images={folder / case['images']}")
    elif "images" in case:  # several images of one scene (two mixtures)
        overrides.append(f"data.images=[{','.join(str(folder / path) for path in case['images'])}]")
    else:
        overrides.append(f"data.image={folder / case['image']}")
    for key in ("mask", "hint"):
        if key in case:
            overrides.append(f"data.{key}={folder / case[key]}")
    if case.get("truth"):
        overrides.append("data.truth={" + ",".join(f"{name}:{folder / path}" for name, path in case["truth"].items()) + "}")
    if "factor" in case:
        overrides.append(f"task.factor={case['factor']}")
    if steps:
        overrides.append(f"steps={steps}")
    overrides += extra
    cfg = compose_train(overrides)
    quiet_third_parties()  # here, so that the worker processes of --jobs are quiet too
    return cfg, run(cfg, run_dir)


def evaluate_video(name: str, case: dict, folder: Path, out: Path, steps: int | None, extra: list[str], ddip: bool = True) -> list[dict]:
    """``task=video`` (unless not ``ddip``) beside background subtraction (the motion's Otsu split against the temporal
    median) on a clip, mean IoU over its frames."""
    rows = []
    if ddip:
        _, metrics = run_ddip(case, folder, out / "runs" / name, steps, extra)
        rows.append({"case": name, "method": " ".join(["ddip (Double-DIP video)"] + extra), "iou": metrics["iou_chosen"],
                     "iou_final": metrics["iou_final"], "oracle_iou_raw": metrics.get("oracle_iou_raw"),
                     "seconds": metrics["wall_seconds"], "seconds_per_step": metrics["seconds_per_step"], "steps": metrics["steps"]})  # fmt: skip
    started = time.perf_counter()
    moving, _ = motion_split(frames_of(stacked_images(image_paths(str(folder / case["images"])))), MIN_MOTION)
    seconds = time.perf_counter() - started
    gt = load_masks(str(truth_path(case, folder, "mask")), "truth.mask", tuple(moving.shape[-2:]))
    subtraction = sum(iou(mask.float(), truth) for mask, truth in zip(moving, gt)) / len(gt)
    rows.append({"case": name, "method": "background subtraction (temporal median)", "iou": subtraction, "seconds": seconds})
    return rows


def evaluate_seg(name: str, case: dict, folder: Path, out: Path, steps: int | None, extra: list[str]) -> list[dict]:
    _, metrics = run_ddip(case, folder, out / "runs" / name, steps, extra)
    rows = [
        {
            "case": name,
            "method": " ".join(["ddip (Double-DIP seg)"] + extra),
            "iou": metrics["iou_chosen"],
            "iou_final": metrics["iou_final"],
            "oracle_iou_raw": metrics.get("oracle_iou_raw"),
            "seconds": metrics["wall_seconds"],
            "seconds_per_step": metrics["seconds_per_step"],
            "steps": metrics["steps"],
        }
    ]
    started = time.perf_counter()
    mask = grabcut(folder / case["image"])
    seconds = time.perf_counter() - started
    gt = load_map(truth_path(case, folder, "mask"), mask.shape)
    rows.append({"case": name, "method": "GrabCut (box − 4 px)", "iou": iou(torch.from_numpy(mask).float(), gt), "seconds": seconds})
    return rows


def evaluate_dehaze(name: str, case: dict, folder: Path, out: Path, steps: int | None, extra: list[str]) -> list[dict]:
    cfg, metrics = run_ddip(case, folder, out / "runs" / name, steps, extra)
    label = " ".join(["ddip (Double-DIP dehaze)"] + extra)
    rows = [
        {
            "case": name,
            "method": f"{label}, {rule} J" + (" (default)" if rule == metrics["output_rule"] else ""),
            "psnr": metrics[f"psnr_chosen_{rule}"],
            "ssim": metrics[f"ssim_chosen_{rule}"],
            "psnr_final": metrics[f"psnr_final_{rule}"],
            "oracle_psnr": metrics[f"oracle_psnr_{rule}"],
            "seconds": metrics["wall_seconds"],
            "seconds_per_step": metrics["seconds_per_step"],
            "steps": metrics["steps"],
        }
        for rule in ("formula", "network")
    ]
    hazy, clean = load_image(folder / case["image"])[None], load_image(truth_path(case, folder, "clean"))[None]
    rows.append({"case": name, "method": "hazy input", "psnr": psnr(hazy, clean), "ssim": ssim(hazy, clean)})
    started = time.perf_counter()
    dcp = dehaze_dcp(hazy)["clear"]
    seconds = time.perf_counter() - started
    rows.append({"case": name, "method": "DCP (He et al.)", "psnr": psnr(dcp, clean), "ssim": ssim(dcp, clean), "seconds": seconds})
    common = dehaze_dcp(hazy, airlight=mean_airlight(hazy))["clear"]  # what many DCP codes do
    rows.append({"case": name, "method": DCP_MEAN_AIRLIGHT, "psnr": psnr(common, clean), "ssim": ssim(common, clean)})
    airlight = torch.tensor([metrics["airlight_estimate"]])  # B×3: ddip's airlight
    prior = {"patch": cfg.task.airlight_patch, "omega": cfg.task.omega, "closing": cfg.task.transmission_prior_closing}
    same = dehaze_dcp(hazy, airlight=airlight, **prior)["clear"]
    rows.append({"case": name, "method": "DCP with ddip's airlight and prior", "psnr": psnr(same, clean), "ssim": ssim(same, clean)})
    if "airlight" in case:
        oracle = dehaze_dcp(hazy, airlight=torch.tensor([case["airlight"]]))["clear"]
        rows.append({"case": name, "method": "DCP, true airlight (oracle)", "psnr": psnr(oracle, clean), "ssim": ssim(oracle, clean)})
    if (folder / "gt_transmission.png").exists():  # what a perfect t gives with ddip's airlight
        true_t = load_image(folder / "gt_transmission.png")[:1][None]
        oracle = recover_clear(hazy, true_t, airlight[..., None, None])
        rows.append({"case": name, "method": "true t, ddip's airlight (oracle)", "psnr": psnr(oracle, clean), "ssim": ssim(oracle, clean)})
    return rows


def nl_means(noisy: np.ndarray, sigma: float) -> np.ndarray:
    """Non-local means (Buades et al., CVPR 2005; scikit-image, fast mode, 5×5 patches, 13×13 search,
    h = 0.8·σ as in scikit-image's example), given the true noise σ; H×W×3 in [0, 1]."""
    from skimage.restoration import denoise_nl_means

    return denoise_nl_means(noisy, h=0.8 * sigma, sigma=sigma, patch_size=5, patch_distance=6, fast_mode=True, channel_axis=-1)


def cbm3d(noisy: np.ndarray, sigma: float) -> np.ndarray:
    """CBM3D (Dabov et al., ICIP 2007; PyPI ``bm3d``), given the true noise σ; H×W×3 in [0, 1]."""
    import bm3d

    return np.clip(bm3d.bm3d_rgb(noisy, sigma_psd=sigma), 0.0, 1.0)


def invdn_row(name: str, case: dict, folder: Path, out: Path, checkpoint: str, extra: list[str]) -> dict:
    """InvDN (Liu et al., CVPR 2021), the supervised baseline: ``ddip task=invdn`` with a trained checkpoint (one
    latent draw; ``seconds`` is the network's time on the image); of ``extra``, only ``threads`` applies."""
    threads = [override for override in extra if override.startswith("threads=")]
    _, metrics = run_ddip(case, folder, out / "runs" / f"{name}_invdn", None, [f"task.weights={checkpoint}", *threads], task="invdn")
    return {"case": name, "method": f"InvDN ({checkpoint})", "psnr": metrics["psnr"], "ssim": metrics["ssim"], "seconds": metrics["seconds_per_image"]}


def evaluate_denoise(
    name: str, case: dict, folder: Path, out: Path, steps: int | None, extra: list[str], invdn: str | None = None, ddip: bool = True
) -> list[dict]:
    """DIP (unless not ``ddip``), the noisy input, NL-means, CBM3D and, given its checkpoint, InvDN."""
    rows = [] if not ddip else [denoise_row(name, case, folder, out, steps, extra)]
    if invdn:
        rows.append(invdn_row(name, case, folder, out, invdn, extra))
    return rows + denoise_baselines(name, case, folder)


def denoise_row(name: str, case: dict, folder: Path, out: Path, steps: int | None, extra: list[str]) -> dict:
    _, metrics = run_ddip(case, folder, out / "runs" / name, steps, extra)
    return psnr_row(name, "ddip (DIP denoise, self-chosen by " + metrics["chosen_by"] + ")", metrics, extra)


def denoise_baselines(name: str, case: dict, folder: Path) -> list[dict]:
    """The noisy input, NL-means and CBM3D (both given the true σ)."""
    noisy, clean = load_image(folder / case["image"]), load_image(truth_path(case, folder, "clean"))
    rows = [{"case": name, "method": "noisy input", "psnr": psnr(noisy, clean), "ssim": ssim(noisy, clean)}]
    sigma = case["sigma"] / 255
    for label, baseline in ((f"NL-means (true σ = {case['sigma']})", nl_means), (f"CBM3D (true σ = {case['sigma']})", cbm3d)):
        started = time.perf_counter()
        try:
            result = baseline(noisy.permute(1, 2, 0).numpy().astype(np.float64), sigma)
        except ImportError as error:
            print(f"skipping {label}: {error} (pip install \".[eval]\")")
            continue
        estimate = torch.from_numpy(result).permute(2, 0, 1).float()
        seconds = time.perf_counter() - started
        rows.append({"case": name, "method": label, "psnr": psnr(estimate, clean), "ssim": ssim(estimate, clean), "seconds": seconds})
    return rows


def evaluate_separate(
    name: str, case: dict, folder: Path, out: Path, steps: int | None, extra: list[str], ddip: bool = True,
    tv_weights: tuple[float, ...] = (TV_WEIGHT,),
) -> list[dict]:
    """PSNR/SSIM of the two recovered layers (mean of both, under the better assignment) unless not ``ddip``, beside
    the mixture taken as each layer, the mixture doubled about its mean colour ``μ`` with ``μ`` as the other layer
    (``2I − μ`` and ``μ`` sum to ``2I`` as the task's layers do), and the structure–texture split at each of
    ``tv_weights`` (:func:`ddip.unmix.structure_texture`)."""
    rows = []
    if ddip:
        _, metrics = run_ddip(case, folder, out / "runs" / name, steps, extra)
        rows.append(separation_row(name, "ddip (Double-DIP separation)", metrics, extra))
    mixture = load_image(folder / case["image"])
    mean = mixture.mean(dim=(1, 2), keepdim=True).expand_as(mixture)
    rows.append(layers_row(name, "mixture as each layer", [mixture, mixture], folder, case)[0])
    rows.append(layers_row(name, "mixture doubled about its mean, and the mean", [2 * mixture - mean, mean], folder, case)[0])
    for weight in tv_weights:
        started = time.perf_counter()
        layers = structure_texture(mixture, weight)
        seconds = time.perf_counter() - started
        row, _ = layers_row(name, f"TV structure–texture (weight {weight:g})", list(layers), folder, case)
        rows.append(row | {"seconds": seconds})
    return rows


def evaluate_separate_pair(name: str, case: dict, folder: Path, out: Path, steps: int | None, extra: list[str]) -> list[dict]:
    """The same for two mixtures with unknown weights (Double-DIP Sec. 4.2), with the error of the learned weights,
    beside the mixtures taken as the layers and ICA of the mixtures' gradients (Farid & Adelson, CVPR 1999)."""
    _, metrics = run_ddip(case, folder, out / "runs" / name, steps, extra)
    true = case.get("alphas")
    row = separation_row(name, "ddip (Double-DIP, two mixtures)", metrics, extra)
    rows = [row | ({"alpha_error": alpha_error(metrics["alphas"], metrics["swapped_chosen"], true)} if true else {})]
    mixtures = [load_image(folder / path) for path in case["images"]]
    rows.append(layers_row(name, "mixtures as the layers", mixtures, folder, case)[0])
    started = time.perf_counter()
    first, second, alphas = ica_unmix(*mixtures)
    seconds = time.perf_counter() - started
    ica, swapped = layers_row(name, "ICA of gradients (Farid & Adelson)", [first, second], folder, case)
    return rows + [ica | {"seconds": seconds} | ({"alpha_error": alpha_error(alphas, swapped, true)} if true else {})]


def separation_row(name: str, label: str, metrics: dict, extra: list[str]) -> dict:
    """The record of a ddip separation run with ground-truth layers: the mean PSNR/SSIM of its layers (better
    assignment) for the chosen output, the final one and the oracle."""
    return {
        "case": name,
        "method": " ".join([label] + extra),
        "psnr": metrics["psnr_layers_chosen"],
        "ssim": (metrics["ssim_layer1_chosen"] + metrics["ssim_layer2_chosen"]) / 2,
        "chosen_step": metrics["chosen_step"],
        "psnr_final": metrics["psnr_layers_final"],
        "oracle_psnr": metrics["oracle_psnr_layers"],
        "oracle_step": metrics["oracle_psnr_layers_step"],
        "seconds": metrics["wall_seconds"],
        "seconds_per_step": metrics["seconds_per_step"],
        "steps": metrics["steps"],
    }


def layers_row(name: str, label: str, estimates: list[torch.Tensor], folder: Path, case: dict) -> tuple[dict, bool]:
    """The record of two estimated layers (C×H×W): their mean PSNR/SSIM against the case's under the better
    assignment (:meth:`ddip.tasks.separate.Separation.matched`), and whether that assignment swaps them."""
    truth = {key: load_image(truth_path(case, folder, key)) for key in LAYERS}
    outputs, psnrs, swapped = Separation.matched(dict(zip(LAYERS, (estimate[None] for estimate in estimates))), truth)
    quality = {"psnr": sum(psnrs) / 2, "ssim": sum(ssim(output, truth[key]) for output, key in zip(outputs, LAYERS)) / 2}
    return {"case": name, "method": label, **quality}, swapped


def alpha_error(alphas: list[float], swapped: bool, true: list[float]) -> float:
    """Mean absolute error of the weights of the first output layer in each mixture against the case's weights of
    its first layer (``1 − α`` when the outputs match the layers swapped)."""
    matched = [1 - value for value in alphas] if swapped else alphas
    return sum(abs(a - b) for a, b in zip(matched, true)) / len(true)


def psnr_row(name: str, label: str, metrics: dict, extra: list[str]) -> dict:
    """The record of a ddip run scored by PSNR/SSIM against its clean image (its chosen output, the final one and the
    oracle), labelled ``label`` and the overrides ``extra``."""
    return {
        "case": name,
        "method": " ".join([label] + extra),
        "psnr": metrics["psnr_chosen"],
        "ssim": metrics["ssim_chosen"],
        "chosen_step": metrics["chosen_step"],
        "psnr_final": metrics["psnr_final"],
        "oracle_psnr": metrics["oracle_psnr"],
        "oracle_step": metrics["oracle_psnr_step"],
        "seconds": metrics["wall_seconds"],
        "seconds_per_step": metrics["seconds_per_step"],
        "steps": metrics["steps_run"],
    }


def opencv_inpaint(image: torch.Tensor, known: torch.Tensor, method: int, radius: int = 3) -> torch.Tensor:
    """OpenCV's inpainting of the pixels ``known`` (H×W) leaves out: Telea's fast marching (J. Graphics Tools 2004)
    or Bertalmío et al.'s Navier–Stokes (CVPR 2001), each with OpenCV's example radius of 3 px; C×H×W in [0, 1]."""
    import cv2

    rgb = np.ascontiguousarray((image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)[..., ::-1])
    filled = cv2.inpaint(rgb, (known < 0.5).numpy().astype(np.uint8), radius, method)
    return torch.from_numpy(np.ascontiguousarray(filled[..., ::-1])).permute(2, 0, 1).float() / 255


def evaluate_inpaint(name: str, case: dict, folder: Path, out: Path, steps: int | None, extra: list[str]) -> list[dict]:
    """DIP inpainting beside the input (missing pixels as given) and OpenCV's Telea and Navier–Stokes inpainting."""
    import cv2

    _, metrics = run_ddip(case, folder, out / "runs" / name, steps, extra)
    rows = [psnr_row(name, "ddip (DIP inpaint)", metrics, extra)]
    image, clean, known = load_image(folder / case["image"]), load_image(truth_path(case, folder, "clean")), load_map(folder / case["mask"])
    rows.append({"case": name, "method": "input (missing pixels as given)", "psnr": psnr(image, clean), "ssim": ssim(image, clean)})
    for label, method in (("OpenCV Telea", cv2.INPAINT_TELEA), ("OpenCV Navier–Stokes", cv2.INPAINT_NS)):
        started = time.perf_counter()
        filled = opencv_inpaint(image, known, method)
        rows.append({"case": name, "method": label, "psnr": psnr(filled, clean), "ssim": ssim(filled, clean), "seconds": time.perf_counter() - started})
    return rows


def evaluate_sr(name: str, case: dict, folder: Path, out: Path, steps: int | None, extra: list[str]) -> list[dict]:
    """DIP super-resolution beside bicubic upscaling, at the case's factor."""
    _, metrics = run_ddip(case, folder, out / "runs" / name, steps, extra)
    rows = [psnr_row(name, f"ddip (DIP sr ×{case['factor']})", metrics, extra)]
    small, clean = load_image(folder / case["image"]), load_image(truth_path(case, folder, "clean"))
    started = time.perf_counter()
    upscaled = bicubic(small, case["factor"])
    seconds = time.perf_counter() - started
    rows.append({"case": name, "method": f"bicubic ×{case['factor']}", "psnr": psnr(upscaled, clean), "ssim": ssim(upscaled, clean), "seconds": seconds})
    return rows


def evaluate_watermark(name: str, case: dict, folder: Path, out: Path, steps: int | None, extra: list[str]) -> list[dict]:
    """Double-DIP watermark removal beside the watermarked input and OpenCV's Telea inpainting of the hint box; PSNR
    over the image and inside the box (``psnr_hint``)."""
    import cv2

    from ddip.tasks.watermark import region_psnr

    _, metrics = run_ddip(case, folder, out / "runs" / name, steps, extra)
    rows = [psnr_row(name, "ddip (Double-DIP watermark)", metrics, extra) | {"psnr_hint": metrics["psnr_hint_chosen"]}]
    image, clean, hint = load_image(folder / case["image"]), load_image(truth_path(case, folder, "clean")), load_map(folder / case["hint"])
    rows.append({"case": name, "method": "watermarked input", "psnr": psnr(image, clean), "ssim": ssim(image, clean), "psnr_hint": region_psnr(image, clean, hint)})
    started = time.perf_counter()
    filled = opencv_inpaint(image, 1.0 - hint, cv2.INPAINT_TELEA)
    seconds = time.perf_counter() - started
    rows.append({"case": name, "method": "OpenCV Telea (hint box)", "psnr": psnr(filled, clean), "ssim": ssim(filled, clean),
                 "psnr_hint": region_psnr(filled, clean, hint), "seconds": seconds})  # fmt: skip
    return rows


EVALUATORS = {
    "seg": (evaluate_seg, ("truth.mask",)),
    "dehaze": (evaluate_dehaze, ("truth.clean",)),
    "denoise": (evaluate_denoise, ("truth.clean", "sigma")),
    "separate": (evaluate_separate, ("truth.layer1", "truth.layer2")),
    "separate_pair": (evaluate_separate_pair, ("images", "truth.layer1", "truth.layer2")),
    "inpaint": (evaluate_inpaint, ("truth.clean", "mask")),
    "sr": (evaluate_sr, ("truth.clean", "factor")),
    "watermark": (evaluate_watermark, ("truth.clean", "hint")),
    "video": (evaluate_video, ("images", "truth.mask")),
}
"""Each task's evaluation and what a case of it must give (``truth.<name>``: its ground truth of that name)."""
OLD_TRUTH_KEYS = ("clean", "gt_mask", "layer1")
"""The ground truth as a case's own keys, the ``cases.json`` layout before ``truth``: refused, not skipped."""


def truth_path(case: dict, folder: Path, name: str) -> Path:
    """The file (a clip's masks: the folder) of the case's ground truth ``name``."""
    return folder / case["truth"][name]


def gives(case: dict, key: str) -> bool:
    """Whether the case gives ``key``: one of its files or facts, or ``truth.<name>`` its ground truth of that name."""
    if key.startswith("truth."):
        return key.removeprefix("truth.") in case.get("truth", {})
    return key in case


def check_layout(cases: dict, path: Path) -> None:
    """One error line and exit code 2 for a ``cases.json`` that gives ground truth as a case's own keys
    (:data:`OLD_TRUTH_KEYS`)."""
    for name, case in cases.items():
        if any(key in case for key in OLD_TRUTH_KEYS):
            example = '"truth": {"clean": "clean.png"}'
            print(f"evaluate: error: {path}: {name}: give the ground truth as {example} (make_suite.py writes it so)", file=sys.stderr)
            sys.exit(2)


COLUMNS = ["case", "method", "iou", "iou_final", "oracle_iou_raw", "psnr", "ssim", "psnr_hint", "chosen_step", "psnr_final"]
COLUMNS += ["oracle_psnr", "oracle_step", "alpha_error"]
COLUMNS += ["steps", "seconds", "seconds_per_step"]


def table(rows: list[dict], columns: list[str] = COLUMNS) -> str:
    """A markdown table of ``rows`` with those of ``columns`` that any row has."""
    columns = [c for c in columns if any(row.get(c) is not None for row in rows)]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [f"{row[c]:.3f}" if isinstance(row.get(c), float) else str(row.get(c, "")) for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def summary(rows: list[dict]) -> list[dict]:
    """Per method, over its cases: the mean, median, worst decile (10th percentile) and worst of its quality
    (IoU, or PSNR in dB), for suites where the spread matters as much as the mean."""
    summaries = []
    for method in dict.fromkeys(row["method"] for row in rows):
        key = "iou" if any(row.get("iou") is not None for row in rows if row["method"] == method) else "psnr"
        values = np.array([row[key] for row in rows if row["method"] == method and row.get(key) is not None], float)
        if len(values):
            summaries.append({"method": method, "metric": key, "cases": len(values), "mean": values.mean(),
                              "median": float(np.median(values)), "worst decile": float(np.percentile(values, 10)),
                              "worst": values.min()})  # fmt: skip
    return summaries


SUMMARY_COLUMNS = ["method", "metric", "cases", "mean", "median", "worst decile", "worst"]


def write_results(rows: list[dict], out: Path, stem: str, columns: list[str] = COLUMNS, echo: bool = True) -> None:
    """``<stem>.json`` (the records) and ``<stem>.md`` (the command, a table per case and method, and the summary
    per method) in ``out``; ``echo`` also prints them."""
    (out / f"{stem}.json").write_text(json.dumps(rows, indent=2) + "\n")
    command = f"python scripts/{stem}.py " + " ".join(sys.argv[1:])
    summary_table = table([{k: float(v) if isinstance(v, np.floating) else v for k, v in row.items()} for row in summary(rows)], SUMMARY_COLUMNS)
    (out / f"{stem}.md").write_text(f"`{command}`\n\n" + table(rows, columns) + "\nPer method:\n\n" + summary_table)
    if echo:
        print(table(rows, columns) + "\n" + summary_table)


def evaluate_case(
    name: str, case: dict, folder: Path, out: Path, steps: int | None, extra: list[str], invdn: str | None = None, ddip: bool = True,
    tv_weights: tuple[float, ...] = (TV_WEIGHT,),
) -> list[dict]:
    """The records of one case: ddip and its task's baselines; for denoising also InvDN given its checkpoint
    (``invdn``); for denoising, one mixture's separation and video without the DIP fit when not ``ddip``, and for the
    latter the structure–texture split at each of ``tv_weights``."""
    if case["task"] == "denoise":
        return evaluate_denoise(name, case, folder, out, steps, extra, invdn, ddip)
    if case["task"] == "separate":
        return evaluate_separate(name, case, folder, out, steps, extra, ddip, tv_weights)
    if case["task"] == "video":
        return evaluate_video(name, case, folder, out, steps, extra, ddip)
    return EVALUATORS[case["task"]][0](name, case, folder, out, steps, extra)


def per_job_overrides(overrides: list[str], jobs: int) -> list[str]:
    """``overrides`` with ``threads`` = cores // ``jobs`` added when ``jobs`` > 1 and they set no ``threads``."""
    if jobs == 1 or any(override.startswith("threads=") for override in overrides):
        return overrides
    return [*overrides, f"threads={max(1, cpu_cores() // jobs)}"]


def case_records(jobs: list[tuple], workers: int) -> Iterator[list[dict]]:
    """Each job's records (the arguments of :func:`evaluate_case`) in order, ``workers`` cases at a time in
    processes of their own (1: here, one after the other). When one fails or the evaluation is stopped (SIGTERM,
    Ctrl-C), the pending cases are cancelled and the running ones stopped (:func:`stop_workers`)."""
    if workers == 1:
        yield from (evaluate_case(*job) for job in jobs)
        return
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    futures = [pool.submit(evaluate_case, *job) for job in jobs]
    try:
        for future in futures:
            yield wait_for(future)
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        stop_workers(multiprocessing.active_children())
        raise
    pool.shutdown()


def wait_for(future: Future) -> list[dict]:
    """The future's result, waited for in one-second slices: a wait without a timeout would hold off the
    SIGTERM handler until the case ends."""
    while not future.done():
        wait([future], timeout=1.0)
    return future.result()


def stop_workers(workers: list[multiprocessing.Process], grace: float = 20.0) -> None:
    """SIGTERM every worker (a running ddip case then saves its checkpoint, to resume from), SIGKILL those still
    alive after ``grace`` seconds."""
    for worker in workers:
        worker.terminate()
    deadline = time.monotonic() + grace
    for worker in workers:
        worker.join(max(0.0, deadline - time.monotonic()))
        if worker.is_alive():
            worker.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=Path, required=True, help="folder with cases.json")
    parser.add_argument("--tasks", nargs="*", default=sorted(EVALUATORS), help="tasks to evaluate")
    parser.add_argument("--only", nargs="*", default=None, help="case names to run (default: all)")
    parser.add_argument("--steps", type=int, default=None, help="override the tasks' default steps")
    parser.add_argument("--out", type=Path, default=Path("results/evaluate"))
    parser.add_argument("--override", nargs="*", default=[], help="extra ddip overrides, e.g. task.layerwise=false")
    parser.add_argument("--jobs", type=int, default=1, help="cases evaluated at a time, each in its own process")
    parser.add_argument("--split", nargs="*", default=None, help="a suite's splits to run (tune, test; default: all)")
    parser.add_argument("--invdn", default=None, help="denoising: also InvDN with this trained checkpoint (invdn.ckpt)")
    parser.add_argument("--no-ddip", action="store_true", help="denoising, separate, video: the baselines (and --invdn) only, no DIP fit")
    parser.add_argument("--tv-weight", type=float, nargs="+", default=[TV_WEIGHT], help="separate: the structure–texture split's TV weights")
    args = parser.parse_args()
    if args.jobs < 1:
        parser.error(f"--jobs {args.jobs} must be 1 or more")
    if min(args.tv_weight) <= 0:
        parser.error(f"--tv-weight {min(args.tv_weight)} must be above 0")
    cases = json.loads((args.cases / "cases.json").read_text())
    check_layout(cases, args.cases / "cases.json")
    args.out.mkdir(parents=True, exist_ok=True)
    selected = [
        (name, case)
        for name, case in cases.items()
        if case["task"] in args.tasks and case["task"] in EVALUATORS and (not args.only or name in args.only)
        and (args.split is None or case.get("split") in args.split)
        and all(gives(case, key) for key in EVALUATORS[case["task"]][1])
    ]
    overrides = per_job_overrides(args.override, args.jobs)
    jobs = [(name, case, args.cases / name, args.out, args.steps, overrides, args.invdn, not args.no_ddip, tuple(args.tv_weight)) for name, case in selected]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a stopped evaluation ends its workers too
    rows, records = [], case_records(jobs, args.jobs)
    for name, _ in selected:
        try:
            rows += next(records)
        except DdipError as error:  # a broken case file or override: keep the finished cases' rows (if any), one line
            if rows:
                write_results(rows, args.out, "evaluate")
            print(f"evaluate: error: {name}: {error}", file=sys.stderr)
            sys.exit(2)
        print(table([row for row in rows if row["case"] == name]), flush=True)
        write_results(rows, args.out, "evaluate", echo=False)  # a stopped evaluation keeps the cases it finished
    write_results(rows, args.out, "evaluate")


if __name__ == "__main__":
    main()
