"""Pick the backend for a model file or an exported artefact."""
from __future__ import annotations

import sys

from ...errors import MemsrError
from ...formats.sidecar import read_sidecar, sidecar_path
from .base import Backend, Capabilities, is_out_of_memory

__all__ = ["Backend", "Capabilities", "is_out_of_memory", "open_backend", "installed_artefact_targets"]


def open_backend(model=None, artefact=None, threads: int | None = None, scale: int | None = None) -> Backend:
    """A model file (or bundled name) runs on PyTorch; an artefact (its sidecar or the file beside it) runs on
    the runtime its sidecar names. With neither, the bundled student for ``scale`` is used."""
    if model is not None and artefact is not None:
        raise MemsrError("give either a model or an artefact, not both")
    if artefact is not None:
        sc = read_sidecar(sidecar_path(artefact), check_file=False)
        if sc.target == "onnx":
            from .onnx_backend import OnnxBackend as cls
        elif sc.target == "tflite":
            from .litert_backend import LiteRTBackend as cls
        else:
            from .coreml_backend import CoreMLBackend as cls
        backend = cls(sidecar_path(artefact), threads)
    else:
        from .torch_backend import TorchBackend
        if model is None:
            from ...formats.registry import default_model
            model = default_model(scale or 2)
        backend = TorchBackend(model, threads)
    if scale is not None and backend.caps.scale != scale:
        raise MemsrError(f"model is x{backend.caps.scale}, but x{scale} was asked for", backend.source)
    return backend


def installed_artefact_targets() -> list[str]:
    """Artefact targets whose runtime can run here (for tests and benchmarks)."""
    from importlib.util import find_spec
    out = [t for t, pkg in (("onnx", "onnxruntime"), ("tflite", "ai_edge_litert")) if find_spec(pkg) is not None]
    if sys.platform == "darwin" and find_spec("coremltools") is not None:
        out.append("coreml")
    return out
