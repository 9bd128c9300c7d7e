"""The exact tile halo of an ncnn ``.param`` (any model, not only memsr's), derived from its layer list.

The same walk as ``receptive_field`` (per axis, the LR pixels each pixel of each blob reads; its ``Axis``
periods and phases, so that pixel-shuffle and downsampling floors are exact), over ncnn's layer vocabulary:
Convolution / ConvolutionDepthWise / Deconvolution (kernel, stride, dilation, top/left padding of their own
keys), local Pooling, PixelShuffle, Reorg, Padding, Interp by an integer factor or its reciprocal, channel
Concat / Slice / Split, BinaryOp / Eltwise skips and element-wise layers. Layers that see the whole image
(global pooling, normalisation, reductions, fully connected, attention) give "no finite receptive radius",
layers the walk does not know give "unknown", naming the layer either way.

ncnn blobs are C x H x W (no batch axis), so a layer's axis keys (Concat's ``0=``, Slice's ``1=``) count from
the channel axis: 0 is channels, anything else an image axis.

Interp (``0=`` 1 nearest, 2 bilinear, 3 bicubic; ``1=`` / ``2=`` height / width scale; ``6=`` align corners) by
any ratio f = up / down of small integers: ncnn's nearest reads ``floor(q / f)``; bilinear and bicubic use
half-pixel centres ``(q + 0.5) / f - 0.5`` without align corners, with 2 and 4 taps (Real-ESRGAN's animevideov3
x2 and x3 are its x4 net followed by a bicubic 0.5 / 0.75 resize). Align corners and fixed output sizes make the
sampling depend on the image size: no finite radius.
"""
from __future__ import annotations

import math
from fractions import Fraction

from .ncnn_graph import ParamLayer, read_param
from .receptive_field import Axis, Field, Radius, Whole, _Stop, _gather, _transposed, _union, _window, finish

CONVS = {"Convolution", "ConvolutionDepthWise", "Convolution1D"}
DECONVS = {"Deconvolution", "DeconvolutionDepthWise"}
# layers that map each pixel to itself (across channels at most); several inputs: the union of their fields
POINTWISE = {"ReLU", "PReLU", "Sigmoid", "TanH", "Clip", "Swish", "HardSwish", "HardSigmoid", "Mish", "GELU", "ELU",
             "SELU", "Exp", "Log", "Power", "Scale", "BatchNorm", "Bias", "Dropout", "Noop", "AbsVal", "UnaryOp",
             "BinaryOp", "Eltwise", "Split", "Threshold", "Quantize", "Dequantize", "Requantize", "ShuffleChannel",
             "Erf", "CELU", "Shrink", "Cast"}
WHOLE = {"InstanceNorm", "LayerNorm", "GroupNorm", "Normalize", "MVN", "InnerProduct", "Gemm", "MatMul",
         "MultiHeadAttention", "Reduction", "Embed", "LRN", "SDPA"}


def _key(p: dict, k: int, default: float) -> float:
    return float(p.get(str(k), default))


def _int(p: dict, k: int, default: int) -> int:
    return int(float(p.get(str(k), default)))


def _conv_geometry(p: dict, kind: str) -> tuple[tuple, tuple]:
    """((k, stride, dilation, pad) along H, the same along W) of an ncnn Convolution-like layer."""
    kw, dw, sw, pw = _int(p, 1, 1), _int(p, 2, 1), _int(p, 3, 1), _int(p, 4, 0)
    kh, dh, sh, ph = _int(p, 11, kw), _int(p, 12, dw), _int(p, 13, sw), _int(p, 14, pw)
    if pw < 0 or ph < 0:   # -233 / -234: ncnn's SAME padding, split by the blob's size
        if sw != 1 or sh != 1:
            raise _Stop(f"{kind} with SAME padding and stride > 1 (padding depends on the size)")
        tot_h, tot_w = dh * (kh - 1), dw * (kw - 1)
        upper = pw == -233
        ph = tot_h // 2 if upper else tot_h - tot_h // 2
        pw = tot_w // 2 if upper else tot_w - tot_w // 2
    return (kh, sh, dh, ph), (kw, sw, dw, pw)


def _interp(f0: Field, p: dict) -> Field:
    mode = _int(p, 0, 0)
    if p.get("3") not in (None, "0") or p.get("4") not in (None, "0") or _int(p, 5, 0):
        raise _Stop("Interp to a fixed or computed output size", whole=True)
    if _int(p, 6, 0):
        raise _Stop("Interp with align corners (sampling depends on the image size)", whole=True)
    if mode not in (1, 2, 3):
        raise _Stop(f"Interp resize type {mode}")
    axes = []
    for ax, f in ((f0.h, _key(p, 1, 1.0)), (f0.w, _key(p, 2, 1.0))):
        r = Fraction(f).limit_denominator(16)
        if f <= 0 or abs(float(r) - f) > 1e-6 * f:
            raise _Stop(f"Interp by {f} (ratios of small integers only)")
        axes.append(ax if r == 1 else _resample(ax, r.numerator, r.denominator, mode))
    return Field(f0.axes, *axes)


def _resample(axis: Axis, up: int, down: int, mode: int) -> Axis:
    """Resize by up/down: output pixel o samples input x = (o + 0.5) * down / up - 0.5 (nearest: floor(o * down /
    up)), so every ``up`` outputs repeat the pattern of the previous ones ``down`` input pixels further on."""
    a = axis.with_period(math.lcm(axis.n, down))
    n = a.n * up // down
    deps = []
    for ph in range(n):
        if mode == 1:
            src = [ph * down // up]
        else:
            src = _taps((ph + 0.5) * down / up - 0.5, mode)
        spans = [a.reads(x) for x in src]
        deps.append((min(lo for lo, _ in spans), max(hi for _, hi in spans)))
    return Axis(n, a.B, tuple(deps))


def _taps(x: float, mode: int) -> list[int]:
    x0 = math.floor(x)
    if x == x0:           # an exact sample: the other taps weigh 0
        return [x0]
    return [x0, x0 + 1] if mode == 2 else [x0 - 1, x0, x0 + 1, x0 + 2]


def _apply(ly: ParamLayer, fields: list):
    kind, p = ly.kind, ly.params
    live = [f for f in fields if isinstance(f, Field)]
    f0 = fields[0] if fields and isinstance(fields[0], Field) else None
    if not live:
        return None            # constants (MemoryData) and what is computed from them only
    if kind in CONVS or kind in DECONVS:
        if kind == "Convolution1D":
            raise _Stop("Convolution1D over a flattened image")
        (kh, sh, dh, ph), (kw, sw, dw, pw) = _conv_geometry(p, kind)
        make = _window if kind in CONVS else _transposed
        return Field(f0.axes, make(f0.h, kh, sh, dh, ph), make(f0.w, kw, sw, dw, pw))
    if kind == "Pooling":
        if _int(p, 4, 0):
            raise _Stop("global Pooling sees the whole image", whole=True)
        if _int(p, 5, 0) not in (0, 1):
            raise _Stop("Pooling with SAME padding (padding depends on the size)")
        kw, sw, pw = _int(p, 1, 1), _int(p, 2, 1), _int(p, 3, 0)
        kh, sh, ph = _int(p, 11, kw), _int(p, 12, sw), _int(p, 13, pw)
        if _int(p, 5, 0) == 1:
            ph = pw = 0
        return Field(f0.axes, _window(f0.h, kh, sh, 1, ph), _window(f0.w, kw, sw, 1, pw))
    if kind == "PixelShuffle":
        b = _int(p, 0, 1)
        return Field(f0.axes, _gather(f0.h, b, lambda q: [q // b]), _gather(f0.w, b, lambda q: [q // b]))
    if kind == "Reorg":
        b = _int(p, 0, 1)
        return Field(f0.axes, _window(f0.h, b, b, 1, 0), _window(f0.w, b, b, 1, 0))
    if kind == "Padding":
        return Field(f0.axes, _window(f0.h, 1, 1, 1, _int(p, 0, 0)), _window(f0.w, 1, 1, 1, _int(p, 2, 0)))
    if kind == "Interp":
        return _interp(f0, p)
    if kind == "Concat" or kind == "Slice":
        axis = _int(p, 0 if kind == "Concat" else 1, 0)
        if axis != 0:
            raise _Stop(f"{kind} along an image axis")
        return _union(live)
    if kind == "Softmax":
        if _int(p, 0, 0) != 0:
            raise _Stop("Softmax over an image axis sees the whole row or column", whole=True)
        return _union(live)
    if kind in WHOLE:
        raise _Stop(f"{kind} sees the whole image", whole=True)
    if kind in POINTWISE:
        return _union(live)
    raise _Stop(f"{kind} is not a layer this walk follows")


def radius(param_text: str) -> Radius:
    """The exact halo, scale and alignment of an ncnn model with one Input layer and one output (the last layer's
    single top), from its .param text; ValueError if the text is not a .param."""
    layers = read_param(param_text)
    inputs = [ly for ly in layers if ly.kind == "Input"]
    if len(inputs) != 1:
        return Radius(None, None, reason=f"{len(inputs)} Input layers (one image input expected)")
    ident = Axis(1, 1, ((0, 0),))
    state: dict = {inputs[0].tops[0]: Field((1, 2), ident, ident)}
    periods = [1]
    for ly in layers:
        if ly.kind == "Input":
            continue
        fields = [state.get(b) for b in ly.bottoms]
        whole = next((f for f in fields if isinstance(f, Whole)), None)
        if whole is not None:
            out = whole
        else:
            try:
                out = _apply(ly, fields)
            except _Stop as stop:
                out = Whole(f"{ly.kind} layer {ly.name!r}: {stop.why}", finite_unknown=not stop.whole)
        if isinstance(out, Field):
            periods += [out.h.B, out.w.B]
        for top in ly.tops:
            state[top] = out
    return finish(state.get(layers[-1].tops[0]) if layers[-1].tops else None, periods)
