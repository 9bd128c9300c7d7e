"""The memory-budget rule: how many activation bytes a plain model needs per tile or per strip.

This module is a SPEC. The tiled/streaming runtime (``memsr_deploy/runtime``) and the Java core of the Android
demo implement exactly these formulas; change them here first, then everywhere else. Everything is integer
arithmetic so the Java port gives identical answers.

Notation (plain model, i.e. ``desc.is_plain``)
----------------------------------------------
* ``s`` = scale, ``C = [3, *desc.layer_widths]``: channels of every feature map in execution order - the
  input, each body layer's output, then each tail conv's output (``layer_widths`` ends with the tail).
  ``n = len(C) - 1`` convs, conv ``i`` reads ``C[i]`` channels and writes ``C[i+1]``.
* ``f[i]`` = ``desc.shuffles[i]``: the pixel-shuffle factor after conv ``i`` (1 = none). The one-conv tail
  shuffles by ``s`` after the last conv only; EDSR's upsampler tail after each of its LR-side convs, then ends in
  a conv at the output resolution. ``r[i]`` = the resolution conv ``i`` runs at, in LR sizes: ``r[0] = 1``,
  ``r[i+1] = r[i] * f[i]``.
* ``E[0] = 3``, ``E[i+1] = C[i+1] * r[i]**2``: elements per LR pixel of every map (a pixel shuffle keeps the
  count). Without an upsampler tail ``E == C``.
* ``d`` = bytes per activation element (fp32 4, fp16 2, int8 1).
* Activations only: weights, the caller's full input photo and the full output image are not counted.
* Activations (ReLU) and the input normalisation are assumed fused into their conv / done in place, as every
  deployment runtime does (ONNX Runtime's Conv+Relu fusion and in-place planner, TFLite's fused activations;
  ONNX Runtime's measured peaks match this to 0.1%). PyTorch eager does not; ``formats.runtime_memory`` models it.

Per-pixel live channels
-----------------------
``P = max(max_i (E[i] + E[i+1]), max_{i: f[i] > 1} 2 * E[i+1])``: while conv ``i`` runs its input and output are
alive (two maps at a time, the plain net's whole point); a pixel shuffle copies the map it shuffles, so that
map is alive twice. With the one-conv tail this is ``max(max_i (C[i] + C[i+1]), 2 * 3*s*s)``; with EDSR's
upsampler the HR maps (``W * s * s`` per LR pixel) dominate.

Tiled mode (``tile_plan``): each window has side ``tile + 2*halo`` LR pixels (``halo = desc.receptive_radius``)
---------------------------------------------------------------------------------------------------------------
``peak_bytes_tiled = batch * (tile + 2*halo)**2 * P * d``
``tile_for_budget  = isqrt(budget // (batch * P * d)) - 2*halo`` (largest square tile within budget); < 1 raises.
tile_plan may shrink windows (``win = min(L, core + 2h)`` with ``core <= tile``), never grow them, so the rule
is an upper bound for every tile of a plan.

Streaming mode: strips of ``R`` LR rows over the full image width ``W`` (LR pixels) - ``runtime/stream.py``
---------------------------------------------------------------------------------------------------------
Each conv ``i`` (tail included) keeps a *carry*: the last 2 rows of its input (``C[i]`` channels, ``W * r[i]``
wide; a zero row stands for the top border). A strip goes depth-first through the layers: conv ``i`` gets its
new input rows (at most ``R * r[i]``), stacks them under its carry (``R * r[i] + 2`` rows at most), convolves
with zero padding only left and right (as many rows out as came in, a 3x3 conv eats one row above and one
below), applies ReLU in place, keeps the stack's last 2 rows as its new carry and frees the stack; its output
rows, pixel-shuffled into ``f[i]`` times as many rows when ``f[i] > 1`` (a second map of the same size), are the
next conv's new rows. Every output row is computed once, one row (of its own resolution) later per layer; the
bottom border is a zero row after the last input row, and the flush that pushes the last lagged rows out must
also go in pieces of at most ``R * r[i]`` rows per conv.

Live at once: all carries, ``2 * S`` rows-channels with ``S = sum_i C[i] * r[i]`` (every conv's input channels
times its width), plus the working set of one step, the largest of
  conv i:  ((R*r[i] + 2) * C[i]  +  R*r[i] * C[i+1]) * r[i]   (stacked input, output)   = A_i * R + K_i
  shuffle after conv i: 2 * R*r[i] * C[i+1] * r[i]            (its output, the copy)    = A'_i * R
with ``A_i = E[i] + E[i+1]``, ``K_i = 2 * C[i] * r[i]``, ``A'_i = 2 * E[i+1]`` (note ``max(A, A') = P``)::

    peak_bytes_stream(R) = W * d * (2 * S + max(max_i (A_i * R + K_i), max_{i: f[i] > 1} A'_i * R))

``strip_rows_for_budget`` returns the largest ``R >= 1`` within the budget: with ``B = budget // (W * d)``,
``R = min_steps (B - 2*S - K) // A``; ``R < 1`` raises. Cap it at the image height yourself.
The same fusion assumptions as above apply (ReLU in place, the stack written directly after the carry);
PyTorch eager adds the out-of-place ReLU and concatenation copies and oneDNN's layout copies on top.

Teachers
--------
A residual teacher is not a chain, so its ``P`` comes from the liveness walk of its traced graph (same fusion
assumptions) in :mod:`memsr_deploy.formats.skip_rule`; ``per_pixel_channels`` delegates to it. Streaming a
teacher is not supported (its skips would need a buffer per live map). The Java core only sees plain models.
"""
from __future__ import annotations

import math

from ..errors import MemsrError
from .vocabulary import ACTIVATION_BYTES



def dtype_bytes(dtype) -> int:
    """Bytes per element for 'fp32' / 'fp16' / 'int8' (or an int, passed through)."""
    if isinstance(dtype, int):
        return dtype
    try:
        return ACTIVATION_BYTES[str(dtype).lower()]
    except KeyError:
        raise MemsrError(f"unknown dtype {dtype!r}; expected one of {', '.join(ACTIVATION_BYTES)}") from None


def channels(desc) -> list[int]:
    """C = [3, *layer_widths]: every feature map's channel count of a plain model, tail output last."""
    return [3, *[int(w) for w in desc.layer_widths]]


def chain(desc) -> list[tuple[int, int, int, int]]:
    """Per conv of a plain model: (C[i], C[i+1], r[i], f[i]) - channels in and out, the resolution it runs at
    and the pixel-shuffle factor after it (see the module docstring)."""
    c, out, r = channels(desc), [], 1
    for i, f in enumerate(desc.shuffles):
        out.append((c[i], c[i + 1], r, int(f)))
        r *= int(f)
    return out


def map_elements(desc) -> list[int]:
    """E: elements per LR pixel of every map (input, then each conv's output)."""
    return [3] + [cout * r * r for _, cout, r, _ in chain(desc)]


def _require_plain(desc, what: str) -> None:
    if not desc.is_plain:
        raise MemsrError(f"{what} needs a plain model (chain of convs); this one is a {desc.kind}",
                         getattr(desc, "path", None))


def per_pixel_channels(desc) -> int:
    """P: feature-map channels alive at once per LR pixel at the peak (see module docstring)."""
    if not desc.is_plain:
        from .skip_rule import teacher_per_pixel_channels
        return teacher_per_pixel_channels(desc)
    return peak_pair(map_elements(desc), desc.shuffles)


def peak_pair(e: list[int], shuffles: list[int] | None = None) -> int:
    """Elements per LR pixel alive at the peak of a conv chain with map sizes ``e`` (``map_elements``): a
    conv's input and output, or a map and its pixel-shuffled copy. ``shuffles``: the factor after each conv;
    None = after the last one only (the one-conv tail)."""
    shuffled = [len(e) - 2] if shuffles is None else [i for i, f in enumerate(shuffles) if f > 1]
    return max(max(e[i] + e[i + 1] for i in range(len(e) - 1)), *(2 * e[i + 1] for i in shuffled))


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


def _stream_terms(desc) -> tuple[int, list[tuple[int, int]]]:
    """2*S and the (A, K) pairs of every step's working set (see the module docstring)."""
    return chain_stream_terms([(cin, cout, r, f, 3) for cin, cout, r, f in chain(desc)])


def chain_stream_terms(links) -> tuple[int, list[tuple[int, int]]]:
    """The carries and (A, K) steps of any plain chain, ``links`` = (C[i], C[i+1], r[i], f[i], kernel[i]): the
    rule above with a ``k x k`` conv keeping ``k - 1`` rows of its input (2 for memsr's 3x3 convs, 0 for a 1x1)
    and stacking ``R * r + k - 1`` rows. ONNX chains from elsewhere (``profiler.onnx_chain``) use it as is."""
    steps, carries = [], 0
    for cin, cout, r, f, k in links:
        carries += (k - 1) * cin * r
        steps.append(((cin + cout) * r * r, (k - 1) * cin * r))
        if f > 1:
            steps.append((2 * cout * r * r, 0))
    return carries, steps


def peak_bytes_stream_chain(links, width: int, rows: int, dtype_bytes: int = 4) -> int:
    """``peak_bytes_stream`` of a chain given as links (see ``chain_stream_terms``)."""
    carries, steps = chain_stream_terms(links)
    return width * dtype_bytes * (carries + max(a * rows + k for a, k in steps))


def peak_bytes_stream(desc, width: int, rows: int, dtype_bytes: int = 4) -> int:
    """Activation bytes of streaming strips of ``rows`` LR rows over an image ``width`` LR pixels wide."""
    _require_plain(desc, "streaming")
    return peak_bytes_stream_chain([(cin, cout, r, f, 3) for cin, cout, r, f in chain(desc)], width, rows,
                                   dtype_bytes)


def strip_rows_for_budget(desc, width: int, budget_bytes: int, dtype_bytes: int = 4) -> int:
    """Largest strip height R >= 1 (LR rows) whose streaming buffers fit budget_bytes."""
    _require_plain(desc, "streaming")
    if width < 1:
        raise MemsrError(f"image width must be positive, got {width}")
    carries, steps = _stream_terms(desc)
    room = int(budget_bytes) // (width * dtype_bytes) - carries
    rows = min((room - k) // a for a, k in steps)
    if rows < 1:
        need = peak_bytes_stream(desc, width, 1, dtype_bytes)
        raise MemsrError(f"budget too small: {int(budget_bytes)} bytes; streaming a {width}-pixel-wide image "
                         f"one row at a time needs {need}", getattr(desc, "path", None))
    return rows
