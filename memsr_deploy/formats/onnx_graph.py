"""The ONNX graph of a plain net, built straight from its description and weights (numpy + onnx.helper, no torch).

fp32: [Mul, Add: input normalisation] -> [Conv (+ Relu)] * L -> tail Conv -> DepthToSpace(CRD) -> output, or
with EDSR's upsampler tail (``desc.shuffles``) [Conv -> DepthToSpace(CRD)] per scale factor -> Conv -> output:
a DepthToSpace follows every conv the chain shuffles after. DepthToSpace in CRD mode reads channel
c*s*s + i*s + j as colour c at sub-pixel (i, j), which is exactly torch's pixel_shuffle. The runtime speaks [0, 1]; a model trained on [0, value_range] gets its units from the
normalisation in front (x * value_range) and has 1 / value_range folded into its tail conv (nothing reads the
tail output through a padded conv, so the fold changes round-off only). The normalisation itself is not folded
into the first conv: that would change what the conv's zero padding means at the image border.

int8 (QDQ): every conv reads QuantizeLinear -> DequantizeLinear activations (uint8, asymmetric, ranges from the
description's ``int8_activation_ranges``), per-output-channel symmetric int8 weights (max |w| / 127, the grid
``method.quant_aware`` trains on, so the bundled students' weights pass through unchanged; stored as uint8 with
zero point 128 where the runtime asks, the same values for ORT's kernel that does not saturate) and int32 biases;
ONNX Runtime fuses each group into one integer convolution. A ReLU is the quantiser's lower clamp (its output
range starts at 0, so the zero point is 0) and is left out. A conv's output is dequantised before its
DepthToSpace; a conv that reads the shuffled map gets it through a Q/DQ pair of the same parameters (exact: the
values are already on that grid), so it too is one integer convolution. A conv output the ranges record lists
under ``float_tensors`` (``int8_float_tensors``: mixed precision) has no Q/DQ pair: the conv that writes it keeps
its ReLU node and the conv that reads it a float bias, so ONNX Runtime runs both in float.

The same graph (fp32) is what ``memsr-export --target onnx`` writes for plain nets and what the profiler
measures: ``model_to_onnx`` is the one way memsr makes an ONNX graph of a model (teachers, whose skips this
builder does not write, go through torch's dynamo exporter at the same opset).
"""
from __future__ import annotations

import numpy as np

from ..errors import MemsrError
from .vocabulary import ACTIVATION_BYTES

OPSET = 18   # one setting for every ONNX file memsr writes (the torch exporter for teachers uses it too)
INT8_RANGES_KEY = "int8_activation_ranges"
INT8_GRAPH_PRECISIONS = ("int8", "int8-uint8io")   # the precisions whose graphs carry int8 activations


def _affine(desc, model_units: bool = False) -> tuple[float, np.ndarray] | None:
    """Input normalisation from [0, 1] runtime units (or the model's own): x * a + b per channel, or None when
    it is the identity."""
    spec = desc.input
    a = (1.0 if model_units else float(spec.value_range)) / float(spec.norm)
    b = -np.asarray(spec.mean, np.float32).reshape(1, 3, 1, 1) / np.float32(spec.norm)
    if a == 1.0 and not b.any():
        return None
    return a, b


def _normalise(aff, x: str, inits: list, nodes: list) -> str:
    """Append the input normalisation (x * scale + shift, kept apart from the first conv so zero padding pads
    normalised values) to a graph under construction; returns the name of its output."""
    if aff is None:
        return x
    from onnx import helper, numpy_helper
    inits += [numpy_helper.from_array(np.array(aff[0], np.float32), "norm_scale"),
              numpy_helper.from_array(aff[1].astype(np.float32), "norm_shift")]
    nodes += [helper.make_node("Mul", [x, "norm_scale"], ["scaled"]),
              helper.make_node("Add", ["scaled", "norm_shift"], ["normalised"])]
    return "normalised"

def _convs_in_runtime_units(desc, convs):
    """The tail scaled by 1 / value_range, so the graph's output is in [0, 1] units."""
    vr = np.float32(desc.input.value_range)
    if vr == 1.0:
        return convs
    (*body, (w, b)) = convs
    return [*body, (w / vr, b / vr)]


def _acts(desc) -> list[str]:
    """Per conv its activation; tail convs have none."""
    acts = list(desc.arch.get("acts", desc.layer_acts[:-1]))
    return acts + ["none"] * (len(desc.layer_widths) - len(acts))


def _name_output(nodes: list, x: str, keep: bool) -> None:
    """Make the chain's last tensor ``x`` the graph's "output": its node writes it under that name, or, when
    ``keep`` (a calibration graph that exposes ``x`` under its own name), an Identity copies it."""
    from onnx import helper
    if keep:
        nodes.append(helper.make_node("Identity", [x], ["output"]))
    else:
        nodes[-1].output[0] = "output"


def build_fp32(desc, convs, layer_outputs: bool = False, input_size: tuple[int, int] | None = None,
               model_units: bool = False):
    """ModelProto NCHW float32 "input" (N, 3, H, W) in [0, 1] -> "output" (N, 3, sH, sW); ``input_size``: fixed
    1 x 3 x H x W instead; ``model_units``: in and out in [0, value_range] as the network itself (exported files,
    whose sidecar gives the range). ``layer_outputs``: also expose the normalised input and every conv's
    (activated) output, for calibration."""
    from onnx import TensorProto, helper, numpy_helper
    inits, nodes, extra = [], [], []
    x = "input"
    x = _normalise(_affine(desc, model_units), x, inits, nodes)
    extra.append(x)
    if not model_units:
        convs = _convs_in_runtime_units(desc, convs)
    for i, ((w, b), act, f) in enumerate(zip(convs, _acts(desc), desc.shuffles)):
        inits += [numpy_helper.from_array(w.astype(np.float32), f"w{i}"),
                  numpy_helper.from_array(b.astype(np.float32), f"b{i}")]
        y = f"conv{i}"
        nodes.append(helper.make_node("Conv", [x, f"w{i}", f"b{i}"], [y], kernel_shape=[3, 3], pads=[1, 1, 1, 1]))
        if act == "relu":
            nodes.append(helper.make_node("Relu", [y], [f"act{i}"]))
            y = f"act{i}"
        x = y
        extra.append(x)
        if f > 1:
            nodes.append(helper.make_node("DepthToSpace", [x], [f"hr{i}"], blocksize=f, mode="CRD"))
            x = f"hr{i}"
    _name_output(nodes, x, layer_outputs and x == extra[-1])
    outs = [_output(desc, input_size)]
    if layer_outputs:
        outs += [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in extra]
    return _model(nodes, inits, outs, input_size)


def _output(desc, input_size):
    from onnx import TensorProto, helper
    s = int(desc.scale)
    dims = ["batch", 3, "out_height", "out_width"] if input_size is None else [1, 3, input_size[0] * s,
                                                                                input_size[1] * s]
    return helper.make_tensor_value_info("output", TensorProto.FLOAT, dims)


def _model(nodes, inits, outputs, input_size=None):
    from onnx import TensorProto, helper
    dims = ["batch", 3, "height", "width"] if input_size is None else [1, 3, *input_size]
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, dims)
    graph = helper.make_graph(nodes, "memsr_plain", [inp], outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="memsr")
    model.ir_version = 9   # what ONNX Runtime 1.17+ reads; the ops used exist since opset 13
    return model


def int8_weight_grid(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-output-channel symmetric int8 (q, scale) with scale = max |w| / 127, as quant_aware rounds."""
    scale = np.maximum(np.abs(w).reshape(w.shape[0], -1).max(axis=1) / 127.0, 1e-12).astype(np.float32)
    q = np.clip(np.rint(w / scale[:, None, None, None]), -127, 127).astype(np.int8)
    return q, scale


def uint8_params(lo: float, hi: float) -> tuple[np.float32, np.uint8]:
    """Asymmetric uint8 (scale, zero point) covering [lo, hi] and 0 (so zero padding is exact)."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    scale = max((hi - lo) / 255.0, 1e-8)
    zp = int(np.clip(np.rint(-lo / scale), 0, 255))
    return np.float32(scale), np.uint8(zp)


def activation_ranges(desc) -> tuple[list[float], list[list[float]]]:
    """(input range, one range per conv output) from the description, validated."""
    r = desc.extra.get(INT8_RANGES_KEY)
    n = len(desc.layer_widths)
    try:
        inp = [float(v) for v in r["input"]]
        layers = [[float(v) for v in pair] for pair in r["layers"]]
        ok = len(inp) == 2 and len(layers) == n and all(len(p) == 2 and p[0] <= p[1] for p in layers)
    except (TypeError, KeyError, ValueError):
        ok = False
    if not ok:
        raise MemsrError(f"--precision int8 needs the model's {INT8_RANGES_KEY} (input and {n} layer ranges); "
                         "compute them with `python -m memsr_deploy.method.int8_ranges MODEL`", desc.path)
    return inp, layers


def int8_float_tensors(desc) -> frozenset[int]:
    """The conv outputs (by conv index) an int8 graph keeps in float32, from the ranges record; validated."""
    r = desc.extra.get(INT8_RANGES_KEY) or {}
    keep = r.get("float_tensors", [])
    n = len(desc.layer_widths)
    if not (isinstance(keep, list) and all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < n
                                           for i in keep) and len(set(keep)) == len(keep)):
        raise MemsrError(f"{INT8_RANGES_KEY}.float_tensors must list distinct conv indices in [0, {n}), got "
                         f"{keep!r}", desc.path)
    return frozenset(keep)


def int8_float_convs(desc) -> frozenset[int]:
    """The convs a mixed int8 graph runs in float: those that read or write a float tensor."""
    floats = int8_float_tensors(desc)
    return frozenset(i for i in range(len(desc.layer_widths)) if i in floats or i - 1 in floats)


def activation_bytes(desc, precision: str) -> int:
    """Bytes per activation value for the memory budget of the graph of ``desc`` at ``precision``: the
    precision's, except that a mixed int8 graph counts fp32's (a float conv holds its input and output in
    float32, which bounds the whole graph's peak)."""
    if precision in INT8_GRAPH_PRECISIONS and int8_float_tensors(desc):
        return ACTIVATION_BYTES["fp32"]
    return ACTIVATION_BYTES.get(precision, ACTIVATION_BYTES["fp32"])


def build_int8(desc, convs, unsigned_weights: bool = False):
    """The QDQ graph (see the module docstring); same input and output as ``build_fp32``. ``unsigned_weights``:
    the int8 weight grid shifted by 128 into uint8 (``runtime.host.int8_dot_saturates`` says when)."""
    from onnx import helper, numpy_helper
    inp_range, ranges = activation_ranges(desc)
    floats = int8_float_tensors(desc)
    inits, nodes = [], []
    x = "input"
    x = _normalise(_affine(desc), x, inits, nodes)

    def qdq(name: str, lo: float, hi: float) -> tuple[str, np.float32]:
        s, zp = uint8_params(lo, hi)
        inits.extend([numpy_helper.from_array(np.array(s, np.float32), f"{name}_s"),
                      numpy_helper.from_array(np.array(zp, np.uint8), f"{name}_zp")])
        nodes.append(helper.make_node("QuantizeLinear", [src[0], f"{name}_s", f"{name}_zp"], [f"{name}_q"]))
        nodes.append(helper.make_node("DequantizeLinear", [f"{name}_q", f"{name}_s", f"{name}_zp"], [f"{name}_dq"]))
        return f"{name}_dq", s

    src = [x]
    x, s_in = qdq("a_in", *inp_range)
    convs = _convs_in_runtime_units(desc, convs)
    vr = float(desc.input.value_range)
    acts = _acts(desc)
    for i, ((w, b), act, f) in enumerate(zip(convs, acts, desc.shuffles)):
        qw, sw = int8_weight_grid(w)
        zw = np.zeros(len(sw), np.int8)
        if unsigned_weights:
            qw, zw = (qw.astype(np.int16) + 128).astype(np.uint8), np.full(len(sw), 128, np.uint8)
        inits += [numpy_helper.from_array(qw, f"w{i}_q"), numpy_helper.from_array(sw, f"w{i}_s"),
                  numpy_helper.from_array(zw, f"w{i}_zp")]
        nodes.append(helper.make_node("DequantizeLinear", [f"w{i}_q", f"w{i}_s", f"w{i}_zp"], [f"w{i}"], axis=0))
        if s_in is None:   # a float input: a float bias, so the conv is not fused into an integer one
            inits.append(numpy_helper.from_array(b.astype(np.float32), f"b{i}"))
        else:
            inits += [numpy_helper.from_array(np.rint(b / (s_in * sw)).astype(np.int32), f"b{i}_q"),
                      numpy_helper.from_array((s_in * sw).astype(np.float32), f"b{i}_s"),
                      numpy_helper.from_array(np.zeros(len(sw), np.int32), f"b{i}_zp")]
            nodes.append(helper.make_node("DequantizeLinear", [f"b{i}_q", f"b{i}_s", f"b{i}_zp"], [f"b{i}"], axis=0))
        nodes.append(helper.make_node("Conv", [x, f"w{i}", f"b{i}"], [f"conv{i}"], kernel_shape=[3, 3],
                                      pads=[1, 1, 1, 1]))
        lo, hi = ranges[i]
        if i == len(convs) - 1:
            lo, hi = lo / vr, hi / vr   # the tail was rescaled to [0, 1] units above; so are its ranges
        if act == "relu":
            lo = 0.0   # the quantiser's clamp at zero point 0 is the ReLU
        src = [f"conv{i}"]
        if i in floats:
            x, s_in = f"conv{i}", None
            if act == "relu":
                nodes.append(helper.make_node("Relu", [x], [f"relu{i}"]))
                x = f"relu{i}"
        else:
            x, s_in = qdq(f"a{i}", lo, hi)
        if f > 1:
            nodes.append(helper.make_node("DepthToSpace", [x], [f"hr{i}"], blocksize=f, mode="CRD"))
            x = f"hr{i}"
            if i < len(convs) - 1 and s_in is not None:
                src = [x]
                x, s_in = qdq(f"a{i}_hr", lo, hi)
    _name_output(nodes, x, False)
    return _model(nodes, inits, [_output(desc, None)])


def model_to_onnx(model, input_size: tuple[int, int] | None = None, channels: int = 3):
    """The ONNX graph of ``model`` (a model path / bundled name, or a torch module): plain nets built here from
    their description and weights (no torch), anything else exported by torch's dynamo exporter at ``OPSET``.
    Input "input", output "output", NCHW float32 in the model's own units ([0, value_range]); dynamic batch,
    height and width unless ``input_size`` fixes 1xCxHxW (``channels``: 1 for Y-only nets, 4 for RGBA)."""
    if not hasattr(model, "forward"):
        from .model_file import load_plain_arrays, read_description
        from .registry import names, resolve
        if str(model) in names():
            model = resolve(str(model))
        if read_description(model).is_plain:
            desc, convs = load_plain_arrays(model)
            return build_fp32(desc, convs, input_size=input_size, model_units=True)
        from .model_file import load_model
        model = load_model(model)[0]
    return _torch_export(model, input_size, channels)


def _torch_export(module, input_size, channels: int = 3):
    import warnings

    import torch
    if input_size is None:
        # Batch 2 and sizes > 1: torch.export specialises dimensions that are 0 or 1 in the example.
        example = torch.zeros(2, channels, 32, 40)
        dims = {0: torch.export.Dim("batch"), 2: torch.export.Dim("height"), 3: torch.export.Dim("width")}
        dynamic = {"x": dims}
    else:
        example, dynamic = torch.zeros(1, channels, *input_size), None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(module.eval(), (example,), None, input_names=["input"], output_names=["output"],
                                    dynamic_shapes=dynamic, dynamo=True, opset_version=OPSET, external_data=False,
                                    verbose=False)
    return program.model_proto


def build(desc, convs, precision: str = "fp32", unsigned_weights: bool = False):
    if precision == "fp32":
        return build_fp32(desc, convs)
    if precision == "int8":
        return build_int8(desc, convs, unsigned_weights)
    raise MemsrError(f"unknown precision {precision!r}; use fp32 or int8")


def int8_cost_note(desc) -> str:
    """One line on what int8 costs, from the figure the calibration measured and stored with the ranges."""
    r = desc.extra.get(INT8_RANGES_KEY) or {}
    psnr = r.get("psnr_vs_fp32_db")
    if psnr is None:
        return "int8 output differs slightly from fp32 (no measured figure stored with this model)"
    return (f"int8 output is expected about {float(psnr):.1f} dB PSNR from the fp32 result (measured on "
            f"{r.get('validation', 'held-out training photos')}); use --precision fp32 for the exact result")
