"""Soak: one `memsr-upscale` folder run over hundreds of photos, watched from outside (issue 32).

A folder of generated photos of mixed sizes and formats (JPEG, PNG 8/16-bit, TIFF, WebP, HEIC; grey and
alpha among them) goes through one `memsr-upscale FOLDER -o OUT` process. This parent samples the process'
resident memory (RSS), open file descriptors and threads with psutil while it runs, and takes the photos'
finishing times from the outputs' modification times. The same command on the first 10 photos gives the
reference peak RSS: the first 10 are the largest size in every format and in the heaviest layouts (16-bit, alpha),
so the 300-photo peak should only be above it if something grows with the number of photos.

    python benchmarks/soak.py                       # 300 photos, bundled memsr-x2 -> benchmarks/results/soak.md
    python benchmarks/soak.py --photos 40 --out /tmp/soak.md    # a quick look

What it reports: peak RSS of the long run against the 10-photo run (target: within 10%); file descriptors and
threads when the first photo is written and when the last is (target: no growth); photos per second in
successive windows (target: steady).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from memsr_deploy.cli.args import summary

FORMATS = ("jpg", "png", "tif", "webp", "heic")


# ------------------------------------------------------------------------------------------------ the photos

def _photo(rng, h: int, w: int) -> np.ndarray:
    """Float RGB in [0, 1] that compresses like a photo: smooth light, a few soft shapes, texture, sensor noise."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.empty((h, w, 3), np.float32)
    for c in range(3):
        img[:, :, c] = rng.uniform(0.2, 0.6) + rng.uniform(-0.3, 0.3) * xx / w + rng.uniform(-0.3, 0.3) * yy / h
    for _ in range(4):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(0.1, 0.4) * min(h, w)
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))[:, :, None]
        img += blob * rng.uniform(-0.4, 0.4, 3).astype(np.float32)
    img += 0.05 * np.sin(xx / rng.uniform(2, 6) + yy / rng.uniform(3, 9))[:, :, None]
    img += rng.normal(0, 0.01, img.shape).astype(np.float32)
    return np.clip(img, 0, 1)


def _layout(i: int, fmt: str) -> str:
    """Mostly 8-bit RGB; every 7th PNG/TIFF 16-bit, every 11th photo grey, every 13th PNG/WebP/HEIC with alpha."""
    if i % 11 == 5:
        return "grey"
    if fmt in ("png", "webp", "heic") and i % 13 == 6:
        return "rgba"
    if fmt in ("png", "tif") and i % 7 == 3:
        return "rgb16"
    return "rgb"


# Photos 5-9: the heaviest kinds, at the largest size, so that the 10-photo run meets each of them
HEAVY = (("png", "rgb16"), ("tif", "rgb16"), ("png", "rgba"), ("webp", "rgba"), ("heic", "rgba"))


def make_folder(folder: Path, n: int, min_px: int = 64, max_px: int = 256, seed: int = 0) -> list[Path]:
    """``n`` photos; photos 0-4 are ``max_px`` square 8-bit RGB in each format, 5-9 ``max_px`` square in the
    heaviest layouts (HEAVY), the rest random sizes in between (any aspect), formats in turn. Written with the
    project's own writer (imageio)."""
    from memsr_deploy.imageio import write_picture
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        fmt, layout = FORMATS[i % len(FORMATS)], None
        if i < 5:
            h = w = max_px
            layout = "rgb"
        elif i < 10:
            h = w = max_px
            fmt, layout = HEAVY[i - 5]
        else:
            h, w = (int(v) for v in rng.integers(min_px, max_px + 1, 2))
        img = _photo(rng, h, w)
        layout = layout or _layout(i, fmt)
        if layout == "grey":
            px = np.rint(img.mean(axis=2, keepdims=True) * 255).astype(np.uint8)
        elif layout == "rgb16":
            px = np.rint(img * 65535).astype(np.uint16)
        else:
            px = np.rint(img * 255).astype(np.uint8)
            if layout == "rgba":
                alpha = np.rint(255 * np.clip(img[:, :, :1] * 1.5, 0, 1)).astype(np.uint8)
                px = np.concatenate([px, alpha], axis=2)
        path = folder / f"photo_{i:04d}.{fmt}"
        write_picture(path, px, quality=90)
        paths.append(path)
    return paths


# ------------------------------------------------------------------------------------------------ the watcher

@dataclass
class Sample:
    t: float        # seconds since the process started
    rss: int        # bytes
    fds: int
    threads: int
    done: int       # outputs written so far
    cpu: float = 0.0  # CPU seconds the process has used (user + system)


@dataclass
class Run:
    photos: int
    rc: int
    seconds: float
    samples: list[Sample] = field(default_factory=list)
    finish_times: list[float] = field(default_factory=list)   # seconds since start, one per output, sorted
    out_pixels: list[int] = field(default_factory=list)       # output pixels of each, in finishing order
    stderr: str = ""

    @property
    def peak_rss(self) -> int:
        return max(s.rss for s in self.samples)

    def at_first_output(self) -> Sample:
        return next((s for s in self.samples if s.done >= 1), self.samples[-1])

    def at_last_output(self) -> Sample:
        return next((s for s in self.samples if s.done >= self.photos), self.samples[-1])

    def at_output(self, k: int) -> Sample:
        return next((s for s in self.samples if s.done >= k), self.samples[-1])

    def between(self, a: int, b: int) -> list[Sample]:
        """Samples taken while photos ``a + 1`` .. ``b`` were being made (``a`` to ``b - 1`` done)."""
        return [s for s in self.samples if a <= s.done < b] or [self.at_output(b)]

    def counts(self, a: int, b: int, what: str) -> tuple[int, int, int]:
        """Fewest, median and most of ``what`` (fds, threads) while photos ``a + 1`` .. ``b`` were made. The fewest
        is the settled count between photos; the most adds what one photo holds at one instant (its input, its
        temporary output, the decoder's and encoder's threads)."""
        vals = sorted(getattr(s, what) for s in self.between(a, b))
        return vals[0], vals[len(vals) // 2], vals[-1]

    def cpu_per_mp(self, a: int, b: int) -> float:
        """CPU seconds per output megapixel spent while photos ``a + 1`` .. ``b`` were made: the cost of the work
        itself, which neither the sizes in a window nor other jobs on the machine move much."""
        cpu = self.at_output(b).cpu - self.at_output(a).cpu
        return cpu / max(sum(self.out_pixels[a:b]) / 1e6, 1e-9)

    def window_rates(self, size: int) -> list[tuple[int, int, float]]:
        """(first, last photo, photos per second) over consecutive windows of ``size`` finished photos."""
        t = self.finish_times
        out = []
        for a in range(0, len(t) - size, size):
            b = a + size
            out.append((a + 1, b, size / max(t[b] - t[a], 1e-9)))
        return out


def _outputs(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if not p.name.startswith(".")] if folder.exists() else []


def watch(cmd: list[str], out_dir: Path, photos: int, interval: float = 0.1, env=None) -> Run:
    """Run ``cmd`` (a memsr-upscale folder run writing to ``out_dir``) and sample it until it exits."""
    import psutil
    t0 = time.perf_counter()
    wall0 = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    ps = psutil.Process(proc.pid)
    samples = []
    err_chunks = []
    reader = threading.Thread(target=lambda: err_chunks.append(proc.stderr.read()), daemon=True)
    reader.start()
    while proc.poll() is None:
        try:
            with ps.oneshot():
                c = ps.cpu_times()
                s = Sample(time.perf_counter() - t0, ps.memory_info().rss, ps.num_fds(), ps.num_threads(),
                           len(_outputs(out_dir)), c.user + c.system)
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            break
        samples.append(s)
        time.sleep(interval)
    rc = proc.wait()
    reader.join()
    seconds = time.perf_counter() - t0
    from memsr_deploy.imageio import open_image
    done = sorted((p.stat().st_mtime - wall0, p) for p in _outputs(out_dir))
    pixels = []
    for _, p in done:
        r = open_image(p)  # the header only
        pixels.append(r.height * r.width)
        r.close()
    return Run(photos, rc, seconds, samples, [t for t, _ in done], pixels,
               b"".join(err_chunks).decode(errors="replace"))


def upscale_cmd(src: Path, out: Path, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "memsr_deploy.cli.upscale", str(src), "-o", str(out), "-q", *extra]


# ------------------------------------------------------------------------------------------------ the report

def _c(counts: tuple[int, int, int]) -> str:
    return " / ".join(str(c) for c in counts)


def _mb(b: int) -> str:
    return f"{b / 2 ** 20:.0f}"


def _no_growth(start: tuple[int, int, int], end: tuple[int, int, int]) -> bool:
    """Fewest and median at the end no higher than at the start but for one (a photo lasts only a few samples,
    so a thread or file of the photo in hand can be in all of them; a leak of one per photo adds hundreds). The
    most is one instant's count and is reported, not judged: a single sample in a thousand can catch a photo
    with its input, output and a library's files open at once."""
    return end[0] <= start[0] + 1 and end[1] <= start[1] + 1


def report(short: Run, long: Run, window: int, args, machine_note: str) -> str:
    ratio = long.peak_rss / short.peak_rss
    rates = long.window_rates(window)
    vals = np.array([r for _, _, r in rates]) if rates else np.array([np.nan])
    n, k = long.photos, 10
    first_fd, mid_fd, last_fd = (long.counts(a, a + k, "fds") for a in (1, 50, n - k))
    first_th, mid_th, last_th = (long.counts(a, a + k, "threads") for a in (1, 50, n - k))
    first_rss, mid_rss, last_rss = (int(np.median([x.rss for x in long.between(a, a + k)])) for a in (1, 50, n - k))
    lines = [
        "# Soak: one memsr-upscale folder run over hundreds of photos",
        "",
        machine_note,
        "",
        f"`python benchmarks/soak.py --photos {args.photos} -- {' '.join(args.extra)}`",
        "",
        f"{n} generated photos, {args.min_px}-{args.max_px} px a side, formats in turn "
        f"({', '.join(FORMATS)}; some 16-bit PNG/TIFF, grey and alpha), each written in its own format; one "
        f"`memsr-upscale FOLDER -o OUT -q {' '.join(args.extra)}` process (the bundled x2 model unless --model "
        f"is among the flags), sampled every {args.interval} s from a parent with psutil. The 10-photo run is "
        "the same command on the first 10 photos, which are the largest size in every format and in the heaviest "
        "layouts (16-bit PNG and TIFF, alpha PNG, WebP and HEIC). Counts are "
        "given as fewest / median / most over the samples taken while photos 2-11 (start), 51-60 and the last 10 "
        "(end) were made: the fewest is the settled count between photos, the most one instant's.",
        "",
        "| run | photos | exit | seconds | photos/s | peak RSS MB |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in (("10 photos", short), (f"{n} photos", long)):
        lines.append(f"| {name} | {r.photos} | {r.rc} | {r.seconds:.1f} | {r.photos / r.seconds:.2f} | "
                     f"{_mb(r.peak_rss)} |")
    lines += [
        "",
        "| measure | start (photos 2-11) | photos 51-60 | end (last 10 photos) | target (start against end) |",
        "|---|---|---|---|---|",
        f"| open file descriptors, fewest / median / most | {_c(first_fd)} | {_c(mid_fd)} | {_c(last_fd)} | no "
        f"growth in fewest and median: {'met' if _no_growth(first_fd, last_fd) else 'NOT met'} |",
        f"| threads, fewest / median / most | {_c(first_th)} | {_c(mid_th)} | {_c(last_th)} | no growth in fewest "
        f"and median: {'met' if _no_growth(first_th, last_th) else 'NOT met'} |",
        f"| RSS MB, median | {_mb(first_rss)} | {_mb(mid_rss)} | {_mb(last_rss)} | |",
        f"| peak RSS MB, this run / the 10-photo run | | | {_mb(long.peak_rss)} / {_mb(short.peak_rss)} = "
        f"{ratio:.3f} | within 10%: {'met' if ratio <= 1.10 else 'NOT met'} |",
        "",
        f"Photos per second over windows of {window} (sizes are random, so a window's mix moves its rate): mean "
        f"{np.nanmean(vals):.2f}, min {np.nanmin(vals):.2f}, max {np.nanmax(vals):.2f}; first half of the "
        f"windows {np.nanmean(vals[:len(vals) // 2]):.2f}, second half {np.nanmean(vals[len(vals) // 2:]):.2f}.",
        "",
        f"CPU seconds per output megapixel (the process' own CPU time, so the machine's other work and the sizes "
        f"in a window move it little): first {window} photos after the first "
        f"{long.cpu_per_mp(1, 1 + window):.2f}, last {window} {long.cpu_per_mp(n - window, n):.2f}.",
        "",
        "| photos | photos/s | CPU s per output MP | RSS MB at the window's end | fds | threads |",
        "|---|---|---|---|---|---|",
    ]
    for a, b, rate in rates:
        s = long.at_output(b)
        lines.append(f"| {a}-{b} | {rate:.2f} | {long.cpu_per_mp(a - 1, b):.2f} | {_mb(s.rss)} | {s.fds} | "
                     f"{s.threads} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=summary(__doc__))
    p.add_argument("--photos", type=int, default=300)
    p.add_argument("--min-px", type=int, default=64)
    p.add_argument("--max-px", type=int, default=256)
    p.add_argument("--window", type=int, default=25, help="photos per speed window")
    p.add_argument("--interval", type=float, default=0.1, help="seconds between samples")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "soak.md"))
    p.add_argument("--note", default="Run on a 2-core machine shared with other work (a background training "
                                     "run and other sessions' jobs): seconds and photos per second are rough and "
                                     "move with that load; memory, file and thread counts are not affected.")
    p.add_argument("extra", nargs="*", help="flags for memsr-upscale after --, e.g. -- --backend onnxruntime")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="memsr-soak-") as d:
        d = Path(d)
        env = dict(os.environ, XDG_CACHE_HOME=str(d / "cache"))
        photos = make_folder(d / "photos", args.photos, args.min_px, args.max_px)
        (d / "ten").mkdir()
        for ph in photos[:10]:
            shutil.copy(ph, d / "ten" / ph.name)
        if "--backend" not in args.extra:  # auto would time both runtimes inside the first run: pick it now
            args.extra += ["--backend", "onnxruntime"]
        print(f"{args.photos} photos made; 10-photo run ...", file=sys.stderr)
        short = watch(upscale_cmd(d / "ten", d / "out10", args.extra), d / "out10", 10, args.interval, env)
        print(f"{short.seconds:.1f} s; {args.photos}-photo run ...", file=sys.stderr)
        long = watch(upscale_cmd(d / "photos", d / "out", args.extra), d / "out", args.photos, args.interval, env)
        print(f"{long.seconds:.1f} s", file=sys.stderr)
        for r in (short, long):
            if r.rc != 0 or len(r.finish_times) != r.photos:
                print(f"run failed (exit {r.rc}, {len(r.finish_times)} of {r.photos} outputs):\n{r.stderr}",
                      file=sys.stderr)
                return 1
        text = report(short, long, args.window, args, args.note)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    # the samples themselves, beside the table
    Path(args.out).with_suffix(".json").write_text(json.dumps(
        {"command": sys.argv, "runs": [dataclasses.asdict(r) | {"stderr": r.stderr[-2000:]} for r in (short, long)]}))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
