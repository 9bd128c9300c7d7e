"""Initialisation-aware feature distillation (method.md, step 3).

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


def random_bridges(student: models.PlainSR, plain: models.PlainSR) -> nn.ModuleList:
    """Randomly initialised 1x1 adapters from each student layer to the matching large-plain layer."""
    return nn.ModuleList(nn.Conv2d(s, t, 1) for s, t in zip(student.cfg.widths, plain.cfg.widths))


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
    """L1 on the output, plus the decaying feature term when a frozen large plain net is given."""

    def __init__(self, targets: Callable | None, lam0: float = 0.3, decay: float = 1e-5):
        """``targets(x) -> (sr, [F_k])``: the frozen large plain net's output and layer features
        (``PlainSR.features``, or ``convert.plain_features`` straight from the teacher)."""
        self.targets = targets
        self.lam0, self.decay = lam0, decay

    def __call__(self, model: nn.Module, lr: torch.Tensor, hr: torch.Tensor, step: int, total: int):
        sr, bridged = model(lr)
        l1 = F.l1_loss(sr, hr)
        if self.targets is None or not bridged:
            return l1, {"l1": l1.item()}
        with torch.no_grad():
            t_sr, t_feats = self.targets(lr)
        terms = [F.mse_loss(b, t) for b, t in zip(bridged, t_feats)] + [F.mse_loss(sr, t_sr)]
        feat = torch.stack(terms).mean()
        lam = feature_weight(step, total, self.lam0, self.decay)
        return l1 + lam * feat, {"l1": l1.item(), "feat": feat.item(), "lam": lam}
