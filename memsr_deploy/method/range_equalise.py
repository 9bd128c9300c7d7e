"""Narrow a plain net's feature ranges before int8 fine-tuning, so that one 8-bit grid per layer output suits
every channel of it.

An int8 runtime rounds each layer's output on one grid (per tensor) spanning the union of its channels' ranges.
Students trained long from the positivity-shifted init (docs/method.md section 9) have two kinds of channel that
stretch that union: a few ReLU channels riding on a constant of 5 to 9, and a few wide channels (the carried
image, about 4 wide) beside many narrow ones (about 0.4). Two moves per body layer, from percentiles of its
output on training patches:

1. **Centre.** Channel i loses a constant c_i (conv l's bias) and conv l+1 gets it back through its weights
   (bias += sum over taps of W[:, i] * c_i). After a ReLU, c_i is the channel's low percentile less a
   quarter of its width, when that is positive (the ReLU then never clips the channel, pixels unlike the patches
   included) and 0 otherwise; without an activation, the mid-range.
   Exact inside the image; at the border conv l+1's zero padding now stands for -c_i instead of 0, a few levels
   in a ring of pixels, which the fine-tune after this step removes (its float reference is the model before
   it).
2. **Shrink.** A channel wider than ``target`` is scaled by target / width and conv l+1's input weights by the
   inverse: exact everywhere (a ReLU commutes with a positive scale, zero padding stays zero). Narrow channels
   are not widened: that moves their rounding into conv l+1's per-channel weight grid, and measured worse.

The exporter's equalisation (export/equalize.py) works at export time, exact scales only, and lifts narrow
channels; this step runs before the int8 fine-tune, so the weights it rescales end on the int8 grid again, and it
centres, which only a fine-tune can make exact at the border.

Measured on the width-32 x2 candidate (24,000 steps, shift 30) with the 400-step weights-only int8 stage after
it: int8 against fp32 on held-out photos 37.2 dB as trained, 40.2 centred, 43.2 centred and shrunk to 2, 42.1 to
1; widening narrow channels as well 41.7 (cap 4) and 40.9 (cap 16).
"""
from __future__ import annotations

import torch

from .models import PlainSR

LOW, HIGH = 1e-4, 1 - 1e-4     # percentiles: a handful of extreme pixels must not set a channel's range
MARGIN = 0.25                  # of a ReLU channel's width kept below its low percentile (5% still clipped some)
SAMPLE_STRIDE = 3              # every 3rd pixel is plenty for those percentiles and keeps the sort small


@torch.no_grad()
def channel_ranges(model: PlainSR, patches: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per body layer, (low, high) percentile of each output channel (after its activation) over ``patches``."""
    _, feats = model.features(patches)
    out = []
    for f in feats:
        v = f.transpose(0, 1).flatten(1)[:, ::SAMPLE_STRIDE]
        out.append((torch.quantile(v, LOW, dim=1), torch.quantile(v, HIGH, dim=1)))
    return out


@torch.no_grad()
def equalise_ranges(model: PlainSR, patches: torch.Tensor, target: float = 2.0) -> list[dict]:
    """Centre and shrink ``model``'s body features in place (see the module note); returns, per body layer, the
    tensor range before and after and how many channels were shrunk."""
    convs = model.convs()
    before = channel_ranges(model, patches)
    shrunk = []
    for l, act in enumerate(model.acts):
        # one layer at a time: centring layer l moves layer l+1's border pixels, so l+1 is measured afterwards
        lo, hi = channel_ranges(model, patches)[l]
        c = (lo - MARGIN * (hi - lo)).clamp_min(0) if act == "relu" else (lo + hi) / 2
        convs[l].bias -= c
        convs[l + 1].bias += (convs[l + 1].weight.sum(dim=(2, 3)) * c).sum(dim=1)
        lo, hi = lo - c, hi - c
        k = (target / (hi.clamp_min(0) - lo.clamp_max(0)).clamp_min(1e-12)).clamp_max(1.0)
        convs[l].weight *= k[:, None, None, None]
        convs[l].bias *= k
        convs[l + 1].weight /= k[None, :, None, None]
        shrunk.append(int((k < 1).sum()))
    after = channel_ranges(model, patches)

    def span(r):
        return [round(float(r[0].min().clamp_max(0)), 3), round(float(r[1].max().clamp_min(0)), 3)]
    return [{"layer": l, "range_before": span(b), "range_after": span(a), "channels_shrunk": s}
            for l, (b, a, s) in enumerate(zip(before, after, shrunk))]
