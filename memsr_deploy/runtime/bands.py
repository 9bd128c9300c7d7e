"""Output produced top to bottom in bands of full-width rows, the unit both tiling and streaming emit.

A band is converted to its final sample type tile by tile as it is filled (grey taken back from the RGB the
network saw, floats rounded to 8/16 bits), so a band of a x4 100 MP output costs bytes, not floats.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..imageio import from_float


@dataclass
class Band:
    lr_start: int          # LR rows [lr_start, lr_stop) that this band is the upscaled output of
    lr_stop: int
    pixels: np.ndarray     # (lr_stop - lr_start) * s rows x W * s x channels


class Converter:
    """float32 RGB [0, 1] network output -> stored samples (grey if the input was grey).

    ``model_alpha``: the output is RGBA (a four-channel model upscales alpha itself); its alpha is kept when
    ``keep_alpha`` (the input had alpha and the output format holds it), else dropped."""

    def __init__(self, grey: bool = False, dtype=np.float32, clip: bool = True, model_alpha: bool = False,
                 keep_alpha: bool = False):
        self.grey = grey
        self.dtype = np.dtype(dtype)
        self.clip = clip  # False keeps float outputs raw (to compare exactly with the network itself)
        self.model_alpha, self.keep_alpha = model_alpha, model_alpha and keep_alpha
        self.channels = (1 if grey else 3) + (1 if self.keep_alpha else 0)
        self._scratch = np.empty(0, np.float32)

    def __call__(self, rgb: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """The stored samples, written into ``out`` (e.g. a band's slice) when given. That path reuses one float
        scratch between calls: with runtime.heap's mmap threshold a fresh temporary per tile was a page fault per
        page (with LiteRT's output copy, 3.4 of the 30 ms a window of the bundled x2 student took)."""
        if self.model_alpha:
            colour, a = rgb[:, :, :3], rgb[:, :, 3:]
            if self.grey:
                colour = colour.mean(axis=2, keepdims=True, dtype=np.float32)
            rgb = np.concatenate([colour, a], axis=2) if self.keep_alpha else colour
        elif self.grey:
            rgb = rgb.mean(axis=2, keepdims=True, dtype=np.float32)
        if self.dtype == np.float32 and not self.clip:
            if out is None:
                return rgb.astype(np.float32, copy=False)
            out[...] = rgb
            return out
        if out is None:
            return from_float(rgb, self.dtype)
        if self._scratch.size < rgb.size:
            self._scratch = np.empty(rgb.size, np.float32)
        return from_float(rgb, self.dtype, self._scratch[:rgb.size].reshape(rgb.shape), out)


def upscale_alpha(picture, lr_start: int, lr_stop: int, scale: int, dtype) -> np.ndarray:
    """Alpha for one band: bicubic, from the band's LR rows plus context. cv2's bicubic reads 2 pixels each way
    and clamps at the image border, so 4 rows of context make any band equal the same rows of a whole-image
    resize."""
    import cv2
    ctx = 4
    a0, a1 = max(lr_start - ctx, 0), min(lr_stop + ctx, picture.height)
    lr = picture.alpha(slice(a0, a1))
    hr = cv2.resize(lr, (lr.shape[1] * scale, lr.shape[0] * scale), interpolation=cv2.INTER_CUBIC)
    hr = hr[(lr_start - a0) * scale:(lr_stop - a0) * scale]
    return from_float(np.clip(hr, 0.0, 1.0), dtype)[:, :, None]


def assemble(bands, height: int, width: int, channels: int, dtype) -> np.ndarray:
    """Gather bands into one in-memory image (for formats that cannot be written piecewise)."""
    out = np.empty((height, width, channels), dtype=dtype)
    row = 0
    for b in bands:
        n = b.pixels.shape[0]
        out[row:row + n] = b.pixels
        row += n
    if row != height:
        raise RuntimeError(f"bands covered {row} of {height} rows")
    return out
