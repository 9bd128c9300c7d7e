"""One upscaling job: picture in, bands through a tiled or streaming runner, picture out.

A file job is a pipeline of three stages that overlap: the reader decodes the next rows (a worker thread,
imageio.decode), the runner computes a band (a worker thread, ``ahead``), and the writer encodes the previous
band (this thread, libvips pulling from imageio.encode's feed). Memory follows the windows and bands, not the
image, for every format libvips streams (JPEG, PNG, TIFF); ``footprint.pixel_bytes`` counts the others (WebP,
BMP, HEIC, camera RAW) honestly, from the header, before decoding. With a budget (``max_memory``) the job is
planned before decoding so that the whole process's peak RSS stays within it (``footprint``).
"""
from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import MemsrError
from ..imageio import (DEFAULT_MAX_PIXELS, NO_ALPHA, Picture, RowWindows, open_image, output_format,
                       storage_dtype, write_bands)
from ..imageio.ahead import ahead
from ..outputs.plan import check_outputs
from . import footprint, memory
from .bands import Band, Converter, assemble, upscale_alpha
from .heap import release_heap
from .stream import StreamRunner
from .tiled import TiledRunner

MODES = ("tile", "stream")


@dataclass
class RunOptions:
    mode: str = "tile"
    tile: int | None = None          # LR core pixels; 0 = whole image; None = budget, sidecar or default
    halo: int | None = None          # override of the exact halo (demonstration only: not exact)
    rows: int | None = None          # strip height for streaming
    batch: int | None = None         # windows per backend call; None = automatic
    max_memory: int | None = None    # budget for the whole process's peak RSS, in bytes (footprint.py)
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
        why = getattr(backend, "approximate", None)   # a foreign graph with no finite receptive radius
        if why and self.opt.halo is None and not (self.opt.mode == "tile" and self.opt.tile == 0):
            raise MemsrError(f"{why}; its tiles cannot be exact: pass --halo N to tile it anyway (the output is "
                             "then approximate), or --tile 0 to run whole images", backend.source)
        if self.opt.mode == "stream" and backend.caps.fixed_shape:
            raise MemsrError("a fixed-shape artefact cannot run full-width strips: use --mode tile or a "
                             "dynamic-shape artefact", backend.source)
        self.last: dict = {}

    @property
    def scale(self) -> int:
        return self.backend.caps.scale

    # ---------------------------------------------------------------------------------------- runners
    def _runner(self, picture: Picture, convert: Converter, bar, plan: footprint.Plan | None = None):
        opt, caps = self.opt, self.backend.caps
        halo = caps.halo if opt.halo is None else opt.halo
        inexact = getattr(self.backend, "approximate", None) if opt.halo is None else None
        if opt.mode == "stream" and getattr(self.backend, "plain", None) is not None:
            # PyTorch plain nets: layer-wise rolling buffers, nothing recomputed
            rows = plan.rows if plan else (opt.rows or memory.default_strip_rows(picture.width))
            self.last = {"mode": "stream", "rows": rows}
            return StreamRunner(self.backend.plain, rows, convert, bar, self.log, self.backend.source)
        if opt.mode == "stream":
            # every other backend runs a whole graph per call: full-width strips with the exact halo above and
            # below (recomputed), memory proportional to the width as in the layer-wise loop
            rows = plan.rows if plan else (opt.rows or memory.default_recompute_rows(picture.width, halo))
            if plan is None:
                rows = memory.fit_to_memory(self.backend, rows, picture.height, picture.width, self.log,
                                            rows_only=True, halo=opt.halo, inexact=inexact)
            self.last = {"mode": "stream", "rows": rows, "halo": halo, "strips": "recomputed halo"}
            return TiledRunner(self.backend, rows, halo, 1, convert, bar, self.log, tile_w=0)
        if plan is not None:
            tile = None if caps.fixed_shape else (0 if plan.mode == "whole" else plan.tile)
        else:
            tile = opt.tile
            if not caps.fixed_shape:
                tile = memory.fit_to_memory(self.backend, caps.default_tile if tile is None else tile,
                                            picture.height, picture.width, self.log, halo=opt.halo,
                                            inexact=inexact)
        t_eff = tile if tile is not None else max(min(caps.fixed_shape) - 2 * halo, 1)
        n_cols = math.ceil(picture.width / t_eff) if t_eff > 0 else 1
        batch = plan.batch if plan else opt.batch or memory.choose_batch(self.backend, t_eff, halo, n_cols,
                                                                         caps.fixed_shape)
        self.last = {"mode": "tile", "tile": t_eff, "halo": halo, "batch": batch}
        return TiledRunner(self.backend, tile, halo, batch, convert, bar, self.log)

    def plan(self, frame, fmt: str | None = None, channels: int | None = None, dtype=None
             ) -> footprint.Plan | None:
        """With a budget (``max_memory``): this job's mode and sizes, its whole-process peak RSS predicted within
        the budget; a size given that cannot fit, or a budget below the process's floor, is refused in one line
        (before any pixel is decoded). None without a budget. ``frame``: an ``ImageReader`` or a
        ``footprint.Frame``; ``fmt`` None: an in-memory job."""
        opt, caps = self.opt, self.backend.caps
        if not opt.max_memory:
            return None
        rt = footprint.Runtime.of(self.backend, opt.halo)
        halo = caps.halo if opt.halo is None else opt.halo
        default_rows = (memory.default_strip_rows(frame.width) if rt.layered_stream
                        else memory.default_recompute_rows(frame.width, halo))

        def auto_batch(tile: int) -> int:
            n_cols = math.ceil(frame.width / tile) if tile > 0 else 1
            return memory.choose_batch(self.backend, tile, halo, n_cols, caps.fixed_shape)
        return footprint.plan_within(rt, frame, opt.max_memory, mode=opt.mode, tile=opt.tile, rows=opt.rows,
                                     batch=opt.batch, default_tile=caps.default_tile, default_rows=default_rows,
                                     fmt=fmt, out_channels=channels, out_dtype=dtype,
                                     auto_batch=None if opt.batch else auto_batch)

    def bands(self, picture: Picture, dtype=None, bar=None, clip: bool = True, alpha: bool = True,
              plan: footprint.Plan | None = None) -> Iterator[Band]:
        """The upscaled picture as bands of rows in ``dtype`` (default: the picture's), alpha included unless
        ``alpha`` is False. ``clip=False`` leaves float32 output unclipped (integer outputs are always clipped).
        ``picture``: anything with Picture's window interface (Picture, imageio.RowWindows). ``plan``: the
        budgeted plan (``self.plan``); with a budget and none given, it is made here for an in-memory job."""
        dtype = np.dtype(dtype or picture.dtype)
        if plan is None and self.opt.max_memory:
            frame = footprint.Frame(picture.height, picture.width, picture.channels, picture.dtype, False)
            plan = self.plan(frame, None, picture.channels, dtype)
        # a four-channel model upscales alpha itself; a three-channel one gets it upscaled beside it (bicubic)
        model_alpha = getattr(self.backend.caps, "channels", 3) == 4
        convert = Converter(picture.is_grey, dtype, clip, model_alpha, keep_alpha=picture.has_alpha and alpha)
        runner = self._runner(picture, convert, bar, plan)
        if plan is not None:
            self.last["predicted_peak_rss"] = plan.total
        for band in runner.bands(picture):
            if picture.has_alpha and alpha and not model_alpha:
                a = upscale_alpha(picture, band.lr_start, band.lr_stop, self.scale, dtype)
                band = Band(band.lr_start, band.lr_stop, np.concatenate([band.pixels, a], axis=2))
            yield band

    # ------------------------------------------------------------------------------------------ arrays
    def upscale_array(self, image: np.ndarray, bar=None, clip: bool = False) -> np.ndarray:
        """H x W x C float32 in [0, 1] (or uint8/uint16) -> the upscaled image, same type and channels.
        Float output is the network's own, unclipped unless ``clip``."""
        pic = Picture(np.asarray(image))
        s = self.scale
        return assemble(self.bands(pic, bar=bar, clip=clip), pic.height * s, pic.width * s, pic.channels, pic.dtype)

    # ------------------------------------------------------------------------------------------- files
    def upscale_file(self, src, dst, bar=None, before_rename=None) -> dict:
        """``before_rename(tmp)``: called with the complete output before it takes its name (a folder job
        records it: outputs/folder_job.py)."""
        src, dst = Path(src), Path(dst)
        fmt = output_format(dst)
        check_writable(dst, src)
        reader = open_image(src, self.opt.max_pixels)  # header only: nothing decoded yet
        s = self.scale
        dtype = storage_dtype(reader.dtype, fmt)
        has_alpha = reader.channels in (2, 4)
        keep_alpha = has_alpha and fmt not in NO_ALPHA
        if has_alpha and not keep_alpha:
            warnings.warn(f"{fmt} has no alpha channel: transparency dropped", stacklevel=2)
        channels = reader.channels - (1 if has_alpha and not keep_alpha else 0)
        shape = (reader.height * s, reader.width * s)
        plan = self.plan(reader, fmt, channels, dtype)   # refuses, before decoding, what cannot fit the budget
        if plan is None:
            need = footprint.pixel_bytes(reader, fmt, shape, channels, dtype, self._window_rows(reader.height))
            check_fits_in_memory(need, shape, fmt, dst)
        size = [reader.width, reader.height]
        pic = RowWindows(reader)
        computed = ahead((b.pixels for b in self.bands(pic, dtype, bar, alpha=keep_alpha, plan=plan)), depth=1)
        try:
            write_bands(dst, computed, *shape, channels, dtype, self.opt.quality, reader.icc, reader.exif,
                        before_rename)
        finally:
            computed.stop()  # first the compute thread (it reads the decoder's rows), then the decoder
            pic.close()
            del pic, computed, reader  # every pixel of this file freed, then the heaps' free pages given back
            release_heap()
        return {"input": str(src), "output": str(dst), "size": size, "out_size": [shape[1], shape[0]], **self.last}

    def _window_rows(self, height: int) -> int:
        """LR rows one window spans (what the row cache holds), as the runner will choose them."""
        opt, caps = self.opt, self.backend.caps
        if opt.mode == "stream":
            return (opt.rows or 64) + 4
        if caps.fixed_shape:
            return caps.fixed_shape[0]
        tile = caps.default_tile if opt.tile is None else opt.tile
        return height if tile == 0 else min(height, tile + 2 * (caps.halo if opt.halo is None else opt.halo))


def check_writable(dst: Path, src: Path | None = None) -> None:
    """Fail before the work, not after it: the output plan's rules (not a folder, not the input; an existing
    output is replaced, as library callers ask for it), and a folder that can be written."""
    check_outputs([dst], [src] if src is not None else [], overwrite=True)
    parent = dst.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise MemsrError(f"cannot write output: folder {parent} is not writable", dst)


def check_fits_in_memory(need: dict[str, int], shape, fmt: str, dst) -> None:
    """Refuse, before decoding, a job whose pixels cannot fit in the memory available now."""
    import psutil
    total = sum(need.values())
    avail = psutil.virtual_memory().available
    if total > 0.6 * avail:
        parts = ", ".join(f"{k} {v / 2 ** 30:.1f} GiB" for k, v in need.items())
        hint = "; write a .jpg, .png or .tif, which are streamed" if fmt in ("WEBP", "BMP", "HEIF") else ""
        raise MemsrError(f"a {shape[1]}x{shape[0]} {fmt} output needs about {total / 2 ** 30:.1f} GiB for its "
                         f"pixels ({parts}), {avail / 2 ** 30:.1f} GiB available{hint}", dst)
