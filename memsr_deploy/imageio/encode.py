"""The one image writer: bands of rows in, a file out, without ever holding the whole image.

JPEG, PNG, TIFF (8/16-bit) and WebP are encoded by libvips. libvips pulls its input: here it reads an
uncompressed PNG stream (stored deflate blocks, so building it is a copy) that is produced band by band as the
encoder asks for it, through a ``pyvips.SourceCustom``; with sequential access libvips keeps only a few rows.
Float32 TIFF goes through tifffile tile by tile (tiff_stream.py), BMP through Pillow, whole (libvips writes
no BMP). WebP is a whole-image format for libwebp (libvips buffers it; at most 16383 x 16383 pixels). HEIC goes
through pillow-heif (heif.py), also whole.

The input's ICC profile and EXIF are copied; the EXIF orientation is set to 1, since the pixels were rotated
when read. Files are written under a temporary name and renamed (outputs.atomic).
"""
from __future__ import annotations

import os
import struct
import threading
import warnings
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from ..errors import MemsrError
from ..outputs.atomic import atomic_path
from .formats import EIGHT_BIT_ONLY, NO_ALPHA, eight_bit, from_float, output_format, to_uint8

_PNG_COLOUR = {1: 0, 2: 4, 3: 2, 4: 6}   # grey, grey+alpha, RGB, RGBA
FEED_BYTES = 1 << 20                      # bytes of rows per IDAT chunk of the feed
_SAVE_OPTIONS = {
    "JPEG": lambda q: {"Q": q},
    "WEBP": lambda q: {"Q": q},
    "PNG": lambda q: {"compression": 6},
    # tiled BigTIFF, fast deflate with the horizontal predictor: what the tifffile writer produced before
    "TIFF": lambda q: {"compression": "deflate", "level": 1, "predictor": "horizontal", "tile": True,
                       "tile_width": 256, "tile_height": 256, "bigtiff": True},
}


def readable_by_all(tmp: Path) -> None:
    """Temporary files are created private (0600); an output image gets the usual umask-based mode."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)


def prepare_for_format(pixels: np.ndarray, fmt: str, warn: bool = True) -> np.ndarray:
    """Convert what a format cannot store: float and 16-bit -> 8-bit where needed, alpha dropped for JPEG."""
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if fmt in NO_ALPHA and pixels.shape[2] in (2, 4):
        if warn:
            warnings.warn(f"{fmt} has no alpha channel: transparency dropped", stacklevel=3)
        pixels = pixels[:, :, :-1]
    if pixels.dtype == np.float32 and fmt != "TIFF":
        pixels = from_float(pixels, np.uint16 if fmt in ("PNG", "HEIF") else np.uint8)
    if pixels.dtype == np.uint16 and fmt in EIGHT_BIT_ONLY:
        if warn:
            warnings.warn(f"{fmt} holds 8 bits per sample: 16-bit output reduced to 8 bits", stacklevel=3)
        pixels = eight_bit(pixels)
    return pixels


# ------------------------------------------------------------------------------------------- the PNG feed

def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(tag)))


def png_stream(bands: Iterable[np.ndarray], height: int, width: int, channels: int, dtype) -> Iterator[bytes]:
    """An uncompressed PNG of the bands, produced as it is read."""
    depth = 16 if np.dtype(dtype) == np.uint16 else 8
    yield b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth,
                                                              _PNG_COLOUR[channels], 0, 0, 0))
    z = zlib.compressobj(0)
    row_bytes = 1 + width * channels * depth // 8
    step = max(1, FEED_BYTES // row_bytes)  # a band is served in slices: each copy below is one slice, not a band
    rows_done = 0
    for band in bands:
        if band.shape[1:] != (width, channels):
            raise RuntimeError(f"band of shape {band.shape} in a {width}x{height}x{channels} image")
        for y in range(0, band.shape[0], step):
            px = band[y:y + step]
            rows = np.empty((px.shape[0], row_bytes), np.uint8)
            rows[:, 0] = 0  # filter type 0: the encoder filters and compresses, not us
            rows[:, 1:] = (px.astype(">u2") if depth == 16 else px).reshape(px.shape[0], -1).view(np.uint8)
            data = z.compress(rows.data)
            if data:
                yield _chunk(b"IDAT", data)
        rows_done += band.shape[0]
    if rows_done != height:
        raise RuntimeError(f"bands covered {rows_done} of {height} rows")
    yield _chunk(b"IDAT", z.flush()) + _chunk(b"IEND", b"")


class _Feed:
    """Serves a byte generator to libvips' read calls; an exception in the generator is kept (libvips only
    sees the end of the stream) and raised again by ``check``."""

    def __init__(self, parts: Iterator[bytes]):
        self.parts, self.buf, self.error = parts, memoryview(b""), None
        self.aborted = False

    def read(self, size: int) -> bytes:
        try:
            while not len(self.buf):
                if self.aborted:
                    return b""
                part = next(self.parts, None)
                if part is None:
                    return b""
                self.buf = memoryview(part)
            out, self.buf = self.buf[:size], self.buf[size:]
            return bytes(out)
        except BaseException as e:  # noqa: BLE001 - must not cross into C; raised by check()
            self.error = e
            return b""

    def check(self) -> None:
        if self.error is not None:
            raise self.error

def _vips_write(tmp: Path, fmt: str, bands, height: int, width: int, channels: int, dtype, quality: int,
                icc: bytes | None, exif: bytes | None) -> None:
    """libvips encodes in a worker thread while this (main) thread waits in short steps, so that Ctrl-C and
    signal handlers still run: they abort the feed, which makes the encoder stop at its next read. ``bands``
    may be an ``ahead.Ahead``, which is then stopped too."""
    import pyvips
    feed = _Feed(png_stream(bands, height, width, channels, dtype))
    source = pyvips.SourceCustom()
    source.on_read(feed.read)
    failure: list[BaseException] = []

    def encode() -> None:
        try:
            image = pyvips.Image.new_from_source(source, "", access="sequential", fail_on="error")
            image = image.copy()  # metadata is set on a private copy of the header
            if icc:
                image.set_type(pyvips.GValue.blob_type, "icc-profile-data", icc)
            if exif:
                image.set_type(pyvips.GValue.blob_type, "exif-data", exif)
                image.set_type(pyvips.GValue.gint_type, "orientation", 1)
            image.write_to_file(str(tmp), **_SAVE_OPTIONS[fmt](quality))
        except pyvips.Error as e:
            # without its traceback: the frames it holds (pyvips' save operation among them) would keep the
            # output file open, in a reference cycle through ``failure``, until the garbage collector runs; the
            # failed file, already unlinked, would hold its disk space meanwhile (a full disk stayed full)
            failure.append(e.with_traceback(None))
        except BaseException as e:  # noqa: BLE001 - reported by the waiting thread
            failure.append(e)

    worker = threading.Thread(target=encode, name="memsr-encode", daemon=True)
    try:
        worker.start()  # inside the try: a signal right after it must still stop the encoder
        while worker.is_alive():
            worker.join(0.1)
    except BaseException:
        # Interrupted: the encoder stops at its next read, the compute thread after its current band. Wait for
        # both, so that no thread is inside a native library (or still writing the file) when the temporary
        # file is removed and the interpreter exits.
        feed.aborted = True
        if hasattr(bands, "stop"):
            bands.stop()
        if worker.ident is not None:
            worker.join()
        raise
    feed.check()  # the real cause, when the bands failed
    if failure:
        e = failure[0]
        if isinstance(e, pyvips.Error):
            raise OSError(f"{fmt} encoder failed ({str(e).strip().splitlines()[-1]})") from None
        raise e


def _pil_write(tmp: Path, bands, height: int, width: int, channels: int, fmt: str) -> None:
    from PIL import Image
    parts = list(bands)
    pixels = parts[0] if len(parts) == 1 else np.concatenate(parts)
    if pixels.shape[:2] != (height, width):
        raise RuntimeError(f"bands covered {pixels.shape[0]} of {height} rows")
    im = Image.fromarray(np.ascontiguousarray(pixels[:, :, 0] if channels == 1 else pixels))
    if channels == 2:
        im = im.convert("RGBA")
    im.save(tmp, format=fmt)


def write_bands(path, bands: Iterable[np.ndarray], height: int, width: int, channels: int, dtype,
                quality: int = 95, icc: bytes | None = None, exif: bytes | None = None,
                before_rename=None) -> None:
    """Write bands (H_i x W x C, top to bottom, in a sample type the format holds: see ``storage_dtype``)
    to ``path``, format from the extension, atomically (``before_rename``: see outputs.atomic.atomic_path)."""
    path = Path(path)
    fmt = output_format(path)
    dtype = np.dtype(dtype)
    try:
        with atomic_path(path, before_rename=before_rename) as tmp:
            readable_by_all(tmp)
            if fmt == "BMP":
                _pil_write(tmp, bands, height, width, channels, fmt)
            elif dtype == np.float32:
                if fmt != "TIFF":
                    raise ValueError(f"float samples cannot be stored in {fmt}")
                from .tiff_stream import write_tiff_tiles
                write_tiff_tiles(tmp, bands, height, width, channels, dtype, icc)
            elif fmt == "HEIF":
                from .heif import write_heif
                write_heif(tmp, bands, height, width, channels, dtype, int(quality), icc, exif)
            else:
                _vips_write(tmp, fmt, bands, height, width, channels, dtype, int(quality), icc, exif)
    except OSError as e:
        raise MemsrError(f"cannot write output ({e.strerror or e})", path) from None


def write_picture(path, pixels: np.ndarray, quality: int = 95, icc: bytes | None = None,
                  exif: bytes | None = None) -> None:
    """Write H x W x C pixels (C in 1..4) to ``path`` (format from the extension) atomically."""
    pixels = prepare_for_format(pixels, output_format(path))
    write_bands(path, [pixels], pixels.shape[0], pixels.shape[1], pixels.shape[2], pixels.dtype, quality, icc, exif)


def save_png(path, img: np.ndarray) -> Path:
    """Write an HxWx3 (or HxW) image as 8-bit PNG, atomically. Float input is taken as [0, 1]."""
    write_picture(path, img if img.dtype == np.uint8 else to_uint8(img))
    return Path(path)
