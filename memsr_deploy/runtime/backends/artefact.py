"""What an exported artefact's sidecar says about running it, and the value conversions it implies.

The sidecar is the only thing read about an artefact (as on the phone): layout, dtype, value range and
quantisation of input and output, fixed shape, halo and scale. A real value v maps to the image as
v = lo + x * (hi - lo) with [lo, hi] the tensor's "range"; quantised tensors store q = round(v / scale) + zp.
"""
from __future__ import annotations

import numpy as np

from ...errors import MemsrError
from ...formats.model_file import ModelDescription
from ...formats.vocabulary import ACTIVATION_BYTES
from ...formats.sidecar import Sidecar, read_sidecar
from .base import Capabilities

_DTYPES = {"float32": np.float32, "float16": np.float16, "uint8": np.uint8, "int8": np.int8}


class TensorSpec:
    """One end (input or output) of an artefact, as described by its sidecar."""

    def __init__(self, d: dict, layout: str, where: str, path):
        try:
            self.dtype = np.dtype(_DTYPES[d["dtype"]])
            lo, hi = (float(v) for v in d.get("range", (0.0, 1.0)))
            q = d.get("quant")
            self.quant = (float(q["scale"]), int(q["zero_point"])) if q else None
        except (KeyError, TypeError, ValueError) as e:
            raise MemsrError(f"sidecar {where} spec is malformed or unsupported ({e!r})", path) from None
        if layout not in ("NCHW", "NHWC"):
            raise MemsrError(f"sidecar {where} layout {layout!r} is not NCHW or NHWC", path)
        if hi <= lo:
            raise MemsrError(f"sidecar {where} range [{lo}, {hi}] is empty", path)
        if self.dtype.kind in "iu" and self.quant is None:
            raise MemsrError(f"sidecar {where} is {self.dtype} but gives no quantisation", path)
        self.lo, self.hi, self.layout = lo, hi, layout

    def encode(self, x: np.ndarray) -> np.ndarray:
        """float NCHW [0, 1] -> the tensor this end takes."""
        if self.layout == "NHWC":
            x = x.transpose(0, 2, 3, 1)
        v = x if (self.lo, self.hi) == (0.0, 1.0) else self.lo + x * np.float32(self.hi - self.lo)
        if self.quant:
            scale, zp = self.quant
            info = np.iinfo(self.dtype)
            return np.clip(np.rint(v / np.float32(scale)) + zp, info.min, info.max).astype(self.dtype)
        return np.ascontiguousarray(v, dtype=self.dtype)

    def decode(self, y: np.ndarray) -> np.ndarray:
        """The tensor this end gives -> float32 NCHW in image units [0, 1]."""
        if self.quant:
            scale, zp = self.quant
            y = (y.astype(np.float32) - np.float32(zp)) * np.float32(scale)
        y = y.astype(np.float32, copy=False)
        if (self.lo, self.hi) != (0.0, 1.0):
            y = (y - np.float32(self.lo)) * np.float32(1.0 / (self.hi - self.lo))
        return y.transpose(0, 3, 1, 2) if self.layout == "NHWC" else y


class Artefact:
    def __init__(self, path, target: str):
        self.sc: Sidecar = read_sidecar(path)
        self.path = self.sc.path
        if self.sc.target != target:
            raise MemsrError(f"sidecar is for target {self.sc.target!r}, not {target!r}", self.path)
        layout = self.sc.layout or {}
        self.input = TensorSpec(self.sc.input, layout.get("input", ""), "input", self.path)
        self.output = TensorSpec(self.sc.output, layout.get("output", ""), "output", self.path)
        shape = self.sc.input_shape
        if shape is not None and (len(shape) != 2 or min(int(v) for v in shape) < 1):
            raise MemsrError(f"sidecar input_shape {shape} is not [H, W]", self.path)
        self.fixed = (int(shape[0]), int(shape[1])) if shape is not None else None
        # a Core ML artefact with enumerated input shapes takes only those: run it at the largest, as a fixed one
        enum = (self.sc.shape_range or {}).get("enumerated") if shape is None else None
        self.enumerated = [(int(h), int(w)) for h, w in enum] if enum else None
        if self.enumerated:
            self.fixed = max(self.enumerated, key=lambda hw: hw[0] * hw[1])
        self.desc = self._description()

    def capabilities(self, max_batch: int | None) -> Capabilities:
        sc = self.sc
        return Capabilities(scale=int(sc.scale), halo=int(sc.halo), fixed_shape=self.fixed, max_batch=max_batch,
                            default_tile=int(sc.tile), dtype_bytes=self.activation_bytes())

    def activation_bytes(self) -> int:
        """Per activation value, for the memory budget: a mixed-precision int8 artefact (its source model kept
        some conv outputs in float) holds float maps around its float convs, so it counts fp32's bytes."""
        if (self.sc.source_model or {}).get("int8_float_tensors"):
            return 4
        return ACTIVATION_BYTES.get(self.sc.precision, 4)

    def _description(self) -> ModelDescription:
        """Enough of the source model's description for the memory budget rule (layer widths, tail) and
        messages."""
        sm = self.sc.source_model or {}
        arch = {"tail": sm["tail"]} if "tail" in sm else {}
        return ModelDescription(kind=str(sm.get("kind", "student")), scale=int(self.sc.scale), arch=arch,
                                receptive_radius=int(self.sc.halo),
                                layer_widths=[int(w) for w in sm.get("layer_widths", [])],
                                layer_acts=list(sm.get("layer_acts", [])), params=0,
                                weights_sha256=str(sm.get("weights_sha256", "")), path=self.path)

    def check_shape(self, name: str, model_shape, path) -> None:
        """The artefact's own input shape must agree with what the sidecar claims (layout, fixed size)."""
        dims = list(model_shape)
        if len(dims) != 4:
            raise MemsrError(f"{name} takes a rank-{len(dims)} input; the sidecar describes a 4-D image", path)
        nchw = self.input.layout == "NCHW"
        known = [d if isinstance(d, int) and d > 0 else None for d in dims]
        chan, other = (known[1], known[3]) if nchw else (known[3], known[1])
        if (chan is not None and chan != 3) or (chan is None and other == 3):
            raise MemsrError(f"{name} input has shape {dims}: its channels are not where the sidecar's "
                             f"{self.input.layout} layout puts them (artefact and sidecar do not match)", path)
        hw = tuple(known[2:4]) if nchw else tuple(known[1:3])
        if self.fixed and hw != self.fixed:
            got = "dynamic" if None in hw else f"{hw[0]}x{hw[1]}"
            raise MemsrError(f"{name} input is {got} but the sidecar says {self.fixed[0]}x{self.fixed[1]}", path)
        if not self.fixed and None not in hw:
            raise MemsrError(f"{name} input is fixed at {hw[0]}x{hw[1]} but the sidecar says dynamic", path)
