"""The upscaler's view of an input: pixels as stored, read as float RGB windows and alpha rows.

``Picture`` holds a whole decoded image. ``RowWindows`` gives the same interface over a decoder that delivers
rows top to bottom: it keeps only the rows that recent windows touched (a small row cache), so the runners
read windows of any size while memory follows the window height, not the image. A request for rows already
dropped restarts the decoder from the top (correct, only slower; the runners do not do it in normal runs).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import MemsrError
from .formats import maxval, to_float


class _Windows:
    """Shared by both pictures: needs height, width, channels, dtype and ``_rows(start, stop)``."""

    @property
    def is_grey(self) -> bool:
        return self.channels in (1, 2)

    @property
    def has_alpha(self) -> bool:
        return self.channels in (2, 4)

    @property
    def maxval(self) -> float:
        return maxval(self.dtype)

    def colour(self, ys: slice, xs: slice, out: np.ndarray | None = None, alpha: bool = False) -> np.ndarray:
        """Float32 RGB window in [0, 1] (grey is replicated: the network always sees RGB), into ``out`` (H x W x 3
        float32, e.g. a slot of the tile loop's batch) when given. ``alpha``: RGBA (H x W x 4), for a model that
        takes alpha too; a picture without alpha is opaque (1.0)."""
        block = self._rows(*_bounds(ys, self.height))[:, xs]
        rgb = np.broadcast_to(block[:, :, :1], block.shape[:2] + (3,)) if self.is_grey else block[:, :, :3]
        if not alpha:
            return to_float(rgb, self.maxval, out)
        if out is None:
            out = np.empty(block.shape[:2] + (4,), np.float32)
        to_float(rgb, self.maxval, out[:, :, :3])
        if self.has_alpha:
            to_float(block[:, :, -1], self.maxval, out[:, :, 3])
        else:
            out[:, :, 3] = 1.0
        return out

    def alpha(self, ys: slice) -> np.ndarray:
        """Float32 alpha rows in [0, 1], full width."""
        return to_float(self._rows(*_bounds(ys, self.height))[:, :, -1], self.maxval)


def _bounds(ys: slice, height: int) -> tuple[int, int]:
    start, stop, step = ys.indices(height)
    if step != 1:
        raise ValueError("row windows are contiguous")
    return start, max(start, stop)


@dataclass
class Picture(_Windows):
    """Pixels as stored: H x W x C with C = 1 (grey), 2 (grey+alpha), 3 (RGB) or 4 (RGBA)."""
    pixels: np.ndarray
    path: Path | None = None

    def __post_init__(self):
        if self.pixels.ndim == 2:
            self.pixels = self.pixels[:, :, None]
        check_layout(self.pixels.shape[2] if self.pixels.ndim == 3 else 0, self.pixels.dtype, self.path,
                     self.pixels.shape)

    @property
    def height(self) -> int:
        return self.pixels.shape[0]

    @property
    def width(self) -> int:
        return self.pixels.shape[1]

    @property
    def channels(self) -> int:
        return self.pixels.shape[2]

    @property
    def dtype(self) -> np.dtype:
        return self.pixels.dtype

    def _rows(self, start: int, stop: int) -> np.ndarray:
        return self.pixels[start:stop]


def check_layout(channels: int, dtype, path, shape=None) -> None:
    if channels not in (1, 2, 3, 4):
        raise MemsrError(f"unsupported pixel layout {shape or channels}", path)
    if np.dtype(dtype) not in (np.uint8, np.uint16, np.float32):
        raise MemsrError(f"unsupported sample type {np.dtype(dtype)} (8-bit, 16-bit or float32 only)", path)


class RowWindows(_Windows):
    """Windows over an ``ImageReader`` (see decode.py) that decodes rows in order.

    ``keep``: rows kept below the lowest row of the latest request, for readers that step back a little (the
    alpha of a band reads a few rows of context above it).
    """

    def __init__(self, reader, keep: int = 16):
        self.reader = reader
        self.path = reader.path
        self.height, self.width, self.channels, self.dtype = reader.height, reader.width, reader.channels, \
            reader.dtype
        self.keep = keep
        self.restarts = 0
        self._reset()

    def _reset(self) -> None:
        old = getattr(self, "_chunks", None)
        if old is not None:
            old.close()  # ends the decoding thread behind it
        self._chunks = self.reader.chunks()
        self._buf = np.empty((0, self.width, self.channels), self.dtype)
        self._lo = 0            # self._buf holds rows [_lo, _lo + len(_buf))
        self.peak_rows = getattr(self, "peak_rows", 0)

    def _rows(self, start: int, stop: int) -> np.ndarray:
        if not self.reader.streamed:  # decoded whole anyway: no cache, no copies
            return self.reader.read_all()[start:stop]
        if start < self._lo:
            self.restarts += 1
            self._reset()
        parts = [self._buf]
        hi = self._lo + len(self._buf)
        while hi < stop:
            try:
                chunk = next(self._chunks)
            except StopIteration:
                raise MemsrError(f"decoder stopped at row {hi} of {self.height}", self.path) from None
            parts.append(chunk)
            hi += chunk.shape[0]
        first = min(max(self._lo, start - self.keep), start)
        if len(parts) > 1 or first > self._lo:
            kept, skip = [], first - self._lo
            for part in parts:
                if skip >= len(part):
                    skip -= len(part)
                    continue
                kept.append(part[skip:])
                skip = 0
            # a fresh array, so that the rows dropped (and the decoder's chunks) are freed
            self._buf = np.concatenate(kept) if kept else self._buf[:0]
            self._lo = first
            self.peak_rows = max(self.peak_rows, len(self._buf))
        return self._buf[start - self._lo:stop - self._lo]

    def close(self) -> None:
        self._chunks.close()
        self.reader.close()
