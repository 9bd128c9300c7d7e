"""The memory-budget rule: how many activation bytes a plain model needs per tile or per strip.

This module is a SPEC. The tiled/streaming runtime (``memsr_deploy/runtime``) and the Java core of the Android
demo implement exactly these formulas; change them here first, then everywhere else. Everything is integer
arithmetic so the Java port gives identical answers.

Notation (plain model, i.e. ``desc.is_plain``)
----------------------------------------------
* ``s`` = scale, ``C = [3, *desc.layer_widths]``: channels of every feature map in execution order - the
  input, each body layer's output, then the tail output ``C[-1] = 3*s*s`` (``layer_widths`` ends with the tail).
  ``L + 1 = len(C) - 1`` convs, conv ``i`` reads ``C[i]`` channels and writes ``C[i+1]``.
* ``d`` = bytes per activation element (fp32 4, fp16 2, int8 1).
* Activations only: weights, the caller's full input photo and the full output image are not counted.
* Activations (ReLU) and the input normalisation are assumed fused into their conv / done in place, as every
  deployment runtime does (ONNX Runtime's Conv+Relu fusion, TFLite's fused activations, our runtime's
  ``relu_``). PyTorch eager does not fuse; ``profiler.analytic`` models that separately.

Per-pixel live channels
-----------------------
``P = max(max_i (C[i] + C[i+1]), 2 * 3*s*s)``: while conv ``i`` runs its input and output are alive (two maps at
a time, the plain net's whole point); the pixel shuffle copies the tail output, so it is alive twice.

Tiled mode (``tile_plan``): each window has side ``tile + 2*halo`` LR pixels (``halo = desc.receptive_radius``)
---------------------------------------------------------------------------------------------------------------
``peak_bytes_tiled = batch * (tile + 2*halo)**2 * P * d``
``tile_for_budget  = isqrt(budget // (batch * P * d)) - 2*halo`` (largest square tile within budget); < 1 raises.
tile_plan may shrink windows (``win = min(L, core + 2h)`` with ``core <= tile``), never grow them, so the rule
is an upper bound for every tile of a plan.

Streaming mode: strips of ``R`` LR rows over the full image width ``W`` (LR pixels)
-----------------------------------------------------------------------------------
The runtime keeps, for every conv ``i`` (tail included), a ring buffer of its INPUT holding ``R + 2`` full-width
rows of ``C[i]`` channels: the ``R`` new rows of a strip plus the 2 rows of context (one above, one below the
``R`` rows it outputs) a 3x3 conv needs. Each step, for ``i = 0..L``: conv ``i`` reads its ``R + 2`` buffered
rows (zero padding only left and right: the top/bottom context is in the buffer, zero rows beyond the image)
and writes ``R`` output rows, a temporary; ReLU is applied to it in place; for a body conv those rows are then
copied into the ring buffer of conv ``i + 1`` (whose last 2 rows were first moved to its front) and the
temporary is freed. The tail's ``R`` output rows (``3*s*s`` channels) are pixel-shuffled into ``R*s`` HR rows -
a second map of the same size - which go to the output image. Each conv's output lags one row behind its
input; the runtime flushes with zero rows past the bottom. Hence, with ``S = sum(C[:-1])`` (every conv's input
channels) and ``T = max(max(C[1:-1]), 2 * C[-1])`` (the largest temporary: a body conv output, or the tail output
plus its shuffled copy)::

    peak_bytes_stream(R) = W * d * ((R + 2) * S + R * T)

``strip_rows_for_budget`` returns the largest ``R >= 1`` within the budget:
``R = (budget // (W * d) - 2*S) // (S + T)``; ``R < 1`` raises. Cap it at the image height yourself.

Teachers
--------
A residual teacher is not a chain, so its ``P`` comes from the liveness walk of its traced graph (same fusion
assumptions) in :mod:`memsr_deploy.profiler.analytic`; ``per_pixel_channels`` delegates to it. Streaming a
teacher is not supported (its skips would need a buffer per live map). The Java core only sees plain models.
"""
from __future__ import annotations

import math

from ..errors import MemsrError

DTYPE_BYTES = {"fp32": 4, "fp16": 2, "int8": 1}


def dtype_bytes(dtype) -> int:
    """Bytes per element for 'fp32' / 'fp16' / 'int8' (or an int, passed through)."""
    if isinstance(dtype, int):
        return dtype
    try:
        return DTYPE_BYTES[str(dtype).lower()]
    except KeyError:
        raise MemsrError(f"unknown dtype {dtype!r}; expected one of {', '.join(DTYPE_BYTES)}") from None


def channels(desc) -> list[int]:
    """C = [3, *layer_widths]: every feature map's channel count of a plain model, tail output last."""
    return [3, *[int(w) for w in desc.layer_widths]]


def _require_plain(desc, what: str) -> None:
    if not desc.is_plain:
        raise MemsrError(f"{what} needs a plain model (chain of convs); this one is a {desc.kind}",
                         getattr(desc, "path", None))


def per_pixel_channels(desc) -> int:
    """P: feature-map channels alive at once per LR pixel at the peak (see module docstring)."""
    if not desc.is_plain:
        from .analytic import teacher_per_pixel_channels
        return teacher_per_pixel_channels(desc)
    c = channels(desc)
    return max(max(c[i] + c[i + 1] for i in range(len(c) - 1)), 2 * c[-1])


def peak_bytes_tiled(desc, tile: int, dtype_bytes: int = 4, batch: int = 1) -> int:
    """Activation bytes of a batch of tile windows of side tile + 2*halo."""
    win = tile + 2 * desc.receptive_radius
    return batch * win * win * per_pixel_channels(desc) * dtype_bytes


def tile_for_budget(desc, budget_bytes: int, dtype_bytes: int = 4, batch: int = 1) -> int:
    """Largest core tile side whose windows fit budget_bytes of activations."""
    p = per_pixel_channels(desc)
    tile = math.isqrt(int(budget_bytes) // (batch * p * dtype_bytes)) - 2 * desc.receptive_radius
    if tile < 1:
        need = peak_bytes_tiled(desc, 1, dtype_bytes, batch)
        raise MemsrError(f"budget too small: {int(budget_bytes)} bytes; a 1-pixel tile with its "
                         f"{desc.receptive_radius}-pixel halo needs {need}", getattr(desc, "path", None))
    return tile


def _stream_terms(desc) -> tuple[int, int]:
    c = channels(desc)
    s_in = sum(c[:-1])
    body_outs = c[1:-1]
    t = max(max(body_outs) if body_outs else 0, 2 * c[-1])
    return s_in, t


def peak_bytes_stream(desc, width: int, rows: int, dtype_bytes: int = 4) -> int:
    """Activation bytes of streaming strips of ``rows`` LR rows over an image ``width`` LR pixels wide."""
    _require_plain(desc, "streaming")
    s_in, t = _stream_terms(desc)
    return width * dtype_bytes * ((rows + 2) * s_in + rows * t)


def strip_rows_for_budget(desc, width: int, budget_bytes: int, dtype_bytes: int = 4) -> int:
    """Largest strip height R >= 1 (LR rows) whose streaming buffers fit budget_bytes."""
    _require_plain(desc, "streaming")
    if width < 1:
        raise MemsrError(f"image width must be positive, got {width}")
    s_in, t = _stream_terms(desc)
    rows = (int(budget_bytes) // (width * dtype_bytes) - 2 * s_in) // (s_in + t)
    if rows < 1:
        need = peak_bytes_stream(desc, width, 1, dtype_bytes)
        raise MemsrError(f"budget too small: {int(budget_bytes)} bytes; streaming a {width}-pixel-wide image "
                         f"one row at a time needs {need}", getattr(desc, "path", None))
    return rows
