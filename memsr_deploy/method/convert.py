"""Exact teacher -> plain conversion (docs/method.md, step 1).

A residual teacher becomes a chain of 3x3 convs that computes the same function by carrying the values its
skips need as extra channels. Signed values pass a ReLU layer with a constant offset ``beta`` added where they
are copied and removed where they are read; offset channels are only ever read through Dirac (centre-tap)
kernels, so zero padding never meets an offset value and the border pixels stay exact.

Layout (C = teacher width, A = 3 anchor channels when the teacher has an anchor skip, else 0):
  layer 0 (linear)          -> [xn+bx (A), h0+beta (C), h0 (C)]   (bx: image_offset)
  block k, first (ReLU)     -> [xn+bx, h0+beta, x_{k-1}+beta (C), relu(conv1 x_{k-1}) (C)]
  block k, second (linear)  -> [xn+bx, h0+beta, x_k = x_{k-1} + res_scale * conv2(hidden)]
  body conv (linear)        -> [xn+bx, y = h0 + body(x_B)]
  tail                      -> tail(y) + anchor(xn), with the output de-normalisation folded in; or EDSR's
                               upsampler (teacher tail "upsampler"): its convs copied as they are (they read y,
                               zero padded, in the teacher too), the de-normalisation folded into the last.
"""
from __future__ import annotations

import torch

from . import models

# Offset for carried features (h0, x_k). The reference uses 1000; every unit of offset costs fp32 precision
# (ulp(1000) = 6e-5, enough to break a 1e-4 budget over 16 blocks), and features of nets on [0, 1] images stay
# far inside +-100, so 100 keeps both margin and precision. The image carry needs no guess: see image_offset().
DEFAULT_BETA = 100.0


def default_beta(spec: models.InputSpec) -> float:
    """DEFAULT_BETA in the units of the teacher's normalised input: features scale with xn, whose span is
    value_range / norm (1 for memsr's own teachers; 255 for EDSR's, which normalise to 0..255 pixels)."""
    return DEFAULT_BETA * max(1.0, spec.value_range / spec.norm)


def image_offset(spec: models.InputSpec) -> float:
    """Smallest offset that keeps xn = (x - mean) / norm non-negative for every valid pixel x >= 0."""
    return max(0.0, max(spec.mean) / spec.norm)


class _Layer:
    """A plain conv being assembled: weight (cout, cin, 3, 3) and bias, filled group by group."""

    def __init__(self, cin: int, cout: int):
        self.w = torch.zeros(cout, cin, 3, 3, dtype=torch.float64)
        self.b = torch.zeros(cout, dtype=torch.float64)

    def dirac(self, out_start: int, in_start: int, n: int, gain: float = 1.0):
        for i in range(n):
            self.w[out_start + i, in_start + i, 1, 1] += gain

    def conv(self, out_start: int, in_start: int, conv: torch.nn.Conv2d, gain: float = 1.0):
        w = conv.weight.detach().double()
        self.w[out_start:out_start + w.shape[0], in_start:in_start + w.shape[1]] += gain * w
        self.b[out_start:out_start + w.shape[0]] += gain * conv.bias.detach().double()


def teacher_to_plain(teacher: models.ResidualSR, beta: float | None = None) -> models.PlainSR:
    """``beta``: the carries' offset (None = default_beta of the teacher's input)."""
    cfg = teacher.cfg
    beta = default_beta(cfg.input) if beta is None else beta
    C, s, rs = cfg.width, cfg.scale, cfg.res_scale
    A = 3 if cfg.anchor else 0
    bx = image_offset(cfg.input)
    layers: list[tuple[_Layer, str]] = []

    # layer 0: the head, plus copies of what later layers read (offset carries of xn and h0)
    L = _Layer(3, A + 2 * C)
    L.dirac(0, 0, A)
    L.b[0:A] += bx
    L.conv(A, 0, teacher.head)
    L.b[A:A + C] += beta
    L.conv(A + C, 0, teacher.head)
    layers.append((L, "none"))

    for block in teacher.blocks:
        # input layout: [xn+beta, h0+beta, x_{k-1}] (A + 2C)
        L1 = _Layer(A + 2 * C, A + 3 * C)
        L1.dirac(0, 0, A + C)                       # xn+beta, h0+beta pass unchanged (positive)
        L1.dirac(A + C, A + C, C)                   # x_{k-1} + beta: copied, offset by its bias
        L1.b[A + C:A + 2 * C] += beta
        L1.conv(A + 2 * C, A + C, block.conv1)      # hidden = relu(conv1(x_{k-1})) read plainly (signed)
        layers.append((L1, "relu"))

        L2 = _Layer(A + 3 * C, A + 2 * C)
        L2.dirac(0, 0, A + C)
        L2.dirac(A + C, A + C, C)                   # x_{k-1} + beta ...
        L2.b[A + C:A + 2 * C] -= beta               # ... minus beta
        L2.conv(A + C, A + 2 * C, block.conv2, gain=rs)  # + res_scale * conv2(hidden)
        layers.append((L2, "none"))

    # body conv and long skip: y = (h0 + beta) - beta + body(x_B)
    Lb = _Layer(A + 2 * C, A + C)
    Lb.dirac(0, 0, A)
    Lb.dirac(A, A, C)
    Lb.b[A:A + C] -= beta
    Lb.conv(A, A + C, teacher.body_conv)
    layers.append((Lb, "none"))

    norm, mean = cfg.input.norm, cfg.input.mean
    if cfg.tail == "upsampler":
        return _with_upsampler(teacher, layers, norm, mean)
    # tail: tail(y) (+ anchor: xn repeated s*s times, CRD order), then the teacher's de-normalisation
    Lt = _Layer(A + C, 3 * s * s)
    Lt.conv(0, A, teacher.tail)
    if A:
        for c in range(3):
            for k in range(s * s):
                Lt.w[c * s * s + k, c, 1, 1] += 1.0
                Lt.b[c * s * s + k] -= bx
    Lt.w *= norm
    Lt.b *= norm
    for c in range(3):
        Lt.b[c * s * s:(c + 1) * s * s] += mean[c]

    pcfg = models.PlainConfig(scale=s, widths=[l.w.shape[0] for l, _ in layers], acts=[a for _, a in layers],
                              input=cfg.input)
    plain = models.PlainSR(pcfg)
    with torch.no_grad():
        for conv, (l, _) in zip(plain.convs(), [*layers, (Lt, "none")]):
            conv.weight.copy_(l.w.float())
            conv.bias.copy_(l.b.float())
    return plain.eval()


def _with_upsampler(teacher: models.ResidualSR, layers: list, norm: float, mean) -> models.PlainSR:
    """The body layers, then EDSR's upsampler copied and its output conv with the de-normalisation folded in
    (the output is read by no padded conv, so the fold is exact)."""
    cfg = teacher.cfg
    last = _Layer(cfg.width, 3)
    last.conv(0, 0, teacher.tail, gain=norm)
    last.b += torch.tensor(mean, dtype=torch.float64)
    pcfg = models.PlainConfig(scale=cfg.scale, widths=[l.w.shape[0] for l, _ in layers],
                              acts=[a for _, a in layers], input=cfg.input, tail="upsampler")
    plain = models.PlainSR(pcfg)
    with torch.no_grad():
        for conv, (l, _) in zip(plain.layers, layers):
            conv.weight.copy_(l.w.float())
            conv.bias.copy_(l.b.float())
        for mine, theirs in zip(plain.upsample, teacher.upsample):
            mine.load_state_dict(theirs.state_dict())
        plain.tail.weight.copy_(last.w.float())
        plain.tail.bias.copy_(last.b.float())
    return plain.eval()


def own_channels(cfg: models.TeacherConfig) -> list[list[int]]:
    """Per layer of teacher_to_plain(teacher), the channels holding the teacher's own features (h0, a block's
    hidden map, x_k, y), in the layout above. The others are carries: copies of features of other layers plus
    a constant offset (beta, or the image offset), which distillation must not treat as targets of their own
    (a bridge whose bias starts near 0 would see an error of ~beta on each and nothing else)."""
    C, A = cfg.width, 3 if cfg.anchor else 0
    rng = lambda a: list(range(a, a + C))
    return [rng(A + C)] + [rng(A + 2 * C), rng(A + C)] * cfg.blocks + [rng(A)]


@torch.inference_mode()
def max_abs_diff(a: torch.nn.Module, b: torch.nn.Module, x: torch.Tensor) -> float:
    return float((a(x) - b(x)).abs().max())


def plain_features(teacher: models.ResidualSR, x: torch.Tensor, beta: float | None = None):
    """(SR output, every body layer output of teacher_to_plain(teacher, beta)), computed from the teacher's
    own forward pass: the same values (to round-off) at a fraction of the cost of running the wide plain net.
    Distillation reads its targets from here."""
    cfg = teacher.cfg
    beta = default_beta(cfg.input) if beta is None else beta
    xn = teacher.normalize(x)
    carry = [xn + image_offset(cfg.input)] if cfg.anchor else []
    h0 = teacher.head(xn)
    h0b = h0 + beta
    feats = [torch.cat([*carry, h0b, h0], 1)]
    h = h0
    for block in teacher.blocks:
        hidden = torch.relu(block.conv1(h))
        feats.append(torch.cat([*carry, h0b, h + beta, hidden], 1))
        h = h + block.res_scale * block.conv2(hidden)
        feats.append(torch.cat([*carry, h0b, h], 1))
    y = teacher.body_conv(h) + h0
    feats.append(torch.cat([*carry, y], 1))
    return teacher(x), feats
