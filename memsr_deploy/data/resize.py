"""MATLAB-compatible ``imresize(..., 'bicubic')``: the resize behind every published super-resolution table.

MATLAB's algorithm, per axis: output pixel x (1-based) samples input position u = x/s + (1 - 1/s)/2 with the
cubic kernel (a = -0.5, support 4). When shrinking (s < 1) the kernel is stretched by 1/s and scaled by s, which
low-pass filters the image (antialiasing). Taps falling outside the image are mirrored with the edge pixel
repeated ("symmetric"), weights are normalised to sum to one and all-zero tap columns are dropped. The axis with
the smaller scale is processed first (rows first on ties). Output length is ceil(s * L).

Here each axis becomes an (out x taps) weight matrix and an index matrix, applied with one gather per tap.
Float in, float out: nothing is clipped or rounded (callers quantise), except in ``imresize_uint8``, which
mirrors MATLAB on uint8 images, where each axis pass is rounded back to uint8.
"""
from __future__ import annotations

import math

import numpy as np


def cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's 'bicubic')."""
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    near = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
    return near + far


def contributions(in_len: int, out_len: int, scale: float, antialias: bool = True):
    """(weights, indices) of shape (out_len, taps): output i = sum_k weights[i, k] * input[indices[i, k]]."""
    width = 4.0
    if scale < 1 and antialias:
        def kernel(x):
            return scale * cubic(scale * x)
        width = width / scale
    else:
        kernel = cubic
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - width / 2.0)
    taps = int(math.ceil(width)) + 2
    idx = left[:, None] + np.arange(taps)[None, :]            # 1-based, may fall outside [1, in_len]
    w = kernel(u[:, None] - idx)
    w = w / w.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(in_len), np.arange(in_len - 1, -1, -1)])   # symmetric, edge repeated
    idx = mirror[np.mod(idx.astype(np.int64) - 1, 2 * in_len)]
    keep = np.any(w != 0, axis=0)
    return w[:, keep], idx[:, keep]


def output_length(in_len: int, scale: float) -> int:
    # A tiny tolerance so that e.g. 255 * (1/3) gives 85, not 86, when the product lands a hair above 85.
    return max(1, int(math.ceil(in_len * scale - 1e-9)))


def _resize_axis(img: np.ndarray, axis: int, scale: float, out_len: int, antialias: bool) -> np.ndarray:
    w, idx = contributions(img.shape[axis], out_len, scale, antialias)
    moved = np.moveaxis(img, axis, 0)
    shape = (out_len,) + (1,) * (moved.ndim - 1)
    out = np.zeros((out_len,) + moved.shape[1:], dtype=np.float64)
    for k in range(w.shape[1]):
        out += w[:, k].reshape(shape) * moved[idx[:, k]]
    return np.moveaxis(out, 0, axis)


def _plan(shape, scale, output_shape):
    h, w = shape[:2]
    if output_shape is not None:
        oh, ow = int(output_shape[0]), int(output_shape[1])
        sy, sx = (oh / h, ow / w) if scale is None else (float(scale), float(scale))
    else:
        if scale is None:
            raise ValueError("give scale or output_shape")
        sy = sx = float(scale)
        oh, ow = output_length(h, sy), output_length(w, sx)
    if sy <= 0 or sx <= 0 or oh < 1 or ow < 1:
        raise ValueError(f"invalid resize of {h}x{w} by {scale} to {output_shape}")
    # MATLAB processes the axis with the smaller scale first; rows win ties (stable sort).
    order = [(0, sy, oh), (1, sx, ow)] if sy <= sx else [(1, sx, ow), (0, sy, oh)]
    return order


def imresize(img: np.ndarray, scale: float | None = None, output_shape=None, antialias: bool = True) -> np.ndarray:
    """Bicubic resize of an HxW or HxWxC float image by ``scale`` (e.g. 0.5, 1/3, 4), as MATLAB does.

    Returns float32 for float32 input, float64 otherwise. Values are not clipped (bicubic overshoots).
    """
    img = np.asarray(img)
    out_dtype = np.float32 if img.dtype == np.float32 else np.float64
    out = img.astype(np.float64, copy=False)
    for axis, s, n in _plan(img.shape, scale, output_shape):
        out = _resize_axis(out, axis, s, n, antialias)
    return out.astype(out_dtype, copy=False)


def imresize_uint8(img: np.ndarray, scale: float | None = None, output_shape=None,
                   antialias: bool = True) -> np.ndarray:
    """MATLAB's imresize on a uint8 image: each axis pass is rounded (half away from zero) and saturated."""
    if img.dtype != np.uint8:
        raise TypeError("imresize_uint8 wants a uint8 image")
    out = img
    for axis, s, n in _plan(img.shape, scale, output_shape):
        out = _resize_axis(out.astype(np.float64), axis, s, n, antialias)
        out = np.floor(np.clip(out, 0, 255) + 0.5).astype(np.uint8)
    return out


def modcrop(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop the bottom/right so both sides are multiples of ``scale`` (the standard SR protocol)."""
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale]


def bicubic_downscale(hr: np.ndarray, scale: int) -> np.ndarray:
    """The standard LR of an HR float image: modcrop, MATLAB bicubic by 1/scale, quantised to 8 bits."""
    from ..imageio import from_uint8, to_uint8
    return from_uint8(imresize_uint8(to_uint8(modcrop(hr, scale)), 1.0 / scale))


def bicubic_upscale(lr: np.ndarray, scale: int, quantised: bool = True) -> np.ndarray:
    """The bicubic baseline: LR float [0, 1] -> x``scale``. Quantised to 8 bits like a saved bicubic result
    (MATLAB on a uint8 image), else the raw float interpolation."""
    if quantised:
        from ..imageio import from_uint8, to_uint8
        return from_uint8(imresize_uint8(to_uint8(lr), float(scale)))
    return imresize(lr.astype(np.float32), float(scale))
