"""The shape of a plain net from its config alone, without torch (the default runtime path never imports it).

A plain net is a chain of 3x3 convs. Its body runs at LR; its tail is one of two kinds:

* ``"shuffle"`` (ESPCN's, memsr's own students): one conv to 3*s*s channels, then pixel shuffle by s.
* ``"upsampler"`` (EDSR's, the paper's teacher and its students with ``--tail teacher``): per factor of the
  scale (2 -> [2], 3 -> [3], 4 -> [2, 2]) a conv to W*f*f channels and a pixel shuffle by f, then one conv to
  3 channels at the output resolution. W is the last body width.

Every consumer reads the chain as: for conv i, its output width ``conv_channels[i + 1]``, its activation, and
the pixel-shuffle factor applied after it (``shuffle_after``; 1 = none).
"""
from __future__ import annotations

import math
from fractions import Fraction

TAILS = ("shuffle", "upsampler")


def scale_factors(scale: int) -> list[int]:
    """EDSR's upsampler: x4 is two x2 stages, x2 and x3 one stage."""
    return [2, 2] if scale == 4 else [scale]


def conv_channels(widths: list[int], scale: int, tail: str = "shuffle") -> list[int]:
    """Channel count of every feature map in order: input, each body layer, each tail conv's output."""
    widths = [int(w) for w in widths]
    if tail == "shuffle":
        return [3, *widths, 3 * scale * scale]
    if tail == "upsampler":
        w = widths[-1]
        return [3, *widths, *[w * f * f for f in scale_factors(scale)], 3]
    raise ValueError(f"unknown tail {tail!r}; expected one of {TAILS}")


def shuffle_after(n_body: int, scale: int, tail: str = "shuffle") -> list[int]:
    """Per conv (body, then tail convs), the pixel-shuffle factor applied to its output (1 = none)."""
    if tail == "shuffle":
        return [1] * n_body + [scale]
    if tail == "upsampler":
        return [1] * n_body + scale_factors(scale) + [1]
    raise ValueError(f"unknown tail {tail!r}; expected one of {TAILS}")


def conv_shapes(widths: list[int], scale: int, tail: str = "shuffle") -> list[tuple[int, int]]:
    """(input channels, output channels) of every conv in order; a conv after a shuffle by f reads its
    predecessor's output channels / f*f."""
    chans = conv_channels(widths, scale, tail)
    shuffles = shuffle_after(len(widths), scale, tail)
    cins = [chans[0]] + [c // (f * f) for c, f in zip(chans[1:-1], shuffles[:-1])]
    return list(zip(cins, chans[1:]))


def receptive_radius(n_body: int, scale: int, tail: str = "shuffle") -> int:
    """LR pixels of context an output pixel sees: each 3x3 conv adds one pixel at its own resolution, i.e.
    1/r LR pixels for a conv running at r times the LR size; the halo is that sum rounded up (the exact tile
    halo: one LR pixel less leaves seams)."""
    r, total = 1, Fraction(0)
    for f in shuffle_after(n_body, scale, tail):
        total += Fraction(1, r)
        r *= f
    return math.ceil(total)


def param_count(widths: list[int], scale: int, tail: str = "shuffle") -> int:
    return sum(9 * a * b + b for a, b in conv_shapes(widths, scale, tail))
