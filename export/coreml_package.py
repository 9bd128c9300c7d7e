"""Reading a saved Core ML package without loading it for prediction (Linux cannot): its module and shapes."""
from __future__ import annotations

from pathlib import Path

from memsr_deploy.runtime.backends.quiet import quiet


def import_coremltools():
    """coremltools logs a line per missing macOS-only proxy when imported on Linux; keep CLI output clean."""
    with quiet():
        import coremltools
    return coremltools


def shapes_of(path: Path) -> list[tuple[int, int]] | None:
    """Input (H, W) the saved package accepts, or None for a range."""
    ct = import_coremltools()
    spec = ct.models.MLModel(str(path), skip_model_load=True).get_spec()
    arr = spec.description.input[0].type.multiArrayType
    kind = arr.WhichOneof("ShapeFlexibility")
    if kind == "enumeratedShapes":
        return [tuple(int(d) for d in s.shape[2:]) for s in arr.enumeratedShapes.shapes]
    if kind == "shapeRange":
        return None
    return [tuple(int(d) for d in arr.shape[2:])]


def shape_bounds(path: Path) -> dict | None:
    ct = import_coremltools()
    spec = ct.models.MLModel(str(path), skip_model_load=True).get_spec()
    arr = spec.description.input[0].type.multiArrayType
    if arr.WhichOneof("ShapeFlexibility") != "shapeRange":
        return None
    r = arr.shapeRange.sizeRanges
    return {"min": [int(r[2].lowerBound), int(r[3].lowerBound)],
            "max": [int(r[2].upperBound), int(r[3].upperBound)]}
