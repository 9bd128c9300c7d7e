"""The LiteRT (TFLite) model of a plain net, written straight from its description and weights as a flatbuffer
(LiteRT's own schema module + flatbuffers; no TensorFlow, no torch, no converter). The one TFLite writer: the
runtime's LiteRT backend builds its in-memory model here and ``memsr-export --target tflite`` writes its
artefacts here.

NHWC, dynamic batch/height/width (or a fixed 1 x H x W): [MUL, ADD: input normalisation] -> [CONV_2D (fused
ReLU)] * L -> tail CONV_2D -> DEPTH_TO_SPACE, or with EDSR's upsampler tail [CONV_2D -> DEPTH_TO_SPACE] per scale
factor -> CONV_2D: a DEPTH_TO_SPACE follows every conv the chain shuffles after (``desc.shuffles``). TFLite's
DEPTH_TO_SPACE reads channel (i*f + j)*C + c as channel c at sub-pixel (i, j) (DCR), torch's pixel_shuffle
c*f*f + i*f + j (CRD), so the output channels of every conv before a shuffle are permuted (the shuffled map is
then torch's, and the next conv reads it unchanged). Units and the tail's 1 / value_range fold are as in ``onnx_graph``; exported artefacts speak the
model's own units instead (``model_units``: the sidecar gives the range). ``d2s="transposed-conv"`` ends in a
stride-s TRANSPOSE_CONV with fixed 0/1 weights (same result) for GPU delegates that reject DEPTH_TO_SPACE.

Precisions (what TF's converter wrote for each, which the exported artefacts keep):

- fp32.
- fp16: every conv weight and bias stored as float16, each followed by a DEQUANTIZE to float32 (delegates
  either expand them once at load or run them in half precision); float compute.
- dynamic: per-output-channel symmetric int8 weights on float activations (hybrid CONV_2D: LiteRT quantises
  each input on the fly); weight tensors under ``HYBRID_MIN_WEIGHTS`` values stay float.
- int8 (full integer, float input and output): QUANTIZE after the normalisation, int8 convs with
  per-output-channel symmetric int8 weights (the ``quant_aware`` grid), int32 biases at input scale x weight
  scale, int8 activations with asymmetric per-tensor ranges (the description's ``int8_activation_ranges``
  unless ``ranges`` gives others; a ReLU layer's range starts at 0), DEPTH_TO_SPACE in int8, DEQUANTIZE at the
  end. XNNPACK (LiteRT's default CPU delegate) runs these convs with its int8 kernels, several times faster
  than fp32 here; ONNX Runtime's int8 convolutions for these narrow layers were not (measured 1.1-1.4x its
  fp32), so ``--precision int8`` runs this model.
- mixed int8 (either int8 precision, when the ranges record lists ``float_tensors``): the conv outputs listed
  stay float32; a conv that reads or writes one runs in float (weights on the int8 grid) between a DEQUANTIZE and
  a QUANTIZE, so only those activations skip the 8-bit rounding.
- int8-uint8io: the int8 graph with uint8 input and output, so the input byte is the pixel byte itself (scale
  range / 255, zero point 0) and the output's scale is the tail's.
"""
from __future__ import annotations

import numpy as np

from ..errors import MemsrError
from .onnx_graph import (INT8_GRAPH_PRECISIONS, _acts, _affine, _convs_in_runtime_units, activation_ranges,
                         int8_float_convs, int8_float_tensors, int8_weight_grid)
from .vocabulary import TARGET_PRECISIONS

PRECISIONS = TARGET_PRECISIONS["tflite"]
D2S_MODES = ("depth_to_space", "transposed-conv")
# dynamic: TF's converter left smaller weight tensors in float (a hybrid conv quantises its input on every
# call, which costs more than such a tensor saves); kept so dynamic artefacts stay what they were.
HYBRID_MIN_WEIGHTS = 1024

# Op versions LiteRT's op resolver keys kernels by; the values TF's converter wrote for these signatures.
_CONV_FLOAT, _CONV_INT8, _CONV_HYBRID_PER_CHANNEL = 1, 3, 5
_TCONV_FLOAT, _TCONV_INT8 = 1, 2
_D2S_FLOAT, _D2S_INT8 = 1, 2
_DEQUANTIZE, _DEQUANTIZE_FP16 = 2, 3
_QUANTIZE = 2


def crd_to_dcr(scale: int, colours: int = 3) -> np.ndarray:
    """perm[k] = CRD (torch) channel that must sit at DCR (TFLite) channel k."""
    k = np.arange(colours * scale * scale)
    return (k % colours) * scale * scale + k // colours


def d2s_filter(scale: int, colours: int = 3) -> np.ndarray:
    """TRANSPOSE_CONV filter [out colour, i, j, in channel] (OHWI) that does DEPTH_TO_SPACE (DCR): a 0/1
    selection of input channel (i*s + j)*colours + c for colour c at sub-pixel (i, j)."""
    f = np.zeros((colours, scale, scale, colours * scale * scale), np.float32)
    for i in range(scale):
        for j in range(scale):
            for c in range(colours):
                f[c, i, j, (i * scale + j) * colours + c] = 1.0
    return f


def int8_params(lo: float, hi: float) -> tuple[float, int]:
    """Asymmetric int8 (scale, zero point) covering [lo, hi] and 0."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    scale = max((hi - lo) / 255.0, 1e-8)
    return float(np.float32(scale)), int(np.clip(np.rint(-lo / scale) - 128, -128, 127))


class _Writer:
    """Tensors, buffers and operators of one subgraph. Activations are [1, H, W, C] for a fixed input size,
    else [1, 1, 1, C] with the signature [-1, -1, -1, C] (resized at run time)."""

    def __init__(self, input_size: tuple[int, int] | None = None):
        from ai_edge_litert import schema_py_generated as fb
        self.fb, self.size = fb, input_size
        self.tensors, self.buffers, self.ops, self.codes = [], [fb.BufferT()], [], {}

    def tensor(self, name: str, shape, ttype: int, data: np.ndarray | None = None, quant: tuple | None = None,
               axis: int = 0, signature=None) -> int:
        fb = self.fb
        t = fb.TensorT()
        t.name, t.type, t.shape, t.shapeSignature = name, ttype, list(shape), signature
        if data is not None:
            b = fb.BufferT()
            b.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), np.uint8)
            self.buffers.append(b)
            t.buffer = len(self.buffers) - 1
        if quant is not None:
            q = fb.QuantizationParametersT()
            q.scale = [float(v) for v in np.atleast_1d(quant[0])]
            q.zeroPoint = [int(v) for v in np.atleast_1d(quant[1])]
            q.quantizedDimension = axis
            t.quantization = q
        self.tensors.append(t)
        return len(self.tensors) - 1

    def const(self, name: str, data: np.ndarray, ttype: int, quant: tuple | None = None, axis: int = 0) -> int:
        return self.tensor(name, data.shape, ttype, data, quant, axis)

    def activation(self, name: str, channels: int, ttype: int, quant: tuple | None = None,
                   upscale: int = 1) -> int:
        """A feature map; ``upscale``: its size is the fixed input size times this (HR maps)."""
        if self.size is None:
            return self.tensor(name, [1, 1, 1, channels], ttype, quant=quant, signature=[-1, -1, -1, channels])
        h, w = self.size
        return self.tensor(name, [1, h * upscale, w * upscale, channels], ttype, quant=quant)

    def op(self, code: int, version: int, inputs, outputs, options_type: int = 0, options=None) -> None:
        fb = self.fb
        self.codes.setdefault((code, version), len(self.codes))
        o = fb.OperatorT()
        o.opcodeIndex, o.inputs, o.outputs = self.codes[(code, version)], list(inputs), list(outputs)
        o.builtinOptionsType, o.builtinOptions = options_type, options
        self.ops.append(o)

    def conv(self, x: int, w: int, b: int, y: int, relu: bool, version: int) -> None:
        fb = self.fb
        opt = fb.Conv2DOptionsT()
        opt.padding, opt.strideW, opt.strideH = fb.Padding.SAME, 1, 1
        opt.fusedActivationFunction = fb.ActivationFunctionType.RELU if relu else fb.ActivationFunctionType.NONE
        self.op(fb.BuiltinOperator.CONV_2D, version, [x, w, b], [y], fb.BuiltinOptions.Conv2DOptions, opt)

    def depth_to_space(self, x: int, y: int, scale: int, version: int) -> None:
        fb = self.fb
        opt = fb.DepthToSpaceOptionsT()
        opt.blockSize = int(scale)
        self.op(fb.BuiltinOperator.DEPTH_TO_SPACE, version, [x], [y], fb.BuiltinOptions.DepthToSpaceOptions, opt)

    def transpose_conv(self, out_shape: int, w: int, x: int, y: int, scale: int, version: int) -> None:
        fb = self.fb
        opt = fb.TransposeConvOptionsT()
        opt.padding, opt.strideW, opt.strideH = fb.Padding.VALID, int(scale), int(scale)
        self.op(fb.BuiltinOperator.TRANSPOSE_CONV, version, [out_shape, w, x], [y],
                fb.BuiltinOptions.TransposeConvOptions, opt)

    def finish(self, inputs: list[int], outputs: list[int]) -> bytes:
        import flatbuffers
        fb = self.fb
        codes = [None] * len(self.codes)
        for (code, version), i in self.codes.items():
            c = fb.OperatorCodeT()
            c.builtinCode, c.deprecatedBuiltinCode, c.version = code, min(code, 127), version
            codes[i] = c
        sg = fb.SubGraphT()
        sg.tensors, sg.inputs, sg.outputs, sg.operators, sg.name = self.tensors, inputs, outputs, self.ops, "main"
        m = fb.ModelT()
        m.version, m.operatorCodes, m.subgraphs, m.buffers = 3, codes, [sg], self.buffers
        m.description = "memsr plain net"
        builder = flatbuffers.Builder(1 << 16)
        builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())


def build(desc, convs, precision: str = "fp32", *, input_size: tuple[int, int] | None = None,
          d2s: str = "depth_to_space", model_units: bool = False, ranges=None, permute_tail: bool = True) -> bytes:
    """The .tflite bytes: NHWC input (N, H, W, 3) -> (N, sH, sW, 3), float32 in [0, 1] (uint8 for
    int8-uint8io). ``convs``: (OIHW weight, bias) per conv, tail last. ``input_size``: fixed 1 x H x W instead
    of dynamic. ``model_units``: input and output in [0, value_range] as the network itself. ``ranges``: (input
    range, one range per conv output) in model units for the int8 precisions, instead of the description's.
    ``permute_tail=False`` exists to show that verification catches a wrong channel order; never ship it.
    The conv outputs the description keeps in float (``onnx_graph.int8_float_tensors``) make an int8 graph mixed:
    every conv that reads or writes one runs in float between a DEQUANTIZE and a QUANTIZE."""
    _check_options(desc, precision, input_size, d2s)
    wr = _Writer(input_size)
    int8 = precision in INT8_GRAPH_PRECISIONS
    # the tail's output in graph units: ranges are stored in model units, the graph may work in [0, 1]
    tail_unit = 1.0 if model_units else float(desc.input.value_range)
    inp_range, layer_ranges = (ranges or activation_ranges(desc)) if int8 else (None, None)
    float_tensors = int8_float_tensors(desc) if int8 else frozenset()
    float_convs = int8_float_convs(desc) if int8 else frozenset()
    q_in = int8_params(*inp_range) if int8 else None
    inp, x = _input(wr, desc, precision, model_units, q_in)
    if not model_units:
        convs = _convs_in_runtime_units(desc, convs)
    shuffles, last = desc.shuffles, len(convs) - 1
    r = 1   # the resolution the next conv runs at, in LR sizes
    for i, ((w, b), act, f) in enumerate(zip(convs, _acts(desc), shuffles)):
        if f > 1 and permute_tail:
            perm = crd_to_dcr(f, w.shape[0] // (f * f))
            w, b = w[perm], b[perm]
        if not int8:
            x = _float_conv(wr, i, x, w, b, act == "relu", precision, r)
            x_int8 = False
        else:
            lo, hi = layer_ranges[i]
            if i == last:
                lo, hi = lo / tail_unit, hi / tail_unit
            if act == "relu":
                lo = 0.0
            q_out = int8_params(lo, hi)
            x_int8 = i not in float_tensors
            if i not in float_convs:
                x = _int8_conv(wr, i, x, q_in[0], w, b, act == "relu", q_out, r)
            else:
                x = _mixed_conv(wr, i, x, (i - 1) not in float_tensors, w, b, act == "relu", q_out if x_int8
                                else None, r)
            q_in = q_out
        if f > 1 and i < last:   # a shuffle inside the tail: the next conv reads the shuffled map
            y = wr.activation(f"hr{i}", w.shape[0] // (f * f), wr.fb.TensorType.INT8 if x_int8 else
                              wr.fb.TensorType.FLOAT32, quant=q_in if x_int8 else None, upscale=r * f)
            _shuffle(wr, x, y, f, r, d2s, x_int8, f"{i}")
            x = y
        r *= f
    out = _tail(wr, x, shuffles[-1], int(desc.scale), precision, d2s, q_in, float_out=int8 and not x_int8)
    return wr.finish([inp], [out])


def _check_options(desc, precision: str, input_size, d2s: str) -> None:
    if precision not in PRECISIONS:
        raise MemsrError(f"TFLite precision must be one of {', '.join(PRECISIONS)}, got {precision!r}", desc.path)
    if d2s not in D2S_MODES:
        raise MemsrError(f"unknown --d2s {d2s!r}; expected one of {', '.join(D2S_MODES)}", desc.path)
    if d2s == "transposed-conv" and input_size is None:
        raise MemsrError("--d2s transposed-conv needs a fixed --input-size (GPU delegates want static shapes, "
                         "and a dynamic output shape would add shape ops)", desc.path)


def _input(wr: _Writer, desc, precision: str, model_units: bool, q_in) -> tuple[int, int]:
    """(graph input, tensor the first conv reads): normalisation (kept apart from the first conv so its zero
    padding pads normalised values), then the int8 quantisation."""
    fb = wr.fb
    f32, i8, u8 = fb.TensorType.FLOAT32, fb.TensorType.INT8, fb.TensorType.UINT8
    aff = _affine(desc, model_units)
    if precision == "int8-uint8io":
        unit = float(desc.input.value_range) if model_units else 1.0
        inp = wr.activation("input", 3, u8, quant=(float(np.float32(unit / 255.0)), 0))
        if aff is None:  # uint8 -> int8 straight away: with the calibrated range [0, unit] that is exact
            xq = wr.activation("input_q", 3, i8, quant=q_in)
            wr.op(fb.BuiltinOperator.QUANTIZE, _QUANTIZE, [inp], [xq])
            return inp, xq
        x = wr.activation("input_float", 3, f32)
        wr.op(fb.BuiltinOperator.DEQUANTIZE, _DEQUANTIZE, [inp], [x])
    else:
        x = inp = wr.activation("input", 3, f32)
    if aff is not None:
        a = wr.const("norm_scale", np.array([aff[0]], np.float32), f32)
        b = wr.const("norm_shift", aff[1].reshape(3).astype(np.float32), f32)
        scaled, shifted = wr.activation("scaled", 3, f32), wr.activation("normalised", 3, f32)
        wr.op(fb.BuiltinOperator.MUL, 1, [x, a], [scaled], fb.BuiltinOptions.MulOptions, fb.MulOptionsT())
        wr.op(fb.BuiltinOperator.ADD, 1, [scaled, b], [shifted], fb.BuiltinOptions.AddOptions, fb.AddOptionsT())
        x = shifted
    if precision in INT8_GRAPH_PRECISIONS:
        xq = wr.activation("input_q", 3, i8, quant=q_in)
        wr.op(fb.BuiltinOperator.QUANTIZE, _QUANTIZE, [x], [xq])
        x = xq
    return inp, x


def _ohwi(w: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(w.transpose(0, 2, 3, 1))


def _fp16_const(wr: _Writer, name: str, data: np.ndarray) -> int:
    """A float16 constant and the DEQUANTIZE that gives the conv its float32 value."""
    fb = wr.fb
    half = wr.const(f"{name}_fp16", data.astype(np.float16), fb.TensorType.FLOAT16)
    full = wr.tensor(name, data.shape, fb.TensorType.FLOAT32)
    wr.op(fb.BuiltinOperator.DEQUANTIZE, _DEQUANTIZE_FP16, [half], [full])
    return full


def _float_conv(wr: _Writer, i: int, x: int, w: np.ndarray, b: np.ndarray, relu: bool, precision: str,
                r: int = 1) -> int:
    """One conv on float activations (fp32, fp16, dynamic) at ``r`` times the LR size; returns its output."""
    fb = wr.fb
    f32, i8 = fb.TensorType.FLOAT32, fb.TensorType.INT8
    w_ohwi, b = _ohwi(w).astype(np.float32), b.astype(np.float32)
    version = _CONV_FLOAT
    if precision == "fp16":
        wt, bt = _fp16_const(wr, f"w{i}", w_ohwi), _fp16_const(wr, f"b{i}", b)
    elif precision == "dynamic" and w.size >= HYBRID_MIN_WEIGHTS:
        qw, sw = int8_weight_grid(w)
        wt = wr.const(f"w{i}", _ohwi(qw), i8, quant=(sw, np.zeros(len(sw), np.int64)))
        bt = wr.const(f"b{i}", b, f32)
        version = _CONV_HYBRID_PER_CHANNEL
    else:
        wt, bt = wr.const(f"w{i}", w_ohwi, f32), wr.const(f"b{i}", b, f32)
    y = wr.activation(f"conv{i}", w.shape[0], f32, upscale=r)
    wr.conv(x, wt, bt, y, relu, version)
    return y


def _int8_conv(wr: _Writer, i: int, x: int, s_in: float, w: np.ndarray, b: np.ndarray, relu: bool,
               q_out: tuple[float, int], r: int = 1) -> int:
    """One full-integer conv: int8 weights on the quant_aware grid, int32 bias at input x weight scale."""
    fb = wr.fb
    cout = w.shape[0]
    qw, sw = int8_weight_grid(w)
    bias_scale = (np.float32(s_in) * sw).astype(np.float32)
    qb = np.rint(b / bias_scale).astype(np.int32)
    zeros = np.zeros(cout, np.int64)
    wt = wr.const(f"w{i}", _ohwi(qw), fb.TensorType.INT8, quant=(sw, zeros))
    bt = wr.const(f"b{i}", qb, fb.TensorType.INT32, quant=(bias_scale, zeros))
    y = wr.activation(f"conv{i}", cout, fb.TensorType.INT8, quant=q_out, upscale=r)
    wr.conv(x, wt, bt, y, relu, _CONV_INT8)
    return y


def _mixed_conv(wr: _Writer, i: int, x: int, x_int8: bool, w: np.ndarray, b: np.ndarray, relu: bool,
                q_out: tuple[float, int] | None, r: int = 1) -> int:
    """A float32 conv inside an int8 graph: its int8 input dequantised first, its output quantised to
    ``q_out`` after (None: left in float for the next conv). The weights stay on the int8 grid, so only the
    activations' rounding changes."""
    fb = wr.fb
    if x_int8:
        xf = wr.activation(f"conv{i}_in", w.shape[1], fb.TensorType.FLOAT32, upscale=r)
        wr.op(fb.BuiltinOperator.DEQUANTIZE, _DEQUANTIZE, [x], [xf])
        x = xf
    qw, sw = int8_weight_grid(w)
    y = _float_conv(wr, i, x, qw.astype(np.float32) * sw[:, None, None, None], b, relu, "fp32", r)
    if q_out is None:
        return y
    yq = wr.activation(f"conv{i}_q", w.shape[0], fb.TensorType.INT8, quant=q_out, upscale=r)
    wr.op(fb.BuiltinOperator.QUANTIZE, _QUANTIZE, [y], [yq])
    return yq


def _tail(wr: _Writer, x: int, f: int, scale: int, precision: str, d2s: str, q_tail,
          float_out: bool = False) -> int:
    """The last conv's output ``x`` to the graph output: sub-pixels to pixels when the chain shuffles after it
    (``f`` > 1: DEPTH_TO_SPACE or the 0/1 TRANSPOSE_CONV), then to the output's dtype. Both only move values, so
    an int8 tail keeps its quantisation. ``float_out``: an int8 graph whose tail was kept in float."""
    fb = wr.fb
    f32, i8, u8 = fb.TensorType.FLOAT32, fb.TensorType.INT8, fb.TensorType.UINT8
    float_map = precision not in INT8_GRAPH_PRECISIONS or float_out
    uint8_out = precision == "int8-uint8io"
    hr = x
    if f > 1:
        name = ("output" if not uint8_out else "hr") if float_map else "hr_q"
        hr = wr.activation(name, 3, f32 if float_map else i8, quant=None if float_map else q_tail, upscale=scale)
        _shuffle(wr, x, hr, f, scale // f, d2s, not float_map)
    if uint8_out:   # int8 -> uint8 with the same scale shifts the zero point by 128 (exact); a float tail rounds here
        out = wr.activation("output", 3, u8, quant=(q_tail[0], q_tail[1] + 128), upscale=scale)
        wr.op(fb.BuiltinOperator.QUANTIZE, _QUANTIZE, [hr], [out])
        return out
    if float_map:
        return hr
    out = wr.activation("output", 3, f32, upscale=scale)
    wr.op(fb.BuiltinOperator.DEQUANTIZE, _DEQUANTIZE, [hr], [out])
    return out


def _shuffle(wr: _Writer, x: int, y: int, f: int, r: int, d2s: str, int8: bool, tag: str = "") -> None:
    """Shuffle ``x`` (a map at ``r`` times the LR size) by ``f`` into ``y``; ``tag`` tells the constants of
    several shuffles apart."""
    if d2s == "depth_to_space":
        wr.depth_to_space(x, y, f, _D2S_INT8 if int8 else _D2S_FLOAT)
        return
    fb = wr.fb
    h, w = wr.size
    colours = int(wr.tensors[y].shape[-1])
    shape = wr.const(f"hr_shape{tag}", np.array([1, h * r * f, w * r * f, colours], np.int32), fb.TensorType.INT32)
    filt = d2s_filter(f, colours)
    if int8:  # 1 = 127 steps of 1/127 per output channel: each output is exactly one input value
        filt = wr.const(f"d2s_filter{tag}", (filt * 127).astype(np.int8), fb.TensorType.INT8,
                        quant=(np.full(colours, 1 / 127, np.float32), np.zeros(colours, np.int64)))
    else:  # float in fp16 and dynamic too: a 0/1 selection has nothing to gain from fewer bits
        filt = wr.const(f"d2s_filter{tag}", filt, fb.TensorType.FLOAT32)
    wr.transpose_conv(shape, filt, x, y, f, _TCONV_INT8 if int8 else _TCONV_FLOAT)
