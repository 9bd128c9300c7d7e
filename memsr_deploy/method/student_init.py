"""MemSR student initialisation from the large plain net (method.md, step 2; the paper's Algorithm 1).

For every body layer l but the last, the large plain net's recorded features F_l (C_l x P) are approximated as
F_l ~ M_l P_l + b_l with M_l orthonormal (C_l x r_l) from an SVD of the centred features. The student's layer l
maps P_{l-1} to P_l: it is the large layer l read through the previous bridge and projected onto M_l.
The bridges B_l(f) = M_l f + b_l (1x1 convs) are kept: initialisation-aware distillation starts from them.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn

from . import models


@dataclass
class LayerFit:
    width: int             # r_l
    rank_error: float      # ||Fc - U_r S_r V_r^T|| / ||Fc|| at the chosen rank
    shift: float           # mean positivity shift applied (0 for linear layers)


@dataclass
class StudentInit:
    student: models.PlainSR
    bridges: nn.ModuleList                     # 1x1 convs, one per student body layer (identity when uncompressed)
    fits: list[LayerFit] = field(default_factory=list)
    feature_errors: list[float] = field(default_factory=list)  # ||B_l(S_l) - F_l|| / ||F_l - mu_l|| per layer

    def report(self) -> dict:
        return {"widths": [f.width for f in self.fits],
                "rank_errors": [round(f.rank_error, 5) for f in self.fits],
                "feature_errors": [round(e, 5) for e in self.feature_errors]}


def choose_rank(singular_values: torch.Tensor, eps: float) -> int:
    """Smallest r whose truncation error ||Fc - Fc_r||_F / ||Fc||_F is below eps."""
    energy = singular_values.double() ** 2
    total = energy.sum()
    if total <= 0:
        return 1
    tail = total - torch.cumsum(energy, 0)             # tail[r-1] = energy left out at rank r
    rel = torch.sqrt(tail.clamp_min(0) / total)
    below = torch.nonzero(rel < eps)
    return int(below[0]) + 1 if len(below) else len(singular_values)


@torch.no_grad()
def record_features(plain: models.PlainSR, lr_patches: torch.Tensor, max_columns: int = 32768,
                    seed: int = 0) -> list[torch.Tensor]:
    """Every body layer's output as a (C_l x P) float64 matrix, the same P pixel columns for all layers."""
    _, feats = plain.features(lr_patches)
    n = feats[0].shape[0] * feats[0].shape[2] * feats[0].shape[3]
    g = torch.Generator().manual_seed(seed)
    cols = torch.randperm(n, generator=g)[:max_columns] if n > max_columns else torch.arange(n)
    return [f.permute(1, 0, 2, 3).reshape(f.shape[1], -1)[:, cols].double() for f in feats]


def decompose(F: torch.Tensor, relu: bool, eps: float | None, width: int | None, shift_a: float = 3.0):
    """(M, b, fit) for one layer's features F (C x P): F ~ M P + b, P shifted positive when it feeds a ReLU."""
    mu = F.mean(dim=1, keepdim=True)
    Fc = F - mu
    U, S, Vh = torch.linalg.svd(Fc, full_matrices=False)
    r = min(int(width), len(S)) if width else choose_rank(S, eps if eps is not None else 0.05)
    energy = (S.double() ** 2)
    rank_error = float(torch.sqrt(energy[r:].sum() / energy.sum().clamp_min(1e-30)))
    M = U[:, :r]
    P = S[:r, None] * Vh[:r]
    delta = torch.zeros(r, 1, dtype=F.dtype)
    if relu:
        # Push the pseudo features towards positive values so the student's ReLU clips less of them.
        delta = -shift_a * P.clamp(max=0).mean(dim=1, keepdim=True)
    b = mu - M @ delta
    return M, b.squeeze(1), LayerFit(r, rank_error, float(delta.mean()))


def _bridge(M: torch.Tensor, b: torch.Tensor) -> nn.Conv2d:
    conv = nn.Conv2d(M.shape[1], M.shape[0], 1)
    with torch.no_grad():
        conv.weight.copy_(M.float()[:, :, None, None])
        conv.bias.copy_(b.float())
    return conv


@torch.no_grad()
def init_student(plain: models.PlainSR, lr_patches: torch.Tensor, eps: float | None = 0.05,
                 width: int | list[int] | None = None, shift_a: float = 3.0, max_columns: int = 32768,
                 seed: int = 0) -> StudentInit:
    """Derive a MemSR student from the large plain net ``plain`` and a batch of LR training patches.

    ``width``: None = rank rule with ``eps``; an int = that width for every compressed layer (capped at the
    layer's width); a list = one width per compressed layer.
    """
    feats = record_features(plain, lr_patches, max_columns, seed)
    L = len(feats)
    acts = plain.cfg.acts
    Ms, bs, fits = [], [], []
    for l in range(L):
        if l == L - 1:  # the tail reads the last body layer directly: leave it uncompressed
            C = feats[l].shape[0]
            Ms.append(torch.eye(C, dtype=torch.float64))
            bs.append(torch.zeros(C, dtype=torch.float64))
            fits.append(LayerFit(C, 0.0, 0.0))
            continue
        w = width[l] if isinstance(width, (list, tuple)) else width
        M, b, fit = decompose(feats[l], acts[l] == "relu", eps, w, shift_a)
        Ms.append(M)
        bs.append(b)
        fits.append(fit)

    cfg = models.PlainConfig(scale=plain.cfg.scale, widths=[f.width for f in fits], acts=list(acts),
                             input=plain.cfg.input)
    student = models.PlainSR(cfg)
    convs = plain.convs()
    prev_M = torch.eye(3, dtype=torch.float64)
    prev_b = torch.zeros(3, dtype=torch.float64)
    for l, conv in enumerate(student.convs()):
        W = convs[l].weight.double()                       # (C_l, C_{l-1}, 3, 3)
        c = convs[l].bias.double()
        # a 1x1 bridge followed by a 3x3 conv is a 3x3 conv; the bridge's bias adds a constant per output
        W_comp = torch.einsum("oikl,ij->ojkl", W, prev_M)
        b_comp = c + torch.einsum("oikl,i->o", W, prev_b)
        if l < L:
            M, b = Ms[l], bs[l]
            W_s = torch.einsum("oc,ojkl->cjkl", M, W_comp)    # least squares against orthonormal M = M^T (.)
            b_s = M.T @ (b_comp - b)
            prev_M, prev_b = M, b
        else:  # tail: reads the uncompressed last body layer
            W_s, b_s = W_comp, b_comp
        conv.weight.copy_(W_s.float())
        conv.bias.copy_(b_s.float())
    student.eval()

    bridges = nn.ModuleList(_bridge(M, b) for M, b in zip(Ms, bs))
    result = StudentInit(student, bridges, fits)
    result.feature_errors = feature_errors(student, bridges, plain, lr_patches)
    return result


@torch.no_grad()
def feature_errors(student: models.PlainSR, bridges: nn.ModuleList, plain: models.PlainSR,
                   lr_patches: torch.Tensor) -> list[float]:
    """Relative error of each bridged student feature against the large plain net's feature."""
    _, fs = student.features(lr_patches)
    _, ft = plain.features(lr_patches)
    errs = []
    for s, t, bridge in zip(fs, ft, bridges):
        tc = t - t.mean(dim=(0, 2, 3), keepdim=True)
        errs.append(float((bridge(s) - t).norm() / tc.norm().clamp_min(1e-12)))
    return errs
