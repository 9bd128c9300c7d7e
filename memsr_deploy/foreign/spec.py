"""What a read foreign checkpoint is, and the one-line refusals every family reader shares."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch.nn as nn

from ..errors import MemsrError


@dataclass
class Foreign:
    arch: str                     # family name, as users know it
    module: nn.Module             # built, weights not yet loaded (checkpoint.py loads them strictly)
    scale: int
    in_channels: int              # 3 RGB, 1 Y / grey, 4 RGBA
    out_channels: int
    hyper: dict = field(default_factory=dict)
    value_range: float = 1.0      # images in [0, value_range]
    state: dict | None = None     # the state dict to load, when the reader renamed or merged keys


def bad(path, key: str, why: str):
    raise MemsrError(f"{key}: {why}", path)


def need(state: dict, key: str, path):
    if key not in state:
        bad(path, key, "missing from the state dict")
    return state[key]


def scale_and_channels(n: int, in_ch: int, key: str, path) -> tuple[int, int]:
    """A pixel-shuffle conv's output channels n = out * s * s: the output channels are taken equal to the
    input's when that gives a whole scale (RGB in, RGB out), else 3 or 1."""
    for out in dict.fromkeys((in_ch, 3, 1)):
        s = math.isqrt(n // out) if n % out == 0 else 0
        if s >= 1 and s * s * out == n:
            return s, out
    bad(path, key, f"{n} output channels are no channels x scale^2")
