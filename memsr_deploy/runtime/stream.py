"""Streaming inference for plain nets: horizontal strips top to bottom, no recomputation.

A 3x3 conv (zero padding 1) needs input rows r-1, r, r+1 for output row r. Each layer therefore keeps the
last two rows of its input (its ring buffer) and, given k new input rows, emits k output rows one row behind.
The image's top border is a zero row put in front of the first strip; the bottom border a zero row after the
last; the left/right borders are the conv's own padding. Every output row is computed exactly once, from the
same inputs as in whole-image inference, and live memory is a few rows per layer: proportional to the width.
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
        self.convs = [(c.weight.detach(), c.bias.detach()) for c in plain_model.convs()]
        self.acts = [*plain_model.acts, "none"]
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
                out, new_carry = self._strip(picture, read, stop, carry)
            except Exception as e:
                if not is_out_of_memory(e):
                    raise
                if self.rows <= 1:
                    raise MemsrError(f"out of memory even with one-row strips ({e})", self.source) from None
                self.rows //= 2
                self.on_retry(f"out of memory; going on from row {read} with {self.rows}-row strips")
                continue
            carry, start, read = new_carry, read, stop
            n = out.shape[2]
            if n:
                hr = F.pixel_shuffle(out, self.scale)[0].permute(1, 2, 0).numpy()
                yield Band(emitted, emitted + n, self.convert(hr))
                emitted += n
            if self.progress is not None:
                self.progress.update(stop - start)
        if emitted != h:
            raise RuntimeError(f"stream emitted {emitted} of {h} rows")

    def _strip(self, picture, start: int, stop: int, carry: list[torch.Tensor]):
        """Push input rows [start, stop) through every layer; return the new output rows and the new carries
        (committed by the caller only when the whole strip succeeded, so a retry starts from a clean state)."""
        h = picture.height
        x = torch.from_numpy(np.ascontiguousarray(picture.colour(slice(start, stop), slice(None))
                                                  .transpose(2, 0, 1)))[None]
        new_carry = []
        with torch.inference_mode():
            x = self.model.normalize(x)
            for (wt, b), act, c in zip(self.convs, self.acts, carry):
                parts = [c, x]
                if stop == h:
                    parts.append(torch.zeros_like(c[:, :, :1]))  # bottom border
                stack = torch.cat(parts, dim=2)
                new_carry.append(stack[:, :, -2:].clone() if stop < h else c)
                if stack.shape[2] < 3:
                    x = stack.new_zeros(1, wt.shape[0], 0, stack.shape[3])
                    continue
                x = F.conv2d(stack, wt, b, padding=(0, 1))
                if act == "relu":
                    x = F.relu(x)
        return x, new_carry
