"""Float32 TIFF output, written tile by tile with tifffile (libvips is fed 8/16-bit rows only, see encode.py).

TIFF tiles are stored row of tiles by row of tiles, so bands are regrouped into 256-row slabs and each slab
is cut into tiles as soon as it is full: at most one slab (256 rows x output width) is held at a time.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

TILE = 256


def tiff_kwargs(channels: int) -> dict:
    kw = {"photometric": "rgb" if channels in (3, 4) else "minisblack"}
    if channels in (2, 4):
        kw["extrasamples"] = ["unassalpha"]
    return kw


def _tiles(bands: Iterable[np.ndarray], height: int, width: int, channels: int, dtype) -> Iterator[np.ndarray]:
    slab = np.zeros((TILE, width, channels), dtype=dtype)
    filled, row = 0, 0
    for px in bands:
        k = 0
        while k < px.shape[0]:
            n = min(TILE - filled, px.shape[0] - k)
            slab[filled:filled + n] = px[k:k + n]
            filled, k, row = filled + n, k + n, row + n
            if filled == TILE or row == height:
                yield from _cut(slab, filled, width)
                filled = 0
    if row != height:
        raise RuntimeError(f"bands covered {row} of {height} rows")


def _cut(slab: np.ndarray, rows: int, width: int) -> Iterator[np.ndarray]:
    if rows < TILE:
        slab[rows:] = 0
    for x in range(0, width, TILE):
        t = slab[:, x:x + TILE]
        if t.shape[1] < TILE:
            full = np.zeros((TILE, TILE, slab.shape[2]), dtype=slab.dtype)
            full[:, :t.shape[1]] = t
            t = full
        yield np.ascontiguousarray(t)


def write_tiff_tiles(tmp: Path, bands: Iterable[np.ndarray], height: int, width: int, channels: int, dtype,
                     icc: bytes | None = None) -> None:
    import tifffile
    shape = (height, width) if channels == 1 else (height, width, channels)
    extratags = [(34675, "B", len(icc), icc, True)] if icc else []
    with tifffile.TiffWriter(tmp, bigtiff=True) as tw:
        tw.write(_tiles(bands, height, width, channels, dtype), shape=shape, dtype=np.dtype(dtype),
                 tile=(TILE, TILE), compression="zlib", compressionargs={"level": 1}, maxworkers=1,
                 extratags=extratags, **tiff_kwargs(channels))
