"""Default strip heights, how many windows to batch per call, and the guard that keeps a window from outgrowing
the machine (LiteRT on a whole photo would be OOM-killed, not fail cleanly), with the profiler's model of the
backend's activations (``formats.runtime_memory.window_bytes_per_pixel``: a measured bound of its session for ONNX
Runtime, the eager walk for PyTorch, an upper bound for LiteRT; another project's ONNX graph walked at the window's
size: ``footprint.foreign_window_bytes``). A user's ``--max-memory`` is planned by
``footprint``, which prices the whole process."""
from __future__ import annotations

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


def default_strip_rows(width: int) -> int:
    return max(4, min(64, STRIP_TARGET_PX // max(width, 1)))


def default_recompute_rows(width: int, halo: int) -> int:
    """Strip height for full-width strips that recompute their halo: at least 8 halos (the recomputed rows then
    cost at most a quarter), more on narrow images."""
    return max(8 * halo, STRIP_TARGET_PX * 4 // max(width, 1))


def fit_to_memory(backend, tile: int, height: int, width: int, log, available: int | None = None,
                  rows_only: bool = False, halo: int | None = None, inexact: str | None = None) -> int:
    """``tile`` (0 = whole image; with ``rows_only`` the height of full-width strips), or a smaller one when its
    window would not fit in the memory this machine has free: an out-of-memory kill cannot be caught and
    retried, so it is predicted instead. Another project's graph is priced by walking it at the window's size.
    ``inexact``: why this model's tiles would not be exact (no finite receptive radius, no --halo given): a window
    that does not fit is then refused, not shrunk into approximate tiles."""
    from .footprint import Runtime, largest_within
    rt = Runtime.of(backend, halo)
    if rt.graph is None and not backend.desc.layer_widths:
        return tile     # an artefact whose sidecar gives no widths: nothing to price its windows with
    import psutil
    avail = int(0.7 * (available if available is not None else psutil.virtual_memory().available))

    def need(n: int) -> int:
        wy = height if n <= 0 else min(height, n + 2 * rt.halo)
        wx = width if (n <= 0 or rows_only) else min(width, n + 2 * rt.halo)
        return rt.window_bytes(wy, wx)
    if need(tile) <= avail:
        return tile
    what = "the whole image" if tile <= 0 else f"{tile}-row strips" if rows_only else f"a {tile}-pixel tile"
    short = (f"{what} would need about {need(tile) / 2 ** 20:.0f} MiB on {backend.name}, more than the "
             f"{avail / 2 ** 20:.0f} MiB this machine can spare")
    if inexact:
        raise MemsrError(f"{short}, and {inexact}, so its tiles cannot be exact: pass --halo N to tile it (the "
                         "output is then approximate)", backend.source)
    longest = height if rows_only else max(height, width)
    smaller = largest_within(lambda n: need(n) <= avail, longest if tile <= 0 else min(tile, longest))
    if smaller < 1:
        one = "a one-row strip" if rows_only else "a 1-pixel tile"
        raise MemsrError(f"{one} with its {rt.halo}-pixel halo would need about {need(1) / 2 ** 20:.0f} MiB on "
                         f"{backend.name}, more than the {avail / 2 ** 20:.0f} MiB this machine can spare",
                         backend.source)
    log(f"{short}: using {smaller}-row strips" if rows_only else f"{short}: using {smaller}-pixel tiles")
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
