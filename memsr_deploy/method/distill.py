"""Initialisation-aware feature distillation (docs/method.md, step 3).

  loss = L1(student(x), y) + lambda(t) * mean_k MSE(B_k(S_k), F_k)

S_k are the student's body-layer outputs plus its SR output; F_k the frozen large plain net's features and SR
output; B_k the bridges (1x1 convs, identity for the SR output). With MemSR initialisation the bridges start from
the decomposition's (M_k, b_k) - the shared starting point that makes it "initialisation-aware"; with random
initialisation they start as ordinary random 1x1 adapters. lambda(t) = lam0 * decay^(t/T).
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import models


def feature_weight(step: int, total: int, lam0: float = 0.3, decay: float = 1e-5) -> float:
    return lam0 * decay ** (min(step, total) / max(total, 1))


def reference_feature_scale(value_range: float = 1.0) -> float:
    """Weight that puts the feature term on the reference's scale. The reference computes L1 and feature MSE
    on 0..255 pixels; on [0, 1] pixels the L1 shrinks by 255 and the MSE by 255^2, so with the L1 left as it
    is the MSE must be multiplied by 255 (Adam does not care about the common factor)."""
    return 255.0 / value_range


def select_bridges(bridges: nn.ModuleList, channels: list[list[int]] | None) -> nn.ModuleList:
    """Bridges that output only the given target channels (rows of each 1x1 conv); all when None."""
    if channels is None:
        return bridges
    out = nn.ModuleList()
    for b, idx in zip(bridges, channels):
        conv = nn.Conv2d(b.in_channels, len(idx), 1)
        with torch.no_grad():
            conv.weight.copy_(b.weight[idx])
            conv.bias.copy_(b.bias[idx])
        out.append(conv)
    return out


def random_bridges(student: models.PlainSR, target_feats: list[torch.Tensor]) -> nn.ModuleList:
    """Ordinary feature-distillation adapters: random 1x1 convs from each student layer to its target
    features, with the bias set to the targets' per-channel mean (so an adapter starts by predicting the
    mean, not 0: a target with a large mean would otherwise swamp the loss)."""
    out = nn.ModuleList()
    for s, t in zip(student.cfg.widths, target_feats):
        conv = nn.Conv2d(s, t.shape[1], 1)
        with torch.no_grad():
            conv.bias.copy_(t.mean(dim=(0, 2, 3)))
        out.append(conv)
    return out


class StudentWithBridges(nn.Module):
    """The trainable part of distillation in one module, so DDP and the optimiser see student and bridges."""

    def __init__(self, student: models.PlainSR, bridges: nn.ModuleList | None):
        super().__init__()
        self.student = student
        self.bridges = bridges

    def forward(self, x):
        if self.bridges is None:
            return self.student(x), []
        sr, feats = self.student.features(x)
        return sr, [b(f) for b, f in zip(self.bridges, feats)]


class DistillLoss:
    """L1 on the output, plus the decaying feature term when a frozen large plain net is given:
    loss = L1 + lambda(t) * feature_scale * mean_k MSE(B_k(S_k), F_k)."""

    def __init__(self, targets: Callable | None, lam0: float = 0.3, decay: float = 1e-5,
                 feature_scale: float = 255.0):
        """``targets(x) -> (sr, [F_k])``: the frozen teacher's output and the layer features to match
        (``PlainSR.features``, or ``convert.plain_features`` straight from the teacher, possibly restricted
        to the teacher's own channels). ``feature_scale``: see ``reference_feature_scale``."""
        self.targets = targets
        self.lam0, self.decay, self.feature_scale = lam0, decay, feature_scale

    def terms(self, model: nn.Module, lr: torch.Tensor, hr: torch.Tensor, step: int, total: int):
        """(L1 term, weighted feature term or None, lambda)."""
        sr, bridged = model(lr)
        l1 = F.l1_loss(sr, hr)
        if self.targets is None or not bridged:
            return l1, None, 0.0
        with torch.no_grad():
            t_sr, t_feats = self.targets(lr)
        terms = [F.mse_loss(b, t) for b, t in zip(bridged, t_feats)] + [F.mse_loss(sr, t_sr)]
        lam = feature_weight(step, total, self.lam0, self.decay)
        return l1, lam * self.feature_scale * torch.stack(terms).mean(), lam

    def __call__(self, model: nn.Module, lr: torch.Tensor, hr: torch.Tensor, step: int, total: int):
        l1, feat, lam = self.terms(model, lr, hr, step, total)
        if feat is None:
            return l1, {"l1": l1.item()}
        return l1 + feat, {"l1": l1.item(), "feat": feat.item(), "lam": lam}

    def grad_ratio(self, model: nn.Module, lr: torch.Tensor, hr: torch.Tensor, step: int, total: int) -> dict:
        """||d(feature term)/d(student)|| / ||d(L1)/d(student)||, as weighted at this step: how hard the
        distillation pulls compared with the L1 (the reference's ratio at step 0 is of order 1)."""
        student = model.student if isinstance(model, StudentWithBridges) else model
        params = [p for p in student.parameters() if p.requires_grad]
        l1, feat, lam = self.terms(model, lr, hr, step, total)
        if feat is None:
            return {}
        g1 = torch.autograd.grad(l1, params, retain_graph=True, allow_unused=True)
        gf = torch.autograd.grad(feat, params, allow_unused=True)
        norm = lambda gs: float(torch.sqrt(sum((g.double() ** 2).sum() for g in gs if g is not None)))
        return {"grad_ratio": norm(gf) / max(norm(g1), 1e-30), "lam": lam}
