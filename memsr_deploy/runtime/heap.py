"""Keep the C heap from growing past what a job holds at once.

glibc serves a large request with mmap only until the first such block is freed; from then on its threshold
follows the largest freed block (up to 32 MB), so the multi-MB windows, tile outputs and bands of a tiled job
come from the per-thread heaps, where blocks of a dozen sizes freed in another order than allocated leave
holes that are never given back. Measured on the bundled x2 student, 12 MP JPEG -> PNG: 336 MB peak RSS; at
the end glibc held 257 MB of heap, 26 MB of it in use. A fixed threshold sends those buffers back to the
system when freed; ONNX Runtime's activations, which would otherwise pay a page fault per page on every call,
stay in its own arena (``onnx_backend.session``). Together, with the tile loop's fewer temporaries: 232 MB
at the same speed (``benchmarks/results/runtime.md``, default-path section).
"""
from __future__ import annotations

import ctypes
import ctypes.util

_M_MMAP_THRESHOLD = -3            # mallopt parameter number in glibc's malloc.h
MMAP_THRESHOLD = 1 << 20        # bytes: the buffers of a row band or a tile output are above it


def settle_heap() -> bool:
    """Fix glibc's mmap threshold for this process; False where the C library is not glibc (nothing done)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1


def release_heap() -> bool:
    """Give the free pages of every glibc heap back to the system (malloc_trim); False where that is not glibc.

    Run after each file of a job: buffers under the mmap threshold (the whole pictures of small photos, the
    WebP and HEIC encoders' own) come from the heaps, and photos of ever new sizes leave holes there that RSS
    keeps. Measured, 120 mixed 64-256 px photos in one process: RSS climbed 156 -> 168 MB from the 10th photo
    to the last, 140 -> 142 MB with a trim after each (benchmarks/soak.py)."""
    name = ctypes.util.find_library("c")
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError, TypeError):
        return False
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    trim(0)
    return True
