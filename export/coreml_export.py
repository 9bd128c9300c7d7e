"""Core ML: an ML Program (.mlpackage) with float32 input "input" and output "output", NCHW, fp16 or fp32 compute.

Shapes: a fixed input size; EnumeratedShapes at chosen core tiles (window = tile + 2*halo each, what the
Neural Engine prefers); or, by default, a RangeDim for height and width (1..MAX_SIDE).

Verification: on macOS the saved package is loaded and run with Core ML's predict. Elsewhere Core ML cannot
predict, so the program is read back from the saved .mlpackage (its MIL ops and the weights in its weight
blob) and executed op by op with torch/numpy (see coreml_mil.py).
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from memsr_deploy.errors import MemsrError
from memsr_deploy.formats.vocabulary import TARGET_PRECISIONS

from .coreml_package import import_coremltools
from memsr_deploy.runtime.backends.quiet import quiet
from .shapes import MAX_SIDE
from .source import Source

PRECISIONS = TARGET_PRECISIONS["coreml"]
TRACE_SIDE = 64


def _input_shape(source: Source, input_size, tiles):
    ct = import_coremltools()
    if input_size is not None:
        return ct.Shape(shape=(1, 3, *input_size)), (1, 3, *input_size)
    if tiles:
        wins = [t + 2 * source.halo for t in sorted(tiles)]
        return ct.EnumeratedShapes(shapes=[(1, 3, w, w) for w in wins], default=(1, 3, wins[-1], wins[-1])), \
            (1, 3, wins[-1], wins[-1])
    side = ct.RangeDim(lower_bound=1, upper_bound=MAX_SIDE, default=TRACE_SIDE)
    side_w = ct.RangeDim(lower_bound=1, upper_bound=MAX_SIDE, default=TRACE_SIDE)
    return ct.Shape(shape=(1, 3, side, side_w)), (1, 3, TRACE_SIDE, TRACE_SIDE)


def build_coreml(source: Source, path: Path, precision: str, input_size: tuple[int, int] | None = None,
                 tiles: list[int] | None = None) -> None:
    ct = import_coremltools()
    if precision not in PRECISIONS:
        raise MemsrError(f"Core ML precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    source.plain_layers()  # only plain nets: raises a clear error for teachers
    shape, example = _input_shape(source, input_size, tiles)
    with warnings.catch_warnings(), quiet():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(source.model, torch.zeros(example))
        model = ct.convert(
            traced, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS15,
            inputs=[ct.TensorType(name="input", shape=shape, dtype=np.float32)],
            outputs=[ct.TensorType(name="output", dtype=np.float32)],
            compute_precision=ct.precision.FLOAT16 if precision == "fp16" else ct.precision.FLOAT32)
    model.short_description = f"memsr x{source.scale} super-resolution ({source.name}, {precision})"
    model.user_defined_metadata.update({"memsr.scale": str(source.scale), "memsr.halo": str(source.halo),
                                        "memsr.weights_sha256": source.desc.weights_sha256})
    model.save(str(path))
