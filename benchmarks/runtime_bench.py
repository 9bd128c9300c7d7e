"""Runtime benchmark: throughput per backend and mode, peak RSS per mode and image size, seam error of a guessed
10 px pad. Writes benchmarks/results/runtime[_quick].{md,json} and runtime[_quick]_memory.png.

    python benchmarks/runtime_bench.py                      # full: 12 MP throughput, 12/100 MP memory (~hours)
    python benchmarks/runtime_bench.py --quick --model M    # smoke run on small images (minutes)
    python benchmarks/runtime_bench.py --skip throughput memory seams   # only issue 15's default-path table

The default-path section (``default_path.py``): ``memsr-upscale`` with no flags vs ``--backend torch --threads 1``
end to end (12 MP x2 JPEG -> PNG, seconds and peak RSS) and vs ``vips resize``, every backend and precision's
compute throughput, int8 vs fp32, and MAC/s as a fraction of the CPU's fp32 GEMM peak.

On a machine shared with other jobs, pass --threads 1: with contended cores every multi-threaded conv call
waits for a descheduled thread, which penalises the many small calls of tiling and streaming far more than
the one big call of whole-image inference (measured here: 5-7x slower per pixel at 2 threads, none at 1).

Throughput: output megapixels per second of ``Upscaler.upscale_array`` on an 8-bit photo (decode and encode not
included), x2, for PyTorch, ONNX Runtime and LiteRT (fp32 artefacts exported from the same model), in four
modes: whole image (the reference), exact tiling, streaming (PyTorch), and tiling with a fixed 10 px pad.
Peak RSS: ``memsr-upscale`` run as a subprocess on a JPEG, writing a streamed TIFF; the figure is the kernel's
high-water mark of that process (VmHWM in /proc/PID/status, polled from this process).
Seam error: fixed 10 px pad vs exact tiling, on the photo, as max abs difference (of [0, 1] values) and PSNR.
"""
from __future__ import annotations

import argparse
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from memsr_deploy.cli.args import summary
from memsr_deploy.errors import MemsrError
from memsr_deploy.formats.tagged_json import dumps_strict
from memsr_deploy.runtime import RunOptions, Upscaler, open_backend
from memsr_deploy.runtime.host import machine

PHOTO_12MP = (3000, 4000)      # H, W
PHOTO_100MP = (8160, 12240)
QUICK_PHOTO = (600, 800)
QUICK_SIZES = [(300, 400), (600, 800), (1200, 1600)]
GUESSED_PAD = 10
SEAM_PADS = [GUESSED_PAD, 6, 3]   # the popular guess, and smaller ones to show how the error grows
BASELINE_PHOTO = (48, 64)         # memsr-upscale on a tiny image: the process's own RSS (Python, libraries, model)


# ------------------------------------------------------------------------------------------------ inputs
def photo_mosaic(h: int, w: int) -> np.ndarray:
    """A photo-like test image of any size: a 2x2 mosaic of the largest photos under data/photos (real detail at
    every scale), mirrored to fill bigger sizes; synthetic texture when no photos are present."""
    import cv2
    from PIL import Image
    files = sorted(Path("data/photos").rglob("*.png"), key=lambda p: -p.stat().st_size)[:4]
    if len(files) == 4:
        ch, cw = min(h, 3000) // 2, min(w, 4000) // 2
        cells = []
        for f in files:
            with Image.open(f) as im:
                a = np.asarray(im.convert("RGB"))
            scale = max(ch / a.shape[0], cw / a.shape[1])
            a = cv2.resize(a, (max(cw, round(a.shape[1] * scale)), max(ch, round(a.shape[0] * scale))),
                           interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
            cells.append(a[:ch, :cw])
        base = np.vstack([np.hstack(cells[:2]), np.hstack(cells[2:])])
    else:
        rng = np.random.default_rng(0)
        yy, xx = np.mgrid[0:1500, 0:2000].astype(np.float32)
        base = 0.5 + 0.3 * np.sin(yy[..., None] * 0.05 + xx[..., None] * 0.031 + np.arange(3))
        base = (np.clip(base + 0.1 * rng.standard_normal(base.shape), 0, 1) * 255).astype(np.uint8)
    reps = (math.ceil(h / base.shape[0]), math.ceil(w / base.shape[1]))
    rows = [np.hstack([base if (i + j) % 2 == 0 else base[:, ::-1] for j in range(reps[1])]) for i in range(reps[0])]
    out = np.vstack([r if i % 2 == 0 else r[::-1] for i, r in enumerate(rows)])
    return np.ascontiguousarray(out[:h, :w])


def save_jpeg(a: np.ndarray, path: Path) -> Path:
    from PIL import Image
    if not path.exists():
        Image.fromarray(a).save(path, quality=95)
    return path


# -------------------------------------------------------------------------------------------- throughput
def export_artefacts(model, out_dir: Path) -> dict:
    """fp32 dynamic-shape ONNX and TFLite artefacts of the model (verification skipped: the table below
    compares every backend with PyTorch whole-image output itself)."""
    from memsr_export import export_model
    arts = {}
    for target in ("onnx", "tflite"):
        try:
            arts[target] = export_model(str(model), target, "fp32", out_dir=str(out_dir), verify=False,
                                        progress=False)
        except MemsrError as e:
            print(f"skip {target}: {e}", file=sys.stderr)
    return arts


def timed(up: Upscaler, img: np.ndarray) -> tuple[np.ndarray, float]:
    t0 = time.perf_counter()
    out = up.upscale_array(img)
    return out, time.perf_counter() - t0


def litert_whole_bytes(torch_backend, img: np.ndarray) -> int:
    """What LiteRT holds for a whole-image call: with a dynamic input shape its XNNPACK path keeps every
    layer's output (measured: 24 GB RSS, then the OOM killer, for a 12 MP x2 call of the bundled student, whose
    layer outputs add up to 16 GB), so count all of them, and half as much again."""
    from memsr_deploy.formats.memory_budget import map_elements
    # elements per LR pixel of every layer output (HR maps of an upsampler tail counted at their size)
    return int(1.5 * sum(map_elements(torch_backend.desc)[1:]) * img.shape[0] * img.shape[1] * 4)


def throughput(model, img: np.ndarray, tile: int, rows: int, threads: int | None, work: Path) -> list[dict]:
    import psutil
    ram = psutil.virtual_memory().total
    backends = {"pytorch": open_backend(model=model, backend="torch", threads=threads)}
    for target, sidecar in export_artefacts(model, work).items():
        backends["onnxruntime" if target == "onnx" else "litert"] = open_backend(artefact=sidecar, threads=threads)
    s = backends["pytorch"].caps.scale
    out_mp = img.shape[0] * img.shape[1] * s * s / 1e6
    ref = None
    results = []
    for name, b in backends.items():
        modes = [("whole", RunOptions(tile=0)), ("exact tiles", RunOptions(tile=tile)),
                 (f"{GUESSED_PAD} px pad tiles", RunOptions(tile=tile, halo=GUESSED_PAD))]
        if name == "pytorch":
            modes.insert(2, ("stream", RunOptions(mode="stream", rows=rows)))
        for mode, opt in modes:
            need = litert_whole_bytes(backends["pytorch"], img) if name == "litert" and opt.tile == 0 else 0
            if need > 0.8 * ram:
                results.append({"backend": name, "mode": mode,
                                "error": f"skipped: LiteRT would need ~{need / 2 ** 30:.0f} GiB for the whole image"})
                continue
            print(f"throughput: {name} {mode} ...", file=sys.stderr, flush=True)
            try:
                out, secs = timed(Upscaler(b, opt), img)
            except (MemsrError, MemoryError) as e:
                results.append({"backend": name, "mode": mode, "error": str(e)})
                continue
            if ref is None:
                ref = out  # PyTorch whole image: the reference for every other row
            diff = int(np.abs(out.astype(np.int16) - ref.astype(np.int16)).max())
            results.append({"backend": name, "mode": mode, "tile": opt.tile, "rows": opt.rows,
                            "halo": opt.halo if opt.halo is not None else b.caps.halo, "seconds": round(secs, 2),
                            "out_mp_per_s": round(out_mp / secs, 3), "max_diff_vs_ref_8bit": diff})
            del out
    return results


def seam_error(model, img: np.ndarray, tiles: list[int], pads: list[int], threads: int | None) -> list[dict]:
    b = open_backend(model=model, threads=threads)
    x = img.astype(np.float32) / 255
    out = []
    for tile in tiles:
        exact = np.clip(Upscaler(b, RunOptions(tile=tile)).upscale_array(x), 0, 1)
        for pad in pads:
            guessed = np.clip(Upscaler(b, RunOptions(tile=tile, halo=pad)).upscale_array(x), 0, 1)
            err = np.abs(exact - guessed)
            mse = float((err.astype(np.float64) ** 2).mean())
            out.append({"tile": tile, "halo_exact": b.caps.halo, "pad": pad, "max_abs_diff": float(err.max()),
                        "psnr_db": round(10 * math.log10(1 / mse), 2) if mse > 0 else float("inf"),
                        "pixels_off_by_half_level": float((err.max(axis=2) > 0.5 / 255).mean())})
            del guessed, err
        del exact
    return out


# --------------------------------------------------------------------------------------------- peak RSS
def _vmhwm(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


def peak_rss(cmd: list[str]) -> tuple[int, float, int, str, float]:
    """(peak RSS bytes, seconds, exit code, stderr tail, CPU seconds) of a subprocess, read from outside it:
    VmHWM of /proc/PID/status, the kernel's high-water mark of the process's own memory map, polled until it
    exits (growth in the last 20 ms before exit would be missed). Not wait4's ru_maxrss: on Linux that also
    counts the pages the child shared with this (large) parent between fork and exec. CPU seconds: user +
    system of the child (its threads included), from this process's children's usage before and after."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    peak = 0
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        while proc.poll() is None:
            peak = max(peak, _vmhwm(proc.pid))
            time.sleep(0.02)
        err.seek(0)
        tail = err.read().decode(errors="replace").strip().splitlines()[-1:] or [""]
    secs = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return peak, secs, proc.returncode, tail[0], cpu


def predicted_whole_bytes(model, h: int, w: int) -> int | None:
    try:
        from memsr_deploy.formats.model_file import read_description
        from memsr_deploy.formats.memory_budget import per_pixel_channels
        from memsr_deploy.formats.registry import names, resolve
        desc = read_description(resolve(model) if str(model) in names() else model)
        return per_pixel_channels(desc) * h * w * 4
    except (ImportError, MemsrError):
        return None


def memory_runs(model, cases, tile: int, rows: int, threads: int | None, work: Path) -> list[dict]:
    import psutil
    total = psutil.virtual_memory().total
    results = []
    for h, w, scale, modes in cases:
        src = save_jpeg(photo_mosaic(h, w), work / f"photo_{w}x{h}.jpg")
        for mode in modes:
            row = {"scale": scale, "width": w, "height": h, "in_mp": round(h * w / 1e6, 2), "mode": mode}
            need = predicted_whole_bytes(model, h, w)
            if mode == "whole" and need and 2 * need > 0.8 * total:  # eager PyTorch holds about twice that
                row["skipped"] = f"needs ~{2 * need / 2 ** 30:.0f} GiB of activations, RAM is {total / 2 ** 30:.0f} GiB"
                results.append(row)
                continue
            out = work / f"out_{w}x{h}_x{scale}_{mode}.tif"
            cmd = [sys.executable, "-m", "memsr_deploy.cli.upscale", str(src), "-o", str(out), "--model", str(model),
                   "-q", "--scale", str(scale)]
            cmd += {"whole": ["--tile", "0"], "tile": ["--tile", str(tile)],
                    "stream": ["--mode", "stream", *(["--rows", str(rows)] if rows else [])]}[mode]
            if threads:
                cmd += ["--threads", str(threads)]
            print(f"memory: x{scale} {w}x{h} {mode} ...", file=sys.stderr, flush=True)
            peak, secs, rc, tail, _ = peak_rss(cmd)
            row.update(peak_rss_mb=round(peak / 2 ** 20), seconds=round(secs, 1), exit_code=rc)
            if rc != 0:
                row["error"] = tail
            out.unlink(missing_ok=True)
            results.append(row)
    return results


# ---------------------------------------------------------------------------------------------- report
def markdown(meta: dict, thr: list[dict], mem: list[dict], seams: list[dict], default: dict | None = None) -> str:
    L = [f"# Runtime benchmark{' (quick smoke run)' if meta['quick'] else ''}", "",
         f"Model `{meta['model']}` (x{meta['scale']}, exact halo {meta['halo']} px, layer widths "
         f"{meta['widths']}); {meta['threads']} threads on {meta['cpu']}; {meta['date']}.",
         f"Command: `{meta['command']}`", ""]
    if default:
        from memsr_bench.default_path import markdown as default_markdown
        L += default_markdown(default)
    if thr:
        h, w = meta["photo"]
        L += [f"## Throughput: x{meta['scale']} of a {w}x{h} ({h * w / 1e6:.1f} MP) photo", "",
              "Output MP/s of `Upscaler.upscale_array` (8-bit in and out, no file I/O). Last column: largest "
              "difference from PyTorch whole-image output, in 8-bit levels (1 = rounding).", "",
              "| backend | mode | tile / rows | halo | seconds | output MP/s | max diff vs reference |",
              "|---|---|---|---|---|---|---|"]
        for r in thr:
            if "error" in r:
                why = r["error"] if r["error"].startswith("skipped") else f"failed: {r['error']}"
                L.append(f"| {r['backend']} | {r['mode']} | | | {why} | | |")
                continue
            if r["mode"] == "stream":
                size = f"{r['rows'] or 'auto'} rows"
            else:
                size = "whole" if r["tile"] == 0 else r["tile"]
            L.append(f"| {r['backend']} | {r['mode']} | {size} | {r['halo']} | {r['seconds']} | {r['out_mp_per_s']} | "
                     f"{r['max_diff_vs_ref_8bit']} |")
        L.append("")
    if mem:
        strips = (f"{meta['rows']}-row strips" if meta["rows"]
                  else "strips of the default height (65536 // width rows, 4 to 64)")
        L += ["## Peak memory (RSS of the `memsr-upscale` process, JPEG in, streamed tiled BigTIFF out)", "",
              f"tile = exact tiling with {meta['tile']} px cores; stream = {strips}; whole = the whole image at "
              "once, on the default backend. RSS includes Python, the runtime and the decoded 8-bit input (3 bytes/pixel). 'Above base + input': "
              f"the peak minus the {BASELINE_PHOTO[1]}x{BASELINE_PHOTO[0]} run's (the process itself: interpreter, "
              "libraries, model) minus the decoded input; activations, tile and band buffers are what remains.", "",
              "| scale | input | MP | mode | peak RSS (MB) | above base + input (MB) | seconds |",
              "|---|---|---|---|---|---|---|"]
        base = next((r["peak_rss_mb"] for r in mem if (r["height"], r["width"]) == BASELINE_PHOTO
                     and "peak_rss_mb" in r), None)
        for r in mem:
            val = r.get("skipped") or r.get("error") or r["peak_rss_mb"]
            above = ""
            if base is not None and "peak_rss_mb" in r and not r.get("error"):
                above = round(r["peak_rss_mb"] - base - r["height"] * r["width"] * 3 / 2 ** 20)
            secs = r.get("seconds", "")
            L.append(f"| x{r['scale']} | {r['width']}x{r['height']} | {r['in_mp']} | {r['mode']} | {val} | {above} "
                     f"| {secs} |")
        L.append("")
    if seams:
        L += [f"## Seam error of guessed pads (exact halo {meta['halo']} px)", "",
              "Tiling with a fixed pad instead of the exact halo, against exact tiling (which equals whole-image "
              "output), on the photo.", "",
              "| tile | pad (px) | max abs diff (of 1.0) | PSNR (dB) | pixels off by > 0.5 level |", "|---|---|---|---|---|"]
        for r in seams:
            L.append(f"| {r['tile']} | {r['pad']} | {r['max_abs_diff']:.2g} | {r['psnr_db']} | "
                     f"{100 * r['pixels_off_by_half_level']:.3f} % |")
        L.append("")
    return "\n".join(L)


def plot(mem: list[dict], path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (scale, mode), style in {(2, "whole"): "o-", (2, "tile"): "s-", (2, "stream"): "^-",
                                 (4, "tile"): "s--", (4, "stream"): "^--"}.items():
        pts = sorted((r["in_mp"], r["peak_rss_mb"]) for r in mem
                     if r["scale"] == scale and r["mode"] == mode and "peak_rss_mb" in r and not r.get("error"))
        if pts:
            ax.plot(*zip(*pts), style, label=f"x{scale} {mode}")
    ax.set_xlabel("input megapixels")
    ax.set_ylabel("peak RSS (MB)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=summary(__doc__))
    p.add_argument("--model", help="model file; default: the bundled x2 student (its x4 sibling for x4 runs)")
    p.add_argument("--model-x4", help="x4 model for the x4 memory run (default: bundled memsr-x4, else skipped)")
    p.add_argument("--quick", action="store_true", help="small images, for a smoke run")
    p.add_argument("--photo", help="HxW of the throughput / default-path photo (default 3000x4000, quick 600x800)")
    p.add_argument("--threads", type=int, help="threads per backend (default: all cores)")
    p.add_argument("--tile", type=int, default=256, help="core tile for the tiled modes (default 256)")
    p.add_argument("--rows", type=int, help="strip rows for streaming (default: the runtime's, ~64k px per strip)")
    p.add_argument("--skip", nargs="*", default=[], choices=["default-path", "throughput", "memory", "seams"])
    p.add_argument("--out", default="benchmarks/results", help="results folder (default: benchmarks/results under the current folder)")
    p.add_argument("--work", help="folder for generated photos and artefacts (default: a temporary folder)")
    args = p.parse_args(argv)

    from memsr_deploy.formats import registry
    model = args.model
    if model is None:
        try:
            model = str(registry.default_model(2))
        except MemsrError as e:
            print(f"error: {e}; pass --model", file=sys.stderr)
            return 2
    model_x4 = args.model_x4
    if model_x4 is None and "memsr-x4" in registry.available():
        model_x4 = str(registry.resolve("memsr-x4"))
    # the description only: --backend auto is measured by a memsr-upscale run first (default_path), as users get it
    b = open_backend(model=model, backend="onnxruntime")
    meta = {"model": str(model), "scale": b.caps.scale, "halo": b.caps.halo, "widths": b.desc.layer_widths,
            "threads": args.threads or os.cpu_count(), "cpu": machine(), "quick": args.quick,
            "date": time.strftime("%Y-%m-%d %H:%M"), "rows": args.rows,
            "command": "python benchmarks/runtime_bench.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    photo_hw = QUICK_PHOTO if args.quick else PHOTO_12MP
    if args.photo:
        try:
            photo_hw = tuple(int(v) for v in args.photo.lower().split("x"))
            assert len(photo_hw) == 2 and min(photo_hw) > 0
        except (ValueError, AssertionError):
            print(f"error: --photo {args.photo!r} is not HxW", file=sys.stderr)
            return 2
    meta["photo"] = photo_hw
    tile = min(args.tile, 64) if args.quick else args.tile
    meta["tile"] = tile

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        img = photo_mosaic(*photo_hw)
        default = None
        if "default-path" not in args.skip:
            from memsr_bench import default_path
            jpeg = save_jpeg(img, work / f"photo_{photo_hw[1]}x{photo_hw[0]}.jpg")
            default = default_path.run(args.model, img, jpeg, work, args.threads or os.cpu_count() or 1, peak_rss)
        thr = [] if "throughput" in args.skip else throughput(model, img, tile, args.rows, args.threads, work)
        seams = [] if "seams" in args.skip else seam_error(model, img, sorted({tile, 2 * tile}), SEAM_PADS,
                                                           args.threads)
        mem = []
        if "memory" not in args.skip:
            if args.quick:
                cases = [(*BASELINE_PHOTO, 2, ["tile"])] + [(h, w, 2, ["whole", "tile", "stream"]) for h, w in QUICK_SIZES]
            else:
                cases = [(*BASELINE_PHOTO, 2, ["tile"]), (*PHOTO_12MP, 2, ["whole", "tile", "stream"]),
                         (*PHOTO_100MP, 2, ["whole", "tile", "stream"])]
            mem = memory_runs(model, cases, tile, args.rows, args.threads, work)
            big = QUICK_SIZES[-1] if args.quick else PHOTO_100MP
            if model_x4:
                mem += memory_runs(model_x4, [(*big, 4, ["tile", "stream"])], tile, args.rows, args.threads, work)
            else:
                print("no x4 model (give --model-x4): x4 memory run skipped", file=sys.stderr)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "runtime_quick" if args.quick else "runtime"
    (out / f"{stem}.json").write_text(dumps_strict({"meta": meta, "default_path": default, "throughput": thr,
                                                  "memory": mem, "seams": seams}, indent=2) + "\n")
    (out / f"{stem}.md").write_text(markdown(meta, thr, mem, seams, default))
    if mem:
        plot(mem, out / f"{stem}_memory.png", f"memsr-upscale peak RSS ({'quick' if args.quick else 'full'} run)")
    print(f"wrote {out / (stem + '.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
