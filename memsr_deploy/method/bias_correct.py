"""Tail bias correction: after the int8 stage, shift each output channel of the tail conv by the mean residual
(HR - output) over training patches, so the model's colours are unbiased again.

Why: rounding the tail's weights to the int8 grid moves each output channel's response to flat regions by a
constant (hundreds of rounding errors of up to half a grid step, each times a feature's mean), and the int8
stage's few hundred steps of L1 at a small learning rate leave it: measured on the width-32 x2 candidate,
global offsets of 0.3 to 1.1 levels (blue -1.1 levels after the plain int8 stage, green -0.4 after the
equalised one) against 0.03 for the float model. Invisible on textured photos (evaluation PSNR +0.002 dB after
correction) but it costs 3 to 4 dB on a near-flat photo (the held-out umang, float 59.7 dB: after
``--equalise 1.5`` 56.0 -> 57.3 with the correction, after ``--equalise 2`` 57.8 -> 59.2). A weight average over
the stage (``--ema``) leaves less to correct (0.15 instead of 0.64 levels), the correction takes the rest. The
bias stays float in every int8 runtime (int32 accumulator units), so the correction survives export exactly.
The mean, not the median, because PSNR is a squared error.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .models import PlainSR


@torch.no_grad()
def tail_bias_offsets(model: PlainSR, batches) -> torch.Tensor:
    """Mean residual HR - output per tail output channel over ``batches`` of (lr, hr), in the model's output
    units. A border of the receptive radius is left out: zero padding there is not what whole images see."""
    r, halo = model.cfg.scale, model.receptive_radius
    f = model.cfg.shuffles()[-1]   # the shuffle after the tail conv: s for the one-conv tail, 1 for the upsampler
    total, count = None, 0
    for lr, hr in batches:
        res = hr - model(lr)
        if halo:
            res = res[..., halo * r:-halo * r, halo * r:-halo * r]
        if res.shape[-1] == 0 or res.shape[-2] == 0:
            raise ValueError(f"patches of {lr.shape[-1]} px leave nothing inside a border of {halo} px")
        # pixel_unshuffle inverts the pixel shuffle after the tail conv: one value per tail output channel
        s = F.pixel_unshuffle(res, f).sum((0, 2, 3))
        total = s if total is None else total + s
        count += res.shape[0] * (res.shape[-2] // f) * (res.shape[-1] // f)
    if total is None:
        raise ValueError("no patches to measure the tail's offsets on")
    return total / count


def correct_tail_bias(model: PlainSR, batches) -> list[float]:
    """Add the mean residual to the tail's bias in place; returns the offsets added (model output units)."""
    offsets = tail_bias_offsets(model, batches)
    with torch.no_grad():
        model.tail.bias += offsets.to(model.tail.bias)
    return [float(v) for v in offsets]
