"""TFLite: the plain net rebuilt directly with TF ops from its PyTorch weights (no ONNX detour).

The graph is NHWC: [conv3x3 (+ fused ReLU)] * L -> tail conv3x3 -> depth_to_space, so the converted model holds
only CONV_2D and DEPTH_TO_SPACE (plus QUANTIZE/DEQUANTIZE where quantised). A model whose InputSpec is not the
identity adds its normalisation (x - mean) / norm in front as elementwise SUB and MUL: it cannot be folded
into the first conv without changing what that conv's zero padding means at the image border.

Channel order: torch's pixel_shuffle reads channel c*s*s + i*s + j as colour c at sub-pixel (i, j) (CRD);
TF's depth_to_space reads channel (i*s + j)*3 + c (DCR). The tail conv's output channels are permuted so the
TF graph computes the same image. ``d2s="transposed-conv"`` replaces depth_to_space by a stride-s TRANSPOSE_CONV
with fixed 0/1 weights (same result) for GPU delegates that reject DEPTH_TO_SPACE; it needs a fixed input size.

Precisions: fp32; fp16 (fp16 weights, DEQUANTIZE to float at load); dynamic (int8 weights, float activations;
the converter leaves tensors under 1024 elements in float); int8 (int8 weights and activations, float I/O
through QUANTIZE/DEQUANTIZE); int8-uint8io (the same with uint8 input and output; scales in the sidecar).
The quantised ones are built from an equalised copy of the weights (equalize.py: exact in float): activation
equalisation, cross-layer weight balancing, both or neither, whichever comes closest to the float model on the
calibration patches (which one wins depends on the model: the bundled x2 student needs the weight balancing,
the x4 one the activation equalisation).
"""
from __future__ import annotations

from importlib.metadata import version as _version
from pathlib import Path

import numpy as np

from memsr_deploy.errors import MemsrError
from memsr_deploy.formats.vocabulary import TARGET_PRECISIONS

from .equalize import ALPHA, balance_weights, equalize, layer_ranges
from memsr_deploy.runtime.backends.quiet import quiet
from .source import Layer, Source
from .verify import Runner

D2S_MODES = ("depth_to_space", "transposed-conv")
PRECISIONS = TARGET_PRECISIONS["tflite"]
QUANT_OPS = {"QUANTIZE", "DEQUANTIZE"}
QUANTISED = ("dynamic", "int8", "int8-uint8io")


def crd_to_dcr(scale: int, colours: int = 3) -> np.ndarray:
    """perm[k] = torch tail channel that must sit at TF channel k for depth_to_space to match pixel_shuffle."""
    k = np.arange(colours * scale * scale)
    subpixel, colour = k // colours, k % colours
    return colour * scale * scale + subpixel


def d2s_filter(scale: int, colours: int = 3) -> np.ndarray:
    """conv2d_transpose filter [s, s, out, in] that does depth_to_space (DCR): a 0/1 selection."""
    f = np.zeros((scale, scale, colours, colours * scale * scale), np.float32)
    for i in range(scale):
        for j in range(scale):
            for c in range(colours):
                f[i, j, c, (i * scale + j) * colours + c] = 1.0
    return f


def build_function(layers: list[Layer], source: Source, input_size: tuple[int, int] | None,
                   d2s: str = "depth_to_space", permute_tail: bool = True):
    """A concrete tf.function NHWC -> NHWC. ``permute_tail=False`` exists to show that verification catches
    a wrong channel order; never export with it."""
    import tensorflow as tf
    if d2s not in D2S_MODES:
        raise MemsrError(f"unknown --d2s {d2s!r}; expected one of {', '.join(D2S_MODES)}")
    if d2s == "transposed-conv" and input_size is None:
        raise MemsrError("--d2s transposed-conv needs a fixed --input-size (GPU delegates want static shapes, "
                         "and a dynamic output shape would add shape ops)")
    s = source.scale
    kernels = [tf.constant(layer.weight.transpose(2, 3, 1, 0)) for layer in layers]  # OIHW -> HWIO
    biases = [tf.constant(layer.bias) for layer in layers]
    if permute_tail:
        perm = crd_to_dcr(s)
        kernels[-1] = tf.constant(layers[-1].weight.transpose(2, 3, 1, 0)[..., perm])
        biases[-1] = tf.constant(layers[-1].bias[perm])
    spec = source.input_spec
    mean = tf.constant(np.asarray(spec.mean, np.float32))
    inv_norm = tf.constant(np.float32(1.0 / spec.norm))
    shuffle = tf.constant(d2s_filter(s))
    shape = [None, None, None, 3] if input_size is None else [1, *input_size, 3]

    @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32, name="input")])
    def sr(x):
        if not spec.is_identity:
            x = (x - mean) * inv_norm
        for kernel, bias, layer in zip(kernels, biases, layers):
            x = tf.nn.bias_add(tf.nn.conv2d(x, kernel, 1, "SAME"), bias)
            if layer.act == "relu":
                x = tf.nn.relu(x)
        if d2s == "depth_to_space":
            y = tf.nn.depth_to_space(x, s)
        else:
            h, w = input_size
            y = tf.nn.conv2d_transpose(x, shuffle, [1, h * s, w * s, 3], s, "VALID")
        return {"output": y}

    holder = tf.Module()  # the converter wants the object that owns the function's captured constants
    holder.sr = sr
    return sr.get_concrete_function(), holder


def convert(function, holder, precision: str, calibration: list[np.ndarray] | None = None) -> bytes:
    import tensorflow as tf
    if precision not in PRECISIONS:
        raise MemsrError(f"TFLite precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    conv = tf.lite.TFLiteConverter.from_concrete_functions([function], holder)
    if precision != "fp32":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
    if precision == "fp16":
        conv.target_spec.supported_types = [tf.float16]
    if precision in ("int8", "int8-uint8io"):
        if not calibration:
            raise MemsrError("full-integer quantisation needs calibration images")
        conv.representative_dataset = lambda: ([c] for c in calibration)
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if precision == "int8-uint8io":
            conv.inference_input_type = tf.uint8
            conv.inference_output_type = tf.uint8
    with quiet():
        try:
            return conv.convert()
        except Exception as e:  # the converter raises many internal types; the message is what matters
            raise MemsrError(f"TFLite conversion failed: {str(e).strip().splitlines()[-1][:300]}") from None


def op_counts(path: Path) -> dict:
    """Op census of the flatbuffer as written (no delegate: XNNPACK would fold the graph into one node)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    plain = Interpreter(model_path=str(path),
                        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    counts: dict[str, int] = {}
    for op in plain._get_ops_details():
        counts[op["op_name"]] = counts.get(op["op_name"], 0) + 1
    return counts


def allowed_ops(source: Source, precision: str, d2s: str) -> set[str]:
    ops = {"CONV_2D", "DEPTH_TO_SPACE" if d2s == "depth_to_space" else "TRANSPOSE_CONV"}
    if precision != "fp32":
        ops |= QUANT_OPS
    if not source.input_spec.is_identity:
        ops |= {"SUB", "MUL"}
    return ops


def _quant(detail: dict) -> dict | None:
    scale, zero = detail["quantization"]
    return None if scale == 0 else {"scale": float(scale), "zero_point": int(zero)}


def io_details(path: Path) -> tuple[dict, dict]:
    """The sidecar's input and output blocks (dtype, quantisation) as the flatbuffer declares them."""
    from ai_edge_litert.interpreter import Interpreter
    interp = Interpreter(model_path=str(path))

    def one(d):
        return {"dtype": np.dtype(d["dtype"]).name, "quant": _quant(d) if d["dtype"] != np.float32 else None}
    return one(interp.get_input_details()[0]), one(interp.get_output_details()[0])


class TfliteRunner(Runner):
    """A candidate .tflite (no sidecar yet) while the exporter picks its equalisation: float NCHW in and out,
    quantising uint8 inputs and dequantising uint8 outputs with the model's params. Verification of the written
    artefact goes through the runtime's LiteRT backend instead (api._runner)."""

    def __init__(self, path: Path, threads: int = 2):
        from ai_edge_litert.interpreter import Interpreter
        with quiet():  # the XNNPACK delegate announces itself on stderr
            self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
            self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        sig = [int(d) for d in self.input["shape_signature"]]
        self.shapes = None if -1 in sig[1:3] else [(sig[1], sig[2])]
        self.current = None
        self.description = f"ai-edge-litert {_version('ai-edge-litert')} Interpreter (default delegates)"

    def __call__(self, x: np.ndarray) -> np.ndarray:
        nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1), np.float32)
        if self.current != nhwc.shape:
            self.interpreter.resize_tensor_input(self.input["index"], list(nhwc.shape), strict=True)
            self.interpreter.allocate_tensors()
            self.current = nhwc.shape
        if self.input["dtype"] != np.float32:
            scale, zero = self.input["quantization"]
            info = np.iinfo(self.input["dtype"])
            nhwc = np.clip(np.round(nhwc / scale) + zero, info.min, info.max).astype(self.input["dtype"])
        self.interpreter.set_tensor(self.input["index"], nhwc)
        self.interpreter.invoke()
        y = self.interpreter.get_tensor(self.output["index"])
        if self.output["dtype"] != np.float32:
            scale, zero = self.output["quantization"]
            y = (y.astype(np.float32) - zero) * scale
        return np.ascontiguousarray(y.transpose(0, 3, 1, 2), np.float32)


def build_tflite(source: Source, path: Path, precision: str, input_size: tuple[int, int] | None = None,
                 calibration: list[np.ndarray] | None = None, d2s: str = "depth_to_space",
                 permute_tail: bool = True, alpha: float | None = None) -> dict:
    """Write the artefact; returns build facts for the sidecar. Quantised precisions are built from an
    equalised copy of the weights (equalize.py); with ``alpha`` None every candidate equalisation is converted
    and the one closest to the float model on the calibration patches is kept, else activation equalisation
    with that alpha alone (0 turns it off)."""
    layers = source.plain_layers()
    if precision not in QUANTISED:
        with quiet():
            function, holder = build_function(layers, source, input_size, d2s, permute_tail)
        Path(path).write_bytes(convert(function, holder, precision, calibration))
        return {}
    if not calibration:
        raise MemsrError(f"{precision} quantisation needs calibration images")
    candidates = [(False, ALPHA if alpha is None else alpha)]
    if alpha is None:
        candidates = [(balanced, a) for balanced in (False, True) for a in (0.0, ALPHA)]
    reference = [source.run(c.transpose(0, 3, 1, 2)) for c in calibration]
    scores, best = {}, None
    for balanced, a in candidates:
        cand = balance_weights(layers) if balanced else layers
        if a > 0:
            cand = equalize(cand, layer_ranges(cand, source.input_spec, calibration), a)
        with quiet():
            function, holder = build_function(cand, source, input_size, d2s, permute_tail)
        blob = convert(function, holder, precision, calibration)
        score = _calibration_psnr(blob, calibration, reference, source.value_range)
        scores[f"{'balanced weights, ' if balanced else ''}alpha {a}"] = round(score, 2)
        if best is None or score > best[0]:
            best = (score, blob, balanced, a)
    Path(path).write_bytes(best[1])
    return {"equalisation_alpha": best[3], "weights_balanced": best[2], "equalisation_calibration_psnr": scores}


def _calibration_psnr(blob: bytes, calibration: list[np.ndarray], reference: list[np.ndarray],
                      value_range: float) -> float:
    """PSNR (dB) of a converted model against the float model over the calibration patches."""
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "candidate.tflite"
        f.write_bytes(blob)
        runner = TfliteRunner(f, threads=1)
        se = sum(float(((runner(c.transpose(0, 3, 1, 2)) - r) ** 2).sum()) for c, r in zip(calibration, reference))
    mse = se / sum(r.size for r in reference)
    return float("inf") if mse == 0 else 10 * np.log10(value_range ** 2 / mse)


def structure_failures(path: Path, source: Source, precision: str, d2s: str) -> tuple[dict, list[str]]:
    ops = op_counts(path)
    failures = []
    extra = sorted(set(ops) - allowed_ops(source, precision, d2s))
    if extra:
        failures.append(f"unexpected TFLite ops {extra}")
    if ops.get("CONV_2D", 0) != len(source.desc.layer_widths):
        failures.append(f"{ops.get('CONV_2D', 0)} CONV_2D ops for {len(source.desc.layer_widths)} convs")
    return ops, failures
