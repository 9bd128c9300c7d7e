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

import torch
import torch.nn as nn
from torch.nn.utils import parametrize

from .models import PlainSR


def int8_weight(w: torch.Tensor) -> torch.Tensor:
    """``w`` rounded to its per-output-channel int8 grid; the gradient passes through unchanged."""
    scale = (w.detach().abs().amax(dim=(1, 2, 3), keepdim=True) / 127).clamp_min(1e-12)
    q = torch.round(w / scale).clamp(-127, 127) * scale
    return w + (q - w).detach()


class _Int8Grid(nn.Module):
    """Parametrisation: a conv's weight as the int8 kernels will see it."""

    def forward(self, w):
        return int8_weight(w)


def with_int8_weights(model: PlainSR) -> PlainSR:
    """``model`` itself, its convs now running with int8-rounded weights; the float weights (what the optimiser
    moves) live on as ``conv.parametrizations.weight.original``."""
    for conv in model.convs():
        parametrize.register_parametrization(conv, "weight", _Int8Grid())
    return model


def snapped(model: PlainSR) -> PlainSR:
    """A new plain net holding a ``with_int8_weights`` model's rounded weights: in float it computes what the
    fine-tuned model does. (Not deepcopy + remove_parametrizations: the copy shares the parametrised class with
    the original, and removing the parametrisation from one strips the weight property from both.)"""
    out = PlainSR(model.cfg).to(model.tail.bias.device)
    with torch.no_grad():
        for dst, src in zip(out.convs(), model.convs()):
            dst.weight.copy_(src.weight)
            dst.bias.copy_(src.bias)
    return out
