"""``--backend auto`` for a plain model in fp32: the faster of ONNX Runtime and LiteRT, measured on this machine.

Neither runtime wins everywhere: on this project's 2-core AVX-512 machine LiteRT (XNNPACK) led at 2 threads on
widths up to 32 and ONNX Runtime at width 48 and at 1 thread (benchmarks/results/runtime.md). Both are exact
(within one 8-bit level of PyTorch), so the choice is speed alone, and speed depends on the architecture, the
thread count and the CPU, not on the weights. The first run of an architecture times one default-size window
on each and remembers the winner in a small JSON file under the user's cache folder; later runs read it.
"""
from __future__ import annotations

import json
import os
import time
from importlib.util import find_spec
from pathlib import Path

import numpy as np

from ...formats.model_file import ModelDescription
from ...outputs.atomic import write_text
from ..host import cpu_model

FP32_RUNTIMES = (("onnxruntime", "onnxruntime"), ("litert", "ai_edge_litert"))
# LiteRT must beat ONNX Runtime by this much to be chosen: the two are often within a few % of each other, and
# ONNX Runtime holds less memory (12 MP x2 end to end: 234 MB peak RSS against LiteRT's 252-256 MB)
MARGIN = 0.05
CACHE_NAME = "fp32_backends.json"


def installed() -> list[str]:
    return [name for name, pkg in FP32_RUNTIMES if find_spec(pkg) is not None]


def cache_file() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "memsr" / CACHE_NAME


def _cpu() -> str:
    import platform
    return cpu_model() or platform.processor() or platform.machine()


def _versions(names) -> str:
    from importlib.metadata import PackageNotFoundError, version
    out = []
    for name, pkg in FP32_RUNTIMES:
        if name in names:
            try:
                out.append(f"{pkg}={version(pkg.replace('_', '-'))}")
            except PackageNotFoundError:
                out.append(f"{pkg}=?")
    return ",".join(out)


def key(desc: ModelDescription, threads: int | None, names) -> str:
    """What the speed depends on: architecture, threads, CPU and runtime versions (not the weights)."""
    arch = f"x{desc.scale}:{'-'.join(f'{w}{a[0]}' for w, a in zip(desc.layer_widths, desc.layer_acts))}"
    return f"{arch}|threads={threads or os.cpu_count()}|{_cpu()}|{_versions(names)}"


def _read() -> dict:
    try:
        data = json.loads(cache_file().read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _remember(k: str, entry: dict) -> None:
    """Best effort: a cache folder that cannot be written only means measuring again next time."""
    data = _read()
    data[k] = entry
    try:
        write_text(cache_file(), json.dumps(data, indent=1, sort_keys=True))
    except OSError:
        pass


def seconds_per_window(backend, repeat: int = 8) -> float:
    """Median of ``repeat`` back-to-back runs of one default-size window, after a warm-up run (first runs pay
    for set-up): a tiled image is a long run of windows, which the median describes better than the best."""
    side = backend.caps.default_tile + 2 * backend.caps.halo
    # the call the tile loop makes: a channels-last backend gets its windows in NHWC (tiled.py)
    nhwc = backend.caps.channels_last
    x = np.random.default_rng(0).random((1, side, side, 3) if nhwc else (1, 3, side, side), dtype=np.float32)
    call = backend.run_nhwc if nhwc else backend.run
    call(x)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        call(x)
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def choose(desc: ModelDescription, threads: int | None, open_named, log=print):
    """The opened fp32 backend for ``desc``: the remembered winner, or both timed now and the faster kept.

    ``open_named(name)`` opens a backend by runtime name. Returns None when neither runtime is installed."""
    names = installed()
    if len(names) < 2:
        return open_named(names[0]) if names else None
    k = key(desc, threads, names)
    known = _read().get(k, {}).get("backend")
    if known in names:
        return open_named(known)
    opened = {name: open_named(name) for name in names}
    timed = {name: seconds_per_window(b) for name, b in opened.items()}
    ort, lite = timed["onnxruntime"], timed["litert"]
    best = "litert" if lite < ort * (1 - MARGIN) else "onnxruntime"
    for name, b in opened.items():
        if name != best:
            b.close()
    _remember(k, {"backend": best, "seconds_per_window": {n: round(s, 5) for n, s in timed.items()}})
    side = opened[best].caps.default_tile + 2 * opened[best].caps.halo
    log(f"backend auto: {best} (one {side}x{side} window: ONNX Runtime {ort * 1e3:.0f} ms, LiteRT {lite * 1e3:.0f} "
        f"ms; remembered in {cache_file()})")
    return opened[best]
