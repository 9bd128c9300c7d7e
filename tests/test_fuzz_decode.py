"""Fuzzing the one image reader (issue 12): 200+ corrupt files of every format it reads.

Each case must either decode cleanly or fail with a one-line MemsrError; none may hang (a per-case time
limit), crash the interpreter (the batch runs in a child process, restarted after the case that killed it) or
return pixels after the decoder warned about them. The corpus is generated from small valid images by
truncation, bit flips, wrong signatures and huge declared sizes; the seed is fixed, so a failure reproduces.
"""
from __future__ import annotations

import io
import os
import select
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

CASE_SECONDS = 10.0
WORKER = Path(__file__).with_name("fuzz_worker.py")


def _bases() -> dict[str, bytes]:
    rng = np.random.default_rng(12)
    yy, xx = np.mgrid[0:24, 0:32]
    rgb = (np.dstack([xx * 8, yy * 10, 255 - xx * 8]) + rng.integers(0, 30, (24, 32, 3))).clip(0, 255)
    rgb = rgb.astype(np.uint8)
    im = Image.fromarray(rgb)
    out = {}

    def save(name, img, fmt, **kw):
        buf = io.BytesIO()
        img.save(buf, fmt, **kw)
        out[name] = buf.getvalue()

    save("base.png", im, "PNG")
    save("rgba16.png", Image.fromarray((rgb[:, :, 0].astype(np.uint16) * 257)), "PNG")
    save("base.jpg", im, "JPEG", quality=90)
    save("prog.jpg", im, "JPEG", quality=80, progressive=True)
    save("base.tif", im, "TIFF", compression="tiff_deflate")
    save("raw.tif", im, "TIFF")
    save("lossy.webp", im, "WEBP", quality=80)
    save("lossless.webp", im, "WEBP", lossless=True)
    save("base.bmp", im, "BMP")
    save("anim.gif", im.convert("P"), "GIF", save_all=True, append_images=[im.convert("P").rotate(90)])
    return out


def _huge_png(w: int, h: int, body: bytes) -> bytes:
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(
        ">I", zlib.crc32(b"IHDR" + ihdr)) + body[33:]


def corpus() -> list[tuple[str, bytes]]:
    rng = np.random.default_rng(2026)
    cases = []
    for name, blob in _bases().items():
        stem, ext = name.rsplit(".", 1)
        n = len(blob)
        for frac in (0.02, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99):
            cases.append((f"{stem}_cut{int(frac * 100)}.{ext}", blob[:max(1, int(n * frac))]))
        cases.append((f"{stem}_cut_eoi.{ext}", blob[:n // 2] + b"\xff\xd9"))
        for k in range(8):
            b = bytearray(blob)
            for pos in rng.integers(0, n, size=1 + k):
                b[pos] ^= 1 << int(rng.integers(0, 8))
            cases.append((f"{stem}_flip{k}.{ext}", bytes(b)))
        for k in range(3):  # a run of zeros or random bytes over the body
            b = bytearray(blob)
            start = int(rng.integers(n // 4, n - 8))
            b[start:start + 32] = bytes(32) if k == 0 else rng.integers(0, 256, 32, dtype=np.uint8).tobytes()
            cases.append((f"{stem}_smash{k}.{ext}", bytes(b)))
        cases.append((f"{stem}_badsig.{ext}", bytes([blob[0] ^ 0x55]) + blob[1:]))
        cases.append((f"{stem}_nosig.{ext}", blob[8:]))
    base_png = _bases()["base.png"]
    for w, h in ((60000, 60000), (15000, 15000), (1, 200_000_000), (0, 10), (2 ** 31 - 1, 1)):
        cases.append((f"huge_{w}x{h}.png", _huge_png(w, h, base_png)))
    jpg = bytearray(_bases()["base.jpg"])
    sof = jpg.find(b"\xff\xc0")
    for w, h in ((65535, 65535), (0, 0), (65535, 1)):
        b = bytearray(jpg)
        b[sof + 5:sof + 9] = struct.pack(">HH", h, w)
        cases.append((f"huge_{w}x{h}.jpg", bytes(b)))
    tif = _bases()["raw.tif"]
    for w in (2 ** 31 - 1, 0):  # ImageWidth tag (256) rewritten in place
        b = bytearray(tif)
        ifd = struct.unpack("<I", b[4:8])[0]
        for e in range(struct.unpack("<H", b[ifd:ifd + 2])[0]):
            at = ifd + 2 + 12 * e
            tag, typ = struct.unpack("<HH", b[at:at + 4])
            if tag == 256:
                b[at + 2:at + 12] = struct.pack("<HII", 4, 1, w)
        cases.append((f"huge_{w}.tif", bytes(b)))
    cases += [("empty.png", b""), ("text.jpg", b"hello\n" * 100), ("zeros.tif", bytes(4096))]
    return cases


def _run(paths: list[str]) -> dict[int, str]:
    """Outcome per case index; a hang or a crash is recorded against the case that was running."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(WORKER.parent.parent), os.environ.get("PYTHONPATH", "")]))
    results: dict[int, str] = {}
    start = 0
    while start < len(paths):
        proc = subprocess.Popen([sys.executable, str(WORKER), *paths[start:]], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, env=env)
        fd = proc.stdout.fileno()
        current, deadline, pending, lines = None, time.monotonic() + 60, b"", []
        while True:
            if not lines:
                ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
                if not ready:
                    proc.kill()
                    proc.wait()
                    results[start + (current or 0)] = "HANG"
                    break
                data = os.read(fd, 65536)
                if not data:
                    proc.wait()
                    if current is not None and start + current not in results:
                        results[start + current] = f"CRASH (exit {proc.returncode})"
                    break
                *lines, pending = (pending + data).split(b"\n")
                continue
            word, idx, *rest = lines.pop(0).decode(errors="replace").split(" ", 2)
            idx = int(idx)
            if word == "START":
                current, deadline = idx, time.monotonic() + CASE_SECONDS
            else:
                results[start + idx] = f"{word} {' '.join(rest)}"
        proc.stdout.close()
        start = max(results) + 1 if results else len(paths)
    return results


def test_fuzzed_files_decode_or_fail_cleanly(tmp_path):
    cases = corpus()
    assert len(cases) >= 200
    paths = []
    for name, blob in cases:
        (tmp_path / name).write_bytes(blob)
        paths.append(str(tmp_path / name))
    t0 = time.monotonic()
    results = _run(paths)
    bad = {cases[i][0]: r for i, r in results.items() if not r.startswith(("OK", "ERR"))}
    missing = [cases[i][0] for i in range(len(cases)) if i not in results]
    assert not bad and not missing, (bad, missing)
    outcomes = [r.split(" ")[0] for r in results.values()]
    # the corpus is mostly broken: most cases must be refused, and every truncation of a valid file below 90 %
    # (except an animation's: cut in a later frame, the first frame it uses is whole)
    assert outcomes.count("ERR") > len(cases) // 2
    for i, (name, _) in enumerate(cases):
        if name.startswith("anim_") and "_cut" in name:
            continue
        if any(f"_cut{p}." in name for p in (2, 10, 30, 50, 70)) or name.endswith(("_cut_eoi.jpg", "_cut_eoi.png")):
            assert results[i].startswith("ERR"), (name, results[i])
        if name.startswith("huge_"):
            assert results[i].startswith("ERR"), (name, results[i])
    assert time.monotonic() - t0 < 60
