"""The LiteRT (TFLite) model of a plain net, written straight from its description and weights as a flatbuffer
(LiteRT's own schema module + flatbuffers; no TensorFlow, no torch, no converter).

NHWC, dynamic batch/height/width: [MUL, ADD: input normalisation] -> [CONV_2D (fused ReLU)] * L -> tail CONV_2D
-> DEPTH_TO_SPACE. TFLite's DEPTH_TO_SPACE reads channel (i*s + j)*3 + c as colour c at sub-pixel (i, j) (DCR),
torch's pixel_shuffle c*s*s + i*s + j (CRD), so the tail's output channels are permuted. Units and the tail's
1 / value_range fold are as in ``onnx_graph``.

int8 (full integer, float input and output): QUANTIZE after the normalisation, int8 convs with per-output-channel
symmetric int8 weights (the ``quant_aware`` grid), int32 biases at input scale x weight scale, int8 activations
with the description's ``int8_activation_ranges`` (asymmetric; a ReLU layer's range starts at 0), DEPTH_TO_SPACE
in int8, DEQUANTIZE at the end. XNNPACK (LiteRT's default CPU delegate) runs these convs with its int8 kernels,
several times faster than fp32 here; ONNX Runtime's int8 convolutions for these narrow layers were not (measured
1.1-1.4x its fp32), so ``--precision int8`` runs this model.
"""
from __future__ import annotations

import numpy as np

from .onnx_graph import _acts, _affine, _convs_in_runtime_units, activation_ranges, int8_weight_grid


def crd_to_dcr(scale: int, colours: int = 3) -> np.ndarray:
    """perm[k] = CRD (torch) channel that must sit at DCR (TFLite) channel k."""
    k = np.arange(colours * scale * scale)
    return (k % colours) * scale * scale + k // colours


def int8_params(lo: float, hi: float) -> tuple[float, int]:
    """Asymmetric int8 (scale, zero point) covering [lo, hi] and 0."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    scale = max((hi - lo) / 255.0, 1e-8)
    return float(np.float32(scale)), int(np.clip(np.rint(-lo / scale) - 128, -128, 127))


class _Writer:
    def __init__(self):
        from ai_edge_litert import schema_py_generated as fb
        self.fb = fb
        self.tensors, self.buffers, self.ops, self.codes = [], [fb.BufferT()], [], {}

    def tensor(self, name: str, channels: int | None, ttype: int, data: np.ndarray | None = None,
               quant: tuple | None = None, axis: int = 0) -> int:
        fb = self.fb
        t = fb.TensorT()
        t.name, t.type = name, ttype
        if data is not None:
            t.shape = list(data.shape)
            b = fb.BufferT()
            b.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), np.uint8)
            self.buffers.append(b)
            t.buffer = len(self.buffers) - 1
        else:
            t.shape, t.shapeSignature = [1, 1, 1, channels], [-1, -1, -1, channels]
        if quant is not None:
            q = fb.QuantizationParametersT()
            q.scale = [float(v) for v in np.atleast_1d(quant[0])]
            q.zeroPoint = [int(v) for v in np.atleast_1d(quant[1])]
            q.quantizedDimension = axis
            t.quantization = q
        self.tensors.append(t)
        return len(self.tensors) - 1

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


def build(desc, convs, precision: str = "fp32") -> bytes:
    """The .tflite bytes: float32 NHWC input (N, H, W, 3) in [0, 1] -> float32 (N, sH, sW, 3)."""
    wr = _Writer()
    fb = wr.fb
    f32, i8, i32 = fb.TensorType.FLOAT32, fb.TensorType.INT8, fb.TensorType.INT32
    s = int(desc.scale)
    x = inp = wr.tensor("input", 3, f32)
    aff = _affine(desc)
    if aff is not None:
        a = wr.tensor("norm_scale", None, f32, np.array([aff[0]], np.float32))
        b = wr.tensor("norm_shift", None, f32, aff[1].reshape(3).astype(np.float32))
        scaled, shifted = wr.tensor("scaled", 3, f32), wr.tensor("normalised", 3, f32)
        wr.op(fb.BuiltinOperator.MUL, 1, [x, a], [scaled], fb.BuiltinOptions.MulOptions, fb.MulOptionsT())
        wr.op(fb.BuiltinOperator.ADD, 1, [scaled, b], [shifted], fb.BuiltinOptions.AddOptions, fb.AddOptionsT())
        x = shifted
    convs = _convs_in_runtime_units(desc, convs)
    w_t, b_t = convs[-1]
    perm = crd_to_dcr(s)
    convs = [*convs[:-1], (w_t[perm], b_t[perm])]
    acts = _acts(desc)
    int8 = precision == "int8"
    if int8:
        inp_range, ranges = activation_ranges(desc)
        vr = float(desc.input.value_range)
        q_in = int8_params(*inp_range)
        xq = wr.tensor("input_q", 3, i8, quant=q_in)
        wr.op(fb.BuiltinOperator.QUANTIZE, 2, [x], [xq])
        x, s_in = xq, q_in[0]
    for i, ((w, b), act) in enumerate(zip(convs, acts)):
        cout = w.shape[0]
        w_ohwi = np.ascontiguousarray(w.transpose(0, 2, 3, 1))
        if not int8:
            wt = wr.tensor(f"w{i}", None, f32, w_ohwi.astype(np.float32))
            bt = wr.tensor(f"b{i}", None, f32, b.astype(np.float32))
            y = wr.tensor(f"conv{i}", cout, f32)
            wr.conv(x, wt, bt, y, act == "relu", 1)
            x = y
            continue
        qw, sw = int8_weight_grid(w_ohwi.transpose(0, 3, 1, 2))
        qw = np.ascontiguousarray(qw.transpose(0, 2, 3, 1))
        bias_scale = (np.float32(s_in) * sw).astype(np.float32)
        qb = np.rint(b / bias_scale).astype(np.int32)
        wt = wr.tensor(f"w{i}", None, i8, qw, quant=(sw, np.zeros(cout, np.int64)))
        bt = wr.tensor(f"b{i}", None, i32, qb, quant=(bias_scale, np.zeros(cout, np.int64)))
        lo, hi = ranges[i]
        if i == len(convs) - 1:
            lo, hi = lo / vr, hi / vr
        if act == "relu":
            lo = 0.0
        q_out = int8_params(lo, hi)
        y = wr.tensor(f"conv{i}", cout, i8, quant=q_out)
        wr.conv(x, wt, bt, y, act == "relu", 3)
        x, s_in = y, q_out[0]
    if int8:
        hr_q = wr.tensor("hr_q", 3, i8, quant=q_out)
        wr.depth_to_space(x, hr_q, s, 2)
        out = wr.tensor("output", 3, f32)
        wr.op(fb.BuiltinOperator.DEQUANTIZE, 2, [hr_q], [out])
    else:
        out = wr.tensor("output", 3, f32)
        wr.depth_to_space(x, out, s, 1)
    return wr.finish([inp], [out])
