"""ncnn as a reference backend for the benchmark (issue 15: "ncnn as the peer"), never a dependency of memsr.

The plain student is traced to TorchScript and converted by the ``pnnx`` converter (the binary the ``pnnx`` wheel
ships) into an ncnn .param/.bin pair in a temporary folder at benchmark time; nothing is committed. The pair runs
through the ``ncnn`` Python binding behind the runtime's ``Backend`` interface, so the benchmark times it with the
same tiler, tiles and threads as every other backend.

fp32 only: ncnn's int8 path needs a calibration table from ``ncnn2table`` and weights quantised by ``ncnn2int8``,
command-line tools that neither the ``ncnn`` nor the ``pnnx`` wheel ships.
"""
from __future__ import annotations

import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np

from memsr_deploy.errors import MemsrError
from memsr_deploy.runtime.backends.base import Backend, Capabilities, runtime_failure

INT8_TOOLS = ("ncnn2table", "ncnn2int8")
# The spatial size pnnx traces at; a conv-only net converts shape-free (pnnx reports input [1,3,?,?]).
TRACE_HW = (64, 64)


def missing() -> str | None:
    """Why the ncnn row cannot be measured here (a missing package), or None."""
    from importlib.util import find_spec
    absent = [p for p in ("ncnn", "pnnx") if find_spec(p) is None]
    if absent:
        return (f"the {' and '.join(absent)} package{'s are' if len(absent) > 1 else ' is'} not installed "
                "(pip install memsr[bench] to add the reference row)")
    return None


def int8_missing() -> str:
    """Why there is no ncnn int8 row."""
    found = [t for t in INT8_TOOLS if shutil.which(t)]
    if len(found) == len(INT8_TOOLS):
        return "ncnn int8 needs a calibration table (ncnn2table) and ncnn2int8; both are on PATH but their use " \
               "is not automated here"
    return "ncnn int8 needs a calibration table (ncnn2table) and ncnn2int8, which the ncnn and pnnx pip wheels " \
           "do not ship"


def convert(model, work: Path) -> tuple[Path, Path, object]:
    """Trace the plain net of ``model`` (path, stem or bundled name) and convert it with pnnx in ``work``.
    Returns the ncnn .param and .bin paths and the model description."""
    import pnnx
    import torch

    from memsr_deploy.formats.model_file import load_model
    net, desc = load_model(model)
    if not desc.is_plain:
        raise MemsrError("the ncnn reference converts plain nets only", desc.path)
    if not desc.input.is_identity:
        # the backend feeds [0, 1] pixels; a normalising net would need the same (x - mean) / norm in front
        raise MemsrError("the ncnn reference expects an identity input spec", desc.path)
    work.mkdir(parents=True, exist_ok=True)
    pt, param, binf = work / "model.pt", work / "model.ncnn.param", work / "model.ncnn.bin"
    with torch.no_grad(), warnings.catch_warnings():
        # pnnx reads TorchScript; torch's deprecation notice for jit.trace is not the user's concern here
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.trace(net.eval(), torch.rand(1, 3, *TRACE_HW)).save(str(pt))
    # The binary directly, not pnnx.convert(): that ignores the converter's exit status and imports the Python
    # module it generates. fp16=0 keeps the weights float32 (pnnx stores fp16 by default).
    cmd = [pnnx.EXEC_PATH, str(pt), f"inputshape=[1,3,{TRACE_HW[0]},{TRACE_HW[1]}]f32", "fp16=0",
           f"ncnnparam={param}", f"ncnnbin={binf}"]
    res = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
    if res.returncode != 0 or not param.exists() or not binf.exists():
        tail = (res.stderr or res.stdout).strip().splitlines()[-1:] or ["no output"]
        raise MemsrError(f"pnnx failed to convert the model (exit {res.returncode}: {tail[0]})", desc.path)
    return param, binf, desc


def _io_names(param: Path) -> tuple[str, str]:
    """The blob names of the Input layer and of the last layer's output, read from the .param text."""
    lines = [ln.split() for ln in param.read_text().splitlines()[2:] if ln.strip()]
    inputs = [ln for ln in lines if ln[0] == "Input"]
    if len(inputs) != 1:
        raise MemsrError(f"{len(inputs)} Input layers; one image input expected", param)
    n_in, n_out = int(lines[-1][2]), int(lines[-1][3])
    return inputs[0][4], lines[-1][4 + n_in + n_out - 1]


class NcnnBackend(Backend):
    """An ncnn .param/.bin pair of a plain net: float32 NCHW [0, 1] in, float32 NCHW out, one window per
    extraction (ncnn Mats have no batch axis)."""
    name = "ncnn"

    def __init__(self, param: Path, binf: Path, desc, threads: int | None = None, winograd: bool = True):
        import ncnn
        self.desc, self.source = desc, str(param)
        self.net = ncnn.Net()
        opt = self.net.opt
        opt.num_threads = int(threads) if threads else (ncnn.get_cpu_count() or 1)
        opt.use_winograd_convolution = winograd
        # float32 storage and arithmetic throughout: the row compares exact fp32 backends
        opt.use_fp16_storage = opt.use_fp16_packed = opt.use_fp16_arithmetic = False
        opt.use_bf16_storage = False
        opt.use_int8_inference = False
        if self.net.load_param(str(param)) != 0 or self.net.load_model(str(binf)) != 0:
            raise MemsrError("ncnn cannot load the converted model", param)
        self.input_name, self.output_name = _io_names(param)
        self.caps = Capabilities(scale=desc.scale, halo=desc.receptive_radius, max_batch=1)

    def run(self, x: np.ndarray) -> np.ndarray:
        import ncnn
        outs = []
        for window in x:
            a = np.ascontiguousarray(window, dtype=np.float32)
            ex = self.net.create_extractor()
            try:
                ex.input(self.input_name, ncnn.Mat(a))
                rc, y = ex.extract(self.output_name)
            except Exception as e:  # the binding's own exception types
                raise runtime_failure(e, "ncnn", self.source) from None
            if rc != 0:
                raise MemsrError(f"ncnn failed to run the model (extract returned {rc})", self.source)
            outs.append(np.array(y, dtype=np.float32))
        return self.check_output(x, np.stack(outs))

    def close(self) -> None:
        self.net.clear()


def max_abs_diff_vs_torch(model, backend: NcnnBackend, hw: tuple[int, int] = (48, 72), seed: int = 0) -> float:
    """Largest |ncnn - PyTorch| over a random float image (both fp32, no tiling): the conversion check."""
    import torch

    from memsr_deploy.formats.model_file import load_model
    net, _ = load_model(model)
    x = np.random.default_rng(seed).random((1, 3, *hw), dtype=np.float32)
    with torch.no_grad():
        ref = net.eval()(torch.from_numpy(x)).numpy()
    return float(np.abs(backend.run(x) - ref).max())
