"""Core ML backend. Predictions need macOS, so elsewhere it refuses cleanly instead of failing mid-run, unless it
is handed a ``program``: a callable that executes the artefact's saved program (the exporter's reader,
``memsr_export.coreml_mil``), which is how ``memsr-export`` verifies Core ML artefacts off macOS through this same
backend (sidecar decoding, shape and output checks)."""
from __future__ import annotations

import sys

import numpy as np

from ...errors import MemsrError
from .artefact import Artefact
from .base import Backend


class CoreMLBackend(Backend):
    name = "coreml"

    def __init__(self, sidecar, threads: int | None = None, program=None):
        self.art = Artefact(sidecar, "coreml")
        self.desc, self.source = self.art.desc, self.art.path
        self.caps = self.art.capabilities(max_batch=1)
        if program is not None:
            self.predict = program
            return
        if sys.platform != "darwin":
            raise MemsrError("Core ML artefacts run only on macOS (use the ONNX or TFLite artefact here)",
                             self.source)
        try:
            import coremltools as ct
        except ImportError:
            raise MemsrError("coremltools is not installed", self.source) from None
        model = ct.models.MLModel(str(self.art.sc.artefact_path()))
        spec = model.get_spec()
        input_name, output_name = spec.description.input[0].name, spec.description.output[0].name
        self.predict = lambda t: np.asarray(model.predict({input_name: t})[output_name])

    def run(self, x: np.ndarray) -> np.ndarray:
        outs = []
        for i in range(x.shape[0]):  # Core ML models are exported for batch 1
            outs.append(self.art.output.decode(np.asarray(self.predict(self.art.input.encode(x[i:i + 1])))))
        return self.check_output(x, np.concatenate(outs))
