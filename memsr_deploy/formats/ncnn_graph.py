"""The ncnn model of a plain net, written straight from its description and weights: the ``.param`` text and the
``.bin`` bytes (numpy only; no torch, no converter, no ncnn needed to write them).

Graph: Input -> [Scale: input normalisation] -> [Convolution 3x3 pad 1 (ReLU fused, activation_type=1)] * L ->
tail Convolution -> PixelShuffle, or with EDSR's upsampler tail [Convolution -> PixelShuffle] per scale factor ->
Convolution: a PixelShuffle follows every conv the chain shuffles after (``desc.shuffles``). ncnn's PixelShuffle in mode 0 reads channel c*s*s + i*s + j as colour c at
sub-pixel (i, j), which is torch's pixel_shuffle (CRD); mode 1 is DCR. Units and the tail's 1 / value_range fold
are as in ``onnx_graph`` (``model_units``: in and out in [0, value_range], as exported files are).

File rules (ncnn's "param and model file structure"): the .param starts with the magic 7767517, then
"layer_count blob_count", then one line per layer: type, name, input count, output count, input blob names,
output blob names, key=value params. The .bin is every layer's weights in layer order, nothing else: a
Convolution reads its weights with a 4-byte little-endian storage tag in front (0: float32; 0x000D4B38: int8,
padded to a multiple of 4 bytes; 0x01306B47 would be float16, unused here), then num_output float32 biases, then,
when int8_scale_term is set, num_output float32 weight scales and one float32 input scale (no tags), and when
int8_scale_term > 100 one more float32 scale that requantises the output to int8 for the next conv. Scale reads
its per-channel multipliers and biases as plain float32.

int8: ncnn's int8 convolution multiplies, q = round(x * scale) clamped to [-127, 127], so its scales are the
reciprocals of ours: weight scale 1 / (max |w| / 127) per output channel on the ``int8_weight_grid`` (the grid
``method.quant_aware`` trains on, so the bundled students' int8 weights are stored exactly), and an input scale
127 / max |range| from the description's ``int8_activation_ranges``. ncnn's activations are symmetric, with no
zero point, so an asymmetric range [lo, hi] maps to the symmetric [-m, m] with m = max(|lo|, |hi|): zero stays
exactly representable (zero padding is exact), at the cost of resolution where a range is lopsided (a ReLU
output [0, hi] uses only the 128 non-negative codes, half of what the asymmetric uint8 of the ONNX / LiteRT int8
graphs gets). Biases stay float32 (ncnn adds them after dequantising). Every body conv requantises its output
straight into the next conv's int8 input (int8_scale_term 102, as ncnn's own ncnn2int8 fuses it); a conv
followed by a PixelShuffle, and the last conv, dequantise to float32, so every PixelShuffle and the output are
float (the next conv quantises the shuffled map with its own input scale) and the last conv's range is unused.
Mixed precision (the ranges record's ``float_tensors``): a conv that reads or writes a listed tensor is a float
conv with its weights on the int8 grid, and the int8 conv before it dequantises instead of requantising.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from ..errors import MemsrError
from .onnx_graph import (_acts, _affine, _convs_in_runtime_units, activation_ranges, int8_float_convs,
                         int8_float_tensors, int8_weight_grid)

MAGIC = 7767517
INPUT, OUTPUT = "in0", "out0"
CRD, DCR = 0, 1                  # PixelShuffle mode param: torch's pixel_shuffle is CRD
TAG_FLOAT32, TAG_INT8 = 0, 0x000D4B38
INT8_PER_CHANNEL = 2             # int8_scale_term of a conv with per-output-channel weight scales
REQUANTISE = 100                 # added to it when the conv writes int8 for the next conv
RELU = 1                         # Convolution activation_type


@dataclass(frozen=True)
class NcnnModel:
    """The two files of an ncnn model: ``param`` (text) and ``bin`` (bytes); blobs ``INPUT`` -> ``OUTPUT``."""
    param: str
    bin: bytes


def symmetric_scale(lo: float, hi: float) -> float:
    """ncnn's multiplier for an activation range: 127 / max(|lo|, |hi|) (see the module docstring)."""
    m = max(abs(float(lo)), abs(float(hi)))
    return 127.0 / m if m > 0 else 1.0   # an all-zero range: every value quantises to 0 whatever the scale


def _floats(a) -> bytes:
    return np.ascontiguousarray(a, dtype="<f4").tobytes()


def _tagged(tag: int, payload: bytes) -> bytes:
    pad = -len(payload) % 4
    return struct.pack("<I", tag) + payload + b"\0" * pad


def build(desc, convs, precision: str = "fp32", model_units: bool = False, shuffle_mode: int = CRD) -> NcnnModel:
    """The ncnn pair of a plain net: float32 NCHW (one image, any size) in [0, 1] (``model_units``: [0, value
    range]) -> float32 (3, sH, sW) in the same units. ``precision``: "fp32" or "int8". ``shuffle_mode`` exists
    to show that verification catches a wrong channel order; never export with anything but CRD."""
    if precision not in ("fp32", "int8"):
        raise MemsrError(f"ncnn precision must be fp32 or int8, got {precision!r}", desc.path)
    int8 = precision == "int8"
    if not model_units:
        convs = _convs_in_runtime_units(desc, convs)
    acts = _acts(desc)
    lines, blobs, data = [], [], []

    def layer(kind: str, name: str, top: str, params: str = "") -> None:
        """One layer line; each layer reads the blob the previous one wrote (the Input layer reads none)."""
        bottoms = blobs[-1:]
        lines.append(" ".join([f"{kind:<12}", f"{name:<10}", str(len(bottoms)), "1", *bottoms, top, params]).rstrip())
        blobs.append(top)

    layer("Input", "input", INPUT)
    aff = _affine(desc, model_units)
    if aff is not None:
        a, b = aff
        layer("Scale", "normalise", "normalised", "0=3 1=1")
        data += [_floats(np.full(3, a)), _floats(b.reshape(3))]

    scales_in, floats, float_convs = [], frozenset(), frozenset()
    if int8:
        floats, float_convs = int8_float_tensors(desc), int8_float_convs(desc)
        inp_range, ranges = activation_ranges(desc)
        # the input scale of conv i is that of the tensor it reads: the normalised input, then conv i-1's output
        scales_in = [symmetric_scale(*inp_range)] + [
            symmetric_scale(0.0 if act == "relu" else lo, hi) for (lo, hi), act in zip(ranges, acts)]
    last = len(convs) - 1
    for i, ((w, bias), act, f) in enumerate(zip(convs, acts, desc.shuffles)):
        params = f"0={w.shape[0]} 1=3 4=1 5=1 6={w.size}"
        if act == "relu":
            params += f" 9={RELU}"
        # the next layer is an int8 conv that reads this output as it is
        requantise = i < last and f == 1 and i + 1 not in floats
        if i in float_convs:   # mixed precision: a float conv, its weights on the grid
            q, sw = int8_weight_grid(w)
            data += [_tagged(TAG_FLOAT32, _floats(q * sw[:, None, None, None])), _floats(bias)]
        elif int8:
            term = INT8_PER_CHANNEL + (REQUANTISE if requantise else 0)
            params += f" 8={term}"
            q, sw = int8_weight_grid(w)
            data += [_tagged(TAG_INT8, q.tobytes()), _floats(bias), _floats(1.0 / sw),
                     _floats([scales_in[i]])]
            if requantise:
                data.append(_floats([scales_in[i + 1]]))
        else:
            data += [_tagged(TAG_FLOAT32, _floats(w)), _floats(bias)]
        layer("Convolution", f"conv{i}", OUTPUT if i == last and f == 1 else f"conv{i}", params)
        if f > 1:
            layer("PixelShuffle", "shuffle" if i == last else f"shuffle{i}", OUTPUT if i == last else f"hr{i}",
                  f"0={f} 1={int(shuffle_mode)}")
    param = "\n".join([str(MAGIC), f"{len(lines)} {len(blobs)}", *lines]) + "\n"
    return NcnnModel(param=param, bin=b"".join(data))


@dataclass(frozen=True)
class ParamLayer:
    kind: str
    name: str
    bottoms: tuple[str, ...]
    tops: tuple[str, ...]
    params: dict   # key index -> value text, as written


def read_param(text: str) -> list[ParamLayer]:
    """The layer lines of a .param text, checked against its header (magic, layer and blob counts, each line's
    blob counts); ValueError saying what is wrong otherwise. Values stay text: readers pick the keys they need."""
    lines = [ln.split() for ln in text.splitlines() if ln.strip()]
    if not lines or lines[0] != [str(MAGIC)]:
        raise ValueError(f"not an ncnn .param text (first line is not the magic {MAGIC})")
    try:
        n_layers, n_blobs = (int(v) for v in lines[1])
    except (IndexError, ValueError):
        raise ValueError("second line is not 'layer_count blob_count'") from None
    if len(lines) - 2 != n_layers:
        raise ValueError(f"header says {n_layers} layers, the file has {len(lines) - 2} layer lines")
    layers, blobs = [], set()
    for no, parts in enumerate(lines[2:], start=3):
        try:
            n_in, n_out = int(parts[2]), int(parts[3])
            bottoms, tops = parts[4:4 + n_in], parts[4 + n_in:4 + n_in + n_out]
            params = dict(p.split("=", 1) for p in parts[4 + n_in + n_out:])
        except (IndexError, ValueError):
            raise ValueError(f"line {no} is not 'type name inputs outputs blobs... key=value...'") from None
        if len(bottoms) != n_in or len(tops) != n_out:
            raise ValueError(f"line {no} names fewer blobs than its counts say")
        blobs.update(bottoms, tops)
        layers.append(ParamLayer(parts[0], parts[1], tuple(bottoms), tuple(tops), params))
    if len(blobs) != n_blobs:
        raise ValueError(f"header says {n_blobs} blobs, the layers name {len(blobs)}")
    return layers


def int8_convolutions(layers: list[ParamLayer]) -> tuple[int, int]:
    """(int8 Convolution layers, all Convolution layers): a conv is int8 when it sets int8_scale_term (key 8)."""
    convs = [ly for ly in layers if ly.kind == "Convolution"]
    return sum("8" in ly.params for ly in convs), len(convs)


def io_blobs(layers: list[ParamLayer]) -> tuple[str, str]:
    """(input blob, output blob) of a single-input chain: the Input layer's top and the last layer's top."""
    inputs = [ly for ly in layers if ly.kind == "Input"]
    if len(inputs) != 1 or len(inputs[0].tops) != 1 or len(layers[-1].tops) != 1:
        raise ValueError(f"{len(inputs)} Input layers and a last layer with {len(layers[-1].tops)} outputs; "
                         "one image in and one out expected")
    return inputs[0].tops[0], layers[-1].tops[0]
