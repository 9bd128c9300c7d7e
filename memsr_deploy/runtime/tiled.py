"""Exact tiled inference: equal windows batched through a backend, cores placed into full-width bands.

Every core pixel sees exactly the context it has in the whole image (see tile_plan), so the result equals
whole-image inference up to float round-off. If the backend runs out of memory, the tile is halved and work
goes on from the first row not yet emitted.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..errors import MemsrError
from .bands import Band, Converter
from .backends import Backend, is_out_of_memory
from .windows import check_fixed, plan_span


class TiledRunner:
    def __init__(self, backend: Backend, tile: int, halo: int | None = None, batch: int = 1,
                 convert: Converter | None = None, progress=None, on_retry=None, tile_w: int | None = None):
        self.backend = backend
        self.scale = backend.caps.scale
        self.halo = backend.caps.halo if halo is None else int(halo)
        # None: the backend's default (for a fixed-shape artefact: the largest tile its input holds)
        self.tile = None if tile is None else int(tile)
        # columns: the same as rows unless given (0 = full-width strips, the streaming mode of graph backends)
        self.tile_w = self.tile if tile_w is None else int(tile_w)
        self.batch = max(1, int(batch))
        if backend.caps.max_batch:
            self.batch = min(self.batch, backend.caps.max_batch)
        self.convert = convert or Converter()
        self.progress = progress
        self.on_retry = on_retry or (lambda msg: None)
        self.fixed = backend.caps.fixed_shape
        self._buffers: dict[str, np.ndarray] = {}
        if self.fixed and self.tile == 0:
            raise MemsrError("a fixed-shape artefact cannot run the whole image at once: give a tile size",
                             backend.source)

    def _axis_tiles(self, height: int, width: int, path) -> tuple[int, int]:
        if not self.fixed:
            tile = self.backend.caps.default_tile if self.tile is None else self.tile
            return tile, (tile if self.tile_w is None else self.tile_w)
        th, tw = check_fixed(self.fixed, self.halo, height, width, path)
        if self.tile is not None:
            if self.tile > min(th, tw) and (height > self.fixed[0] or width > self.fixed[1]):
                raise MemsrError(f"tile {self.tile} does not fit the artefact's fixed input {self.fixed[1]}x"
                                 f"{self.fixed[0]} with halo {self.halo} (largest tile: {min(th, tw)})",
                                 self.backend.source)
            th, tw = min(th, self.tile), min(tw, self.tile)
        # an axis exactly as long as the fixed input is one window, whatever the halo
        return (height if height == self.fixed[0] else th), (width if width == self.fixed[1] else tw)

    def bands(self, picture) -> Iterator[Band]:
        h, w = picture.height, picture.width
        done = 0
        th, tw = self._axis_tiles(h, w, picture.path)
        while done < h:
            fy = self.fixed[0] if self.fixed else None
            fx = self.fixed[1] if self.fixed else None
            rows = plan_span(h, th, self.halo, done, fy)
            cols = plan_span(w, tw, self.halo, 0, fx)
            if self.progress is not None:
                self.progress.reset(total=len(rows) * len(cols))
            try:
                for ry in rows:
                    band = self._band(picture, ry, cols)
                    first = max(done, ry.core_start)
                    yield Band(first, ry.core_start + ry.core, band[(first - ry.core_start) * self.scale:])
                    done = ry.core_start + ry.core
            except Exception as e:
                if not is_out_of_memory(e):
                    raise
                if self.fixed or max(th, tw) <= 1:
                    raise MemsrError(f"out of memory even at the smallest tile ({e})", self.backend.source) from None
                th = max(1, (th if th > 0 else h) // 2)
                tw = max(1, (tw if tw > 0 else w) // 2)
                self.on_retry(f"out of memory; retrying from row {done} with tile {th}x{tw}")

    def _buffer(self, name: str, shape: tuple) -> np.ndarray:
        """A float32 buffer kept between windows (the windows of a job share one size): a fresh one per window
        was a page fault per page once it passed runtime.heap's mmap threshold (tiles above ~280 px). A backend
        is done with its input when its call returns, so the next window may refill it."""
        buf = self._buffers.get(name)
        if buf is None or buf.shape != shape:
            buf = self._buffers[name] = np.empty(shape, np.float32)
        return buf

    def _band(self, picture, ry, cols) -> np.ndarray:
        s = self.scale
        out = np.empty((ry.core * s, picture.width * s, self.convert.channels), dtype=self.convert.dtype)
        ys = slice(ry.in_start, ry.in_start + ry.win)
        nhwc = self.backend.caps.channels_last
        ch = getattr(self.backend.caps, "channels", 3)   # 4: the model takes alpha (opaque where there is none)
        for i in range(0, len(cols), self.batch):
            group = cols[i:i + self.batch]
            # filled window by window, in the backend's own layout
            x = self._buffer("batch", (len(group), ry.win, group[0].win, ch) if nhwc
                             else (len(group), ch, ry.win, group[0].win))
            for j, c in enumerate(group):
                xs = slice(c.in_start, c.in_start + c.win)
                if nhwc:
                    picture.colour(ys, xs, out=x[j], alpha=ch == 4)
                else:
                    x[j] = picture.colour(ys, xs, out=self._buffer("window", (ry.win, c.win, ch)),
                                          alpha=ch == 4).transpose(2, 0, 1)
            y = self.backend.run_nhwc(x) if nhwc else self.backend.run(x)
            for c, yi in zip(group, y):
                oy, ox = (ry.core_start - ry.in_start) * s, c.offset * s
                core = (yi if nhwc else yi.transpose(1, 2, 0))[oy:oy + ry.core * s, ox:ox + c.core * s]
                self.convert(core, out[:, c.core_start * s:(c.core_start + c.core) * s])
            if self.progress is not None:
                self.progress.update(len(group))
        return out
