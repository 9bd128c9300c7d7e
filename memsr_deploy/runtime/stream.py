"""Streaming inference for plain nets: horizontal strips top to bottom, no recomputation.

A 3x3 conv (zero padding 1) needs input rows r-1, r, r+1 for output row r. Each conv therefore keeps the last
two rows of its input (its carry, a ring buffer) and, given k new input rows, emits k output rows one row
behind. The image's top border is a zero row in front of the first strip, the bottom border a zero row after
the last input row; left and right are the conv's own padding. Every output row is computed once, from the
same inputs as in whole-image inference; live memory is a few rows per layer, proportional to the width.

The schedule is the one ``memsr_deploy.profiler.budget`` prices (``peak_bytes_stream``): a strip goes
depth-first through the convs, and no conv ever stacks more than ``rows + 2`` rows - the bottom zero row
counts as a new row, so the final flush is split where it would not fit.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import MemsrError
from .backends import is_out_of_memory
from .bands import Band, Converter


class StreamRunner:
    def __init__(self, plain_model, rows: int = 16, convert: Converter | None = None, progress=None,
                 on_retry=None, source: str | None = None):
        if plain_model is None:
            raise MemsrError("streaming needs a plain model (a student or converted net), not a teacher", source)
        self.model = plain_model
        self.scale = plain_model.cfg.scale
        self.value_range = float(plain_model.cfg.input.value_range)
        self.convs = [(c.weight.detach(), c.bias.detach()) for c in plain_model.convs()]
        self.relu = [a == "relu" for a in plain_model.acts] + [False]
        self.rows = max(1, int(rows))
        self.convert = convert or Converter()
        self.progress = progress
        self.on_retry = on_retry or (lambda msg: None)
        self.source = source

    def bands(self, picture) -> Iterator[Band]:
        h, w = picture.height, picture.width
        dtype = self.convs[0][0].dtype
        # carry[i]: the last (at most two) input rows of conv i; a zero row stands for the top border
        carry = [torch.zeros(1, wt.shape[1], 1, w, dtype=dtype) for wt, _ in self.convs]
        read, emitted = 0, 0
        if self.progress is not None:
            self.progress.reset(total=h)
        while read < h:
            stop = min(read + self.rows, h)
            try:
                pieces, carry = self._strip(picture, read, stop, carry)
            except Exception as e:
                if not is_out_of_memory(e):
                    raise
                if self.rows <= 1:
                    raise MemsrError(f"out of memory even with one-row strips ({e})", self.source) from None
                self.rows //= 2
                self.on_retry(f"out of memory; going on from row {read} with {self.rows}-row strips")
                continue
            if self.progress is not None:
                self.progress.update(stop - read)
            read = stop
            n = sum(p.shape[0] for p in pieces) // self.scale
            if n:
                band = pieces[0] if len(pieces) == 1 else np.concatenate(pieces)
                yield Band(emitted, emitted + n, band)
                emitted += n
        if emitted != h:
            raise RuntimeError(f"stream emitted {emitted} of {h} rows")

    def _strip(self, picture, start: int, stop: int, carry: list[torch.Tensor]):
        """Push input rows [start, stop) through every conv. Returns the converted HR output pieces and the
        new carries; works on a copy of the carries so that an out-of-memory retry starts from a clean state."""
        x = picture.colour(slice(start, stop), slice(None))
        x = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None]
        work, pieces = list(carry), []
        with torch.inference_mode():
            x = self.model.normalize(x * self.value_range if self.value_range != 1.0 else x)
            self._feed(0, x, stop == picture.height, work, pieces)
        return pieces, work

    def _feed(self, i: int, x: torch.Tensor, final: bool, work: list, pieces: list) -> None:
        """Give conv ``i`` new input rows ``x``; ``final``: they are its last, the bottom border follows."""
        if i == len(self.convs):
            hr = F.pixel_shuffle(x, self.scale)[0].permute(1, 2, 0)
            if self.value_range != 1.0:
                hr = hr / self.value_range
            pieces.append(self.convert(hr.numpy()))
            return
        if final and x.shape[2] + 1 > self.rows:  # no room for the zero row in this step: flush it after
            self._step(i, x, False, work, pieces)
            self._step(i, x[:, :, :0], True, work, pieces)
        else:
            self._step(i, x, final, work, pieces)

    def _step(self, i: int, x: torch.Tensor, final: bool, work: list, pieces: list) -> None:
        if x.shape[2] == 0 and not final:
            return
        wt, b = self.convs[i]
        parts = [work[i], x]
        if final:
            parts.append(torch.zeros_like(work[i][:, :, :1]))
        stack = torch.cat(parts, dim=2)
        work[i] = stack[:, :, -2:].clone()
        if stack.shape[2] < 3:
            y = stack.new_zeros(1, wt.shape[0], 0, stack.shape[3])
        else:
            y = F.conv2d(stack, wt, b, padding=(0, 1))
            if self.relu[i]:
                y.relu_()
        del stack, parts
        self._feed(i + 1, y, final, work, pieces)
