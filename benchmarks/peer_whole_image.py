"""Our backends against ncnn, each at its best: one whole image per call, warmed up on an image of the same size
(ncnn transforms its weights and plans its Winograd tiles on the first extraction of a shape; the runtime's
tiler, which feeds tiles of several shapes, hides that cost in the other benchmark's ncnn rows), median of
--repeat timed calls. Also the default path as users run it (``Upscaler`` with its exact tiles).

  python -m memsr_bench.peer_whole_image --model memsr-x2 --size 768 --threads 1,2 --out benchmarks/results/peer_768.md

Run it alone on the machine.
"""
from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from memsr_deploy.cli.args import summary


def photo(size: int) -> np.ndarray:
    """A size x size crop of a bundled scikit-image photo, upsampled by repetition when it is smaller."""
    from skimage import data
    img = data.astronaut()
    reps = -(-size // min(img.shape[:2]))
    img = np.tile(img, (reps, reps, 1))[:size, :size]
    return np.ascontiguousarray(img.transpose(2, 0, 1)[None], dtype=np.float32) / 255


def timed(call, repeat: int) -> tuple[float, np.ndarray]:
    out = call()   # first call of this shape: set-up out of the timing
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = call()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def rows(model: str, size: int, threads: int, repeat: int) -> list[dict]:
    from memsr_bench import ncnn_reference
    from memsr_deploy.runtime import RunOptions, Upscaler, open_backend
    x = photo(size)
    hwc = x[0].transpose(1, 2, 0)
    out = []
    cases = [("onnxruntime", "fp32", None), ("litert", "fp32", None), ("litert", "int8", None),
             ("ncnn", "fp32", True), ("ncnn", "int8", True), ("ncnn", "int8", False)]
    ref = None
    for backend, precision, winograd in cases:
        print(f"{backend} {precision} {threads} threads ...", file=sys.stderr, flush=True)
        if backend == "ncnn":
            why = ncnn_reference.missing()
            if why:
                out.append({"backend": backend, "precision": precision, "threads": threads, "error": why})
                continue
            b = ncnn_reference.open_ncnn(model, precision, threads=threads, winograd=winograd)
        else:
            b = open_backend(model=model, backend=backend, precision=precision, threads=threads)
        secs, y = timed(lambda: b.run(x), repeat)
        row = {"backend": backend, "precision": precision, "threads": threads, "mode": "whole image",
               "winograd": winograd, "seconds": round(secs, 3)}
        if ref is None:
            ref = y
        row["max_abs_diff_vs_ort_fp32"] = float(f"{np.abs(y - ref).max():.3g}")
        out.append(row)
        if backend != "ncnn":
            up = Upscaler(b, RunOptions())
            secs, _ = timed(lambda: up.upscale_array(hwc), repeat)
            out.append({"backend": backend, "precision": precision, "threads": threads,
                        "mode": "memsr-upscale path (exact tiles)", "seconds": round(secs, 3)})
        b.close()
    return out


def markdown(all_rows: list[dict], args, argv) -> str:
    L = [f"# Whole-image speed against ncnn ({args.model}, {args.size}x{args.size} input)", "",
         f"Command: `python -m memsr_bench.peer_whole_image {' '.join(argv)}` "
         f"({datetime.date.today().isoformat()}, alone on the 2-core machine; median of {args.repeat} calls after "
         "one warm-up call of the same shape).", "",
         "| backend | precision | threads | mode | seconds | max abs diff vs ONNX Runtime fp32 |",
         "|---|---|---|---|---|---|"]
    for r in all_rows:
        name = r["backend"] + ("" if r.get("winograd") is None else " (Winograd)" if r["winograd"] else
                               " (Winograd off)")
        if "error" in r:
            L.append(f"| {name} | {r['precision']} | {r['threads']} | not measured: {r['error']} | | |")
            continue
        L.append(f"| {name} | {r['precision']} | {r['threads']} | {r['mode']} | {r['seconds']} | "
                 f"{r.get('max_abs_diff_vs_ort_fp32', '')} |")
    return "\n".join(L) + "\n"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=summary(__doc__))
    ap.add_argument("--model", default="memsr-x2")
    ap.add_argument("--size", type=int, default=768)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", default=None, help="markdown file (default: print only)")
    args = ap.parse_args(argv)
    all_rows = [r for n in args.threads.split(",") for r in rows(args.model, args.size, int(n), args.repeat)]
    text = markdown(all_rows, args, argv)
    print(text)
    if args.out:
        from memsr_deploy.outputs.atomic import atomic_path
        with atomic_path(Path(args.out)) as tmp:
            Path(tmp).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
