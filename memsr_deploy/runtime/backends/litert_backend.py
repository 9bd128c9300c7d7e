"""LiteRT (TFLite) backend: an exported .tflite artefact (its sidecar says how to feed it), or a plain model
file whose model is written in memory (``formats.tflite_graph``; fp32, or int8 with the description's ranges)."""
from __future__ import annotations

import os

import numpy as np

from ...errors import MemsrError
from ...formats.onnx_graph import activation_bytes
from .artefact import Artefact
from .quiet import quiet
from .base import Backend, Capabilities, runtime_failure


def _interpreter(threads: int | None, source, **model):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        raise MemsrError("LiteRT is not installed (pip install ai-edge-litert)") from None
    try:
        with quiet():  # the delegate's banner would land in the middle of the CLI's own output
            interp = Interpreter(**model, num_threads=int(threads) if threads else (os.cpu_count() or 1))
            interp.allocate_tensors()
    except (ValueError, RuntimeError) as e:
        raise MemsrError(f"LiteRT cannot load the model ({str(e).splitlines()[0]})", source) from None
    return interp


class _Invoker:
    """One interpreter, resized to each new window shape."""

    def __init__(self, interp, source):
        self.interp, self.source = interp, source
        self.out = np.empty(0, np.float32)
        inputs = interp.get_input_details()
        if len(inputs) != 1:
            raise MemsrError(f"the model has {len(inputs)} inputs; one image input expected", source)
        self.inp = inputs[0]
        self.out_index = interp.get_output_details()[0]["index"]
        self.signature = [int(d) for d in self.inp.get("shape_signature", self.inp["shape"])]
        self.shape = tuple(int(d) for d in self.inp["shape"])

    def __call__(self, t: np.ndarray, reuse_output: bool = False) -> np.ndarray:
        """The output for input ``t``: a fresh array, or with ``reuse_output`` one buffer kept for the next call,
        which overwrites it. The tile loop reuses: ``get_tensor``'s fresh multi-MB copy per window was a page
        fault per page under runtime.heap's mmap threshold (with the 8-bit conversion's temporary, 3.4 of the
        30 ms a window of the bundled x2 student took)."""
        try:
            if t.shape != self.shape:
                self.interp.resize_tensor_input(self.inp["index"], list(t.shape), strict=False)
                self.interp.allocate_tensors()
                self.shape = t.shape
            self.interp.set_tensor(self.inp["index"], t)
            self.interp.invoke()
            if not reuse_output:
                return self.interp.get_tensor(self.out_index)
            view = self.interp.tensor(self.out_index)()   # the interpreter's own memory: copied, then let go
            if self.out.shape != view.shape:
                self.out = np.empty_like(view)
            np.copyto(self.out, view)
            del view   # a view still held at the next invoke is an error in LiteRT
            return self.out
        except (RuntimeError, ValueError, MemoryError) as e:
            raise runtime_failure(e, "LiteRT", self.source) from None


class LiteRTBackend(Backend):
    name = "litert"

    def __init__(self, sidecar, threads: int | None = None):
        self.art = Artefact(sidecar, "tflite")
        self.desc, self.source = self.art.desc, self.art.path
        model = str(self.art.sc.artefact_path())
        self.invoke = _Invoker(_interpreter(threads, model, model_path=model), model)
        sig = self.invoke.signature
        self.art.check_shape("TFLite model", [d if d > 0 else None for d in sig], model)
        self.dynamic = any(d < 1 for d in sig[1:3])
        want = self.art.input.dtype
        if np.dtype(self.invoke.inp["dtype"]) != want:
            raise MemsrError(f"TFLite input is {np.dtype(self.invoke.inp['dtype'])}, the sidecar says {want}", model)
        self.caps = self.art.capabilities(max_batch=None if sig[0] < 1 else sig[0])

    def run(self, x: np.ndarray) -> np.ndarray:
        t = self.art.input.encode(x)
        fixed = self.invoke.shape
        if t.shape != fixed and not self.dynamic and t.shape[1:] != fixed[1:]:
            raise MemsrError(f"window {t.shape} does not fit the fixed input {fixed}", self.source)
        return self.check_output(x, self.art.output.decode(self.invoke(t)))


class LiteRTModelBackend(Backend):
    """A plain model file on LiteRT, its .tflite written in memory (no export step, no TensorFlow, no torch)."""
    name = "litert"

    def __init__(self, model=None, threads: int | None = None, precision: str = "fp32", arrays=None):
        from ...formats.tflite_graph import build
        if arrays is None:
            from ...formats.model_file import load_plain_arrays
            arrays = load_plain_arrays(model, precision)
        self.desc, convs = arrays
        self.source = str(self.desc.path)
        self.precision = precision
        self.invoke = _Invoker(_interpreter(threads, self.source, model_content=build(self.desc, convs, precision)),
                               self.source)
        # activations are int8 between the int8 convs (float around a mixed graph's float ones); LiteRT's own
        # memory is bounded in formats.runtime_memory
        self.caps = Capabilities(scale=self.desc.scale, halo=self.desc.receptive_radius,
                                 dtype_bytes=activation_bytes(self.desc, precision), channels_last=True)

    def run(self, x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(self.run_nhwc(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2))

    def run_nhwc(self, x: np.ndarray) -> np.ndarray:
        """NHWC in and out, LiteRT's own layout: on the int8 path at 12 MP the two transposes around ``run``
        cost about a tenth of the time. The output is a buffer that the next call overwrites (the tile loop
        consumes each window's output before its next call)."""
        return self.invoke(np.ascontiguousarray(x, dtype=np.float32), reuse_output=True)
