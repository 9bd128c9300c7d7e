"""``--backend auto`` for a plain model in fp32: the faster of ONNX Runtime and LiteRT, measured on this machine.

Neither runtime wins everywhere: on this project's 2-core AVX-512 machine LiteRT (XNNPACK) led at 2 threads on
widths up to 32 and ONNX Runtime at width 48 and at 1 thread (benchmarks/results/runtime.md). Both are exact
(within one 8-bit level of PyTorch), so for tiles the choice is speed alone (strips and whole images take the
leaner ONNX Runtime without measuring: ``open_backend(lean=True)``), and speed depends on the architecture, the
thread count and the CPU, not on the weights. The first run of an architecture times the tile loop itself on
a small image on each, the runs interleaved, and remembers the winner in a small JSON file under the user's
cache folder; later runs read it.

The probe costs about 96 windows (8 rounds of 6 windows on each runtime): 30 s for the bundled x4 student here,
against 1 s for the 96x96 photo it was first run on. So a run probes only when it brings at least
1 / PROBE_SHARE times the probe's windows of work; a smaller job takes ONNX Runtime without measuring or
remembering anything, and the first run of a model costs at most 1 + PROBE_SHARE times a later one.
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
# LiteRT must beat ONNX Runtime by this much to be chosen: ONNX Runtime holds a little less memory (12 MP x2 end
# to end: 217 MiB peak RSS against LiteRT's 241). Small, because the gaps are: on the bundled x2 student LiteRT
# is 5-7% faster over whole photos, which a 5% margin let a noisy probe throw away.
MARGIN = 0.02
PROBE_TILES = (2, 3)   # rows x columns of default-size tiles in the probe image: interior and border windows
ROUNDS = 7             # timed rounds of the probe (each runtime once per round), after one warm-up round
PROBE_SHARE = 0.5      # the probe may cost at most this share of the run's own windows
# in the cache key, so that winners remembered from the earlier one-window probe are measured again
PROBE = "probe=tile-loop"
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
    return f"{arch}|threads={threads or os.cpu_count()}|{_cpu()}|{_versions(names)}|{PROBE}"


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


def _probe_picture(tile: int) -> np.ndarray:
    """Photo-like 8-bit content (smooth gradients and fine texture): the speed does not depend on it, but a
    constant image would hide nothing either way."""
    h, w = PROBE_TILES[0] * tile, PROBE_TILES[1] * tile
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rng = np.random.default_rng(0)
    rgb = np.stack([xx / w, yy / h, 0.5 + 0.5 * np.sin((xx + yy) / 7.0)], axis=2) * 200
    return np.clip(rgb + rng.normal(0, 12, rgb.shape), 0, 255).astype(np.uint8)


def seconds_per_window(backends: dict, repeat: int = ROUNDS) -> dict[str, list[float]]:
    """Seconds per window of each backend through the tile loop itself (runtime.tiled: window extraction, the
    backend's own layout, the call, the 8-bit conversion) on a small image of default-size tiles, one figure per
    round; each round runs every backend once, in turn. Timing the call alone read the two runtimes level (25.3 /
    25.7 ms) where whole photos ran 5-7% faster on LiteRT."""
    from ..bands import Converter
    from ..tiled import TiledRunner
    from ...imageio import Picture
    first = next(iter(backends.values()))
    picture = Picture(_probe_picture(first.caps.default_tile))
    runners = {name: TiledRunner(b, b.caps.default_tile, None, 1, Converter(False, np.uint8, True))
               for name, b in backends.items()}
    n_windows = PROBE_TILES[0] * PROBE_TILES[1]
    times: dict[str, list[float]] = {name: [] for name in backends}
    for rep in range(repeat + 1):   # the first round is a warm-up: first calls pay for set-up
        for name, runner in runners.items():
            t = time.perf_counter()
            for _ in runner.bands(picture):
                pass
            if rep:
                times[name].append((time.perf_counter() - t) / n_windows)
    return times


def litert_ratio(times: dict[str, list[float]]) -> float:
    """LiteRT's time over ONNX Runtime's: the median of the rounds' ratios. The two runs of a round are a third
    of a second apart, so a slow spell of a shared machine that slows both leaves their ratio, and one that
    catches a single run spoils one round, not the verdict."""
    return float(np.median([lite / ort for lite, ort in zip(times["litert"], times["onnxruntime"])]))


def remembered(desc: ModelDescription, threads: int | None) -> str | None:
    """The winner measured before for this architecture here, without measuring (None: not measured yet)."""
    names = installed()
    known = _read().get(key(desc, threads, names), {}).get("backend") if len(names) > 1 else None
    return known if known in names else None


def worth_probing(work: int | None, tile: int, runtimes: int = len(FP32_RUNTIMES)) -> bool:
    """Whether a run of ``work`` LR pixels (None: unknown, taken as large) pays for the probe: its windows
    (``tile`` px, the default tile) at least 1 / PROBE_SHARE times the probe's."""
    if work is None:
        return True
    probe = (ROUNDS + 1) * runtimes * PROBE_TILES[0] * PROBE_TILES[1]
    return work / float(tile) ** 2 * PROBE_SHARE >= probe


def choose(desc: ModelDescription, threads: int | None, open_named, log=print, work: int | None = None):
    """The opened fp32 backend for ``desc``: the remembered winner, or, for a run of ``work`` LR pixels large
    enough to pay for it (``worth_probing``), both timed now and the faster kept; a smaller run takes ONNX
    Runtime and remembers nothing.

    ``open_named(name)`` opens a backend by runtime name. Returns None when neither runtime is installed."""
    names = installed()
    if len(names) < 2:
        return open_named(names[0]) if names else None
    known = remembered(desc, threads)
    if known is not None:
        return open_named(known)
    k = key(desc, threads, names)
    ort = open_named("onnxruntime")
    if not worth_probing(work, ort.caps.default_tile, len(names)):
        return ort
    log(f"backend auto: timing ONNX Runtime and LiteRT on this model's architecture, once for this machine "
        f"({ROUNDS + 1} rounds of {PROBE_TILES[0] * PROBE_TILES[1]} windows each)")
    opened = {name: ort if name == "onnxruntime" else open_named(name) for name in names}
    times = seconds_per_window(opened, ROUNDS)
    ratio = litert_ratio(times)
    best = "litert" if ratio < 1 - MARGIN else "onnxruntime"
    for name, b in opened.items():
        if name != best:
            b.close()
    medians = {n: float(np.median(v)) for n, v in times.items()}
    _remember(k, {"backend": best, "litert_over_onnxruntime": round(ratio, 4),
                  "seconds_per_window": {n: round(s, 5) for n, s in medians.items()}})
    log(f"backend auto: {best} (per window of the tile loop: ONNX Runtime {medians['onnxruntime'] * 1e3:.1f} ms, "
        f"LiteRT {medians['litert'] * 1e3:.1f} ms, ratio {ratio:.3f}; remembered in {cache_file()})")
    return opened[best]
