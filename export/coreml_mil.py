"""Run a saved Core ML ML Program without Core ML: read its MIL ops and weights back and execute them.

This is how Core ML artefacts are verified on Linux, where Core ML cannot predict. Everything comes from the
saved .mlpackage (the program in its spec and the tensors in its weight blob), not from the PyTorch model, so
a wrong weight layout, a dropped op or a wrong pixel-shuffle order in the converted program shows up as a
mismatch. fp16 programs are emulated faithfully at op boundaries: every op whose output the program declares
fp16 has its result rounded to fp16 (arithmetic inside an op runs in fp32, as on Apple's GPU).
Only the ops a plain SR net converts to are executable; any other op fails verification by name.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from memsr_deploy.errors import MemsrError

from .coreml_package import import_coremltools, shapes_of
from .verify import Runner

WEIGHTS_DIR = "Data/com.apple.CoreML/weights"


def load_program(path: Path):
    """The pymil Program stored in a saved .mlpackage, weights read from its blob file."""
    ct = import_coremltools()
    from coremltools.converters.mil.frontend.milproto.load import load
    spec = ct.models.MLModel(str(path), skip_model_load=True).get_spec()
    if spec.WhichOneof("Type") != "mlProgram":
        raise MemsrError("not an ML Program", path)
    return load(spec, spec.specificationVersion, str(Path(path) / WEIGHTS_DIR))


def op_counts(path: Path) -> dict:
    """Op census of the saved program (constants left out)."""
    counts: dict[str, int] = {}
    for op in load_program(path).functions["main"].operations:
        if op.op_type != "const":
            counts[op.op_type] = counts.get(op.op_type, 0) + 1
    return counts


def _dtype_name(var) -> str:
    from coremltools.converters.mil.mil import types
    return types.builtin_to_string(var.dtype)


def _round(arr: torch.Tensor, dtype: str) -> torch.Tensor:
    if dtype == "fp16":
        return arr.to(torch.float16).to(torch.float32)
    return arr


def _conv(x, weight, bias=None, strides=(1, 1), pad_type="valid", pad=(0, 0, 0, 0), dilations=(1, 1),
          groups=1):
    kh, kw = weight.shape[2:]
    dil = [int(d) for d in dilations]
    if pad_type == "custom":
        top, bottom, left, right = (int(p) for p in pad)
    elif pad_type == "valid":
        top = bottom = left = right = 0
    elif pad_type == "same" and all(int(s) == 1 for s in strides):
        th, tw = (kh - 1) * dil[0], (kw - 1) * dil[1]
        top, bottom, left, right = th // 2, th - th // 2, tw // 2, tw - tw // 2
    else:
        raise MemsrError(f"conv pad_type {pad_type!r} with strides {list(strides)} is not supported here")
    x = F.pad(x, (left, right, top, bottom))
    return F.conv2d(x, weight, bias, stride=[int(s) for s in strides], dilation=dil, groups=int(groups))


def _depth_to_space(x, block_size):
    n, c, h, w = x.shape
    b = int(block_size)
    x = x.reshape(n, b, b, c // (b * b), h, w).permute(0, 3, 4, 1, 5, 2)  # DCR
    return x.reshape(n, c // (b * b), h * b, w * b)


def _cast(x, dtype):
    return x  # rounding to the target type happens below, driven by the output var's declared type


OPS = {
    "conv": _conv,
    "relu": lambda x: F.relu(x),
    "pixel_shuffle": lambda x, upscale_factor: F.pixel_shuffle(x, int(upscale_factor)),
    "depth_to_space": _depth_to_space,
    "add": lambda x, y: x + y,
    "sub": lambda x, y: x - y,
    "mul": lambda x, y: x * y,
    "real_div": lambda x, y: x / y,
    "cast": _cast,
    "identity": lambda x: x,
}


def _value(var, env):
    if var.name in env:
        return env[var.name]
    if var.val is None:
        raise MemsrError(f"program reads {var.name!r} before it is computed")
    val = var.val
    if isinstance(val, np.ndarray) and val.dtype.kind == "f":
        return torch.from_numpy(val.astype(np.float32))
    if isinstance(val, (np.floating, float)):
        return torch.tensor(float(val))
    if isinstance(val, np.ndarray) and val.ndim == 0:
        return val.item()
    return val


class MilProgramRunner(Runner):
    def __init__(self, path: Path):
        ct = import_coremltools()
        self.program = load_program(path)
        self.function = self.program.functions["main"]
        self.shapes = shapes_of(path)
        self.input_name = next(iter(self.function.inputs))
        self.input_dtype = _dtype_name(self.function.inputs[self.input_name])
        self.output_name = self.function.outputs[0].name
        unknown = sorted({op.op_type for op in self.function.operations} - set(OPS) - {"const"})
        if unknown:
            raise MemsrError(f"Core ML program uses ops the verifier cannot execute: {unknown}", path)
        self.description = (f"coremltools {ct.__version__} MIL program read back from the .mlpackage, "
                            "executed op by op with torch (fp16 rounded at op outputs)")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        env = {self.input_name: _round(torch.from_numpy(np.ascontiguousarray(x, np.float32)), self.input_dtype)}
        with torch.no_grad():
            for op in self.function.operations:
                if op.op_type == "const":
                    continue
                args = {k: _value(v, env) for k, v in op.inputs.items()}
                out = OPS[op.op_type](**args)
                env[op.outputs[0].name] = _round(out, _dtype_name(op.outputs[0]))
        return env[self.output_name].numpy().astype(np.float32)
