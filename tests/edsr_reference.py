"""An independent EDSR (Lim et al. 2017), written for the tests from the published structure, in the two key
layouts checkpoints come in. Nothing here is memsr's: the tests compare memsr's imported teacher against it.

EDSR-PyTorch layout: MeanShift convs ``sub_mean`` / ``add_mean`` (1x1, weight 1/std, bias -+rgb_range*mean/std,
on 0..rgb_range pixels), ``head`` = [conv], ``body`` = [ResBlock(conv, ReLU, conv) * n, conv], ``tail`` =
[Upsampler([conv, PixelShuffle] per factor), conv]. BasicSR layout: ``conv_first``, ``body`` of
ResidualBlockNoBN(conv1, conv2), ``conv_after_body``, ``upsample`` ([conv, PixelShuffle] per factor),
``conv_last``; mean (0.4488, 0.4371, 0.4040) and img_range 255 constants, on [0, 1] pixels.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

DIV2K_MEAN = (0.4488, 0.4371, 0.4040)


def _conv(cin, cout, k=3):
    return nn.Conv2d(cin, cout, k, padding=k // 2, bias=True)


class MeanShift(nn.Conv2d):
    def __init__(self, rgb_range, mean=DIV2K_MEAN, std=(1.0, 1.0, 1.0), sign=-1):
        super().__init__(3, 3, kernel_size=1)
        std = torch.tensor(std)
        self.weight.data = torch.eye(3).view(3, 3, 1, 1) / std.view(3, 1, 1, 1)
        self.bias.data = sign * rgb_range * torch.tensor(mean) / std
        for p in self.parameters():
            p.requires_grad = False


class ResBlock(nn.Module):
    def __init__(self, n_feats, res_scale):
        super().__init__()
        self.body = nn.Sequential(_conv(n_feats, n_feats), nn.ReLU(True), _conv(n_feats, n_feats))
        self.res_scale = res_scale

    def forward(self, x):
        return self.body(x).mul(self.res_scale) + x


def _upsampler_stages(scale, n_feats):
    m = []
    if scale & (scale - 1) == 0:
        for _ in range(int(math.log2(scale))):
            m += [_conv(n_feats, 4 * n_feats), nn.PixelShuffle(2)]
    elif scale == 3:
        m += [_conv(n_feats, 9 * n_feats), nn.PixelShuffle(3)]
    else:
        raise NotImplementedError(scale)
    return m


class EdsrPyTorch(nn.Module):
    """Input and output on 0..rgb_range."""

    def __init__(self, scale, n_feats=64, n_resblocks=16, res_scale=1.0, rgb_range=255, std=(1.0, 1.0, 1.0)):
        super().__init__()
        self.sub_mean = MeanShift(rgb_range, std=std)
        self.add_mean = MeanShift(rgb_range, std=std, sign=1)
        self.head = nn.Sequential(_conv(3, n_feats))
        self.body = nn.Sequential(*[ResBlock(n_feats, res_scale) for _ in range(n_resblocks)],
                                  _conv(n_feats, n_feats))
        self.tail = nn.Sequential(nn.Sequential(*_upsampler_stages(scale, n_feats)), _conv(n_feats, 3))

    def forward(self, x):
        x = self.head(self.sub_mean(x))
        res = self.body(x)
        res += x
        return self.add_mean(self.tail(res))


class ResidualBlockNoBN(nn.Module):
    def __init__(self, num_feat, res_scale):
        super().__init__()
        self.conv1, self.conv2 = _conv(num_feat, num_feat), _conv(num_feat, num_feat)
        self.relu = nn.ReLU(inplace=True)
        self.res_scale = res_scale

    def forward(self, x):
        return x + self.conv2(self.relu(self.conv1(x))) * self.res_scale


class EdsrBasicSR(nn.Module):
    """Input and output on [0, 1]."""

    def __init__(self, upscale, num_feat=64, num_block=16, res_scale=1.0, img_range=255.0):
        super().__init__()
        self.img_range = img_range
        self.mean = torch.tensor(DIV2K_MEAN).view(1, 3, 1, 1)
        self.conv_first = _conv(3, num_feat)
        self.body = nn.Sequential(*[ResidualBlockNoBN(num_feat, res_scale) for _ in range(num_block)])
        self.conv_after_body = _conv(num_feat, num_feat)
        self.upsample = nn.Sequential(*_upsampler_stages(upscale, num_feat))
        self.conv_last = _conv(num_feat, 3)

    def forward(self, x):
        x = (x - self.mean) * self.img_range
        x = self.conv_first(x)
        res = self.conv_after_body(self.body(x))
        res += x
        return self.conv_last(self.upsample(res)) / self.img_range + self.mean


def randomise(net: nn.Module, seed: int, gain: float = 1.0) -> nn.Module:
    """Random conv weights (the MeanShifts keep theirs): PyTorch's default init, seeded."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, m in net.named_modules():
            if isinstance(m, nn.Conv2d) and not isinstance(m, MeanShift):
                bound = gain / math.sqrt(m.weight[0].numel())
                m.weight.copy_((torch.rand(m.weight.shape, generator=g) * 2 - 1) * bound)
                m.bias.copy_((torch.rand(m.bias.shape, generator=g) * 2 - 1) * bound)
    return net.eval()
