"""SPAN (Swift Parameter-free Attention Network, NTIRE 2024 efficient SR): six blocks of three 3x3 convs with
SiLU and a parameter-free attention (sigmoid(out) - 1/2), a 1x1 fusion of four feature maps, and a one-conv
pixel-shuffle tail.

Each 3x3 conv is trained re-parameterised ("Conv3XC": a 1x1 shortcut plus 1x1 -> 3x3 -> 1x1, all linear) and
run as the single 3x3 conv they sum to; the checkpoint stores both the branches and a stale copy of that conv
(``eval_conv``), which inference recomputes from the branches, and so does ``read`` here. Published key layout:
``conv_1``, ``block_1..6.c{1,2,3}_r``, ``conv_2`` (each with ``sk``, ``conv.0/1/2``, ``eval_conv``),
``conv_cat``, ``upsampler.0``; ``no_norm`` present when the input is not normalised. Input: ``(x - mean) * 255``
for x in [0, 1] with the DIV2K mean; output in [0, 1].
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .spec import Foreign, bad, need, scale_and_channels

MEAN = (0.4488, 0.4371, 0.4040)
BLOCKS = 6


def conv3(cin, cout):
    return nn.Conv2d(cin, cout, 3, padding=1)


class Block(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.c1_r, self.c2_r, self.c3_r = conv3(width, width), conv3(width, width), conv3(width, width)

    def forward(self, x):
        out1 = self.c1_r(x)
        out3 = self.c3_r(F.silu(self.c2_r(F.silu(out1))))
        att = torch.sigmoid(out3) - 0.5
        return (out3 + x) * att, out1


class SPAN(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, width: int, scale: int, norm: bool):
        super().__init__()
        self.scale, self.norm = scale, norm
        self.register_buffer("mean", torch.tensor(MEAN[:in_ch] if in_ch <= 3 else MEAN + (0.0,)).view(1, -1, 1, 1),
                             persistent=False)
        self.conv_1 = conv3(in_ch, width)
        self.blocks = nn.ModuleList(Block(width) for _ in range(BLOCKS))
        self.conv_2 = conv3(width, width)
        self.conv_cat = nn.Conv2d(4 * width, width, 1)
        self.upsampler = conv3(width, out_ch * scale * scale)

    def forward(self, x):
        if self.norm:
            x = (x - self.mean) * 255.0
        f0 = self.conv_1(x)
        h, first = f0, None
        outs = []
        for block in self.blocks:
            h, first = block(h)
            outs.append(h)
        h = self.conv_cat(torch.cat([f0, self.conv_2(h), outs[0], first], 1))
        return F.pixel_shuffle(self.upsampler(h), self.scale)


def _merged(state: dict, prefix: str, path) -> tuple[torch.Tensor, torch.Tensor]:
    """The 3x3 conv a Conv3XC computes: 1x1 (w1) -> 3x3 unpadded (w2) -> 1x1 (w3), plus the 1x1 shortcut,
    composed into one kernel; its input is zero-padded by one pixel, so it runs as a padded 3x3 conv."""
    g = lambda k: need(state, f"{prefix}.{k}", path).double()
    w1, b1, w2, b2, w3, b3 = g("conv.0.weight"), g("conv.0.bias"), g("conv.1.weight"), g("conv.1.bias"), \
        g("conv.2.weight"), g("conv.2.bias")
    w = torch.einsum("om,mnyx,ni->oiyx", w3[:, :, 0, 0], w2, w1[:, :, 0, 0])
    b = w3[:, :, 0, 0] @ (w2.sum((2, 3)) @ b1 + b2) + b3
    w = w + F.pad(g("sk.weight"), (1, 1, 1, 1))
    return w.float(), (b + g("sk.bias")).float()


def matches(state: dict) -> bool:
    return all(k in state for k in ("conv_1.sk.weight", "block_1.c1_r.sk.weight", "conv_cat.weight",
                                    "upsampler.0.weight"))


def read(state: dict, path) -> Foreign:
    first = need(state, "conv_1.sk.weight", path)
    width, in_ch = int(first.shape[0]), int(first.shape[1])
    scale, out_ch = scale_and_channels(int(need(state, "upsampler.0.weight", path).shape[0]), in_ch,
                                       "upsampler.0.weight", path)
    merged = {}
    convs = ["conv_1", "conv_2"] + [f"block_{b}.c{c}_r" for b in range(1, BLOCKS + 1) for c in (1, 2, 3)]
    for name in convs:
        w, b = _merged(state, name, path)
        ours = name.replace("block_", "blocks.")
        if ours.startswith("blocks."):
            n, rest = ours[len("blocks."):].split(".", 1)
            ours = f"blocks.{int(n) - 1}.{rest}"
        merged[f"{ours}.weight"], merged[f"{ours}.bias"] = w, b
    for k in ("conv_cat.weight", "conv_cat.bias", "upsampler.0.weight", "upsampler.0.bias"):
        merged[k.replace("upsampler.0", "upsampler")] = need(state, k, path)
    used = {f"{n}.{part}" for n in convs for part in ("sk.weight", "sk.bias", "conv.0.weight", "conv.0.bias",
                                                       "conv.1.weight", "conv.1.bias", "conv.2.weight",
                                                       "conv.2.bias", "eval_conv.weight", "eval_conv.bias")}
    used |= {"conv_cat.weight", "conv_cat.bias", "upsampler.0.weight", "upsampler.0.bias", "no_norm"}
    extra = sorted(set(state) - used)
    if extra:
        bad(path, extra[0], "not a key of SPAN's layout")
    net = SPAN(in_ch, out_ch, width, scale, norm="no_norm" not in state)
    return Foreign("SPAN", net, scale, in_ch, out_ch, {"width": width}, state=merged)
