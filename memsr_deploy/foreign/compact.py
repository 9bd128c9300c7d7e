"""SRVGGNetCompact (Real-ESRGAN's "Compact", realesr-general / animevideov3): a plain chain of 3x3 convs with
PReLU, a pixel shuffle, and the nearest-upsampled input added to the output.

Published key layout: ``body.0`` conv (in -> F), ``body.1`` PReLU (F slopes), then per conv ``body.{2i}`` conv
(F -> F) and ``body.{2i+1}`` PReLU, and the last ``body.{2n+2}`` conv (F -> out * s * s). Images in [0, 1].
"""
from __future__ import annotations

import re

import torch.nn as nn
import torch.nn.functional as F

from .spec import Foreign, bad, need, scale_and_channels


class Compact(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, width: int, convs: int, scale: int):
        super().__init__()
        self.scale = scale
        chans = [in_ch] + [width] * (convs + 1)
        layers: list[nn.Module] = []
        for a, b in zip(chans, chans[1:]):
            layers += [nn.Conv2d(a, b, 3, padding=1), nn.PReLU(b)]
        layers.append(nn.Conv2d(width, out_ch * scale * scale, 3, padding=1))
        self.body = nn.ModuleList(layers)

    def forward(self, x):
        h = x
        for layer in self.body:
            h = layer(h)
        return F.pixel_shuffle(h, self.scale) + F.interpolate(x, scale_factor=self.scale, mode="nearest")


def matches(state: dict) -> bool:
    w = state.get("body.1.weight")
    return "body.0.weight" in state and w is not None and w.dim() == 1


def read(state: dict, path) -> Foreign:
    idx = sorted({int(m.group(1)) for k in state if (m := re.match(r"body\.(\d+)\.", k))})
    if idx != list(range(len(idx))) or len(idx) < 3 or len(idx) % 2 == 0:
        bad(path, "body.*", "the body's layers are not numbered 0..2n+2")
    first, last = need(state, "body.0.weight", path), need(state, f"body.{idx[-1]}.weight", path)
    width, in_ch = int(first.shape[0]), int(first.shape[1])
    scale, out_ch = scale_and_channels(int(last.shape[0]), in_ch, f"body.{idx[-1]}.weight", path)
    net = Compact(in_ch, out_ch, width, (len(idx) - 3) // 2, scale)
    return Foreign("Compact", net, scale, in_ch, out_ch, {"width": width, "convs": (len(idx) - 3) // 2})
