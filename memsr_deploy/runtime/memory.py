"""Default strip heights, how many windows to batch per call, and the guard that keeps a window from outgrowing
the machine (LiteRT on a whole photo would be OOM-killed, not fail cleanly), with the profiler's model of the
backend's activations (``formats.runtime_memory.window_bytes_per_pixel``: a measured bound of its session for ONNX
Runtime, the eager walk for PyTorch, an upper bound for LiteRT). A user's ``--max-memory`` is planned by
``footprint``, which prices the whole process."""
from __future__ import annotations

import math
import re

from ..errors import MemsrError

_UNITS = {"": 1, "b": 1, "k": 2 ** 10, "kb": 10 ** 3, "kib": 2 ** 10, "m": 2 ** 20, "mb": 10 ** 6, "mib": 2 ** 20,
          "g": 2 ** 30, "gb": 10 ** 9, "gib": 2 ** 30}
# Strips of about this many LR pixels: small enough that eager PyTorch's per-call buffers stay small (glibc keeps
# freed multi-MB blocks resident, so peak RSS follows the size of single allocations, measured: 6400 px wide,
# 4 rows -> 410 MB, 32 rows -> 720 MB peak RSS), large enough that a call still carries plenty of work.
STRIP_TARGET_PX = 65536
# Windows smaller than this many pixels are batched: below it per-call overhead dominates the convs.
BATCH_TARGET_PX = 192 * 192
MAX_BATCH = 16


def parse_size(text: str) -> int:
    """'512M', '1.5G', '800MB', '1048576' -> bytes (K/M/G are binary, KB/MB/GB decimal)."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(text))
    if not m or m.group(2).lower() not in _UNITS:
        raise MemsrError(f"cannot read memory size {text!r} (examples: 512M, 2G, 800MB)")
    n = int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    if n < 1:
        raise MemsrError(f"memory size {text!r} must be positive")
    return n


def _needs_widths(desc, source):
    if not desc.layer_widths:
        raise MemsrError("--max-memory needs the model's layer widths, which this sidecar/model does not give",
                         source)


def default_strip_rows(width: int) -> int:
    return max(4, min(64, STRIP_TARGET_PX // max(width, 1)))


def default_recompute_rows(width: int, halo: int) -> int:
    """Strip height for full-width strips that recompute their halo: at least 8 halos (the recomputed rows then
    cost at most a quarter), more on narrow images."""
    return max(8 * halo, STRIP_TARGET_PX * 4 // max(width, 1))


def bytes_per_pixel(backend) -> int:
    """Peak activation bytes per LR window pixel on this backend (see the module docstring)."""
    _needs_widths(backend.desc, backend.source)
    from ..formats.runtime_memory import window_bytes_per_pixel
    return int(window_bytes_per_pixel(backend.desc, backend.name, backend.caps.dtype_bytes,
                                      getattr(backend, "plain", None) or getattr(backend, "model", None)))


def tile_for_budget(backend, budget_bytes: int) -> int:
    """Largest square core tile whose window (tile + 2*halo) fits the budget on this backend."""
    per = bytes_per_pixel(backend)
    halo = backend.caps.halo
    tile = math.isqrt(int(budget_bytes) // per) - 2 * halo
    if tile < 1:
        raise MemsrError(f"budget too small: {int(budget_bytes)} bytes; a 1-pixel tile with its {halo}-pixel "
                         f"halo needs {per * (1 + 2 * halo) ** 2} on {backend.name}", backend.source)
    return tile


def recompute_rows_for_budget(backend, width: int, budget_bytes: int) -> int:
    """Largest full-width strip (LR rows, halo rows recomputed above and below) within the budget."""
    per = bytes_per_pixel(backend)
    halo = backend.caps.halo
    rows = int(budget_bytes) // (per * max(width, 1)) - 2 * halo
    if rows < 1:
        raise MemsrError(f"budget too small: {int(budget_bytes)} bytes; a one-row strip of a {width}-pixel-wide "
                         f"image with its {halo}-row halo needs {per * width * (1 + 2 * halo)} on {backend.name}",
                         backend.source)
    return rows


def fit_to_memory(backend, tile: int, height: int, width: int, log, available: int | None = None,
                  rows_only: bool = False) -> int:
    """``tile`` (0 = whole image; with ``rows_only`` the height of full-width strips), or a smaller one when its
    window would not fit in the memory this machine has free: an out-of-memory kill cannot be caught and
    retried, so it is predicted instead."""
    if not backend.desc.layer_widths:
        return tile
    import psutil
    avail = int(0.7 * (available if available is not None else psutil.virtual_memory().available))
    halo = backend.caps.halo
    wy = height if tile <= 0 else min(height, tile + 2 * halo)
    wx = width if (tile <= 0 or rows_only) else min(width, tile + 2 * halo)
    need = bytes_per_pixel(backend) * wy * wx
    if need <= avail:
        return tile
    smaller = recompute_rows_for_budget(backend, width, avail) if rows_only else tile_for_budget(backend, avail)
    what = "the whole image" if tile <= 0 else f"{tile}-row strips" if rows_only else f"a {tile}-pixel tile"
    log(f"{what} would need about {need / 2 ** 20:.0f} MiB on {backend.name}, more than the "
        f"{avail / 2 ** 20:.0f} MiB this machine can spare: using {smaller} {'rows' if rows_only else 'tiles'}")
    return smaller


def choose_batch(backend, tile: int, halo: int, n_windows: int, fixed: tuple[int, int] | None = None) -> int:
    """Batch small windows together (a budget lowers it further: ``footprint.plan_within``)."""
    if tile <= 0:
        return 1
    win_px = fixed[0] * fixed[1] if fixed else (tile + 2 * halo) ** 2
    batch = max(1, min(MAX_BATCH, BATCH_TARGET_PX // win_px, n_windows))
    if backend.caps.max_batch:
        batch = min(batch, backend.caps.max_batch)
    return int(batch)
