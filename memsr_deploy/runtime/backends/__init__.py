"""Pick the backend for a model file or an exported artefact."""
from __future__ import annotations

import sys

from ...errors import MemsrError
from ...formats.vocabulary import RUNTIME_BACKENDS, RUNTIME_PRECISIONS
from ...formats.sidecar import read_sidecar, sidecar_path
from .base import Backend, Capabilities, is_out_of_memory

__all__ = ["BACKENDS", "PRECISIONS", "Backend", "Capabilities", "default_backend", "is_out_of_memory", "open_backend",
           "open_foreign_model", "installed_artefact_targets"]


BACKENDS, PRECISIONS = RUNTIME_BACKENDS, RUNTIME_PRECISIONS
# which runtime runs each artefact target
_TARGET_RUNTIME = {"onnx": "onnxruntime", "tflite": "litert", "coreml": "coreml", "ncnn": "ncnn"}


def default_backend() -> str:
    """The exact fp32 runtime a plain model falls back to without measuring: ONNX Runtime when installed."""
    from importlib.util import find_spec
    return "onnxruntime" if find_spec("onnxruntime") is not None else "torch"


def open_backend(model=None, artefact=None, threads: int | None = None, scale: int | None = None,
                 backend: str = "auto", precision: str = "fp32", log=None, lean: bool = False,
                 work: int | None = None, ncnn_fp16: bool = False) -> Backend:
    """The one way to get a backend: the runtime, export verification and the profiler's measurements all call it.

    * ``artefact``: an exported file or its sidecar; it runs on the runtime its sidecar names (``backend`` must
      be ``auto`` or that runtime; its precision is the artefact's own).
    * ``model`` (path, stem or bundled name; default: the bundled student for ``scale``): another project's model
      (an .onnx file without a sidecar, a Compact / ESRGAN / SPAN / spandrel checkpoint) runs on ONNX Runtime
      (``foreign_backend``; an .onnx file with a sidecar is the artefact it describes); a plain net runs on
      ``backend`` (``auto``: the faster of ONNX Runtime and LiteRT for its architecture on this machine, measured
      through the tile loop the first time and remembered (``fastest.py``), both built in memory without torch;
      PyTorch when neither is installed); a teacher runs on PyTorch. ``log`` receives the measurement's one line
      (default: silent, so that a bad input still gets exactly one line).
      ``precision="int8"``: the int8 model (``auto``: on LiteRT, whose int8 kernels are the fast ones), built
      from the description's int8 sibling when it names one (``model_file.load_plain_arrays``).
    * ``threads``: intra-op threads (default: every core).
    * ``lean``: ``auto`` picks the runtime that holds less memory (ONNX Runtime) instead of the faster, for the
      runs that ask for little memory or large windows: full-width strips and whole images, where LiteRT held
      2-3x as much (12 MP x2 strips: 640 against 327 MB peak RSS; the whole 12 MP image: 14.2 against 5.0 GB;
      exact 256 px tiles: 242 against 219 MB).
    * ``work``: LR pixels the run will upscale, when known: ``auto`` measures the two runtimes only for a run
      large enough to pay for the measurement (``fastest.worth_probing``); None counts as large.
    * ``ncnn_fp16``: an ncnn artefact with ncnn's fp16 storage and arithmetic on, as a stock ncnn app runs it on
      ARMv8.2+ phones (``ncnn_backend``); off (the default) it runs in fp32.
    """
    if model is not None and artefact is not None:
        raise MemsrError("give either a model or an artefact, not both")
    if backend not in BACKENDS:
        raise MemsrError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
    if precision not in PRECISIONS:
        raise MemsrError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    if artefact is not None:
        opened = _open_artefact(artefact, threads, backend, precision, ncnn_fp16)
    else:
        if ncnn_fp16:
            raise MemsrError("--ncnn-fp16 applies to ncnn artefacts (--artefact NAME.param)")
        opened = _open_model(model, threads, scale, backend, precision, log, lean, work)
    if scale is not None and opened.caps.scale != scale:
        raise MemsrError(f"model is x{opened.caps.scale}, but x{scale} was asked for", opened.source)
    return opened


def _open_artefact(artefact, threads, backend: str, precision: str, ncnn_fp16: bool = False) -> Backend:
    sc = read_sidecar(sidecar_path(artefact), check_file=False)
    runtime = _TARGET_RUNTIME.get(sc.target, "coreml")
    if backend not in ("auto", runtime):
        raise MemsrError(f"a {sc.target} artefact runs on {runtime}, not --backend {backend}", sc.path)
    if precision != "fp32":
        raise MemsrError(f"an artefact's precision is its own ({sc.precision}); --precision applies to model "
                         "files", sc.path)
    if ncnn_fp16 and sc.target != "ncnn":
        raise MemsrError(f"--ncnn-fp16 applies to ncnn artefacts, not {sc.target}", sc.path)
    if sc.target == "ncnn":
        from .ncnn_backend import NcnnBackend
        return NcnnBackend(sidecar_path(artefact), threads, fp16=ncnn_fp16)
    if sc.target == "onnx":
        from .onnx_backend import OnnxBackend as cls
    elif sc.target == "tflite":
        from .litert_backend import LiteRTBackend as cls
    else:
        from .coreml_backend import CoreMLBackend as cls
    return cls(sidecar_path(artefact), threads)


def _open_model(model, threads, scale, backend: str, precision: str, log=None, lean: bool = False,
                work: int | None = None) -> Backend:
    from ...formats.checkpoint import checkpoint_file
    from ...formats.model_file import read_description
    from ...formats.registry import default_model, names, resolve
    if model is None:
        model = default_model(scale or 2)
    elif str(model) in names():
        model = resolve(str(model))
    else:
        # a checkpoint is read and hashed once: by the foreign check, then (EDSR) by the importer behind
        # read_description, which keeps the network for the backend's load that follows (checkpoint._cache);
        # the backends get the plain path
        ckpt = checkpoint_file(model)
        foreign = open_foreign_model(ckpt, threads, backend, precision)
        if foreign is not None:
            return foreign
        if ckpt is not model:
            read_description(ckpt)   # described (and kept) from the one read
    desc = read_description(model)
    if backend == "auto":
        backend = default_backend() if desc.is_plain else "torch"
        if precision == "int8":
            # XNNPACK's int8 convs: several times fp32 here (ONNX Runtime's int8 convs are not)
            from importlib.util import find_spec
            backend = "litert" if find_spec("ai_edge_litert") is not None else "onnxruntime"
        elif desc.is_plain and not lean:
            from . import fastest
            chosen = fastest.choose(desc, threads, lambda name: _open_model(model, threads, scale, name, precision),
                                    log or (lambda msg: None), work)
            if chosen is not None:
                return chosen
    if precision == "int8" and backend not in ("litert", "onnxruntime"):
        raise MemsrError(f"--precision int8 runs on LiteRT or ONNX Runtime, not --backend {backend}", desc.path)
    if backend in ("onnxruntime", "litert") and not desc.is_plain:
        raise MemsrError(f"{backend} runs a model file only for plain nets (students, converted nets); "
                         "run a teacher with --backend torch or export it (memsr-export)", desc.path)
    if backend == "onnxruntime":
        from .onnx_backend import OnnxModelBackend
        return OnnxModelBackend(model, threads, precision)
    if backend == "litert":
        from .litert_backend import LiteRTModelBackend
        return LiteRTModelBackend(model, threads, precision)
    from .torch_backend import TorchBackend
    return TorchBackend(model, threads)


def open_foreign_model(model, threads, backend: str, precision: str) -> Backend | None:
    """Another project's model (an .onnx file without a sidecar, a foreign checkpoint) on ONNX Runtime; an .onnx
    file with a sidecar as the artefact it is; None for memsr's own model files and EDSR checkpoints."""
    from ...formats.foreign_graph import is_foreign_onnx
    if str(model).lower().endswith(".onnx") and not is_foreign_onnx(model):
        return _open_artefact(model, threads, backend, precision)
    from .foreign_backend import ForeignOnnxBackend, open_foreign
    opened = open_foreign(model)
    if opened is None:
        return None
    graph, sha = opened
    if precision != "fp32":
        raise MemsrError(f"--precision {precision} applies to memsr models; another project's model runs as it "
                         "is, in fp32", graph.path)
    if backend not in ("auto", "onnxruntime"):
        raise MemsrError(f"another project's model runs on ONNX Runtime, not --backend {backend}", graph.path)
    return ForeignOnnxBackend(graph, sha, threads)


def installed_artefact_targets() -> list[str]:
    """Artefact targets whose runtime can run here (for tests and benchmarks)."""
    from importlib.util import find_spec
    out = [t for t, pkg in (("onnx", "onnxruntime"), ("tflite", "ai_edge_litert"), ("ncnn", "ncnn"))
           if find_spec(pkg) is not None]
    if sys.platform == "darwin" and find_spec("coremltools") is not None:
        out.append("coreml")
    return out
