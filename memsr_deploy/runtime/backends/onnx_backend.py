"""ONNX Runtime backend (CPU) for artefacts written by the ONNX exporter."""
from __future__ import annotations

import numpy as np

from ...errors import MemsrError
from .artefact import Artefact
from .base import Backend, runtime_failure


class OnnxBackend(Backend):
    name = "onnxruntime"

    def __init__(self, sidecar, threads: int | None = None):
        import onnxruntime as ort
        self.art = Artefact(sidecar, "onnx")
        self.desc, self.source = self.art.desc, self.art.path
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = int(threads)
            opts.inter_op_num_threads = 1
        model = str(self.art.sc.artefact_path())
        try:
            self.session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # ORT raises its own exception types for unparsable models
            raise MemsrError(f"ONNX Runtime cannot load the artefact ({str(e).splitlines()[0]})", model) from None
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
