"""ncnn as a reference backend for the benchmark (issue 15: "ncnn as the peer").

The plain student's ncnn .param/.bin pair is written straight from its description by
``memsr_deploy.formats.ncnn_graph`` (the writer ``memsr-export --target ncnn`` uses; no TorchScript trace, no pnnx)
and runs through the runtime's ncnn backend (``memsr_deploy.runtime.backends.ncnn_backend``), so the benchmark
times it with the same tiler, tiles and threads as every other backend. fp32 and int8: the int8 pair takes the
description's ``int8_activation_ranges`` and the per-channel weight grid, ncnn's own int8 kernels run it (no
ncnn2table / ncnn2int8 needed).

The ``ncnn`` package is optional (``pip install memsr[bench]``); without it the rows say so.
"""
from __future__ import annotations

import numpy as np

from memsr_deploy.formats.onnx_graph import INT8_RANGES_KEY
from memsr_deploy.runtime.backends.ncnn_backend import NcnnModelBackend
from memsr_deploy.runtime.backends.ncnn_backend import missing as _missing


def missing() -> str | None:
    """Why the ncnn rows cannot be measured here (the package is absent), or None."""
    why = _missing()
    return None if why is None else why.replace("pip install 'memsr[ncnn]'", "pip install memsr[bench]")


def precision_missing(desc, precision: str) -> str | None:
    """Why the model has no ncnn row at ``precision`` (int8 needs the activation ranges of the description int8
    runs read: its int8 sibling's where it names one)."""
    from memsr_deploy.formats.model_file import int8_model, read_description
    if precision == "int8" and (sibling := int8_model(desc)) is not None:
        desc = read_description(sibling)
    if precision == "int8" and not desc.extra.get(INT8_RANGES_KEY):
        return f"the model has no {INT8_RANGES_KEY} (python -m memsr_deploy.method.int8_ranges MODEL)"
    return None


def open_ncnn(model, precision: str = "fp32", threads: int | None = None, winograd: bool = True):
    """The runtime's ncnn backend for a plain model file (path, stem or bundled name)."""
    from memsr_deploy.formats.registry import names, resolve
    if str(model) in names():
        model = resolve(str(model))
    return NcnnModelBackend(model, threads, precision, winograd)


def max_abs_diff_vs_torch(model, backend, hw: tuple[int, int] = (48, 72), seed: int = 0) -> float:
    """Largest |ncnn - PyTorch fp32| over a random float image (no tiling), in [0, 1] units: the conversion
    check (fp32: round-off; int8: what quantisation costs at worst)."""
    import torch

    from memsr_deploy.formats.model_file import load_model
    from memsr_deploy.formats.registry import names, resolve
    net, desc = load_model(resolve(str(model)) if str(model) in names() else model)
    vr = float(desc.input.value_range)
    x = np.random.default_rng(seed).random((1, 3, *hw), dtype=np.float32)
    with torch.no_grad():
        ref = net.eval()(torch.from_numpy(x * np.float32(vr))).numpy() / vr
    return float(np.abs(backend.run(x) - ref).max())
