"""The table of issue 15, as rows for ``runtime_bench.py --only default-path``: the default path of
``memsr-upscale`` end to end against PyTorch on one thread and libvips' cubic resize, compute throughput of every
backend and precision, and each backend's MAC rate as a fraction of this CPU's fp32 GEMM peak.

* End to end: ``memsr-upscale photo.jpg -o out.png`` (no flags) vs ``--backend torch --threads 1``, each as a
  subprocess (seconds, peak RSS = VmHWM), same image within one 8-bit level; ``vips resize`` (cubic) of the same
  photo to the same format when libvips is here (``vips`` on PATH or ``pyvips``).
* Compute: ``Upscaler.upscale_array`` on the decoded photo (no file I/O), per backend and precision: output MP/s,
  MAC/s (the plain net's 9 * Cin * Cout per LR pixel per conv) and the fraction of the GEMM peak.
* GEMM peak: numpy float32 matmul (n = 2048, best of 5) in a subprocess with ``OPENBLAS_CORETYPE`` and
  ``OPENBLAS_L2_SIZE`` unset (for that measurement only), at 1 thread and at the run's thread count.
* ncnn fp32 and int8 are reference rows (``ncnn_reference.py``: the .param/.bin pair written from the description,
  as ``memsr-export --target ncnn`` writes it, on the runtime's ncnn backend; Winograd on, int8 also off) at 1
  thread and the run's thread count, where the ``ncnn`` package is installed (``pip install memsr[bench]``); otherwise the rows
  say so.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

GEMM_N = 2048
_GEMM = """
import sys, time, numpy as np
n = int(sys.argv[1]); a = np.random.rand(n, n).astype(np.float32); b = np.random.rand(n, n).astype(np.float32)
a @ b
best = min((lambda t: (a @ b, time.perf_counter() - t)[1])(time.perf_counter()) for _ in range(5))
print(n ** 3 / best)
"""


def gemm_peak_macs(threads: int) -> float:
    """MAC/s of a float32 GEMM through numpy's BLAS with ``threads`` threads (its own process and environment)."""
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    env.update(OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    out = subprocess.run([sys.executable, "-c", _GEMM, str(GEMM_N)], env=env, capture_output=True, text=True,
                         check=True)
    return float(out.stdout.strip())


def macs_per_lr_pixel(desc) -> int:
    from memsr_deploy.formats.memory_budget import chain
    # a conv at r times the LR size (after an upsampler's shuffle) runs r * r times per LR pixel
    return sum(9 * cin * cout * r * r for cin, cout, r, _ in chain(desc))


def compute_rows(model, img: np.ndarray, threads: int, peak: dict) -> list[dict]:
    """Throughput of each backend / precision on the decoded photo, against the fp32 default."""
    from memsr_deploy.errors import MemsrError
    from memsr_deploy.runtime import open_backend
    # the default is whatever --backend auto runs here (fastest.py); the other fp32 runtime gets its own row
    default = open_backend(model=model, threads=threads)
    other = {"onnxruntime": "litert", "litert": "onnxruntime"}.get(default.name)
    cases = [("auto", "fp32", threads, "default"), ("torch", "fp32", 1, ""), ("torch", "fp32", threads, ""),
             *([(other, "fp32", threads, "")] if other else []), ("litert", "int8", threads, "--precision int8"),
             ("onnxruntime", "int8", threads, "")]
    rows, ref = [], None
    for backend, precision, n, note in cases:
        print(f"compute: {backend} {precision} {n} threads ...", file=sys.stderr, flush=True)
        try:
            b = default if backend == "auto" else open_backend(model=model, backend=backend, precision=precision,
                                                                threads=n)
        except MemsrError as e:
            rows.append({"backend": backend, "precision": precision, "threads": n, "error": str(e)})
            continue
        row, out = _timed_row(b, img, peak, ref, backend=b.name, precision=precision, threads=n, note=note)
        rows.append(row)
        if ref is None:
            ref = out
        del out
    rows += ncnn_rows(model, img, sorted({1, threads}), peak, ref)
    fp32 = next((r for r in rows if r.get("note") == "default"), None)
    for r in rows:
        if fp32 and "seconds" in r:
            r["speed_vs_default"] = round(fp32["seconds"] / r["seconds"], 2)
    return rows


def _timed_row(b, img: np.ndarray, peak: dict, ref, **row) -> tuple[dict, np.ndarray]:
    """One compute row: ``Upscaler.upscale_array`` of the whole photo on backend ``b`` (after a small warm-up
    call), its throughput and its largest 8-bit difference from ``ref`` (the default's output)."""
    from memsr_deploy.runtime import RunOptions, Upscaler
    up = Upscaler(b, RunOptions())
    up.upscale_array(img[:64, :64])   # session set-up and first-call costs out of the timing
    t0 = time.perf_counter()
    out = up.upscale_array(img)
    secs = time.perf_counter() - t0
    s = b.caps.scale
    macs = macs_per_lr_pixel(b.desc) * img.shape[0] * img.shape[1] / secs
    diff = None if ref is None else int(np.abs(out.astype(np.int16) - ref.astype(np.int16)).max())
    row.update({"seconds": round(secs, 3), "out_mp_per_s": round(img.shape[0] * img.shape[1] * s * s / 1e6 / secs, 3),
                "gmac_per_s": round(macs / 1e9, 2), "fraction_of_gemm_peak": round(macs / peak[row["threads"]], 3),
                "max_diff_vs_default_8bit": diff})
    return row, out


def ncnn_rows(model, img: np.ndarray, thread_counts: list[int], peak: dict, ref) -> list[dict]:
    """ncnn fp32 and int8 (the pair written from the description) at each thread count, timed as the other rows;
    each row carries the conversion check (largest float difference from PyTorch fp32). Winograd is ncnn's default;
    int8 is timed without it too (same output: on this x86 host ncnn's int8 Winograd kernels were 2.2x slower than
    its direct int8 ones for the bundled x2 student, 768 px, 1 thread)."""
    from memsr_bench import ncnn_reference
    from memsr_deploy.errors import MemsrError
    from memsr_deploy.formats.model_file import read_description
    from memsr_deploy.formats.registry import default_model, names, resolve
    why = ncnn_reference.missing()
    if why:
        return [{"backend": "ncnn", "precision": p, "error": "not measured: " + why} for p in ("fp32", "int8")]
    if model is None:
        model = default_model(2)
    desc = read_description(resolve(str(model)) if str(model) in names() else model)
    rows = []
    for precision, winograd in (("fp32", True), ("int8", True), ("int8", False)):
        why = ncnn_reference.precision_missing(desc, precision)
        if why:
            if winograd:
                rows.append({"backend": "ncnn", "precision": precision, "error": "not measured: " + why})
            continue
        note = "reference: written from the description, " + ("Winograd" if winograd else "Winograd off")
        for n in thread_counts:
            print(f"compute: ncnn {precision} {n} threads{'' if winograd else ', Winograd off'} ...",
                  file=sys.stderr, flush=True)
            try:
                b = ncnn_reference.open_ncnn(model, precision, threads=n, winograd=winograd)
            except MemsrError as e:
                rows.append({"backend": "ncnn", "precision": precision, "threads": n, "error": str(e)})
                continue
            try:
                check = ncnn_reference.max_abs_diff_vs_torch(model, b)
                row, out = _timed_row(b, img, peak, ref, backend="ncnn", precision=precision, threads=n, note=note)
            except MemsrError as e:
                rows.append({"backend": "ncnn", "precision": precision, "threads": n, "error": str(e)})
                continue
            finally:
                b.close()
            row["max_abs_diff_vs_torch_fp32"] = float(f"{check:.3g}")
            rows.append(row)
            del out
    return rows


def width_rows(model, img: np.ndarray, threads: int, peak: dict) -> list[dict]:
    """The default backend's MAC rate against the layer widths: the model itself and plain nets of its depth at
    uniform widths 16, 32 and 48 (random weights: speed does not depend on their values), on a 1536 x 1536 crop.
    CPU conv kernels pad channels to blocks of 16, so odd widths pay for channels they do not have."""
    import tempfile

    import torch

    from memsr_deploy.formats.model_file import save_model
    from memsr_deploy.method.models import PlainConfig, PlainSR
    from memsr_deploy.runtime import open_backend
    desc = open_backend(model=model, threads=threads).desc
    crop = img[:1536, :1536]
    rows = []
    with tempfile.TemporaryDirectory(prefix="memsr_widths_") as work:
        nets = [("the model's", model)]
        for w in (16, 32, 48):
            torch.manual_seed(0)
            cfg = PlainConfig(scale=desc.scale, widths=[w] * (len(desc.layer_widths) - 1),
                              acts=list(desc.layer_acts[:-1]))
            save_model(PlainSR(cfg).eval(), Path(work) / f"uniform{w}", kind="student")
            nets.append((f"uniform {w}", Path(work) / f"uniform{w}"))
        for label, path in nets:
            print(f"widths: {label} ...", file=sys.stderr, flush=True)
            b = open_backend(model=path, threads=threads)
            row, _ = _timed_row(b, crop, peak, None, backend="onnxruntime", precision="fp32", threads=threads,
                                note="")
            rows.append({"widths": label, "layer_widths": list(b.desc.layer_widths), **row})
    return rows


def end_to_end_rows(model, jpeg: Path, work: Path, peak_rss, repeat: int = 3, scale: int = 2, ext: str = "png",
                    torch_row: bool = True) -> list[dict]:
    """memsr-upscale with no flags vs --backend torch --threads 1 (``torch_row``), and vips resize, JPEG ->
    ``ext``: ``repeat`` rounds, the commands in turn within each (A B C A B C ...), so that a slow spell of a
    shared machine hits them all; seconds are medians (with the range), ratios the median of the per-round
    ratios."""
    from PIL import Image
    def upscale(src: Path, out: Path, *flags: str) -> list[str]:
        return [sys.executable, "-m", "memsr_deploy.cli.upscale", str(src), "-q", "-o", str(out), *flags,
                *(["--model", str(model)] if model is not None else [])]
    a, b = work / f"default.{ext}", work / f"torch1.{ext}"
    runs = [("memsr-upscale (no flags)", upscale(jpeg, a), a)]
    if torch_row:
        runs.append(("memsr-upscale --backend torch --threads 1",
                     upscale(jpeg, b, "--backend", "torch", "--threads", "1"), b))
    vips = _vips_command(jpeg, work / f"vips.{ext}", scale)
    if vips:
        runs.append((f"vips resize {scale} --kernel cubic", vips, work / f"vips.{ext}"))
    # what a user's second run gets: --backend auto's first-run measurement (fastest.py) is made here, untimed
    tiny = work / "warm_up.jpg"
    Image.open(jpeg).resize((64, 48)).save(tiny)
    subprocess.run(upscale(tiny, work / "warm_up.png", "--overwrite"), check=False, capture_output=True)
    timed: dict[str, list[tuple[float, int, float]]] = {label: [] for label, _, _ in runs}
    errors: dict[str, str] = {}
    for r in range(repeat):
        for label, cmd, out in runs:
            if label in errors:
                continue
            print(f"end to end, round {r + 1}/{repeat}: {label} ...", file=sys.stderr, flush=True)
            out.unlink(missing_ok=True)
            peak, secs, rc, tail, cpu = peak_rss(cmd)
            if rc:
                errors[label] = tail
            else:
                timed[label].append((secs, peak, cpu))
    rows = []
    for label, _, _ in runs:
        t = timed[label]
        if label in errors or not t:
            rows.append({"command": label, "exit_code": 1, "error": errors.get(label, "no run")})
            continue
        secs = [v for v, _, _ in t]
        rows.append({"command": label, "seconds": round(float(np.median(secs)), 2),
                     "seconds_range": [round(min(secs), 2), round(max(secs), 2)], "runs": len(secs),
                     "cpu_seconds": round(float(np.median([c for _, _, c in t])), 2),
                     "peak_rss_mb": round(max(p for _, p, _ in t) / 2 ** 20), "exit_code": 0})
    if not vips:
        rows.append({"command": f"vips resize {scale} --kernel cubic",
                     "error": "libvips not found (vips CLI or pyvips)"})

    def ratio(a: str, b: str) -> float | None:
        pairs = list(zip(timed[a], timed[b]))
        return round(float(np.median([x[0] / y[0] for x, y in pairs])), 2) if pairs else None
    if a.exists() and b.exists():
        diff = int(np.abs(np.asarray(Image.open(a)).astype(int) - np.asarray(Image.open(b)).astype(int)).max())
        rows[0]["max_diff_vs_torch_8bit"] = diff
        rows[0]["speedup_vs_torch_1_thread"] = ratio(runs[1][0], runs[0][0])
    if vips and "seconds" in rows[0]:
        rows[0]["times_vips"] = ratio(runs[0][0], runs[-1][0])
    for f in (a, b, work / f"vips.{ext}", tiny, work / "warm_up.png"):
        f.unlink(missing_ok=True)
    return rows


def _vips_command(src: Path, dst: Path, scale: int = 2) -> list[str] | None:
    if shutil.which("vips"):
        return ["vips", "resize", str(src), str(dst), str(scale), "--kernel", "cubic"]
    try:
        import pyvips  # noqa: F401
    except (ImportError, OSError):
        return None
    code = ("import sys, pyvips; pyvips.Image.new_from_file(sys.argv[1], access='sequential')"
            ".resize(int(sys.argv[3]), kernel='cubic').write_to_file(sys.argv[2])")
    return [sys.executable, "-c", code, str(src), str(dst), str(scale)]


def markdown(section: dict) -> list[str]:
    L = ["## Default path (issue 15)", "",
         f"GEMM peak (numpy float32 {GEMM_N}^3 matmul, OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset): "
         + ", ".join(f"{n} thread{'s' if int(n) > 1 else ''}: {v / 1e9:.1f} GMAC/s"
                     for n, v in section["gemm_peak"].items())
         + ". int8 rows can pass 100 % of it (VNNI does 4 int8 MACs per fp32 lane).", ""]
    e2e = section["end_to_end"]
    n = max((r.get("runs", 1) for r in e2e), default=1)
    L += [f"End to end: {n} rounds, the commands in turn; seconds = median (range), peak RSS = the largest; "
          "ratios = median of the per-round ratios. memsr-upscale's `--backend auto` choice was made (and "
          "remembered) by an untimed run on a small photo first.", "",
          "CPU seconds: user + system of the process, all its threads (on 2 cores, wall time cannot go below half "
          "of it).", "",
          "| end to end (JPEG -> PNG) | seconds | CPU seconds | peak RSS (MB) | notes |", "|---|---|---|---|---|"]
    for r in e2e:
        notes = r.get("error", "")
        if "speedup_vs_torch_1_thread" in r:
            notes = (f"{r['speedup_vs_torch_1_thread']}x faster than the torch 1-thread run; max diff "
                     f"{r['max_diff_vs_torch_8bit']} level(s)")
        if "times_vips" in r:
            notes += f"; {r['times_vips']}x the time of vips resize"
        rng = "" if "seconds_range" not in r else " ({}-{})".format(*r["seconds_range"])
        L.append(f"| {r['command']} | {r.get('seconds', '')}{rng} | {r.get('cpu_seconds', '')} | "
                 f"{r.get('peak_rss_mb', '')} | {notes} |")
    L += ["", "| backend | precision | threads | seconds | output MP/s | GMAC/s | of fp32 GEMM peak | vs default | "
          "max diff vs default |", "|---|---|---|---|---|---|---|---|---|"]
    for r in section["compute"]:
        if "error" in r:
            L.append(f"| {r['backend']} | {r['precision']} | {r.get('threads', '')} | {r['error']} | | | | | |")
            continue
        label = r["backend"] + (" (default)" if r["note"] == "default" else "")
        if "max_abs_diff_vs_torch_fp32" in r:
            label += f" ({r['note']}; max abs diff vs PyTorch fp32 {r['max_abs_diff_vs_torch_fp32']:.1e})"
        L.append(f"| {label} | {r['precision']} | "
                 f"{r['threads']} | {r['seconds']} | {r['out_mp_per_s']} | {r['gmac_per_s']} | "
                 f"{100 * r['fraction_of_gemm_peak']:.0f} % | {r.get('speed_vs_default', '')}x | "
                 f"{'' if r['max_diff_vs_default_8bit'] is None else r['max_diff_vs_default_8bit']} |")
    L += ["", "Layer widths (ONNX Runtime fp32, default settings, 1536x1536 crop; same depth, random weights for "
          "the uniform nets):", "", "| widths | layer widths | GMAC/s | of fp32 GEMM peak |", "|---|---|---|---|"]
    for r in section.get("widths", []):
        L.append(f"| {r['widths']} | {r['layer_widths']} | {r['gmac_per_s']} | "
                 f"{100 * r['fraction_of_gemm_peak']:.0f} % |")
    L.append("")
    return L


def run(model, img: np.ndarray, jpeg: Path, work: Path, threads: int, peak_rss) -> dict:
    peak = {1: gemm_peak_macs(1), threads: gemm_peak_macs(threads)}
    section = {"gemm_peak": {str(k): v for k, v in peak.items()},
               "end_to_end": end_to_end_rows(model, jpeg, work, peak_rss),
               "compute": compute_rows(model, img, threads, peak),
               "widths": width_rows(model, img, threads, peak)}
    json.dumps(section)   # fail here, not after the run, if anything is not JSON
    return section
