"""Classical methods the benchmarks compare ddip with, which the tasks' benchmarks (:meth:`ddip.tasks.base.Task.benchmark`)
run on a case's inputs. The dark channel prior lives in :mod:`ddip.haze` and the unmixing methods in :mod:`ddip.unmix`,
bicubic upscaling in :mod:`ddip.tasks.sr` and background subtraction in :mod:`ddip.tasks.video`.

The optional methods need the ``eval`` extra (``pip install ".[eval]"``: scikit-image, ``bm3d``); OpenCV is a
dependency of ddip.
"""

from __future__ import annotations

import numpy as np
import torch


def grabcut(image: torch.Tensor, border: int = 4, iterations: int = 5, start: np.ndarray | None = None) -> np.ndarray:
    """GrabCut's foreground (Rother et al., SIGGRAPH 2004; OpenCV) of a 3×H×W image in [0, 1], H×W bool, initialised
    with the image minus ``border`` px as the box, or with ``start``, an H×W uint8 map of OpenCV's GrabCut classes
    (``cv2.GC_BGD``, ``GC_FGD``, ``GC_PR_BGD``, ``GC_PR_FGD``), in place of the box."""
    import cv2

    rgb = (image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    height, width = rgb.shape[:2]
    background, foreground = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    if start is None:
        mask = np.zeros((height, width), np.uint8)
        box = (border, border, width - 2 * border, height - 2 * border)
        cv2.grabCut(rgb[..., ::-1].copy(), mask, box, background, foreground, iterations, cv2.GC_INIT_WITH_RECT)
    else:
        mask = start.copy()
        cv2.grabCut(rgb[..., ::-1].copy(), mask, None, background, foreground, iterations, cv2.GC_INIT_WITH_MASK)
    return (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)


def nl_means(noisy: np.ndarray, sigma: float) -> np.ndarray:
    """Non-local means (Buades et al., CVPR 2005; scikit-image, fast mode, 5×5 patches, 13×13 search,
    h = 0.8·σ as in scikit-image's example), given the true noise σ; H×W×3 in [0, 1]."""
    from skimage.restoration import denoise_nl_means

    return denoise_nl_means(noisy, h=0.8 * sigma, sigma=sigma, patch_size=5, patch_distance=6, fast_mode=True, channel_axis=-1)


def cbm3d(noisy: np.ndarray, sigma: float) -> np.ndarray:
    """CBM3D (Dabov et al., ICIP 2007; PyPI ``bm3d``), given the true noise σ; H×W×3 in [0, 1]."""
    import bm3d

    return np.clip(bm3d.bm3d_rgb(noisy, sigma_psd=sigma), 0.0, 1.0)


def opencv_inpaint(image: torch.Tensor, known: torch.Tensor, method: str, radius: int = 3) -> torch.Tensor:
    """OpenCV's inpainting of the pixels ``known`` (H×W) leaves out: Telea's fast marching (J. Graphics Tools 2004,
    ``method="telea"``) or Bertalmío et al.'s Navier–Stokes (CVPR 2001, ``"ns"``), each with OpenCV's example radius
    of 3 px; C×H×W in [0, 1]."""
    import cv2

    flag = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}[method]
    rgb = np.ascontiguousarray((image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)[..., ::-1])
    filled = cv2.inpaint(rgb, (known < 0.5).numpy().astype(np.uint8), radius, flag)
    return torch.from_numpy(np.ascontiguousarray(filled[..., ::-1])).permute(2, 0, 1).float() / 255
