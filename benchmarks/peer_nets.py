"""Lightweight SR networks that MemSR's paper compares against, written from their papers for memory and speed
comparisons (random weights: neither depends on them). Images in [0, 1], RGB in and out unless noted.

* FSRCNN (Dong et al., ECCV 2016): d=56, s=12, m=4, PReLU, a 9x9 transposed-conv tail; Y channel only.
* ESPCN (Shi et al., CVPR 2016): 5x5 conv to 64, 3x3 to 32 (tanh), 3x3 to s*s, pixel shuffle; Y only.
* CARN-M (Ahn et al., ECCV 2018): 64 channels, three cascading blocks of three efficient residual units (group
  convs, 4 groups), 1x1 fusions after every cascade step, a pixel-shuffle upsampler with group convs.
* IMDN (Hui et al., ACM MM 2019): 64 channels, six information multi-distillation blocks (a quarter of the
  channels distilled after each of three 3x3 convs), contrast-aware channel attention (mean + std over H x W).
* RFDN (Liu et al., ECCV-W 2020): 50 channels, four residual feature distillation blocks (1x1 distillation,
  shallow residual 3x3 blocks) with enhanced spatial attention (a strided conv, 7x7 max pooling, bilinear
  resize back to the block's size).
* SwinIR-light (Liang et al., ICCV-W 2021): embed 60, four residual Swin transformer groups of six layers (6
  heads, 8x8 windows, shifted by 4 on every other layer, MLP ratio 2, relative position bias), a 3x3 conv
  closing each group and the body, a one-conv pixel-shuffle tail ("pixelshuffledirect"); the image is padded
  (reflect) to a multiple of the window and the output cropped back, a fixed mean subtracted and added back.

The receptive field of IMDN and RFDN is the whole image (global statistics, a resize to the input's size), and
SwinIR's attention windows are fixed to the image's origin (tiles at other offsets see other windows); the
others are finite.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def conv(cin, cout, k=3, groups=1, stride=1, pad=None):
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2 if pad is None else pad, groups=groups)


class FSRCNN(nn.Module):
    def __init__(self, scale: int, channels: int = 1, d: int = 56, s: int = 12, m: int = 4):
        super().__init__()
        layers = [conv(channels, d, 5), nn.PReLU(d), conv(d, s, 1), nn.PReLU(s)]
        for _ in range(m):
            layers += [conv(s, s), nn.PReLU(s)]
        layers += [conv(s, d, 1), nn.PReLU(d)]
        self.body = nn.Sequential(*layers)
        self.tail = nn.ConvTranspose2d(d, channels, 9, stride=scale, padding=4, output_padding=scale - 1)

    def forward(self, x):
        return self.tail(self.body(x))


class ESPCN(nn.Module):
    def __init__(self, scale: int, channels: int = 1):
        super().__init__()
        self.scale = scale
        self.c1, self.c2, self.c3 = conv(channels, 64, 5), conv(64, 32), conv(32, channels * scale * scale)

    def forward(self, x):
        return F.pixel_shuffle(self.c3(torch.tanh(self.c2(torch.tanh(self.c1(x))))), self.scale)


class _EResidual(nn.Module):
    """CARN-M's efficient residual unit: group 3x3, ReLU, group 3x3, ReLU, 1x1, plus the input, ReLU."""

    def __init__(self, c: int, groups: int = 4):
        super().__init__()
        self.a, self.b, self.c = conv(c, c, groups=groups), conv(c, c, groups=groups), conv(c, c, 1)

    def forward(self, x):
        return F.relu(x + self.c(F.relu(self.b(F.relu(self.a(x))))))


class _Cascade(nn.Module):
    """Three units, each followed by a 1x1 fusion of everything so far (the cascading connections)."""

    def __init__(self, c: int, unit):
        super().__init__()
        self.units = nn.ModuleList(unit() for _ in range(3))
        self.fuse = nn.ModuleList(conv(c * (i + 2), c, 1) for i in range(3))

    def forward(self, x):
        cat, h = x, x
        for unit, fuse in zip(self.units, self.fuse):
            cat = torch.cat([cat, unit(h)], 1)
            h = F.relu(fuse(cat))
        return h


class CARNM(nn.Module):
    def __init__(self, scale: int, c: int = 64, groups: int = 4):
        super().__init__()
        self.scale = scale
        self.entry = conv(3, c)
        self.body = _Cascade(c, lambda: _Cascade(c, lambda: _EResidual(c, groups)))
        stages = [2, 2] if scale == 4 else [scale]
        self.up = nn.ModuleList(conv(c, c * f * f, groups=groups) for f in stages)
        self.stages = stages
        self.exit = conv(c, 3)

    def forward(self, x):
        h = self.body(self.entry(x))
        for up, f in zip(self.up, self.stages):
            h = F.relu(F.pixel_shuffle(up(h), f))
        return self.exit(h)


class _CCA(nn.Module):
    """Contrast-aware channel attention: (std + mean over H x W) -> 1x1 -> ReLU -> 1x1 -> sigmoid."""

    def __init__(self, c: int, r: int = 16):
        super().__init__()
        self.a, self.b = conv(c, c // r, 1), conv(c // r, c, 1)

    def forward(self, x):
        mean = x.mean((2, 3), keepdim=True)
        std = ((x - mean) ** 2).mean((2, 3), keepdim=True).sqrt()
        return x * torch.sigmoid(self.b(F.relu(self.a(std + mean))))


class _IMDB(nn.Module):
    def __init__(self, c: int = 64):
        super().__init__()
        self.d = c // 4
        r = c - self.d
        self.c1, self.c2, self.c3, self.c4 = conv(c, c), conv(r, c), conv(r, c), conv(r, self.d)
        self.cca, self.fuse = _CCA(4 * self.d), conv(4 * self.d, c, 1)

    def forward(self, x):
        kept, h = [], x
        for layer in (self.c1, self.c2, self.c3):
            d, h = torch.split(F.leaky_relu(layer(h), 0.05), [self.d, layer.out_channels - self.d], 1)
            kept.append(d)
        kept.append(self.c4(h))
        return x + self.fuse(self.cca(torch.cat(kept, 1)))


class _Distilling(nn.Module):
    """IMDN's and RFDN's frame: head conv, blocks, a 1x1 fusion of every block's output, a 3x3 conv, the long
    skip, and a one-conv pixel-shuffle tail."""

    def __init__(self, scale: int, c: int, blocks: int, block):
        super().__init__()
        self.scale = scale
        self.head = conv(3, c)
        self.blocks = nn.ModuleList(block(c) for _ in range(blocks))
        self.fuse, self.lr_conv = conv(c * blocks, c, 1), conv(c, c)
        self.up = conv(c, 3 * scale * scale)

    def forward(self, x):
        f = self.head(x)
        outs, h = [], f
        for block in self.blocks:
            h = block(h)
            outs.append(h)
        h = self.lr_conv(F.leaky_relu(self.fuse(torch.cat(outs, 1)), 0.05)) + f
        return F.pixel_shuffle(self.up(h), self.scale)


class IMDN(_Distilling):
    def __init__(self, scale: int, c: int = 64, blocks: int = 6):
        super().__init__(scale, c, blocks, _IMDB)


class _ESA(nn.Module):
    """Enhanced spatial attention: 1x1 reduce, strided 3x3, 7x7/3 max pool, convs, bilinear back, 1x1, sigmoid."""

    def __init__(self, c: int, f: int = 16):
        super().__init__()
        self.c1, self.cf = conv(c, f, 1), conv(f, f, 1)
        self.c2 = conv(f, f, stride=2, pad=0)
        self.cmax, self.c3, self.c3_ = conv(f, f), conv(f, f), conv(f, f)
        self.c4 = conv(f, c, 1)

    def forward(self, x):
        c1 = self.c1(x)
        v = F.max_pool2d(self.c2(c1), 7, stride=3)
        v = self.c3_(F.relu(self.c3(F.relu(self.cmax(v)))))
        v = F.interpolate(v, size=x.shape[2:], mode="bilinear", align_corners=False)
        return x * torch.sigmoid(self.c4(v + self.cf(c1)))


class _RFDB(nn.Module):
    def __init__(self, c: int = 50):
        super().__init__()
        d = c // 2
        self.dist = nn.ModuleList(conv(c, d, 1) for _ in range(3))
        self.srb = nn.ModuleList(conv(c, c) for _ in range(3))
        self.last = conv(c, d)
        self.fuse, self.esa = conv(4 * d, c, 1), _ESA(c)

    def forward(self, x):
        kept, h = [], x
        for dist, srb in zip(self.dist, self.srb):
            kept.append(F.leaky_relu(dist(h), 0.05))
            h = F.leaky_relu(srb(h) + h, 0.05)
        kept.append(F.leaky_relu(self.last(h), 0.05))
        return self.esa(self.fuse(torch.cat(kept, 1)))


class RFDN(_Distilling):
    def __init__(self, scale: int, c: int = 50, blocks: int = 4):
        super().__init__(scale, c, blocks, _RFDB)


def _windows(x, k: int):
    """(B, H, W, C) -> (B, H/k, W/k, k*k, C): non-overlapping k x k windows, sizes read off the tensor so an
    exported graph keeps H and W dynamic."""
    b, h, w, c = x.shape
    return x.reshape(b, h // k, k, w // k, k, c).transpose(2, 3).reshape(b, h // k, w // k, k * k, c)


def _unwindows(x, k: int):
    b, nh, nw, _, c = x.shape
    return x.reshape(b, nh, nw, k, k, c).transpose(2, 3).reshape(b, nh * k, nw * k, c)


class _WindowAttention(nn.Module):
    """Multi-head self-attention inside each window, with a learnt bias per relative offset and head."""

    def __init__(self, c: int, heads: int, k: int):
        super().__init__()
        self.heads, self.scale = heads, (c // heads) ** -0.5
        self.qkv, self.proj = nn.Linear(c, 3 * c), nn.Linear(c, c)
        self.table = nn.Parameter(torch.randn((2 * k - 1) ** 2, heads) * 0.02)
        ys, xs = torch.meshgrid(torch.arange(k), torch.arange(k), indexing="ij")
        dy = ys.flatten()[:, None] - ys.flatten()[None] + k - 1
        dx = xs.flatten()[:, None] - xs.flatten()[None] + k - 1
        self.register_buffer("index", dy * (2 * k - 1) + dx, persistent=False)

    def forward(self, x, mask=None):        # x: (B, nh, nw, N, C), N = k*k tokens per window
        c = x.shape[-1]
        q, k, v = self.qkv(x).unflatten(-1, (3, self.heads, c // self.heads)).movedim(-3, 0).transpose(-2, -3)
        attn = (q * self.scale) @ k.transpose(-1, -2) + self.table[self.index].permute(2, 0, 1)
        if mask is not None:
            attn = attn + mask[0] + mask[1]
        return self.proj((attn.softmax(-1) @ v).transpose(-2, -3).flatten(-2))


class _SwinLayer(nn.Module):
    def __init__(self, c: int, heads: int, k: int, shift: int, mlp: float):
        super().__init__()
        self.k, self.shift = k, shift
        self.norm1, self.attn = nn.LayerNorm(c), _WindowAttention(c, heads, k)
        self.norm2 = nn.LayerNorm(c)
        self.mlp = nn.Sequential(nn.Linear(c, int(c * mlp)), nn.GELU(), nn.Linear(int(c * mlp), c))
        if shift:
            # tokens of a window on either side of the seam the roll wraps round (per window row, per column)
            t = torch.arange(k * k)
            side = lambda p: p < k - shift
            seam = lambda p: side(p)[:, None] != side(p)[None]
            self.register_buffer("seams", torch.stack([seam(t // k), seam(t % k)]), persistent=False)

    def _mask(self, nh, nw):
        """The reference's -100 between tokens that the roll brought together from opposite borders, which only
        the last row and column of windows hold: as a (nh, 1, 1, N, N) and a (nw, 1, N, N) term rather than one
        (windows, N, N) mask (where a pair straddles both seams it gets -200: both vanish in the softmax)."""
        last_row = torch.arange(nh, device=self.seams.device) == nh - 1
        last_col = torch.arange(nw, device=self.seams.device) == nw - 1
        return ((last_row[:, None, None, None, None] & self.seams[0]).float() * -100.0,
                (last_col[:, None, None, None] & self.seams[1]).float() * -100.0)

    def forward(self, x):                   # x: (B, H, W, C), H and W multiples of k
        k, s = self.k, self.shift
        y = self.norm1(x)
        if s:
            y = torch.roll(y, (-s, -s), (1, 2))
        mask = self._mask(x.shape[1] // k, x.shape[2] // k) if s else None
        y = _unwindows(self.attn(_windows(y, k), mask), k)
        if s:
            y = torch.roll(y, (s, s), (1, 2))
        x = x + y
        return x + self.mlp(self.norm2(x))


class _RSTB(nn.Module):
    """Residual Swin transformer block: Swin layers (alternately shifted), a 3x3 conv, the group's skip."""

    def __init__(self, c: int, depth: int, heads: int, k: int, mlp: float):
        super().__init__()
        self.layers = nn.ModuleList(_SwinLayer(c, heads, k, k // 2 if i % 2 else 0, mlp) for i in range(depth))
        self.conv = conv(c, c)

    def forward(self, x):                   # tokens as (B, H, W, C)
        h = x
        for layer in self.layers:
            h = layer(h)
        return self.conv(h.permute(0, 3, 1, 2)).permute(0, 2, 3, 1) + x


class SwinIRLight(nn.Module):
    def __init__(self, scale: int, c: int = 60, groups: int = 4, depth: int = 6, heads: int = 6, k: int = 8,
                 mlp: float = 2.0):
        super().__init__()
        self.scale, self.k = scale, k
        self.register_buffer("mean", torch.tensor([0.4488, 0.4371, 0.4040]).view(1, 3, 1, 1), persistent=False)
        self.head = conv(3, c)
        self.embed_norm = nn.LayerNorm(c)
        self.groups = nn.ModuleList(_RSTB(c, depth, heads, k, mlp) for _ in range(groups))
        self.norm, self.body_conv = nn.LayerNorm(c), conv(c, c)
        self.up = conv(c, 3 * scale * scale)

    def forward(self, x):
        h, w = x.shape[2:]
        k = self.k
        # padded sizes as whole windows (not the reference's (k - h % k) % k): the same pads, in a form torch's
        # exporter simplifies, so the windows' reshapes divide exactly for any H and W
        x = F.pad(x, (0, (w + k - 1) // k * k - w, 0, (h + k - 1) // k * k - h), mode="reflect") - self.mean
        f = self.head(x)
        t = self.embed_norm(f.permute(0, 2, 3, 1))
        for group in self.groups:
            t = group(t)
        t = self.body_conv(self.norm(t).permute(0, 3, 1, 2)) + f
        y = F.pixel_shuffle(self.up(t), self.scale) + self.mean
        return y[:, :, :h * self.scale, :w * self.scale]


PEERS = {"FSRCNN": FSRCNN, "ESPCN": ESPCN, "CARN-M": CARNM, "IMDN": IMDN, "RFDN": RFDN, "SwinIR-light": SwinIRLight}


def build(name: str, scale: int) -> nn.Module:
    return PEERS[name](scale).eval()


def input_channels(net: nn.Module) -> int:
    first = next(m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)))
    return first.in_channels
