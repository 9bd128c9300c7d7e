"""The exact tile halo of any ONNX model, derived from its graph (for models that carry no memsr description).

Every tensor of the graph that depends on the image gets, per spatial axis, the set of input (LR) pixels each of
its pixels reads. Convolutions with any kernel, stride, dilation and padding, pooling, ConvTranspose, pixel
shuffle and unshuffle (DepthToSpace / SpaceToDepth), Resize by integer factors, Pad, channel Concat / Split /
Slice, elementwise ops, per-pixel matrix products (a Linear over channels-last maps) and skips are followed
exactly, including the floor effects of strides and shuffles (a per-phase bound, not a sum of radii: the one-conv
pixel-shuffle tail adds one LR pixel, not two). Shape arithmetic is followed through its values at two probe
sizes (``onnx_shapes``): a crop back to a size computed from the image's is exact; a pad to a multiple of some
size is not at the image's border (a tile ending there is padded as its own size asks). An op that sees the
whole image (global pooling, a reduction or normalisation over H or W, a Slice from the far end of an image
axis, attention: a MatMul of two image-dependent tensors once a Reshape has folded pixels together) gives "no
finite receptive radius"; an op this walk does not know gives "unknown", with the node named either way.

Representation, per axis of a tensor: a period of ``n`` tensor pixels spans ``B`` LR pixels (resolution n / B),
and pixel ``q = n*m + phase`` reads LR pixels ``[B*m + lo[phase], B*m + hi[phase]]``. The halo is the largest
distance from a tile core's edge to what its pixels read; ``align`` is the LR period of the whole graph (1
unless it downsamples): tiles are exact only when their cores and windows start on multiples of it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..errors import MemsrError


@dataclass(frozen=True)
class Axis:
    n: int                      # tensor pixels per period
    B: int                      # LR pixels per period
    deps: tuple                 # per phase: (lo, hi) LR offsets from the period's anchor B*m

    def reads(self, p: int) -> tuple[int, int]:
        m, ph = divmod(p, self.n)
        lo, hi = self.deps[ph]
        return self.B * m + lo, self.B * m + hi

    def with_period(self, n: int) -> "Axis":
        """The same field described over ``n`` pixels (a multiple of ``self.n``)."""
        k = n // self.n
        return Axis(n, self.B * k, tuple(self.reads(ph) for ph in range(n)))


@dataclass(frozen=True)
class Whole:
    """Depends on the whole image (or on what this walk cannot follow): ``reason`` names the node."""
    reason: str
    finite_unknown: bool = False   # True: an op the walk does not know, not one that sees the whole image


@dataclass(frozen=True)
class Folded:
    """Pixels that a Reshape folded into other axes (flattened into a sequence, or cut into windows): the walk
    no longer knows which axes are the image's, so it follows the tensor without a field until attention (a
    MatMul of two image-dependent tensors) or the output."""
    reason: str


@dataclass(frozen=True)
class Field:
    axes: tuple                 # tensor axis indices of (H, W)
    h: Axis
    w: Axis


@dataclass(frozen=True)
class Radius:
    halo: int | None            # LR pixels; None: no finite radius, or unknown
    scale: int | None           # output / input size ratio
    align: int = 1              # window starts must be multiples of this (LR pixels)
    reason: str = ""            # why halo is None

    @property
    def finite(self) -> bool:
        return self.halo is not None


_UNARY = {"Relu", "LeakyRelu", "PRelu", "Sigmoid", "Tanh", "Clip", "Neg", "Abs", "Sqrt", "Exp", "Log", "Erf",
          "HardSigmoid", "HardSwish", "Gelu", "Softplus", "Softsign", "Identity", "Cast", "Round", "Floor", "Ceil",
          "Sign", "Reciprocal", "Mish", "Selu", "Elu", "Celu", "ThresholdedRelu", "BatchNormalization",
          "Dropout", "QuantizeLinear", "DequantizeLinear", "Not", "IsNaN", "IsInf"}
_NARY = {"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Mean", "Sum", "Where", "Equal", "Less", "Greater",
         "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor", "Mod", "PRelu", "BitShift"}
_WINDOWED = {"Conv", "MaxPool", "AveragePool", "LpPool", "ConvInteger", "QLinearConv"}
_RESHAPES = {"Reshape", "Unsqueeze", "Squeeze", "Flatten", "Expand", "Tile"}
_GLOBAL = {"GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool", "InstanceNormalization"}
_REDUCE = {"ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
           "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare", "ArgMax", "ArgMin", "Softmax", "LogSoftmax",
           "LayerNormalization", "Hardmax", "CumSum", "TopK"}


def _attrs(node) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _node_name(node) -> str:
    return f"{node.op_type} node {node.name!r}" if node.name else f"{node.op_type} node (output {node.output[0]!r})"


def _window(axis: Axis, k: int, s: int, d: int, pb: int) -> Axis:
    """Output pixel o reads input pixels o*s - pb + d*t, t in [0, k)."""
    n = axis.n // math.gcd(axis.n, s)
    B = axis.B * (n * s // axis.n)
    deps = []
    for ph in range(n):
        spans = [axis.reads(ph * s - pb + d * t) for t in range(k)]
        deps.append((min(a for a, _ in spans), max(b for _, b in spans)))
    return Axis(n, B, tuple(deps))


def _transposed(axis: Axis, k: int, s: int, d: int, pb: int) -> Axis:
    """ConvTranspose: output pixel q gathers input pixels p with q = p*s - pb + d*t."""
    n = axis.n * s
    deps = []
    for ph in range(n):
        spans = [axis.reads((ph + pb - d * t) // s) for t in range(k) if (ph + pb - d * t) % s == 0]
        if not spans:   # a stride larger than the dilated kernel leaves output pixels that read nothing
            spans = [(0, 0)]
        deps.append((min(a for a, _ in spans), max(b for _, b in spans)))
    return Axis(n, axis.B, tuple(deps))


def _gather(axis: Axis, f: int, sources) -> Axis:
    """Upsampling by an integer f: output pixel q reads input pixels ``sources(q)`` (a list)."""
    n = axis.n * f
    deps = []
    for ph in range(n):
        spans = [axis.reads(p) for p in sources(ph)]
        deps.append((min(a for a, _ in spans), max(b for _, b in spans)))
    return Axis(n, axis.B, tuple(deps))


def _resize_sources(f: int, mode: str, coord: str, nearest: str, op: str):
    if coord in ("align_corners", "tf_crop_and_resize", "half_pixel_symmetric"):
        raise _Stop(f"coordinate_transformation_mode {coord!r} depends on the image size", whole=True)

    def position(q: int) -> float:
        if coord == "asymmetric":
            return q / f
        return (q + 0.5) / f - 0.5          # half_pixel, pytorch_half_pixel (sizes > 1)

    def sources(q: int) -> list[int]:
        x = position(q)
        if mode == "nearest":
            rounding = {"round_prefer_floor": lambda v: math.ceil(v - 0.5), "round_prefer_ceil":
                        lambda v: math.floor(v + 0.5), "floor": math.floor, "ceil": math.ceil}[nearest]
            return [rounding(x)]
        x0 = math.floor(x)
        if x == x0:                         # an exact sample: the other taps weigh 0
            return [x0]
        return [x0, x0 + 1] if mode == "linear" else [x0 - 1, x0, x0 + 1, x0 + 2]
    if mode not in ("nearest", "linear", "cubic"):
        raise _Stop(f"{op} mode {mode!r}")
    return sources


class _Stop(Exception):
    def __init__(self, why: str, whole: bool = False):
        super().__init__(why)
        self.why, self.whole = why, whole


def _spatial_axes(inp) -> tuple[int, int]:
    dims = inp.type.tensor_type.shape.dim
    if len(dims) != 4:
        raise MemsrError(f"expected a 4-D image input, got rank {len(dims)}")
    small = lambda d: d.HasField("dim_value") and d.dim_value in (1, 2, 3, 4)
    return (1, 2) if small(dims[3]) and not small(dims[1]) else (2, 3)


def _constants(model: onnx.ModelProto) -> dict:
    out = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            a = _attrs(node)
            if "value" in a:
                out[node.output[0]] = numpy_helper.to_array(a["value"])
    return out


def _pairs(a: dict, key: str, default, rank: int = 2) -> list:
    v = list(a.get(key, []))
    return v if v else [default] * (rank if key != "pads" else 2 * rank)


class _Size:
    """The value of Shape / Size of an image-dependent tensor (and arithmetic on it): the image's size."""


SIZE = _Size()
PROBES = ((48, 80), (96, 112))   # two input sizes whose shapes tell image axes from the others
ODD_PROBE = (37, 53)   # a third for the values of shape arithmetic: a pad to a multiple of 4, 8 or 16 shows


def _probe_shapes(model: onnx.ModelProto, axes: tuple[int, int]) -> tuple[list[dict], list[dict]]:
    """Every tensor's static shape at each of ``PROBES`` (empty where shape inference cannot tell), and the
    values of the integer tensors shapes determine (``onnx_shapes``) there and at ``ODD_PROBE``."""
    import copy

    from .onnx_shapes import infer
    shapes, values = [], []
    for h, w in (*PROBES, ODD_PROBE):
        m = copy.deepcopy(model)
        inits = {t.name for t in m.graph.initializer}
        dims = next(i for i in m.graph.input if i.name not in inits).type.tensor_type.shape.dim
        for i, v in ((0, 1), (axes[0], h), (axes[1], w)):
            if not dims[i].HasField("dim_value"):
                dims[i].Clear()
                dims[i].dim_value = v
        del m.graph.value_info[:]
        try:
            _, at, vals = infer(m)
        except Exception:  # noqa: BLE001 - an uninferable graph only loses the reshape rule
            at, vals = {}, {}
        shapes.append(at)
        values.append(vals)
    return shapes[:len(PROBES)], values


def _reshaped(node, f0: Field, probes: list[dict]) -> Field | Folded:
    """A reshape-like op that leaves both image axes whole (it moves, adds or drops other axes): the image
    axes are the output axes whose sizes follow the input's image axes at both probe sizes. One that splits or
    merges an image axis gives ``Folded``."""
    try:
        ins = [p[node.input[0]] for p in probes]
        outs = [p[node.output[0]] for p in probes]
    except KeyError:
        raise _Stop(f"{node.op_type} whose shapes inference cannot tell") from None
    new_axes = []
    for ax in f0.axes:
        sizes = [s[ax] for s in ins]
        varying = [j for j in range(len(outs[0])) if [o[j] for o in outs] != [outs[0][j]] * len(outs)]
        same = [j for j in varying if [o[j] for o in outs] == sizes]
        if len(same) != 1 or len(varying) != 2:
            return Folded(f"{_node_name(node)} folds the image's axes into others")
        new_axes.append(same[0])
    if new_axes[0] >= new_axes[1]:
        raise _Stop(f"{node.op_type} that swaps H and W")
    return Field(tuple(new_axes), f0.h, f0.w)


def _rank(probes: list[dict], name: str, default: int | None = None) -> int | None:
    """A tensor's rank from the probes' shapes (``default`` where inference could not tell)."""
    return len(probes[0][name]) if probes and name in probes[0] else default


def _at_probes(name: str, values: list[dict]) -> list | None:
    """The value of a shape-arithmetic tensor at each probe size (``onnx_shapes``); None where one is unknown."""
    at = [v.get(name) for v in values if v]
    return at if len(at) >= 2 and all(x is not None for x in at) else None


def _matmul(node, fields: list, probes: list[dict]):
    """MatMul: a Linear over the channels of a channels-last map (or a per-pixel product of two maps) keeps the
    field; one that contracts an image axis, or pairs pixels of two image-dependent tensors, does not."""
    live = [(i, f) for i, f in enumerate(fields[:2]) if isinstance(f, (Field, Folded))]
    folded = next((f for _, f in live if isinstance(f, Folded)), None)
    if len(live) == 2 and folded is not None:
        raise _Stop(f"attention: a product of two image-dependent tensors after {folded.reason}; each pixel reads "
                    "every pixel folded into its rows (the whole image, or windows fixed to the image's origin, "
                    "which exact tiles at other offsets do not reproduce)", whole=True)
    if folded is not None:
        return folded
    for i, f in live:
        rank = _rank(probes, node.input[i])
        if rank is None or rank != _rank(probes, node.output[0]):
            raise _Stop("MatMul whose ranks inference cannot tell, or that broadcasts an image-dependent operand")
        contracted = rank - 1 if i == 0 else rank - 2   # A's columns, B's rows
        if contracted in f.axes:
            raise _Stop(f"MatMul over an image axis sees the whole {'row' if contracted == f.axes[1] else 'column'}",
                        whole=True)
        if len(live) == 2 and max(f.axes) >= rank - 2:
            raise _Stop("MatMul of two image-dependent tensors pairs every pixel of one with every pixel of the "
                        "other", whole=True)
    return _union([f for _, f in live])


def _crop_start(start: int, ax: Axis, why: str) -> Axis:
    """Output pixel q is input pixel q + start (a crop at the start of an image axis)."""
    if start <= -2 ** 62:   # "from minus infinity": clamped to the axis' start
        start = 0
    if start < 0:
        raise _Stop(f"{why} from the far end of an image axis (where it reads depends on the image's size)",
                    whole=True)
    return _window(ax, 1, 1, 1, -start)


def _apply(node, fields: list, consts: dict, probes: list[dict], values: list[dict] = (), notes: list | None = None):
    op, a = node.op_type, _attrs(node)
    if op in ("Shape", "Size") and isinstance(fields[0], (Field, Folded)):
        return SIZE
    if op == "MatMul" and any(isinstance(f, (Field, Folded)) for f in fields):
        return _matmul(node, fields, probes)
    folded = next((f for f in fields if isinstance(f, Folded)), None)
    if folded is not None:
        return folded
    if any(f is SIZE for f in fields):
        if op in ("Resize", "Upsample"):
            raise _Stop(f"{op} to a size computed from the image's", whole=True)
        if not any(isinstance(f, Field) for f in fields):
            return SIZE   # shape arithmetic
        fields = [None if f is SIZE else f for f in fields]
    if op in _RESHAPES and isinstance(fields[0], Field):
        return _reshaped(node, fields[0], probes)
    live = [f for f in fields if isinstance(f, Field)]
    f0 = fields[0] if isinstance(fields[0], Field) else None
    if op in _WINDOWED:
        if f0 is None:
            return None
        if f0.axes != (2, 3):
            raise _Stop(f"{op} on a channels-last tensor")
        k = list(a.get("kernel_shape") or [])
        if not k:
            wi = 3 if op == "QLinearConv" else 1
            w = consts.get(node.input[wi]) if len(node.input) > wi else None
            if w is None:
                raise _Stop(f"{op} without a constant kernel shape")
            k = list(w.shape[2:])
        s, d, pads = _pairs(a, "strides", 1), _pairs(a, "dilations", 1), _pairs(a, "pads", 0)
        auto = a.get("auto_pad", b"NOTSET")
        auto = auto.decode() if isinstance(auto, bytes) else auto
        if auto == "VALID":
            pads = [0, 0, 0, 0]
        elif auto in ("SAME_UPPER", "SAME_LOWER"):
            if any(x != 1 for x in s):
                raise _Stop(f"{op} auto_pad {auto} with stride > 1 (padding depends on the size)")
            tot = [dd * (kk - 1) for dd, kk in zip(d, k)]
            pads = [t // 2 if auto == "SAME_UPPER" else t - t // 2 for t in tot] + [0, 0]
        return Field(f0.axes, _window(f0.h, k[0], s[0], d[0], pads[0]), _window(f0.w, k[1], s[1], d[1], pads[1]))
    if op == "ConvTranspose":
        if f0 is None:
            return None
        w = consts.get(node.input[1])
        k = list(a.get("kernel_shape") or (w.shape[2:] if w is not None else []))
        if not k:
            raise _Stop("ConvTranspose without a constant kernel shape")
        if a.get("output_shape") or (a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET")):
            raise _Stop("ConvTranspose with output_shape / auto_pad (padding depends on the size)")
        s, d, pads = _pairs(a, "strides", 1), _pairs(a, "dilations", 1), _pairs(a, "pads", 0)
        return Field(f0.axes, _transposed(f0.h, k[0], s[0], d[0], pads[0]),
                     _transposed(f0.w, k[1], s[1], d[1], pads[1]))
    if op in ("DepthToSpace", "SpaceToDepth"):
        if f0 is None:
            return None
        b = int(a["blocksize"])
        if op == "SpaceToDepth":
            return Field(f0.axes, _window(f0.h, b, b, 1, 0), _window(f0.w, b, b, 1, 0))
        return Field(f0.axes, _gather(f0.h, b, lambda q: [q // b]), _gather(f0.w, b, lambda q: [q // b]))
    if op in ("Resize", "Upsample"):
        if f0 is None:
            return None
        scales = consts.get(node.input[2]) if op == "Resize" and len(node.input) > 2 and node.input[2] else None
        if op == "Upsample":
            scales = consts.get(node.input[1]) if len(node.input) > 1 else np.array(a.get("scales", []))
        if scales is None or len(scales) == 0:
            raise _Stop(f"{op} to a fixed size (not a constant scale)", whole=True)
        fs = [float(scales[i]) for i in f0.axes]
        if any(x != int(x) or x < 1 for x in fs) or any(float(scales[i]) != 1 for i in range(4) if i not in f0.axes):
            raise _Stop(f"{op} by {list(map(float, scales))} (integer upscaling of H and W only)")
        mode = a.get("mode", b"nearest")
        mode = (mode.decode() if isinstance(mode, bytes) else mode).lower()
        coord = a.get("coordinate_transformation_mode", b"half_pixel" if op == "Resize" else b"asymmetric")
        coord = coord.decode() if isinstance(coord, bytes) else coord
        nearest = a.get("nearest_mode", b"round_prefer_floor")
        nearest = nearest.decode() if isinstance(nearest, bytes) else nearest
        axes = [_gather(ax, int(f), _resize_sources(int(f), mode, coord, nearest, op)) if f > 1 else ax
                for ax, f in zip((f0.h, f0.w), fs)]
        return Field(f0.axes, *axes)
    if op == "Pad":
        if f0 is None:
            return None
        pads = a.get("pads")
        if pads is None and len(node.input) > 1:
            pads = consts.get(node.input[1])
            if pads is None:   # computed from the image's size: the pads at the start must not follow it
                at = _at_probes(node.input[1], values)
                if at is None:
                    raise _Stop("Pad with pads that are not constant")
                rank = len(at[0]) // 2
                if any(not np.array_equal(at[0][:rank], v[:rank]) for v in at[1:]):
                    raise _Stop("Pad at the start of an image axis by an amount computed from the image's size",
                                whole=True)
                if notes is not None and any(at[0][rank + i] != v[rank + i] for v in at[1:] for i in f0.axes):
                    # the rest of the walk still holds (and may find a reason of its own), but the border of
                    # the image is padded as its size asks, which a tile ending there, of another size, is not
                    notes.append(f"{_node_name(node)}: Pad at the far end of an image axis by an amount computed "
                                 "from the image's size (to a multiple): a tile ending at the image's border is "
                                 "padded otherwise")
                pads = at[0]
        if pads is None:
            raise _Stop("Pad without pads")
        if len(node.input) > 3 and node.input[3]:
            raise _Stop("Pad with explicit axes")
        if a.get("mode") in (b"wrap", "wrap"):
            raise _Stop("Pad that wraps one border round to the other", whole=True)
        # output pixel q is input pixel q - pad_begin (reflected / replicated / constant only outside the image,
        # as zero padding is); padded channels are constants
        return Field(f0.axes, *(_window(ax, 1, 1, 1, int(pads[i])) for ax, i in zip((f0.h, f0.w), f0.axes)))
    if op in _GLOBAL:
        if f0 is None:
            return None
        raise _Stop(f"{op} sees the whole image", whole=True)
    if op in _REDUCE:
        if f0 is None:
            return None
        axes = a.get("axes")
        if op.startswith("Reduce") and axes is None and len(node.input) > 1 and node.input[1]:
            c = consts.get(node.input[1])
            axes = None if c is None else [int(x) for x in np.atleast_1d(c)]
        rank = _rank(probes, node.input[0], 4)
        if op in ("Softmax", "LogSoftmax", "Hardmax", "CumSum", "TopK", "ArgMax", "ArgMin"):
            axes = [int(a.get("axis", -1))]
        if op == "LayerNormalization":   # normalises over every axis from ``axis`` on
            axes = list(range(int(a.get("axis", -1)) % rank, rank))
        axes = None if axes is None else [x % rank for x in axes]
        if axes is None or set(axes) & set(f0.axes):
            raise _Stop(f"{op} over {'every axis' if axes is None else 'axes ' + str(axes)} sees the whole image",
                        whole=True)
        return f0
    if op == "Concat":
        if not live:
            return None
        if int(a["axis"]) % 4 in live[0].axes:
            raise _Stop("Concat along a spatial axis")
        return _union(live)
    if op in ("Split", "Slice"):
        if f0 is None:
            return None
        if op == "Split" and int(a.get("axis", 0)) % 4 in f0.axes:
            raise _Stop("Split along a spatial axis")
        if op == "Slice":
            return _sliced(node, f0, consts, probes, values)
        return f0
    if op == "Transpose":
        if f0 is None:
            return None
        perm = list(a.get("perm", [3, 2, 1, 0]))
        new_axes = (perm.index(f0.axes[0]), perm.index(f0.axes[1]))
        if new_axes[0] > new_axes[1]:
            raise _Stop("Transpose that swaps H and W")
        return Field(new_axes, f0.h, f0.w)
    if op in _UNARY or op in _NARY:
        return _union(live) if live else None
    if op == "ScatterND" and f0 is not None:
        # an in-place write to some channels (PLKSR's x[:, :k] = conv(x[:, :k])): indices of depth d address the
        # first d axes, so while those are not image axes each pixel reads the same pixel of data or updates
        depth = (probes[0].get(node.input[1]) or [None])[-1] if probes else None
        if depth is None or depth > min(f0.axes):
            raise _Stop("ScatterND into an image axis" if depth else "ScatterND whose indices' shape inference "
                        "cannot tell")
        return _union(live)
    if not live:
        return None
    raise _Stop(f"{op} is not an op this walk follows")


def _sliced(node, f0: Field, consts: dict, probes: list[dict], values: list[dict]) -> Field:
    """Slice: along other axes the field is unchanged; along an image axis a step-1 crop from a start that does
    not follow the image's size (a constant, or computed: ``values`` at the probes) shifts it."""
    def arg(i):
        name = node.input[i] if len(node.input) > i else ""
        if not name:
            return None
        v = consts.get(name)
        if v is None:
            at = _at_probes(name, values)
            if at is None:
                raise _Stop("Slice with starts, axes or steps that are not constant")
            if any(not np.array_equal(at[0], x) for x in at[1:]):
                raise _Stop("Slice with a start, axis or step computed from the image's size", whole=True)
            v = at[0]
        return [int(x) for x in np.atleast_1d(v)]
    rank = _rank(probes, node.input[0], 4)
    starts = arg(1)
    axes = arg(3) or list(range(len(starts)))
    steps = arg(4) or [1] * len(starts)
    h, w = f0.h, f0.w
    for start, axis, step in zip(starts, (x % rank for x in axes), steps):
        if axis not in f0.axes:
            continue
        if step != 1:
            raise _Stop(f"Slice with step {step} along an image axis")
        if axis == f0.axes[0]:
            h = _crop_start(start, h, "Slice")
        else:
            w = _crop_start(start, w, "Slice")
    return Field(f0.axes, h, w)


def _union(fields: list) -> Field:
    first = fields[0]
    if any(f.axes != first.axes for f in fields):
        raise _Stop("operands with different layouts")

    def merge(axes: list[Axis]) -> Axis:
        if len({Fraction(a.n, a.B) for a in axes}) != 1:
            raise _Stop("operands at different resolutions")
        n = math.lcm(*(a.n for a in axes))
        wide = [a.with_period(n) for a in axes]
        return Axis(n, wide[0].B, tuple((min(w.deps[p][0] for w in wide), max(w.deps[p][1] for w in wide))
                                       for p in range(n)))
    return Field(first.axes, merge([f.h for f in fields]), merge([f.w for f in fields]))


def radius(model: onnx.ModelProto) -> Radius:
    """The exact halo of an ONNX model with one image input (N, C, H, W or N, H, W, C) and one image output."""
    g = model.graph
    inits = {t.name for t in g.initializer}
    inputs = [i for i in g.input if i.name not in inits]
    if len(inputs) != 1:
        raise MemsrError(f"expected one image input, found {len(inputs)}")
    axes = _spatial_axes(inputs[0])
    ident = Axis(1, 1, ((0, 0),))
    state: dict = {inputs[0].name: Field(axes, ident, ident)}
    consts = _constants(model)
    probes, values = _probe_shapes(model, axes)
    notes: list[str] = []   # what keeps tiles from being exact at the image's border only
    periods = [1]
    for node in g.node:
        if node.op_type == "Constant":
            continue
        fields = [state.get(x) if x else None for x in node.input]
        whole = next((f for f in fields if isinstance(f, Whole)), None)
        if whole is not None:
            out = whole
        else:
            try:
                out = _apply(node, fields, consts, probes, values, notes)
            except _Stop as stop:
                out = Whole(f"{_node_name(node)}: {stop.why}", finite_unknown=not stop.whole)
        if isinstance(out, Field):
            periods += [out.h.B, out.w.B]
        for name in node.output:
            if name:
                state[name] = out
    r = finish(state.get(g.output[0].name), periods)
    if r.finite and notes:
        return Radius(None, None, reason=f"no finite receptive radius: {notes[0]}")
    return r


def finish(result, periods: list[int]) -> Radius:
    """The Radius of the output's field (``Field``, ``Whole`` or None: independent of the pixels); ``periods``:
    the LR periods of every tensor met (their lcm is the alignment). Shared by the ncnn walk (ncnn_receptive)."""
    if isinstance(result, Whole):
        lead = "receptive radius unknown" if result.finite_unknown else "no finite receptive radius"
        return Radius(None, None, reason=f"{lead}: {result.reason}")
    if isinstance(result, Folded):
        return Radius(None, None, reason=f"receptive radius unknown: {result.reason}, not followed back to an image")
    if not isinstance(result, Field):
        return Radius(None, None, reason="the output does not depend on the input's pixels")
    halos, scales = [], []
    for ax in (result.h, result.w):
        if ax.n % ax.B:
            return Radius(None, None, reason=f"output resolution {ax.n}/{ax.B} of the input's is not an integer")
        scales.append(ax.n // ax.B)
        # cores start and end on the period's anchors (multiples of align, a multiple of B): the first core
        # pixel is an anchor, the last is B - 1 past one
        halos += [-min(lo for lo, _ in ax.deps), max(hi for _, hi in ax.deps) - (ax.B - 1)]
    if scales[0] != scales[1]:
        return Radius(None, None, reason=f"H and W scale differently ({scales[0]} and {scales[1]})")
    align = math.lcm(*periods)
    # a multiple of align, so that windows of aligned cores are aligned too
    return Radius(-(-max(0, *halos) // align) * align, scales[0], align=align)
