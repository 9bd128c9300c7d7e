"""ONNX Runtime backend (CPU): a model description (its graph built in memory, ``formats.onnx_graph``) or an exported
.onnx artefact (its sidecar says how to feed it)."""
from __future__ import annotations

import os

import numpy as np

from ...errors import MemsrError
from ...formats.onnx_graph import activation_bytes
from .artefact import Artefact
from .base import Backend, Capabilities, runtime_failure


def session(model, threads: int | None, source, arena: bool = True):
    """An ORT CPU session with every graph optimisation on, ``threads`` intra-op threads (default: every core).

    ``arena``: ORT keeps the blocks of one call for the next, so a tiled job holds one window's activations for
    its whole run instead of allocating them afresh (a page fault per page with ``runtime.heap``'s fixed mmap
    threshold, holes in the heap without it). The profiler measures with it off: a single call then allocates
    exactly the activations its liveness walk prices (within 0.1%)."""
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = int(threads) if threads else (os.cpu_count() or 1)
    opts.inter_op_num_threads = 1
    opts.enable_cpu_mem_arena = arena
    opts.enable_mem_pattern = False
    # idle pool threads sleep instead of spinning: between calls the tile loop, the decoder and the encoder need
    # the cores (measured, 12 MP x2 JPEG -> PNG on 2 cores: 2% less wall time, 6% less CPU time)
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # ORT raises its own exception types for unparsable models
        raise MemsrError(f"ONNX Runtime cannot load the model ({str(e).splitlines()[0]})", source) from None


class OnnxBackend(Backend):
    name = "onnxruntime"

    def __init__(self, sidecar, threads: int | None = None):
        self.art = Artefact(sidecar, "onnx")
        self.desc, self.source = self.art.desc, self.art.path
        model = str(self.art.sc.artefact_path())
        self.session = session(model, threads, model)
        inp = self.session.get_inputs()
        if len(inp) != 1:
            raise MemsrError(f"artefact has {len(inp)} inputs; one image input expected", model)
        self.input_name = inp[0].name
        self.art.check_shape("ONNX model", inp[0].shape, model)
        batch = inp[0].shape[0]
        self.caps = self.art.capabilities(max_batch=batch if isinstance(batch, int) and batch > 0 else None)

    def run(self, x: np.ndarray) -> np.ndarray:
        try:
            (y,) = self.session.run(None, {self.input_name: self.art.input.encode(x)})[:1]
        except Exception as e:  # ORT's own exception classes
            raise runtime_failure(e, "ONNX Runtime", self.source) from None
        return self.check_output(x, self.art.output.decode(y))


class OnnxModelBackend(Backend):
    """A plain model file on ONNX Runtime, no export step and no torch: the graph is built in memory."""
    name = "onnxruntime"

    def __init__(self, model, threads: int | None = None, precision: str = "fp32"):
        from ...formats.model_file import load_plain_arrays
        from ...formats.onnx_graph import build
        self.desc, convs = load_plain_arrays(model, precision)
        self.source = str(self.desc.path)
        self.precision = precision
        from ..host import int8_dot_saturates
        graph = build(self.desc, convs, precision, unsigned_weights=precision == "int8" and int8_dot_saturates())
        self.session = session(graph.SerializeToString(), threads, self.source)
        self.caps = Capabilities(scale=self.desc.scale, halo=self.desc.receptive_radius,
                                 dtype_bytes=activation_bytes(self.desc, precision))

    def run(self, x: np.ndarray) -> np.ndarray:
        try:
            (y,) = self.session.run(None, {"input": np.ascontiguousarray(x, dtype=np.float32)})
        except Exception as e:  # ORT's own exception classes
            raise runtime_failure(e, "ONNX Runtime", self.source) from None
        return y
