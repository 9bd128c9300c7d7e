"""Write bands straight into a tiled, compressed BigTIFF, so an output never has to fit in memory.

TIFF tiles are stored row of tiles by row of tiles, so bands are regrouped into 256-row slabs and each slab
is cut into tiles as soon as it is full: at most one slab (256 rows x output width) is held at a time.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from ..outputs.atomic import atomic_path
from ..errors import MemsrError
from .bands import Band
from .image_io import readable_by_all, tiff_kwargs

TILE = 256


def _tiles(bands: Iterable[Band], height: int, width: int, channels: int, dtype) -> Iterator[np.ndarray]:
    slab = np.zeros((TILE, width, channels), dtype=dtype)
    filled, row = 0, 0
    for b in bands:
        px, k = b.pixels, 0
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


def write_tiff_stream(path, bands: Iterable[Band], height: int, width: int, channels: int, dtype) -> None:
    import tifffile
    path = Path(path)
    shape = (height, width) if channels == 1 else (height, width, channels)
    try:
        with atomic_path(path) as tmp:
            readable_by_all(tmp)
            with tifffile.TiffWriter(tmp, bigtiff=True) as tw:
                tw.write(_tiles(bands, height, width, channels, dtype), shape=shape, dtype=np.dtype(dtype),
                         tile=(TILE, TILE), compression="zlib", compressionargs={"level": 1}, maxworkers=1,
                         **tiff_kwargs(channels))
    except OSError as e:
        raise MemsrError(f"cannot write output ({e.strerror or e})", path) from None
