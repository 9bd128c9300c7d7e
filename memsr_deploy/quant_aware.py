"""Quantisation-aware fine-tuning of a plain net for int8 export: the forward pass uses the weights as TFLite's
full-integer conversion rounds them (one symmetric int8 scale per output channel, max |w| / 127), gradients pass
straight through the rounding, and the result is saved with its weights on that grid, so the exported int8
weights are exactly the ones that were trained and evaluated.

Why a MemSR student needs it: its initialisation carries features through near-identity taps, so a few weights
of about 1 share an output channel with many of 0.01, and per-channel rounding removes the small ones. Measured
on the bundled x2 student by fake quantisation against its float output: int8 weights alone 31.3 dB, 8-bit
per-tensor activations alone 46.1 dB; so only the weights are simulated here.
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

from .models import PlainSR


def int8_weight(w: torch.Tensor) -> torch.Tensor:
    """``w`` rounded to its per-output-channel int8 grid; the gradient passes through unchanged."""
    scale = (w.detach().abs().amax(dim=(1, 2, 3), keepdim=True) / 127).clamp_min(1e-12)
    q = torch.round(w / scale).clamp(-127, 127) * scale
    return w + (q - w).detach()


class Int8WeightPlain(nn.Module):
    """A plain net whose convs run with int8-rounded weights (the float weights are what the optimiser moves)."""

    def __init__(self, model: PlainSR):
        super().__init__()
        self.model = model

    def forward(self, x):
        m = self.model
        h = m.normalize(x)
        for conv, act in zip([*m.layers, m.tail], [*m.acts, "none"]):
            h = F.conv2d(h, int8_weight(conv.weight), conv.bias, padding=1)
            if act == "relu":
                h = F.relu(h)
        return F.pixel_shuffle(h, m.cfg.scale)

    def snapped(self) -> PlainSR:
        """A copy of the model with its weights on the int8 grid: in float it computes what forward does."""
        out = copy.deepcopy(self.model)
        with torch.no_grad():
            for conv in [*out.layers, out.tail]:
                conv.weight.copy_(int8_weight(conv.weight))
        return out
