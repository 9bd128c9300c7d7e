"""The benchmark matrix: which artefacts, delegates, thread counts and input sizes, and the command for each.

A *size* is the model's input window H x W in LR pixels, halo included (as ``--input_layer_shape`` gives it);
the core tile it produces is (H - 2*halo) x (W - 2*halo). Fixed-shape artefacts are run at their own shape;
dynamic ones at each ``--sizes`` entry, or at the sidecar's default tile + 2*halo when none is given.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from memsr_deploy.errors import MemsrError
from memsr_deploy.formats.sidecar import read_sidecar, Sidecar

DELEGATES = ("cpu", "gpu", "nnapi")
DELEGATE_FLAGS = {
    "cpu": ["--use_xnnpack=true"],
    # XNNPACK off so that the tool's delegation messages (and the figures) are the accelerator's alone.
    "gpu": ["--use_gpu=true", "--use_xnnpack=false"],
    "nnapi": ["--use_nnapi=true", "--use_xnnpack=false"],
}


@dataclass
class Model:
    path: Path            # the .tflite
    sc: Sidecar
    name: str
    role: str             # teacher | student | plain
    input_name: str
    dynamic: bool

    @property
    def halo(self) -> int:
        return int(self.sc.halo)

    @property
    def precision(self) -> str:
        return self.sc.precision


@dataclass
class Config:
    model: Model
    delegate: str
    threads: int
    size: tuple[int, int]         # input window H, W (halo included)
    problem: str = ""             # why this cell cannot run (reported as its status)

    @property
    def tile(self) -> tuple[int, int]:
        h = self.model.halo
        return self.size[0] - 2 * h, self.size[1] - 2 * h


def parse_list(text: str, what: str, conv=str) -> list:
    items = [t.strip() for t in str(text).split(",") if t.strip()]
    if not items:
        raise MemsrError(f"empty {what} list", text)
    try:
        return [conv(t) for t in items]
    except ValueError:
        raise MemsrError(f"bad {what} list (expected e.g. {_EXAMPLES[what]})", text) from None


_EXAMPLES = {"delegate": "cpu,gpu,nnapi", "thread": "1,4", "size": "256x256,128x128", "photo": "3000x4000"}


def parse_size(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"(\d+)(?:[xX](\d+))?", text.strip())
    if not m:
        raise ValueError(text)
    h = int(m.group(1))
    w = int(m.group(2)) if m.group(2) else h
    if h < 1 or w < 1:
        raise ValueError(text)
    return h, w


def parse_delegates(text: str) -> list[str]:
    ds = parse_list(text, "delegate", str.lower)
    bad = [d for d in ds if d not in DELEGATES]
    if bad:
        raise MemsrError(f"unknown delegate(s) {', '.join(bad)}; choose from {', '.join(DELEGATES)}", text)
    return list(dict.fromkeys(ds))


def parse_threads(text: str) -> list[int]:
    ts = parse_list(text, "thread", int)
    if any(t < 1 for t in ts):
        raise MemsrError("thread counts must be at least 1", text)
    return list(dict.fromkeys(ts))


def _tflite_input(path: Path) -> tuple[str, list[int]]:
    """Input tensor name and shape signature, read with LiteRT (the tool needs the name to resize)."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        raise MemsrError("LiteRT is not installed (pip install ai-edge-litert)") from None
    try:
        details = Interpreter(model_path=str(path)).get_input_details()
    except (ValueError, RuntimeError) as e:
        raise MemsrError(f"LiteRT cannot read the model ({str(e).splitlines()[0] if str(e) else e!r})", path) from None
    if len(details) != 1:
        raise MemsrError(f"model has {len(details)} inputs; one image input expected", path)
    d = details[0]
    return str(d["name"]), [int(v) for v in d.get("shape_signature", d["shape"])]


def load_model(path) -> Model:
    sc = read_sidecar(path)
    if sc.target != "tflite":
        raise MemsrError(f"sidecar is for target {sc.target!r}; the benchmark runs TFLite artefacts", sc.path)
    art = sc.artefact_path()
    name, sig = _tflite_input(art)
    if len(sig) != 4:
        raise MemsrError(f"model input has rank {len(sig)}; an NHWC image input expected", art)
    dynamic = any(v < 1 for v in sig[1:3])
    if not dynamic and sc.input_shape is not None and list(sig[1:3]) != [int(v) for v in sc.input_shape]:
        raise MemsrError(f"model input {sig[1:3]} does not match the sidecar's input_shape {sc.input_shape}", art)
    src = sc.source_model or {}
    return Model(path=art, sc=sc, name=str(src.get("name") or Path(sc.file).stem),
                 role=str(src.get("kind") or "?"), input_name=name, dynamic=dynamic)


def _size_problem(m: Model, size: tuple[int, int]) -> str:
    if min(size) - 2 * m.halo < 1:
        return f"size {size[0]}x{size[1]} leaves no core tile (halo {m.halo})"
    rng = m.sc.shape_range or {}
    lo, hi = rng.get("min"), rng.get("max")
    if lo and (size[0] < lo[0] or size[1] < lo[1]) or hi and (size[0] > hi[0] or size[1] > hi[1]):
        return f"size outside the model's shape range {lo}..{hi}"
    return ""


def sizes_for(m: Model, sizes: list[tuple[int, int]] | None) -> list[tuple[int, int]]:
    if not m.dynamic:
        if m.sc.input_shape is not None:
            return [(int(m.sc.input_shape[0]), int(m.sc.input_shape[1]))]
        raise MemsrError("fixed-shape model but the sidecar gives no input_shape", m.sc.path)
    if sizes:
        return list(sizes)
    edge = int(m.sc.tile) + 2 * m.halo
    return [(edge, edge)]


def build_matrix(models: list[Model], delegates: list[str], threads: list[int],
                 sizes: list[tuple[int, int]] | None) -> list[Config]:
    out = []
    for m in models:
        for size in sizes_for(m, sizes):
            for d in delegates:
                for t in threads:
                    out.append(Config(m, d, t, size, _size_problem(m, size)))
    return out


def tool_args(cfg: Config, graph: str, warmup: int, runs: int) -> list[str]:
    """benchmark_model flags for one cell (the host worker understands the same flags)."""
    args = [f"--graph={graph}", f"--num_threads={cfg.threads}", f"--warmup_runs={warmup}", f"--num_runs={runs}",
            "--report_peak_memory_footprint=true", *DELEGATE_FLAGS[cfg.delegate]]
    if cfg.model.dynamic:
        h, w = cfg.size
        args += [f"--input_layer={cfg.model.input_name}", f"--input_layer_shape=1,{h},{w},3"]
    return args
