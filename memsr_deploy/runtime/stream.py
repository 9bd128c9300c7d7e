"""Streaming inference for plain nets: horizontal strips top to bottom, no recomputation.

A 3x3 conv (zero padding 1) needs input rows r-1, r, r+1 for output row r. Each conv therefore keeps the last
two rows of its input (its carry, a ring buffer) and, given k new input rows, emits k output rows one row
behind. The image's top border is a zero row in front of the first strip, the bottom border a zero row after
the last input row; left and right are the conv's own padding. Every output row is computed once, from the
same inputs as in whole-image inference; live memory is a few rows per layer, proportional to the width.

The schedule is the one ``memsr_deploy.formats.memory_budget`` prices (``peak_bytes_stream``): a strip goes
depth-first through the convs, and no conv ever stacks more than ``rows * r + 2`` rows, r being the resolution
it runs at (1 in the body; after a pixel shuffle by f, f times its predecessor's) - the bottom zero row
counts as a new row, so the final flush is split where it would not fit. A conv after a shuffle (EDSR's
upsampler tail) works on HR rows the same way: its carry is two HR rows, its border a zero HR row, so its
output lags by HR rows, and an output band is handed out once whole LR rows' worth of HR rows are done.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np

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
        self.relu = [a == "relu" for a in plain_model.acts] + [False] * (len(self.convs) - len(plain_model.acts))
        self.shuffles = plain_model.cfg.shuffles()
        # per conv, the resolution it runs at in LR sizes: its rows and columns are that many times the LR ones
        self.res = [1]
        for f in self.shuffles[:-1]:
            self.res.append(self.res[-1] * f)
        self.rows = max(1, int(rows))
        self.convert = convert or Converter()
        self.progress = progress
        self.on_retry = on_retry or (lambda msg: None)
        self.source = source

    def bands(self, picture) -> Iterator[Band]:
        h, w = picture.height, picture.width
        read = produced = emitted = 0   # LR rows read, produced in this pass, handed out
        pending: list[np.ndarray] = []  # HR rows produced but not yet a whole LR row's worth
        carry = self._fresh_carry(w)
        if self.progress is not None:
            self.progress.reset(total=h)
        while read < h:
            stop = min(read + self.rows, h)
            try:
                pieces = self._strip(picture, read, stop, carry)
            except Exception as e:
                if not is_out_of_memory(e):
                    raise
                if self.rows <= 1:
                    raise MemsrError(f"out of memory even with one-row strips ({e})", self.source) from None
                # The carries are half-updated now. Keeping a copy to roll back would cost another set of
                # carries for the whole run; a failure (in practice: in the first strip) restarts from the top
                # instead, and rows already handed out are not handed out again.
                self.rows //= 2
                self.on_retry(f"out of memory; restarting with {self.rows}-row strips (rows done so far are kept)")
                read = produced = 0
                pending = []
                carry = self._fresh_carry(w)
                continue
            read = stop
            pieces = pending + pieces
            n = sum(p.shape[0] for p in pieces) // self.scale
            band = pieces[0] if len(pieces) == 1 else np.concatenate(pieces) if pieces else None
            pending = [] if band is None or band.shape[0] == n * self.scale else [band[n * self.scale:]]
            if produced + n > emitted:
                band = band[:n * self.scale]
                skip = max(emitted - produced, 0)
                if self.progress is not None:
                    self.progress.update(produced + n - max(emitted, produced))
                yield Band(produced + skip, produced + n, band[skip * self.scale:])
                emitted = produced + n
            produced += n
        if emitted != h:
            raise RuntimeError(f"stream emitted {emitted} of {h} rows")

    def _fresh_carry(self, width: int) -> list[list]:
        """carry[i] = [buffer, rows]: conv i's last ``rows`` (1 or 2) input rows sit at the bottom of a 2-row
        buffer; at the start one zero row stands for the top border. The buffers are allocated once and
        overwritten in place: long-lived blocks allocated between the short-lived strip buffers would fragment
        the heap (measured: peak RSS creeping up by 200 MB over a 12240 px wide image)."""
        import torch  # here, not at the top: the default (ONNX Runtime) path never imports torch
        dtype = self.convs[0][0].dtype
        return [[torch.zeros(1, wt.shape[1], 2, width * r, dtype=dtype), 1] for (wt, _), r in zip(self.convs, self.res)]

    def _strip(self, picture, start: int, stop: int, carry: list) -> list[np.ndarray]:
        """Push input rows [start, stop) through every conv, updating the carries in place; returns the
        converted HR output pieces."""
        import torch
        x = picture.colour(slice(start, stop), slice(None))
        x = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None]
        pieces = []
        with torch.inference_mode():
            x = self.model.normalize(x * self.value_range if self.value_range != 1.0 else x)
            self._run(x, stop == picture.height, carry, pieces)
        return pieces

    def _run(self, x, final: bool, carries: list, pieces: list) -> None:
        """Depth-first through the convs with an explicit task stack, so that only the rows in flight are
        referenced (recursion would keep every layer's output of the strip alive until the strip ends).
        A task (i, rows, final) gives conv i new input rows (None: none); ``final``: the bottom border follows."""
        import torch
        import torch.nn.functional as F
        tasks = [(0, x, final)]
        del x
        while tasks:
            i, x, final = tasks.pop()
            if i == len(self.convs):
                hr = x[0].permute(1, 2, 0)
                del x
                if self.value_range != 1.0:
                    hr = hr / self.value_range
                pieces.append(self.convert(hr.numpy()))
                continue
            n = 0 if x is None else x.shape[2]
            if final and n + 1 > self.rows * self.res[i]:
                # no room for the zero row in this step: it follows once these rows have gone down the net
                tasks.append((i, None, True))
                final = False
            if n == 0 and not final:
                continue
            buf, kept = carries[i]
            parts = [buf[:, :, 2 - kept:]] if x is None else [buf[:, :, 2 - kept:], x]
            if final:
                parts.append(torch.zeros_like(buf[:, :, :1]))
            stack = torch.cat(parts, dim=2)
            del parts, x
            kept = min(2, stack.shape[2])
            buf[:, :, 2 - kept:].copy_(stack[:, :, -kept:])
            carries[i][1] = kept
            wt, b = self.convs[i]
            if stack.shape[2] < 3:
                y = stack.new_zeros(1, wt.shape[0], 0, stack.shape[3])
            else:
                y = F.conv2d(stack, wt, b, padding=(0, 1))
                if self.relu[i]:
                    y.relu_()
            if self.shuffles[i] > 1:
                y = F.pixel_shuffle(y, self.shuffles[i])
            del stack
            tasks.append((i + 1, y, final))
            del y
