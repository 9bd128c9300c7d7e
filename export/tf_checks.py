"""TensorFlow's own checks of a written .tflite (optional: ``pip install 'memsr[tf]'``).

The artefact is written and run without TensorFlow (the project's flatbuffer writer, LiteRT's interpreter); these
checks ask TensorFlow itself, so that a file TF's tools read differently is caught before a phone app (or a
converter pipeline built on TF) meets it:

  interpreter        the file run by ``tf.lite.Interpreter`` and by LiteRT's on the same input tensors (the
                     verification's odd-sized patches, or the fixed shape), default delegates and the same thread
                     count on both; ``max_abs_diff`` is over the raw output tensors in output units divided by
                     the output range (a uint8 output: codes x scale); ``equal`` holds at <= ``EQUAL_TOL``
  gpu_compatibility  ``tf.lite.experimental.Analyzer.analyze(..., gpu_compatibility=True)``: what TF's GPU
                     delegate compatibility checker says of every op (its warnings, verbatim)

Interpreter outputs that differ is a defect of the export (reported as a failure): both interpreters read the
same flatbuffer with the same kernels. A GPU compatibility warning is recorded, not a failure: the CPU runtimes
run the artefact either way.
"""
from __future__ import annotations

import contextlib
import io
import os
import warnings
from importlib.util import find_spec
from pathlib import Path

import numpy as np

from memsr_deploy.runtime.backends.quiet import quiet

from .photos import eval_pairs, random_patches
from .verify import ODD_SIZES

EQUAL_TOL = 1e-5   # of the output range: float round-off only; one uint8 output code is 1/255
INSTALL = "pip install 'memsr[tf]'"


def available() -> bool:
    return find_spec("tensorflow") is not None


def _tf():
    # TF's C++ start-up banners (oneDNN, CPU features) go to the raw stderr before logging is configured
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with quiet():
        import tensorflow as tf
    return tf


def _inputs(path: Path, scale: int, fixed: tuple[int, int] | None) -> list[np.ndarray]:
    """NHWC float inputs in [0, 1] units: photo patches at the artefact's shape(s)."""
    lr = [lr for _, lr, _ in eval_pairs(scale, 2)]
    sizes = [fixed] if fixed else list(ODD_SIZES)
    return [p[None].astype(np.float32) for h, w in sizes for p in random_patches(lr, (h, w), 1, seed=h * w)]


def _run(interp, x01: np.ndarray, value_range: float) -> np.ndarray:
    """Feed ``x01`` as the file declares its input; the raw output in output units / range."""
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    interp.resize_tensor_input(inp["index"], list(x01.shape), strict=False)
    interp.allocate_tensors()
    x = x01 * np.float32(value_range)
    if inp["dtype"] != np.float32:
        scale, zero = inp["quantization"]
        info = np.iinfo(inp["dtype"])
        x = np.clip(np.rint(x / scale) + zero, info.min, info.max)
    interp.set_tensor(inp["index"], x.astype(inp["dtype"]))
    interp.invoke()
    y = interp.get_tensor(out["index"]).astype(np.float64)
    if out["dtype"] != np.float32:
        scale, zero = out["quantization"]
        y = (y - zero) * scale
    return y / value_range


def _gpu_report(tf, path: Path) -> dict:
    buf = io.StringIO()
    # the analyzer prints its report (Python's stdout) and returns nothing
    with contextlib.redirect_stdout(buf):
        tf.lite.experimental.Analyzer.analyze(model_path=str(path), gpu_compatibility=True)
    lines = buf.getvalue().splitlines()
    warns = [ln.strip() for ln in lines if "GPU COMPATIBILITY WARNING" in ln]
    verdict = [ln.strip() for ln in lines if "compatible with GPU delegate" in ln]
    return {"compatible": not warns and bool(verdict), "warnings": warns,
            "verdict": verdict[0] if verdict else None}


def tf_checks(path: Path, scale: int, value_range: float, fixed: tuple[int, int] | None,
              threads: int = 2) -> tuple[dict, list[str]]:
    """(the sidecar's ``tensorflow`` block, failures). Without TensorFlow installed the block says so."""
    if not available():
        return {"skipped": f"tensorflow is not installed ({INSTALL})"}, []
    tf = _tf()
    from ai_edge_litert.interpreter import Interpreter
    diffs = []
    for x in _inputs(Path(path), scale, fixed):
        with quiet(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice (LiteRT is the successor)
            ys = [_run(cls(model_path=str(path), num_threads=threads), x, value_range)
                  for cls in (Interpreter, tf.lite.Interpreter)]
        if ys[0].shape != ys[1].shape:
            return ({"version": tf.__version__},
                    [f"TensorFlow's interpreter gives shape {ys[1].shape}, LiteRT's {ys[0].shape}"])
        diffs.append(float(np.abs(ys[0] - ys[1]).max()))
    gpu = _gpu_report(tf, Path(path))
    block = {"version": tf.__version__,
             "interpreter": {"max_abs_diff_vs_litert": max(diffs), "equal": max(diffs) <= EQUAL_TOL,
                             "inputs": [f"patch {h}x{w}" for h, w in ([fixed] if fixed else ODD_SIZES)]},
             "gpu_compatibility": gpu}
    failures = [] if block["interpreter"]["equal"] else [
        f"TensorFlow {tf.__version__}'s interpreter differs from LiteRT's by {max(diffs):.3g} (> {EQUAL_TOL:g})"]
    return block, failures
