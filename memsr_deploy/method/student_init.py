"""MemSR student initialisation from the large plain net (docs/method.md, step 2; the paper's Algorithm 1).

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

    @property
    def kept_energy(self) -> float:
        """Share of the centred features' energy (sum of squared singular values) the rank keeps."""
        return 1.0 - self.rank_error ** 2


REFITS = ("none", "linear", "relu")


@dataclass
class StudentInit:
    student: models.PlainSR
    bridges: nn.ModuleList                     # 1x1 convs, one per student body layer (identity when uncompressed)
    fits: list[LayerFit] = field(default_factory=list)
    feature_errors: list[float] = field(default_factory=list)  # ||B_l(S_l) - F_l|| / ||F_l - mu_l|| per layer
    settings: dict = field(default_factory=dict)               # how the init was made (cap, shift, refit)

    def report(self) -> dict:
        return {**self.settings,
                "widths": [f.width for f in self.fits],
                "rank_errors": [round(f.rank_error, 5) for f in self.fits],
                "kept_energy": [round(f.kept_energy, 5) for f in self.fits],
                "feature_errors": [round(e, 5) for e in self.feature_errors]}

    def table(self) -> str:
        """The per-layer report as aligned text, for the training log."""
        rows = ["layer  act   width  kept energy  rank error  init error"]
        for l, (f, e, act) in enumerate(zip(self.fits, self.feature_errors, self.student.cfg.acts)):
            rows.append(f"{l:5d}  {act:4s}  {f.width:5d}  {f.kept_energy:11.5f}  {f.rank_error:10.5f}  {e:10.5f}")
        return "\n".join(rows)


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


def pixel_columns(lr_patches: torch.Tensor, max_columns: int, seed: int) -> torch.Tensor:
    """Which pixels (of all patches, flattened N-major) the fits see: all, or a seeded random subset."""
    n = lr_patches.shape[0] * lr_patches.shape[2] * lr_patches.shape[3]
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=g)[:max_columns] if n > max_columns else torch.arange(n)


@torch.no_grad()
def record_features(plain: models.PlainSR, lr_patches: torch.Tensor, max_columns: int = 32768,
                    seed: int = 0) -> list[torch.Tensor]:
    """Every body layer's output as a (C_l x P) float64 matrix, the same P pixel columns for all layers."""
    _, feats = plain.features(lr_patches)
    cols = pixel_columns(lr_patches, max_columns, seed)
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


def _layer_width(l: int, L: int, channels: int, width, max_width: int | None, keep_last: bool = False) -> int | None:
    """The requested width of layer l (None = rank rule), or ``channels`` for a layer left uncompressed
    (``keep_last``: the last body layer always, for a tail copied from the large net)."""
    if keep_last and l == L - 1:
        return channels
    if isinstance(width, (list, tuple)):
        return int(width[l])
    if width:
        return min(int(width), channels)
    if l == L - 1 and (max_width is None or channels <= max_width):
        return channels  # the tail reads the last body layer directly: no need to compress it under the cap
    return None


def _columns(x: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """im2col of a 3x3, pad-1 conv input at the chosen pixel columns, plus a ones column for the bias:
    (P, cin * 9 + 1) float64, in the order of ``conv.weight.view(cout, -1)``."""
    u = torch.nn.functional.unfold(x.double(), 3, padding=1)          # (N, cin*9, H*W)
    u = u.permute(1, 0, 2).reshape(u.shape[1], -1)[:, cols].T
    return torch.cat([u, torch.ones(u.shape[0], 1, dtype=u.dtype)], 1)


class _LeastSquares:
    """argmin_X ||A X - T||^2 + ridge * mean(diag(A^T A)) * ||X||^2 for any T, A factored once (a tiny ridge
    keeps inputs that are dead on the init patches harmless)."""

    def __init__(self, A: torch.Tensor, ridge: float = 1e-6):
        G = A.T @ A
        G = G + ridge * G.diagonal().mean() * torch.eye(G.shape[0], dtype=G.dtype)
        self.A, self.chol = A, torch.linalg.cholesky(G)

    def __call__(self, T: torch.Tensor) -> torch.Tensor:
        return torch.cholesky_solve(self.A.T @ T, self.chol)


def _set_conv(conv: nn.Conv2d, X: torch.Tensor) -> None:
    cout = conv.weight.shape[0]
    conv.weight.copy_(X[:-1].T.reshape(cout, -1, 3, 3).float())
    conv.bias.copy_(X[-1].float())


def _refit_layer(conv: nn.Conv2d, A: torch.Tensor, T: torch.Tensor, relu: bool, relu_aware: bool,
                 iterations: int = 20) -> None:
    """Least-squares refit of one student conv on its own inputs A against the target features T (P x cout).

    ``relu_aware``: T is a post-ReLU target. Where T > 0 the pre-activation should equal T; where T <= 0 any
    pre-activation <= 0 is as good, so those entries only pull positive pre-activations down to 0. Alternating
    that choice with a least-squares solve never increases ||relu(Z) - T||."""
    solve = _LeastSquares(A)
    X = solve(T)
    if relu and relu_aware:
        pos = T > 0
        for _ in range(iterations):
            X = solve(torch.where(pos, T, (A @ X).clamp(max=0)))
    _set_conv(conv, X)


@torch.no_grad()
def init_student(plain: models.PlainSR, lr_patches: torch.Tensor, eps: float | None = 0.05,
                 width: int | list[int] | None = None, shift_a: float = 3.0, max_columns: int = 32768,
                 seed: int = 0, max_width: int | None = None, refit: str = "none",
                 refit_tail: bool = False, width_multiple: int = 1, refit_bridges: bool = False,
                 tail: str | None = None) -> StudentInit:
    """Derive a MemSR student from the large plain net ``plain`` and a batch of LR training patches.

    ``width``: None = rank rule with ``eps``, no layer wider than ``max_width`` (the teacher's feature width;
    the last body layer is left uncompressed when it fits under the cap); an int = that width for every layer
    (capped at the layer's own width); a list = one width per body layer.
    ``width_multiple``: the rank rule's widths are rounded up to a multiple of it (within the cap and the
    layer's own width). CPU kernels compute in channel blocks (ONNX Runtime's x86 convs in 16s, XNNPACK's in
    8s or 16s) and pad a layer to the next block, so an odd width costs the time and memory of the rounded one
    without its capacity: measured on ONNX Runtime (2 AVX-512 cores), the bundled x2 student's widths
    ([14, 23, 23, 36, ...]) ran at 44% of the fp32 GEMM peak, the same depth at uniform 32 or 48 at 81-82%
    (layer-widths table of benchmarks/results/runtime.md).
    ``refit``: after the analytic init (the paper's), refit each layer by least squares on the student's own
    previous-layer outputs against the pseudo features M_l^T (F_l - b_l), so errors do not compound:
    "linear" fits the pre-activation, "relu" is ReLU-aware (see ``_refit_layer``). ``refit_tail``: refit the
    tail against the large plain net's tail output (before the pixel shuffle) too. ``refit_bridges``: refit
    each bridge by least squares from the student's actual features to the large plain net's, so the
    distillation starts from the smallest feature error this student allows (see ``_refit_bridges``).
    ``tail``: the student's tail kind (plain_layout.TAILS; None = the large net's). The large net's tail is
    taken as it is when the kinds agree: a one-conv tail read through the last bridge, EDSR's upsampler copied
    with the last body layer kept at full width and an identity bridge, so the copied convs read that layer in
    the basis they were trained on (the large net's body feature y). A one-conv tail for a net with EDSR's
    upsampler has nothing to start from: it is least-squares fitted (``refit_tail`` must be on).
    See docs/method.md.
    """
    if refit not in REFITS:
        raise ValueError(f"refit must be one of {REFITS}, got {refit!r}")
    tail = plain.cfg.tail if tail is None else tail
    if tail == "upsampler" and plain.cfg.tail != "upsampler":
        raise ValueError("an upsampler tail is copied from a large net that has one; this one ends in "
                         f"a {plain.cfg.tail!r} tail")
    if tail == "upsampler" and refit_tail:
        raise ValueError("the upsampler tail is copied from the large net, not refitted (refit_tail applies to "
                         "one-conv tails)")
    copy_tail = tail == plain.cfg.tail
    if not copy_tail and not refit_tail:
        raise ValueError("a one-conv tail for a net ending in EDSR's upsampler has no analytic init: it is "
                         "least-squares fitted to the large net's output (refit_tail)")
    feats = record_features(plain, lr_patches, max_columns, seed)
    L = len(feats)
    acts = plain.cfg.acts
    Ms, bs, fits = [], [], []
    for l in range(L):
        C = feats[l].shape[0]
        w = _layer_width(l, L, C, width, max_width, keep_last=tail == "upsampler")
        if w == C and l == L - 1:
            Ms.append(torch.eye(C, dtype=torch.float64))
            bs.append(torch.zeros(C, dtype=torch.float64))
            fits.append(LayerFit(C, 0.0, 0.0))
            continue
        M, b, fit = decompose(feats[l], acts[l] == "relu", eps, w, shift_a)
        if w is None:
            rounded = min(-(-fit.width // width_multiple) * width_multiple, max_width or C, C)
            if rounded != fit.width:
                M, b, fit = decompose(feats[l], acts[l] == "relu", eps, rounded, shift_a)
        Ms.append(M)
        bs.append(b)
        fits.append(fit)

    cfg = models.PlainConfig(scale=plain.cfg.scale, widths=[f.width for f in fits], acts=list(acts),
                             input=plain.cfg.input, tail=tail)
    student = models.PlainSR(cfg)
    convs = plain.convs()
    prev_M = torch.eye(3, dtype=torch.float64)
    prev_b = torch.zeros(3, dtype=torch.float64)
    for l, conv in enumerate(student.convs()):
        if l > L or (l == L and not copy_tail):
            if l > L:   # the upsampler's later convs read only earlier tail convs: copied as they are
                conv.load_state_dict(convs[l].state_dict())
            continue    # (a one-conv tail to fit: _refit below)
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
        else:  # the (first) tail conv: reads the last body layer through its bridge
            W_s, b_s = W_comp, b_comp
        conv.weight.copy_(W_s.float())
        conv.bias.copy_(b_s.float())

    if refit != "none" or refit_tail:
        _refit(student, plain, lr_patches, feats, Ms, bs, refit, refit_tail, max_columns, seed)
    student.eval()

    bridges = nn.ModuleList(_bridge(M, b) for M, b in zip(Ms, bs))
    if refit_bridges:
        _refit_bridges(bridges, record_features(student, lr_patches, max_columns, seed), feats)
    settings = {"rank_eps": eps, "uniform_width": width if isinstance(width, int) else None,
                "max_width": max_width, "width_multiple": width_multiple, "shift_a": shift_a, "refit": refit,
                "refit_tail": refit_tail, "refit_bridges": refit_bridges, "tail": tail,
                "tail_init": "copied" if tail == "upsampler" else "fitted" if refit_tail else "through the bridge"}
    result = StudentInit(student, bridges, fits, settings=settings)
    result.feature_errors = feature_errors(student, bridges, plain, lr_patches)
    return result


def _refit(student, plain, lr_patches, feats, Ms, bs, refit, refit_tail, max_columns, seed) -> None:
    """Layer by layer, in order, each layer fitted on the (already refitted) student's own inputs."""
    cols = pixel_columns(lr_patches, max_columns, seed)  # the columns record_features used
    h = student.normalize(lr_patches)
    for l, (conv, act) in enumerate(zip(student.layers, student.acts)):
        if refit != "none":
            target = (Ms[l].T @ (feats[l] - bs[l][:, None])).T            # pseudo features, P x r_l
            _refit_layer(conv, _columns(h, cols), target, act == "relu", refit == "relu")
        h = conv(h)
        if act == "relu":
            h = torch.relu(h)
    if refit_tail:
        out = torch.nn.functional.pixel_unshuffle(plain(lr_patches), plain.cfg.scale)
        target = out.permute(1, 0, 2, 3).reshape(out.shape[1], -1)[:, cols].double().T
        _refit_layer(student.tail, _columns(h, cols), target, relu=False, relu_aware=False)


@torch.no_grad()
def _refit_bridges(bridges: nn.ModuleList, student_feats: list[torch.Tensor], feats: list[torch.Tensor]) -> None:
    """The analytic bridge M_l, b_l reads the student's feature back exactly only while that feature is the
    projection M_l^T (F_l - b_l) itself. The shift's ReLU, the layer refits and the tail refit all move the
    student's features away from it, and through a deep teacher the gap grows layer by layer (measured on the
    48x8 x2 teacher: relative error 1.2-2.0 from layer 1 on, with the output still above 40 dB; refitted,
    0.05-0.34), and a feature loss through those bridges pulls every layer towards targets its own tail was not
    fitted to. Refitting each 1x1 bridge (weights and bias) on the student's actual features makes the feature
    term start at its least-squares residual, so its gradient only asks for what the student can still learn.
    (It does not stop the early fall of held-out PSNR from this init: that happens with L1 alone too; see
    docs/method.md.)"""
    for S, F, bridge in zip(student_feats, feats, bridges):   # (r_l x P), (C_l x P): the same pixel columns
        # exact least squares: the features carry the shift's large constants, so _LeastSquares' ridge, scaled
        # by the Gram diagonal, would be large for the small-variance directions that matter here
        A = torch.cat([S.T, torch.ones(S.shape[1], 1, dtype=S.dtype)], 1)
        X = torch.linalg.lstsq(A, F.T, driver="gelsd").solution
        bridge.weight.copy_(X[:-1].T[:, :, None, None].float())
        bridge.bias.copy_(X[-1].float())


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
