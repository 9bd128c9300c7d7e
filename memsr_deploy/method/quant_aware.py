"""Quantisation-aware fine-tuning of a plain net for int8 export: the forward pass uses the weights as TFLite's
full-integer conversion rounds them (one symmetric int8 scale per output channel, max |w| / 127), gradients pass
straight through the rounding, and the result is saved with its weights on that grid, so the exported int8
weights are exactly the ones that were trained and evaluated.

Why a MemSR student needs it: its initialisation carries features through near-identity taps, so a few weights
of about 1 share an output channel with many of 0.01, and per-channel rounding removes the small ones. Measured
on the 2026-11 bundled x2 student by fake quantisation against its float output: int8 weights alone 31.3 dB,
8-bit per-tensor activations alone 46.1 dB. Students trained longer from the positivity-shifted init carry
large constant parts in their ReLU features (ranges 0..9 against 0..2), and there the activations alone cost as
much (37 dB): ``activations=True`` also simulates the 8-bit per-tensor rounding of every layer's output.
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


class ActivationGrid(nn.Module):
    """8-bit per-tensor (asymmetric) rounding of a layer's output, as the int8 runtimes do, gradient straight
    through. The range follows the training batches' min and max (moving average); after a ReLU it starts at 0,
    and the clamp at 0 is the ReLU itself."""

    def __init__(self, relu: bool, momentum: float = 0.99):
        super().__init__()
        self.relu, self.momentum = relu, momentum
        self.register_buffer("lo", torch.zeros(()))
        self.register_buffer("hi", torch.zeros(()))
        self.register_buffer("seen", torch.zeros((), dtype=torch.bool))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            lo, hi = x.detach().min().clamp_max(0), x.detach().max().clamp_min(0)
            weight = 1.0 if not bool(self.seen) else 1 - self.momentum   # the first batch sets the range
            self.lo.lerp_(lo, weight)
            self.hi.lerp_(hi, weight)
            self.seen.fill_(True)
        elif not bool(self.seen):
            return x   # no range yet (evaluated before any training batch)
        lo = torch.zeros_like(self.lo) if self.relu else self.lo
        step = ((self.hi - lo) / 255).clamp_min(1e-8)
        zero = torch.round(-lo / step)
        q = (torch.clamp(torch.round(x / step) + zero, 0, 255) - zero) * step
        return x + (q - x).detach()


def with_int8_weights(model: PlainSR, activations: bool = False) -> PlainSR:
    """``model`` itself, its convs now running with int8-rounded weights; the float weights (what the optimiser
    moves) live on as ``conv.parametrizations.weight.original``. ``activations``: every conv's output (the
    ReLU applied) rounded to 8 bits too, by a forward hook on the conv (``model.activation_grids``)."""
    for conv in model.convs():
        parametrize.register_parametrization(conv, "weight", _Int8Grid())
    if activations:
        relus = [a == "relu" for a in model.acts] + [False] * (len(model.convs()) - len(model.acts))
        # a grid on a conv the chain shuffles after rounds the same values the shuffled map holds
        model.activation_grids = nn.ModuleList(ActivationGrid(r) for r in relus)
        for conv, grid in zip(model.convs(), model.activation_grids):
            conv.register_forward_hook(lambda _m, _i, out, g=grid: g(out))
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
