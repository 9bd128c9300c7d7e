"""ncnn backend (CPU, the ``ncnn`` Python binding): an exported .param/.bin pair (its sidecar says how to feed it),
or a plain model file whose pair is written from its description (``formats.ncnn_graph``; fp32, or int8 with the
description's ranges). ncnn is optional (``pip install 'memsr[ncnn]'``); ``memsr-export --target ncnn`` verifies
through this backend and the runtime benchmark times it.

ncnn Mats have no batch axis: a batch of windows runs one extraction per window.

fp16: ncnn's own default turns on fp16 storage and arithmetic on every CPU that reports fp16 (ARMv8.2+ phones,
qemu's default aarch64 CPU), so a stock ncnn app runs an fp32 export with fp16 activations. memsr runs fp32 unless
asked (``fp16=True``, ``memsr-upscale --ncnn-fp16``): exact, and the same on every CPU. On CPUs without fp16
(x86-64, ARMv8.0) ncnn ignores the option and the run is fp32. What fp16 costs on ARM is measured under qemu by
benchmarks/arm64_check.py and recorded in the sidecar (verification.arm64).
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from ...errors import MemsrError
from ...formats.onnx_graph import activation_bytes
from .artefact import Artefact
from .base import Backend, Capabilities, runtime_failure
from .quiet import quiet

PACKAGE = "ncnn==1.0.20261020"


def missing() -> str | None:
    """Why ncnn cannot run here (its package is absent), or None."""
    from importlib.util import find_spec
    if find_spec("ncnn") is None:
        return f"the ncnn package is not installed (pip install 'memsr[ncnn]' or {PACKAGE})"
    return None


def fp16_effective() -> bool:
    """Whether ncnn's fp16 options change anything on this CPU (it has fp16 arithmetic)."""
    import ncnn
    return bool(ncnn.cpu_support_arm_asimdhp())


def _net(param: Path, binf: Path, threads: int | None, int8: bool, winograd: bool, fp16: bool = False):
    why = missing()
    if why:
        raise MemsrError(why)
    import ncnn
    net = ncnn.Net()
    opt = net.opt
    opt.num_threads = int(threads) if threads else (ncnn.get_cpu_count() or 1)
    opt.use_winograd_convolution = winograd
    # ncnn stores weights and activations as fp16 / bf16 by default where the CPU has them: that would round the
    # fp32 model (and the int8 model's float parts) far beyond fp32 precision; fp16 only when asked for
    opt.use_fp16_storage = opt.use_fp16_packed = opt.use_fp16_arithmetic = bool(fp16)
    opt.use_bf16_storage = opt.use_bf16_packed = False
    opt.use_int8_inference = int8
    with quiet():  # ncnn prints its own reasons on stderr; ours follow as one line
        if net.load_param(str(param)) != 0:
            raise MemsrError("ncnn cannot read this .param file", param)
        if net.load_model(str(binf)) != 0:
            raise MemsrError("ncnn cannot read this .bin file (truncated, or the weights of another .param)", binf)
    return net


def _layers(text: str, source):
    from ...formats.ncnn_graph import io_blobs, read_param
    try:
        layers = read_param(text)
        return layers, io_blobs(layers)
    except ValueError as e:
        raise MemsrError(f"not a memsr ncnn model: {e}", source) from None


class _Extractor:
    """One ncnn net: float32 (N, 3, H, W) -> (N, 3, sH, sW), one window at a time."""

    def __init__(self, net, blobs: tuple[str, str], source):
        self.net, (self.input, self.output), self.source = net, blobs, source

    def __call__(self, x: np.ndarray) -> np.ndarray:
        import ncnn
        outs = []
        for window in x:
            # a copy ncnn owns: a Mat over numpy's buffer crashes the in-place input normalisation (Scale). The
            # Mat does not keep its array alive, so the array is named until the copy is made: a temporary (any
            # window that is not contiguous already) would be freed first and the copy read freed memory.
            buf = np.ascontiguousarray(window, dtype=np.float32)
            mat = ncnn.Mat(buf).clone()
            del buf
            ex = self.net.create_extractor()
            try:
                ex.input(self.input, mat)
                rc, y = ex.extract(self.output)
            except Exception as e:  # the binding's own exception types
                raise runtime_failure(e, "ncnn", self.source) from None
            if rc != 0:
                raise MemsrError(f"ncnn failed to run the model (extract returned {rc})", self.source)
            outs.append(np.array(y, dtype=np.float32))
        return np.stack(outs)


class NcnnBackend(Backend):
    """An exported ncnn artefact: ``file`` (.param) and ``data_file`` (.bin) of its sidecar, both checksummed."""
    name = "ncnn"

    def __init__(self, sidecar, threads: int | None = None, winograd: bool = True, fp16: bool = False):
        self.art = Artefact(sidecar, "ncnn")   # reads the sidecar and checks both files against their checksums
        self.desc, self.source = self.art.desc, self.art.path
        sc = self.art.sc
        param, binf = sc.artefact_path(), sc.data_path()
        layers, blobs = _layers(param.read_text(errors="replace"), param)
        from ...formats.ncnn_graph import int8_convolutions
        quantised = int8_convolutions(layers)[0] > 0
        if quantised != (sc.precision == "int8"):
            raise MemsrError(f"the .param {'has' if quantised else 'has no'} int8 convolutions but the sidecar "
                             f"says {sc.precision} (artefact and sidecar do not match)", param)
        if self.art.input.layout != "NCHW" or self.art.output.layout != "NCHW":
            raise MemsrError("an ncnn artefact is NCHW in and out; the sidecar says otherwise", self.source)
        self.run_windows = _Extractor(_net(param, binf, threads, quantised, winograd, fp16), blobs, str(param))
        self.caps = self.art.capabilities(max_batch=None)

    def run(self, x: np.ndarray) -> np.ndarray:
        y = self.run_windows(self.art.input.encode(x))
        return self.check_output(x, self.art.output.decode(y))

    def close(self) -> None:
        self.run_windows.net.clear()


class NcnnModelBackend(Backend):
    """A plain model file on ncnn, its pair written from the description (no export step, no torch, no pnnx).
    ``winograd``: ncnn's Winograd 3x3 kernels (its default; off for the direct / im2col ones)."""
    name = "ncnn"

    def __init__(self, model=None, threads: int | None = None, precision: str = "fp32", winograd: bool = True,
                 arrays=None, fp16: bool = False):
        from ...formats.ncnn_graph import build
        if arrays is None:
            from ...formats.model_file import load_plain_arrays
            arrays = load_plain_arrays(model, precision)
        self.desc, convs = arrays
        self.source = str(self.desc.path)
        self.precision = precision
        pair = build(self.desc, convs, precision)
        # ncnn reads weights from a file path (its in-memory loader may keep pointers into the buffer)
        with tempfile.TemporaryDirectory(prefix="memsr_ncnn_") as work:
            param, binf = Path(work) / "model.param", Path(work) / "model.bin"
            param.write_text(pair.param)
            binf.write_bytes(pair.bin)
            _, blobs = _layers(pair.param, self.source)
            net = _net(param, binf, threads, precision == "int8", winograd, fp16)
        self.run_windows = _Extractor(net, blobs, self.source)
        # between the int8 convs activations are int8
        self.caps = Capabilities(scale=self.desc.scale, halo=self.desc.receptive_radius,
                                 dtype_bytes=activation_bytes(self.desc, precision))

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.check_output(x, self.run_windows(x))

    def close(self) -> None:
        self.run_windows.net.clear()


class NcnnPairBackend(Backend):
    """A bare .param/.bin pair with no sidecar (a published model, e.g. Real-ESRGAN's or RealSR's), fp32: float
    RGB in [0, 1] in and out, as their ncnn apps feed them (x / 255 in, y * 255 out). Scale and exact halo come
    from the .param's layer list (``formats.ncnn_receptive``); ``halo`` overrides the halo (an app's own
    padding, which may be approximate)."""
    name = "ncnn"

    def __init__(self, param, binf, threads: int | None = None, halo: int | None = None, winograd: bool = True):
        from ...formats.ncnn_receptive import radius
        param, binf = Path(param), Path(binf)
        self.source = str(param)
        text = param.read_text(errors="replace")
        _, blobs = _layers(text, param)
        self.radius = radius(text)
        if self.radius.scale is None:
            raise MemsrError(f"cannot tile this model ({self.radius.reason})", param)
        if halo is None and not self.radius.finite:
            raise MemsrError(f"{self.radius.reason}: give a halo", param)
        self.run_windows = _Extractor(_net(param, binf, threads, False, winograd), blobs, self.source)
        self.caps = Capabilities(scale=self.radius.scale, halo=self.radius.halo if halo is None else int(halo))

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.check_output(x, self.run_windows(x))

    def close(self) -> None:
        self.run_windows.net.clear()
