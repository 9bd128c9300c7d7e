"""PSNR and SSIM on the luma channel, exactly as the standard super-resolution benchmarks compute them.

Protocol (SRCNN/VDSR/EDSR tables, MATLAB): both images are 8-bit RGB; Y = 16 + (65.481 R + 128.553 G +
24.966 B) with RGB in [0, 1] (ITU-R BT.601, MATLAB rgb2ycbcr on double input, Y in [16, 235]); ``crop`` pixels
(the scale) are shaved from every border; PSNR has peak 255 on Y; SSIM is Wang et al.'s with an 11x11
Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03, L = 255, averaged over the 'valid' window positions.
"""
from __future__ import annotations

import math

import numpy as np

from ..imageio import to_uint8

_Y = np.array([65.481, 128.553, 24.966])


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """HxWx3 RGB -> HxW Y in [16, 235] (float64). Float input is quantised to 8 bits first."""
    u8 = img if img.dtype == np.uint8 else to_uint8(img)
    if u8.ndim != 3 or u8.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 RGB image, got shape {u8.shape}")
    return 16.0 + (u8.astype(np.float64) / 255.0) @ _Y


# the rest of ITU-R BT.601 as the SR papers apply it (MATLAB rgb2ycbcr / ycbcr2rgb), in [0, 1] units: a Y-only
# model (FSRCNN, ESPCN) reads Y / 255 of this and its chroma is carried over bicubically
_YCBCR = np.array([_Y, [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]]) / 255.0
_YCBCR_OFFSET = np.array([16.0, 128.0, 128.0]) / 255.0
_RGB = np.linalg.inv(_YCBCR)


def rgb_to_ycbcr(rgb: np.ndarray, axis: int = -1) -> np.ndarray:
    """RGB in [0, 1] -> Y, Cb, Cr in [0, 1] (Y in [16, 235] / 255), float, along ``axis``; not quantised."""
    m = np.moveaxis(np.asarray(rgb), axis, -1)
    out = m @ _YCBCR.T.astype(m.dtype) + _YCBCR_OFFSET.astype(m.dtype)
    return np.moveaxis(out, -1, axis)


def ycbcr_to_rgb(ycc: np.ndarray, axis: int = -1) -> np.ndarray:
    """The inverse of ``rgb_to_ycbcr`` (not clipped)."""
    m = np.moveaxis(np.asarray(ycc), axis, -1)
    out = (m - _YCBCR_OFFSET.astype(m.dtype)) @ _RGB.T.astype(m.dtype)
    return np.moveaxis(out, -1, axis)


def _prepare(a: np.ndarray, b: np.ndarray, crop: int) -> tuple[np.ndarray, np.ndarray]:
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    ya, yb = rgb_to_y(a), rgb_to_y(b)
    if crop > 0:
        if min(ya.shape) <= 2 * crop:
            raise ValueError(f"image {ya.shape} too small for a border crop of {crop}")
        ya, yb = ya[crop:-crop, crop:-crop], yb[crop:-crop, crop:-crop]
    return ya, yb


def psnr_y(a: np.ndarray, b: np.ndarray, crop: int = 0) -> float:
    """PSNR (dB) between two HxWx3 RGB images (float [0, 1] or uint8) on Y, ``crop`` px shaved per border."""
    ya, yb = _prepare(a, b, crop)
    mse = float(np.mean((ya - yb) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0 ** 2 / mse)


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    x = np.arange(size) - (size - 1) / 2.0
    g = np.exp(-(x * x) / (2 * sigma * sigma))
    return g / g.sum()


def _filter_valid(img: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Separable 2-D correlation, keeping only positions where the window lies inside (MATLAB 'valid')."""
    r = len(g) // 2
    # here, not at the top: the runtime's Y-only models use this module's colour conversions, and scipy.ndimage
    # would add 26 MB to their process (--max-memory prices it)
    from scipy.ndimage import correlate1d
    out = correlate1d(correlate1d(img, g, axis=0, mode="constant"), g, axis=1, mode="constant")
    return out[r:-r, r:-r]


def ssim_y(a: np.ndarray, b: np.ndarray, crop: int = 0) -> float:
    """SSIM between two HxWx3 RGB images on Y (0..255 scale), ``crop`` px shaved per border."""
    ya, yb = _prepare(a, b, crop)
    g = _gaussian_window()
    if min(ya.shape) < len(g):
        raise ValueError(f"image {ya.shape} smaller than the 11x11 SSIM window")
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_a, mu_b = _filter_valid(ya, g), _filter_valid(yb, g)
    saa = _filter_valid(ya * ya, g) - mu_a ** 2
    sbb = _filter_valid(yb * yb, g) - mu_b ** 2
    sab = _filter_valid(ya * yb, g) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * sab + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (saa + sbb + c2))
    return float(ssim_map.mean())
