"""Turning a memory budget into a tile size or strip height, with the profiler's rule (one rule, shared with
the Java core: memsr_deploy.profiler.budget), plus how many windows to batch per call."""
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


def _budget():
    try:
        from ..profiler import budget
    except ImportError as e:
        raise MemsrError(f"--max-memory needs memsr_deploy.profiler.budget, which is not available ({e})") from None
    return budget


def _needs_widths(desc, source):
    if not desc.layer_widths:
        raise MemsrError("--max-memory needs the model's layer widths, which this sidecar/model does not give",
                         source)


def default_strip_rows(width: int) -> int:
    return max(4, min(64, STRIP_TARGET_PX // max(width, 1)))


def tile_for_budget(backend, budget_bytes: int) -> int:
    _needs_widths(backend.desc, backend.source)
    return int(_budget().tile_for_budget(backend.desc, budget_bytes, dtype_bytes=backend.caps.dtype_bytes, batch=1))


def strip_rows_for_budget(backend, width: int, budget_bytes: int) -> int:
    _needs_widths(backend.desc, backend.source)
    return int(_budget().strip_rows_for_budget(backend.desc, width, budget_bytes,
                                               dtype_bytes=backend.caps.dtype_bytes))


def check_fixed_budget(backend, budget_bytes: int) -> None:
    """A fixed-shape artefact cannot shrink its window: refuse a budget it cannot meet, before running."""
    fh, fw = backend.caps.fixed_shape
    tile = max(fh, fw) - 2 * backend.caps.halo
    _needs_widths(backend.desc, backend.source)
    need = _budget().peak_bytes_tiled(backend.desc, tile, dtype_bytes=backend.caps.dtype_bytes, batch=1)
    if need > budget_bytes:
        raise MemsrError(f"the artefact's fixed {fw}x{fh} input needs about {need / 2 ** 20:.0f} MiB, more than the "
                         f"{budget_bytes / 2 ** 20:.0f} MiB budget", backend.source)


def choose_batch(backend, tile: int, halo: int, n_windows: int, budget_bytes: int | None = None,
                 fixed: tuple[int, int] | None = None) -> int:
    """Batch small windows together; never more than the budget allows."""
    if tile <= 0:
        return 1
    win_px = fixed[0] * fixed[1] if fixed else (tile + 2 * halo) ** 2
    batch = max(1, min(MAX_BATCH, BATCH_TARGET_PX // win_px, n_windows))
    if backend.caps.max_batch:
        batch = min(batch, backend.caps.max_batch)
    if budget_bytes is not None and batch > 1:
        one = _budget().peak_bytes_tiled(backend.desc, tile, dtype_bytes=backend.caps.dtype_bytes, batch=1)
        batch = max(1, min(batch, budget_bytes // max(one, 1)))
    return int(batch)
