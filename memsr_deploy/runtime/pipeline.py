"""One upscaling job: picture in, bands through a tiled or streaming runner, picture out.

Outputs to TIFF are streamed to disk band by band (bounded memory whatever the size); other formats are
gathered in memory first, so they are refused up front when they would not fit.
"""
from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import MemsrError
from . import memory
from .bands import Band, Converter, assemble, upscale_alpha
from .image_io import (DEFAULT_MAX_PIXELS, EIGHT_BIT_ONLY, NO_ALPHA, Picture, output_format, prepare_for_format,
                       read_picture, write_picture)
from .stream import StreamRunner
from .tiff_stream import write_tiff_stream
from .tiled import TiledRunner

MODES = ("tile", "stream")


@dataclass
class RunOptions:
    mode: str = "tile"
    tile: int | None = None          # LR core pixels; 0 = whole image; None = budget, sidecar or default
    halo: int | None = None          # override of the exact halo (demonstration only: not exact)
    rows: int | None = None          # strip height for streaming
    batch: int | None = None         # windows per backend call; None = automatic
    max_memory: int | None = None    # activation budget in bytes
    quality: int = 95
    max_pixels: int = DEFAULT_MAX_PIXELS
    progress: bool = False


class Upscaler:
    def __init__(self, backend, options: RunOptions | None = None, log=None):
        self.backend = backend
        self.opt = options or RunOptions()
        self.log = log or (lambda msg: None)
        if self.opt.mode not in MODES:
            raise MemsrError(f"unknown mode {self.opt.mode!r}; use one of {MODES}")
        if self.opt.tile is not None and self.opt.tile < 0:
            raise MemsrError(f"tile must be >= 0 (0 = whole image), got {self.opt.tile}")
        if self.opt.mode == "stream" and backend.caps.fixed_shape:
            raise MemsrError("a fixed-shape artefact cannot run full-width strips: use --mode tile or a "
                             "dynamic-shape artefact", backend.source)
        self.last: dict = {}

    @property
    def scale(self) -> int:
        return self.backend.caps.scale

    # ---------------------------------------------------------------------------------------- runners
    def _runner(self, picture: Picture, convert: Converter, bar):
        opt, caps = self.opt, self.backend.caps
        halo = caps.halo if opt.halo is None else opt.halo
        if opt.mode == "stream" and getattr(self.backend, "plain", None) is not None:
            # PyTorch plain nets: layer-wise rolling buffers, nothing recomputed
            rows = opt.rows
            if rows is None and opt.max_memory:
                rows = memory.strip_rows_for_budget(self.backend, picture.width, opt.max_memory)
            rows = rows or memory.default_strip_rows(picture.width)
            self.last = {"mode": "stream", "rows": rows}
            return StreamRunner(self.backend.plain, rows, convert, bar, self.log, self.backend.source)
        if opt.mode == "stream":
            # every other backend runs a whole graph per call: full-width strips with the exact halo above and
            # below (recomputed), memory proportional to the width as in the layer-wise loop
            rows = opt.rows
            if rows is None and opt.max_memory:
                rows = memory.recompute_rows_for_budget(self.backend, picture.width, opt.max_memory)
            rows = rows or memory.default_recompute_rows(picture.width, halo)
            if opt.max_memory is None:
                rows = memory.fit_to_memory(self.backend, rows, picture.height, picture.width, self.log,
                                            rows_only=True)
            self.last = {"mode": "stream", "rows": rows, "halo": halo, "strips": "recomputed halo"}
            return TiledRunner(self.backend, rows, halo, 1, convert, bar, self.log, tile_w=0)
        tile = opt.tile
        if caps.fixed_shape:
            if opt.max_memory:
                memory.check_fixed_budget(self.backend, opt.max_memory)
        elif tile is None:
            tile = memory.tile_for_budget(self.backend, opt.max_memory) if opt.max_memory else caps.default_tile
        if not caps.fixed_shape and opt.max_memory is None:
            tile = memory.fit_to_memory(self.backend, tile, picture.height, picture.width, self.log)
        t_eff = tile if tile is not None else max(min(caps.fixed_shape) - 2 * halo, 1)
        n_cols = math.ceil(picture.width / t_eff) if t_eff > 0 else 1
        batch = opt.batch or memory.choose_batch(self.backend, t_eff, halo, n_cols,
                                                 opt.max_memory if not caps.fixed_shape else None,
                                                 caps.fixed_shape)
        self.last = {"mode": "tile", "tile": t_eff, "halo": halo, "batch": batch}
        return TiledRunner(self.backend, tile, halo, batch, convert, bar, self.log)

    def bands(self, picture: Picture, dtype=None, bar=None, clip: bool = True) -> Iterator[Band]:
        """The upscaled picture as bands of rows in ``dtype`` (default: the picture's), alpha included.
        ``clip=False`` leaves float32 output unclipped (integer outputs are always clipped)."""
        dtype = np.dtype(dtype or picture.dtype)
        runner = self._runner(picture, Converter(picture.is_grey, dtype, clip), bar)
        for band in runner.bands(picture):
            if picture.has_alpha:
                alpha = upscale_alpha(picture, band.lr_start, band.lr_stop, self.scale, dtype)
                band = Band(band.lr_start, band.lr_stop, np.concatenate([band.pixels, alpha], axis=2))
            yield band

    # ------------------------------------------------------------------------------------------ arrays
    def upscale_array(self, image: np.ndarray, bar=None, clip: bool = False) -> np.ndarray:
        """H x W x C float32 in [0, 1] (or uint8/uint16) -> the upscaled image, same type and channels.
        Float output is the network's own, unclipped unless ``clip``."""
        pic = Picture(np.asarray(image))
        s = self.scale
        return assemble(self.bands(pic, bar=bar, clip=clip), pic.height * s, pic.width * s, pic.channels, pic.dtype)

    # ------------------------------------------------------------------------------------------- files
    def upscale_file(self, src, dst, bar=None) -> dict:
        src, dst = Path(src), Path(dst)
        fmt = output_format(dst)
        check_writable(dst, src)
        pic = read_picture(src, self.opt.max_pixels)
        s = self.scale
        dtype = storage_dtype(pic.dtype, fmt)
        channels = pic.channels - (1 if fmt in NO_ALPHA and pic.has_alpha else 0)
        shape = (pic.height * s, pic.width * s)
        bands = self.bands(pic, dtype, bar)
        if fmt == "TIFF":
            write_tiff_stream(dst, bands, *shape, pic.channels, dtype)
        else:
            check_fits_in_memory(shape, channels, dtype, dst)
            out = assemble(bands, *shape, pic.channels, dtype)
            write_picture(dst, prepare_for_format(out, fmt), self.opt.quality)
        return {"input": str(src), "output": str(dst), "size": [pic.width, pic.height],
                "out_size": [shape[1], shape[0]], **self.last}


def storage_dtype(dtype, fmt: str):
    """Keep the input's depth where the format can hold it."""
    dtype = np.dtype(dtype)
    if fmt in EIGHT_BIT_ONLY:
        return np.dtype(np.uint8)
    if dtype == np.float32 and fmt != "TIFF":
        return np.dtype(np.uint16)
    return dtype


def check_writable(dst: Path, src: Path | None = None) -> None:
    """Fail before the work, not after it."""
    if dst.is_dir():
        raise MemsrError("output is a folder; give a file name (or use -o DIR with several inputs)", dst)
    if src is not None and dst.exists() and src.exists() and os.path.samefile(src, dst):
        raise MemsrError("output would overwrite the input", dst)
    parent = dst.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise MemsrError(f"cannot write output: folder {parent} is not writable", dst)


def check_fits_in_memory(shape, channels: int, dtype, dst) -> None:
    import psutil
    need = shape[0] * shape[1] * channels * np.dtype(dtype).itemsize
    avail = psutil.virtual_memory().available
    if need > 0.6 * avail:
        raise MemsrError(f"a {shape[1]}x{shape[0]} output needs {need / 2 ** 30:.1f} GiB in memory for this format "
                         f"({avail / 2 ** 30:.1f} GiB available); write a .tif, which is streamed to disk", dst)
