"""LiteRT (TFLite) backend for artefacts written by the TFLite exporter."""
from __future__ import annotations

import numpy as np

from ...errors import MemsrError
from .artefact import Artefact
from .base import Backend, runtime_failure


class LiteRTBackend(Backend):
    name = "litert"

    def __init__(self, sidecar, threads: int | None = None):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise MemsrError("LiteRT is not installed (pip install ai-edge-litert)") from None
        self.art = Artefact(sidecar, "tflite")
        self.desc, self.source = self.art.desc, self.art.path
        model = str(self.art.sc.artefact_path())
        try:
            self.interp = Interpreter(model_path=model, num_threads=int(threads) if threads else None)
            self.interp.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise MemsrError(f"LiteRT cannot load the artefact ({str(e).splitlines()[0]})", model) from None
        inputs = self.interp.get_input_details()
        if len(inputs) != 1:
            raise MemsrError(f"artefact has {len(inputs)} inputs; one image input expected", model)
        self.inp = inputs[0]
        self.out_index = self.interp.get_output_details()[0]["index"]
        sig = [int(d) for d in self.inp.get("shape_signature", self.inp["shape"])]
        self.art.check_shape("TFLite model", [d if d > 0 else None for d in sig], model)
        self.dynamic = any(d < 1 for d in sig[1:3])
        want = self.art.input.dtype
        if np.dtype(self.inp["dtype"]) != want:
            raise MemsrError(f"TFLite input is {np.dtype(self.inp['dtype'])}, the sidecar says {want}", model)
        self.shape = tuple(int(d) for d in self.inp["shape"])
        self.caps = self.art.capabilities(max_batch=None if sig[0] < 1 else sig[0])

    def run(self, x: np.ndarray) -> np.ndarray:
        t = self.art.input.encode(x)
        if t.shape != self.shape and not self.dynamic and t.shape[1:] != self.shape[1:]:
            raise MemsrError(f"window {t.shape} does not fit the fixed input {self.shape}", self.source)
        try:
            if t.shape != self.shape:
                self.interp.resize_tensor_input(self.inp["index"], list(t.shape), strict=False)
                self.interp.allocate_tensors()
                self.shape = t.shape
            self.interp.set_tensor(self.inp["index"], t)
            self.interp.invoke()
            y = self.interp.get_tensor(self.out_index)
        except (RuntimeError, ValueError, MemoryError) as e:
            raise runtime_failure(e, "LiteRT", self.source) from None
        return self.check_output(x, self.art.output.decode(y))
