"""ncnn: a .param (text) + .bin (weights) pair written straight from the plain net's description and weights by
``memsr_deploy.formats.ncnn_graph`` (no torch trace, no pnnx, no ncnn2table / ncnn2int8).

Both files are in the model's own units ([0, value_range] in and out, as the sidecar's ranges say), NCHW, any
input size (ncnn graphs are shape-free). fp32: float32 weights. int8: int8 weights on the per-channel symmetric
grid the bundled students are trained on, with per-tensor input scales from the description's
``int8_activation_ranges`` mapped to ncnn's symmetric int8 (see ncnn_graph); a model without those ranges does
not export to ncnn int8. The sidecar records the .param as ``file`` and the .bin as ``data_file``, each with its
checksum.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from memsr_deploy.errors import MemsrError
from memsr_deploy.formats import ncnn_graph
from memsr_deploy.formats.onnx_graph import INT8_RANGES_KEY, int8_float_convs
from memsr_deploy.formats.vocabulary import TARGET_PRECISIONS
from memsr_deploy.runtime.backends.ncnn_backend import missing

from .census import census_failures
from .source import Source

PRECISIONS = TARGET_PRECISIONS["ncnn"]
ALLOWED_LAYERS = {"Input", "Scale", "Convolution", "PixelShuffle"}


def data_name(file: str) -> str:
    """The .bin beside a .param artefact name."""
    return str(Path(file).with_suffix(".bin"))


def unsupported(source: Source, precision: str) -> str | None:
    """Why ``source`` cannot be exported to ncnn at ``precision`` here, or None."""
    why = missing()
    if why:
        return f"--target ncnn: {why}"
    if precision == "int8" and not source.desc.extra.get(INT8_RANGES_KEY):
        return (f"ncnn int8 needs the model's {INT8_RANGES_KEY}; compute them with "
                "`python -m memsr_deploy.method.int8_ranges MODEL`")
    return None


def build_ncnn(source: Source, path: Path, precision: str, input_size=None,
               shuffle_mode: int = ncnn_graph.CRD) -> dict:
    """Write ``path`` (.param) and its .bin; returns build facts for the sidecar. ``shuffle_mode`` exists to show
    that verification catches a wrong channel order; never export with anything but CRD."""
    if input_size is not None:
        raise MemsrError("ncnn artefacts take any input size; --input-size does not apply to --target ncnn")
    convs = [(layer.weight, layer.bias) for layer in source.plain_layers()]
    model = ncnn_graph.build(source.desc, convs, precision, model_units=True, shuffle_mode=shuffle_mode)
    Path(path).write_text(model.param)
    Path(path).with_name(data_name(Path(path).name)).write_bytes(model.bin)
    return {}


def structure_failures(path: Path, source: Source, precision: str) -> tuple[dict, list[str]]:
    """(layer census of the .param as written, what the pair must satisfy beyond the numbers)."""
    try:
        layers = ncnn_graph.read_param(Path(path).read_text())
        ncnn_graph.io_blobs(layers)
    except ValueError as e:
        return {}, [f"the .param does not parse ({e})"]
    ops = dict(Counter(ly.kind for ly in layers))
    failures = census_failures(ops, ALLOWED_LAYERS, "Convolution", source, "ncnn layers")
    quantised, convs = ncnn_graph.int8_convolutions(layers)
    # a mixed-precision model runs the convs around its float tensors in float
    if quantised != (convs - len(int8_float_convs(source.desc)) if precision == "int8" else 0):
        failures.append(f"{quantised} of {convs} convolutions are int8 in a {precision} export")
    return ops, failures
