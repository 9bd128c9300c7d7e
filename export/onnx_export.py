"""ONNX: one self-contained, simplified file with input "input" and output "output", both NCHW float32.

Built by ``memsr_deploy.formats.onnx_graph.model_to_onnx`` (plain nets straight from their description, as the
runtime and the profiler build them; teachers with PyTorch's dynamo exporter), opset ``OPSET``, weights kept
inside the file (no external .data), simplified with onnxsim, checked with onnx.checker. Dynamic artefacts have
symbolic batch, height and width; fixed ones are 1x3xHxW.
"""
from __future__ import annotations

from pathlib import Path

import onnx

from memsr_deploy.errors import MemsrError
from memsr_deploy.formats.onnx_graph import OPSET, model_to_onnx

from memsr_deploy.runtime.backends.quiet import quiet
from .source import Source

__all__ = ["OPSET", "build_onnx", "op_counts", "external_tensors", "structure_failures"]


def _export_graph(source: Source, input_size: tuple[int, int] | None) -> onnx.ModelProto:
    """The one ONNX builder (``formats.onnx_graph.model_to_onnx``): plain nets from their description, the same
    graph ``memsr-upscale`` runs; teachers through torch's dynamo exporter, at the same opset."""
    if source.graph is not None:   # another project's model: the graph memsr-upscale runs
        import copy
        return copy.deepcopy(source.graph)
    with quiet():
        return model_to_onnx(source.desc.path if source.is_plain and source.desc.path else source.model,
                             input_size)


def _simplify(model: onnx.ModelProto) -> onnx.ModelProto:
    import onnxsim
    with quiet():
        simplified, ok = onnxsim.simplify(model, check_n=0)  # numerical check is ours, on real photos
    if not ok:
        raise MemsrError("onnxsim could not simplify the exported graph")
    return simplified


def build_onnx(source: Source, path: Path, input_size: tuple[int, int] | None = None) -> None:
    model = _simplify(_export_graph(source, input_size))
    meta = {"memsr.scale": source.scale, "memsr.halo": source.halo, "memsr.source": source.name,
            "memsr.weights_sha256": source.desc.weights_sha256}
    for k, v in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, str(v)
    onnx.checker.check_model(model, full_check=True)
    onnx.save_model(model, str(path), save_as_external_data=False)


def op_counts(model: onnx.ModelProto) -> dict:
    counts: dict[str, int] = {}
    for node in model.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


def external_tensors(model: onnx.ModelProto) -> list[str]:
    return [t.name for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]


def structure_failures(path: Path) -> list[str]:
    """What a self-contained single-file artefact must satisfy beyond the numbers."""
    model = onnx.load(str(path), load_external_data=False)
    failures = []
    ext = external_tensors(model)
    if ext:
        failures.append(f"{len(ext)} tensors stored outside the .onnx file")
    if [i.name for i in model.graph.input] != ["input"] or [o.name for o in model.graph.output] != ["output"]:
        failures.append("graph inputs/outputs are not named input/output")
    return failures
