"""Real photographs for calibration and verification, and the PSNR-Y used to compare outputs.

Calibration and verification run on real image content (never random noise): quantisation ranges and
accuracy figures depend on the statistics of natural images.
"""
from __future__ import annotations

import numpy as np

from memsr_deploy.quality import metrics
from memsr_deploy.data.datasets import list_images
from memsr_deploy.data.eval_photos import load_eval_photos
from memsr_deploy.imageio import from_uint8, read_image
from memsr_deploy.data.resize import bicubic_downscale, modcrop
from memsr_deploy.errors import MemsrError

# The photos shipped with scikit-image that calibrate by default (no download, always present).
DEFAULT_CALIB = ("astronaut", "chelsea", "coffee", "rocket")
PSNR_CAP = 150.0  # identical outputs give an infinite PSNR; JSON has no infinity


def psnr_y(a: np.ndarray, b: np.ndarray, crop: int = 0) -> float:
    """PSNR-Y of two HxWx3 images in [0, 1], by the benchmark protocol (8-bit, as saved images), capped."""
    return float(min(metrics.psnr_y(np.clip(a, 0, 1), np.clip(b, 0, 1), crop), PSNR_CAP))


def eval_pairs(scale: int, max_photos: int | None = None) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """[(name, LR, HR)] float HxWx3 in [0, 1] from the evaluation photos (bicubic LR, modcropped HR)."""
    photos = load_eval_photos()
    if max_photos is not None:
        photos = photos[:max_photos]
    return [(name, bicubic_downscale(hr, scale), modcrop(hr, scale)) for name, hr in photos]


def calibration_images(calib_dir=None) -> list[np.ndarray]:
    """HR-domain float images: every image under ``calib_dir``, else scikit-image's bundled photos."""
    if calib_dir is None:
        from skimage import data
        return [from_uint8(getattr(data, n)()) for n in DEFAULT_CALIB]
    paths = list_images(calib_dir)
    if not paths:
        raise MemsrError("no images found for calibration", calib_dir)
    return [read_image(p) for p in paths]


def pad_to(img: np.ndarray, h: int, w: int) -> np.ndarray:
    """Edge-pad an HxWxC image up to at least h x w (bottom/right); bigger images are returned as they are."""
    ph, pw = max(0, h - img.shape[0]), max(0, w - img.shape[1])
    return np.pad(img, ((0, ph), (0, pw), (0, 0)), mode="edge") if ph or pw else img


def random_patches(images: list[np.ndarray], size: tuple[int, int], count: int,
                   seed: int = 0) -> list[np.ndarray]:
    """``count`` HxWx3 patches of ``size``, drawn round-robin from the images at seeded random positions."""
    rng = np.random.default_rng(seed)
    h, w = size
    out = []
    for i in range(count):
        img = pad_to(images[i % len(images)], h, w)
        y = int(rng.integers(0, img.shape[0] - h + 1))
        x = int(rng.integers(0, img.shape[1] - w + 1))
        out.append(np.ascontiguousarray(img[y:y + h, x:x + w]))
    return out


def to_nchw(img: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(img.transpose(2, 0, 1)[None], dtype=np.float32)


def to_hwc(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x[0].transpose(1, 2, 0))
