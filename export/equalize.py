"""Activation-range equalisation of a plain net before integer quantisation (exact re-parameterisation).

TFLite quantises each activation tensor with one scale, so a layer whose channels span very different ranges
(a plain student's do: 5-10x between the widest channel and the median one) spends most of its 256 levels
on a few channels. Both activations of a plain net (ReLU and identity) commute with a positive per-channel
scale, and zero padding does too (0 * s = 0), so dividing output channel i of body layer l by s_i and
multiplying input channel i of layer l+1 by s_i computes exactly the same function, borders included.

With r_i the channel's largest |activation| on the calibration patches and R the layer's largest,
s_i = (r_i / R) ** alpha lifts narrow channels towards the widest one. alpha = 1 equalises fully; smaller
alpha leaves part of the imbalance, because the next layer's weights for a lifted channel shrink by s_i and
per-output-channel weight quantisation then resolves them more coarsely. The layer's own weights scale per
output channel, which per-channel weight quantisation does not notice.
"""
from __future__ import annotations

import numpy as np
import torch

from .source import Layer, Source

ALPHA = 0.5
FLOOR = 1e-2  # dead channels: lifting them further only shrinks their (useless) next-layer weights to zero


def activation_ranges(source: Source, samples: list[np.ndarray]) -> list[np.ndarray]:
    """Per body layer, per channel: the largest |output| over the NHWC calibration samples."""
    ranges = None
    with torch.no_grad():
        for s in samples:
            x = torch.from_numpy(np.ascontiguousarray(s.transpose(0, 3, 1, 2)))
            _, feats = source.model.features(x)
            cur = [f.abs().amax(dim=(0, 2, 3)).numpy() for f in feats]
            ranges = cur if ranges is None else [np.maximum(a, b) for a, b in zip(ranges, cur)]
    return ranges


def equalize(layers: list[Layer], ranges: list[np.ndarray], alpha: float = ALPHA) -> list[Layer]:
    """New layers computing the same function with per-channel activation ranges evened out."""
    out = [Layer(l.weight.astype(np.float64), l.bias.astype(np.float64), l.act) for l in layers]
    for l, r in enumerate(ranges):  # body layers only: the tail's outputs are the image
        r = np.asarray(r, np.float64)
        if r.max() <= 0:
            continue
        s = np.clip(r / r.max(), FLOOR, 1.0) ** alpha
        out[l].weight /= s[:, None, None, None]
        out[l].bias /= s
        out[l + 1].weight *= s[None, :, None, None]
    return [Layer(l.weight.astype(np.float32), l.bias.astype(np.float32), l.act) for l in out]
