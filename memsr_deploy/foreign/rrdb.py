"""ESRGAN's RRDBNet (ESRGAN, Real-ESRGAN x4plus / x2plus, BSRGAN and most of the .pth zoo).

conv_first, B residual-in-residual dense blocks (three dense blocks of five convs, growth G, LeakyReLU 0.2,
residuals scaled by 0.2), conv_body with a long skip, then per x2 stage a nearest upsampling and a conv with
LeakyReLU, conv_hr with LeakyReLU and conv_last. Real-ESRGAN's x2 / x1 models first pixel-unshuffle the input
by 2 / 4 (conv_first then reads 4x / 16x the channels). Images in [0, 1].

Two published key layouts: BasicSR's (``conv_first``, ``body.N.rdbK.convJ``, ``conv_body``, ``conv_up1..``,
``conv_hr``, ``conv_last``; also ``RRDB_trunk`` / ``trunk_conv`` / ``upconv`` / ``HRconv``) and the original
ESRGAN repository's (``model.0``, ``model.1.sub.N.RDBK.convJ.0``, ``model.1.sub.B``, ``model.3``, ``model.6``,
...); the original's keys are renamed to BasicSR's here.
"""
from __future__ import annotations

import re

import torch
import torch.nn as nn
import torch.nn.functional as F

from .spec import Foreign, bad, need


def _lrelu(x):
    return F.leaky_relu(x, 0.2)


class DenseBlock(nn.Module):
    def __init__(self, width: int, growth: int):
        super().__init__()
        for j in range(1, 6):
            out = width if j == 5 else growth
            setattr(self, f"conv{j}", nn.Conv2d(width + (j - 1) * growth, out, 3, padding=1))

    def forward(self, x):
        feats = [x]
        for j in range(1, 5):
            feats.append(_lrelu(getattr(self, f"conv{j}")(torch.cat(feats, 1))))
        return x + 0.2 * self.conv5(torch.cat(feats, 1))


class RRDB(nn.Module):
    def __init__(self, width: int, growth: int):
        super().__init__()
        self.rdb1, self.rdb2, self.rdb3 = (DenseBlock(width, growth) for _ in range(3))

    def forward(self, x):
        return x + 0.2 * self.rdb3(self.rdb2(self.rdb1(x)))


class RRDBNet(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, width: int, growth: int, blocks: int, ups: int, unshuffle: int):
        super().__init__()
        self.unshuffle = unshuffle
        self.conv_first = nn.Conv2d(in_ch * unshuffle * unshuffle, width, 3, padding=1)
        self.body = nn.Sequential(*(RRDB(width, growth) for _ in range(blocks)))
        self.conv_body = nn.Conv2d(width, width, 3, padding=1)
        self.ups = ups
        for k in range(1, ups + 1):
            setattr(self, f"conv_up{k}", nn.Conv2d(width, width, 3, padding=1))
        self.conv_hr = nn.Conv2d(width, width, 3, padding=1)
        self.conv_last = nn.Conv2d(width, out_ch, 3, padding=1)

    def forward(self, x):
        if self.unshuffle > 1:
            x = F.pixel_unshuffle(x, self.unshuffle)
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        for k in range(1, self.ups + 1):
            feat = _lrelu(getattr(self, f"conv_up{k}")(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(_lrelu(self.conv_hr(feat)))


_RENAMES = [(r"^RRDB_trunk\.", "body."), (r"^trunk_conv\.", "conv_body."), (r"^upconv(\d)\.", r"conv_up\1."),
            (r"^HRconv\.", "conv_hr."), (r"\.RDB(\d)\.", r".rdb\1.")]


def _from_original(state: dict) -> dict:
    """The original repository's sequential keys -> BasicSR's names."""
    subs = sorted({int(m.group(1)) for k in state if (m := re.match(r"model\.1\.sub\.(\d+)\.", k))})
    blocks = subs[-1] if subs else 0
    tops = sorted({int(m.group(1)) for k in state if (m := re.match(r"model\.(\d+)\.", k))})
    # upconv k at 3k, then HRconv and conv_last two apart at the end
    ups = [i for i in tops if 3 <= i < tops[-1] - 2 and i % 3 == 0] if tops else []
    names = {0: "conv_first", tops[-1]: "conv_last", tops[-1] - 2: "conv_hr"} if tops else {}
    names.update({i: f"conv_up{n}" for n, i in enumerate(ups, 1)})
    out = {}
    for k, v in state.items():
        if m := re.match(r"model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.(weight|bias)$", k):
            out[f"body.{m.group(1)}.rdb{m.group(2)}.conv{m.group(3)}.{m.group(4)}"] = v
        elif m := re.match(rf"model\.1\.sub\.{blocks}\.(weight|bias)$", k):
            out[f"conv_body.{m.group(1)}"] = v
        elif (m := re.match(r"model\.(\d+)\.(weight|bias)$", k)) and int(m.group(1)) in names:
            out[f"{names[int(m.group(1))]}.{m.group(2)}"] = v
        else:
            out[k] = v   # left for the strict load to name
    return out


def matches(state: dict) -> bool:
    return ("conv_first.weight" in state and any(re.match(r"(body|RRDB_trunk)\.0\.rdb1?\.?", k, re.I)
                                                 for k in state)) or "model.1.sub.0.RDB1.conv1.0.weight" in state


def read(state: dict, path) -> Foreign:
    if any(".conv1x1." in k for k in state):
        bad(path, next(k for k in state if ".conv1x1." in k), "ESRGAN+ (RRDB with 1x1 convs) is not supported")
    if "model.0.weight" in state:
        state = _from_original(state)
    else:
        for pat, rep in _RENAMES:
            state = {re.sub(pat, rep, k): v for k, v in state.items()}
    first, last = need(state, "conv_first.weight", path), need(state, "conv_last.weight", path)
    blocks = len({int(m.group(1)) for k in state if (m := re.match(r"body\.(\d+)\.", k))})
    ups = len({int(m.group(1)) for k in state if (m := re.match(r"conv_up(\d)\.weight$", k))})
    growth = int(need(state, "body.0.rdb1.conv1.weight", path).shape[0])
    width, out_ch = int(first.shape[0]), int(last.shape[0])
    ratio = int(first.shape[1]) // out_ch if int(first.shape[1]) % out_ch == 0 else 0
    unshuffle = {1: 1, 4: 2, 16: 4}.get(ratio)
    if unshuffle is None:
        bad(path, "conv_first.weight", f"{int(first.shape[1])} input channels fit no pixel unshuffle of "
                                       f"{out_ch} channels")
    in_ch = int(first.shape[1]) // (unshuffle * unshuffle)
    if 2 ** ups % unshuffle:
        bad(path, "conv_up1.weight", f"{ups} x2 stages after an unshuffle by {unshuffle}")
    scale = 2 ** ups // unshuffle
    net = RRDBNet(in_ch, out_ch, width, growth, blocks, ups, unshuffle)
    return Foreign("ESRGAN (RRDBNet)", net, scale, in_ch, out_ch,
                   {"width": width, "growth": growth, "blocks": blocks}, state=state)
