"""Peak feature-map channels per LR pixel of a network with skips, from its ideal liveness walk.

The plain rule is a closed form (budget.py); a teacher's needs the walk, which traces the network once per
architecture (cached).
"""
from __future__ import annotations

import functools
import json
import math

from ..errors import MemsrError
from .liveness import IDEAL, walk
from .torch_liveness import trace


def teacher_per_pixel_channels(desc) -> int:
    """P of a non-plain model: its ideal walk's peak per LR pixel (every map is LR-sized or s*s times it)."""
    return _per_pixel_of(desc.kind, json.dumps(desc.arch, sort_keys=True), getattr(desc, "path", None))


@functools.lru_cache(maxsize=32)
def _per_pixel_of(kind: str, arch_json: str, path) -> int:
    from ..method import models

    arch = json.loads(arch_json)
    try:
        if not arch:  # from_dict would fill in defaults: a different network
            raise ValueError("empty")
        module = models.build(kind, arch)
    except (TypeError, ValueError, KeyError) as e:
        raise MemsrError(f"the memory rule of a {kind} needs its architecture ({e})", path) from None
    n = 8
    w = walk(trace(module.eval(), n, n, 1), 1, **IDEAL)
    return math.ceil(w.peak_bytes / (n * n))
