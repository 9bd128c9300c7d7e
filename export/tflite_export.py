"""TFLite export: the flatbuffer is written by the project's one TFLite writer (``memsr_deploy.formats.
tflite_graph``: no TensorFlow, no converter) in the model's own units; this module chooses what goes into it
and reads back what was written (op census, input and output quantisation) for the sidecar.

Quantised precisions (dynamic, int8, int8-uint8io) are built from an equalised copy of the weights
(equalize.py: exact in float): activation equalisation, cross-layer weight balancing, both or neither,
whichever comes closest to the float model on the calibration patches (which one wins depends on the model).

int8 activation ranges: the smallest and largest value of each tensor on the same calibration patches, measured
on each candidate's own weights (what TF's converter did; it reproduces its calibration PSNR to 0.01 dB). A
description that carries ``int8_activation_ranges`` (percentile ranges measured once on training photos, what
``memsr-upscale --precision int8`` runs) keeps them for the candidates that leave the weights as they are,
which are the weights they were measured on: on the bundled students they score higher than min/max (x2 44.84
against 44.26 dB, x4 44.58 against 43.77 dB calibration PSNR), because min/max spends levels on a few extreme
values. The equalised candidates change the tensors, so they always calibrate their own; the candidate
choice then compares them all the same way. When the unequalised candidate wins, the int8 artefact of a model
in [0, 1] units is the very graph the runtime's LiteRT backend runs.
"""
from __future__ import annotations

import tempfile
from importlib.metadata import version as _version
from pathlib import Path

import numpy as np

from memsr_deploy.errors import MemsrError
from memsr_deploy.formats import tflite_graph
from memsr_deploy.formats.onnx_graph import INT8_RANGES_KEY, activation_ranges
from memsr_deploy.runtime.backends.quiet import quiet

from .calibration import tensor_ranges
from .census import census_failures
from .equalize import ALPHA, balance_weights, equalize, layer_ranges
from .source import QUANTISED, Layer, Source
from .verify import Runner

D2S_MODES = tflite_graph.D2S_MODES
PRECISIONS = tflite_graph.PRECISIONS
QUANT_OPS = {"QUANTIZE", "DEQUANTIZE"}


def write_graph(source: Source, layers: list[Layer], precision: str, input_size: tuple[int, int] | None = None,
                d2s: str = "depth_to_space", ranges=None, permute_tail: bool = True) -> bytes:
    """The .tflite bytes of ``layers`` (the source's, or an equalised copy) in the model's units."""
    return tflite_graph.build(source.desc, [(layer.weight, layer.bias) for layer in layers], precision,
                              input_size=input_size, d2s=d2s, model_units=True, ranges=ranges,
                              permute_tail=permute_tail)


def build_tflite(source: Source, path: Path, precision: str, input_size: tuple[int, int] | None = None,
                 calibration: list[np.ndarray] | None = None, d2s: str = "depth_to_space",
                 permute_tail: bool = True, alpha: float | None = None) -> dict:
    """Write the artefact; returns build facts for the sidecar. With ``alpha`` None every candidate
    equalisation is built and the one closest to the float model on the calibration patches is kept, else
    activation equalisation with that alpha alone (0 turns it off). ``permute_tail=False`` exists to show that
    verification catches a wrong channel order; never export with it."""
    layers = source.plain_layers()
    if precision not in QUANTISED:
        Path(path).write_bytes(write_graph(source, layers, precision, input_size, d2s, permute_tail=permute_tail))
        return {}
    if not calibration:
        raise MemsrError(f"{precision} quantisation needs calibration images", source.desc.path)
    stored = activation_ranges(source.desc) if INT8_RANGES_KEY in source.desc.extra else None
    reference = [source.run(c.transpose(0, 3, 1, 2)) for c in calibration]
    scores, best = {}, None
    for balanced, a in _candidates(alpha):
        cand = balance_weights(layers) if balanced else layers
        if a > 0:
            cand = equalize(cand, layer_ranges(cand, source.input_spec, calibration), a)
        unchanged = not balanced and a == 0
        ranges, origin = _int8_ranges(source, cand, precision, calibration, stored if unchanged else None)
        blob = write_graph(source, cand, precision, input_size, d2s, ranges, permute_tail)
        score = _calibration_psnr(blob, calibration, reference, source.value_range)
        scores[f"{'balanced weights, ' if balanced else ''}alpha {a}"] = round(score, 2)
        if best is None or score > best[0]:
            best = (score, blob, balanced, a, origin)
    Path(path).write_bytes(best[1])
    facts = {"equalisation_alpha": best[3], "weights_balanced": best[2], "equalisation_calibration_psnr": scores}
    if best[4]:
        facts["int8_activation_ranges"] = best[4]
    return facts


def _candidates(alpha: float | None) -> list[tuple[bool, float]]:
    """(weights balanced, activation equalisation alpha) pairs to try."""
    if alpha is not None:
        return [(False, alpha)]
    return [(balanced, a) for balanced in (False, True) for a in (0.0, ALPHA)]


def _int8_ranges(source: Source, layers: list[Layer], precision: str, calibration, stored):
    """(ranges for the writer, where they came from), or (None, None) for a precision without int8
    activations. ``stored``: the description's ranges when ``layers`` are the weights they were measured on."""
    if precision not in tflite_graph.INT8_GRAPH_PRECISIONS:
        return None, None
    if stored is not None:
        return stored, "model description"
    return tensor_ranges(source, layers, calibration), "calibration min/max"


def _calibration_psnr(blob: bytes, calibration: list[np.ndarray], reference: list[np.ndarray],
                      value_range: float) -> float:
    """PSNR (dB) of a candidate model against the float model over the calibration patches."""
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "candidate.tflite"
        f.write_bytes(blob)
        runner = TfliteRunner(f, threads=1)
        se = sum(float(((runner(c.transpose(0, 3, 1, 2)) - r) ** 2).sum()) for c, r in zip(calibration, reference))
    mse = se / sum(r.size for r in reference)
    return float("inf") if mse == 0 else float(10 * np.log10(value_range ** 2 / mse))


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


def op_counts(path: Path) -> dict:
    """Op census of the flatbuffer as LiteRT reads it (no delegate: XNNPACK would fold the graph into one
    node); read back by the interpreter rather than from the writer's own lists, so it checks the file."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    plain = Interpreter(model_path=str(path),
                        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    counts: dict[str, int] = {}
    for op in plain._get_ops_details():
        counts[op["op_name"]] = counts.get(op["op_name"], 0) + 1
    return counts


def allowed_ops(source: Source, precision: str, d2s: str) -> set[str]:
    """What the writer puts in an artefact of this kind; anything else in the file is a defect."""
    ops = {"CONV_2D", "DEPTH_TO_SPACE" if d2s == "depth_to_space" else "TRANSPOSE_CONV"}
    if precision in ("fp16", *tflite_graph.INT8_GRAPH_PRECISIONS):
        ops |= QUANT_OPS
    if not source.input_spec.is_identity:
        ops |= {"MUL", "ADD"}
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


def structure_failures(path: Path, source: Source, precision: str, d2s: str) -> tuple[dict, list[str]]:
    ops = op_counts(path)
    return ops, census_failures(ops, allowed_ops(source, precision, d2s), "CONV_2D", source, "TFLite ops")
