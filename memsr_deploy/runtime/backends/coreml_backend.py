"""Core ML backend: predictions need macOS, so elsewhere it refuses cleanly instead of failing mid-run."""
from __future__ import annotations

import sys

import numpy as np

from ...errors import MemsrError
from .artefact import Artefact
from .base import Backend


class CoreMLBackend(Backend):
    name = "coreml"

    def __init__(self, sidecar, threads: int | None = None):
        self.art = Artefact(sidecar, "coreml")
        self.desc, self.source = self.art.desc, self.art.path
        if sys.platform != "darwin":
            raise MemsrError("Core ML artefacts run only on macOS (use the ONNX or TFLite artefact here)",
                             self.source)
        try:
            import coremltools as ct
        except ImportError:
            raise MemsrError("coremltools is not installed", self.source) from None
        self.model = ct.models.MLModel(str(self.art.sc.artefact_path()))
        spec = self.model.get_spec()
        self.input_name = spec.description.input[0].name
        self.output_name = spec.description.output[0].name
        self.caps = self.art.capabilities(max_batch=1)

    def run(self, x: np.ndarray) -> np.ndarray:
        outs = []
        for i in range(x.shape[0]):  # Core ML models are exported for batch 1
            res = self.model.predict({self.input_name: self.art.input.encode(x[i:i + 1])})
            outs.append(self.art.output.decode(np.asarray(res[self.output_name])))
        return self.check_output(x, np.concatenate(outs))
