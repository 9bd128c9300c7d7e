"""What each file format can hold, and conversions between sample types (one table for reader and writer)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import MemsrError

DEFAULT_MAX_PIXELS = 250_000_000
WRITERS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF", ".webp": "WEBP",
           ".bmp": "BMP", ".heic": "HEIF", ".heif": "HEIF"}
# Camera RAW files (LibRaw, raw.py): many are TIFF inside, so they are told apart by their extension.
RAW_EXTENSIONS = (".dng", ".cr2", ".cr3", ".crw", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".orf", ".rw2", ".raf",
                  ".pef", ".srw", ".3fr", ".iiq", ".erf", ".kdc", ".dcr", ".mos", ".mrw", ".x3f", ".rwl")
RAW_OUTPUT = ".tif"         # a RAW input's default output: 16-bit, like the demosaiced picture
READABLE = tuple(WRITERS) + (".hif",) + RAW_EXTENSIONS   # what folder runs pick up; GIF is read when named
IMAGE_EXTENSIONS = READABLE
# Formats that can only hold 8 bits per sample, and those that cannot hold an alpha channel.
EIGHT_BIT_ONLY = ("JPEG", "WEBP", "BMP")
NO_ALPHA = ("JPEG",)


def is_image_file(path) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def output_format(path) -> str:
    fmt = WRITERS.get(Path(path).suffix.lower())
    if fmt is None:
        raise MemsrError(f"unknown output format {Path(path).suffix!r}; use one of {', '.join(WRITERS)}", path)
    return fmt


def storage_dtype(dtype, fmt: str) -> np.dtype:
    """Keep the input's depth where the format can hold it."""
    dtype = np.dtype(dtype)
    if fmt in EIGHT_BIT_ONLY:
        return np.dtype(np.uint8)
    if dtype == np.float32 and fmt != "TIFF":
        return np.dtype(np.uint16)
    return dtype  # HEIF: 16-bit is stored as 10-bit (heif.py)


def maxval(dtype) -> float:
    return {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(np.dtype(dtype), 1.0)


def to_float(a: np.ndarray, top: float, out: np.ndarray | None = None) -> np.ndarray:
    """Samples as float32 in [0, 1], into ``out`` (float32, a's shape) when given."""
    if out is None:
        out = np.empty(a.shape, np.float32)
    return np.multiply(a, np.float32(1.0 / top), out=out, dtype=np.float32)


def from_float(a: np.ndarray, dtype, scratch: np.ndarray | None = None, out: np.ndarray | None = None
               ) -> np.ndarray:
    """Round and clip float [0, 1] samples into the output sample type. ``scratch`` (float32, a's shape) holds
    the one temporary, ``out`` (of ``dtype``) the result: callers that convert every tile pass both and so
    allocate nothing."""
    dtype = np.dtype(dtype)
    if dtype == np.float32:
        res = np.clip(a, 0.0, 1.0, out=scratch).astype(np.float32, copy=False)
    else:
        top = 255.0 if dtype == np.uint8 else 65535.0
        res = np.multiply(a, np.float32(top), out=scratch, dtype=np.float32)
        np.rint(res, out=res)
        np.clip(res, 0, top, out=res)
    if out is None:
        return res.astype(dtype, copy=scratch is not None)
    np.copyto(out, res, casting="unsafe")
    return out


def to_uint8(img: np.ndarray) -> np.ndarray:
    """Float [0, 1] -> uint8, clipped and rounded half up (as MATLAB's im2uint8 / uint8())."""
    return np.floor(np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def quantise(img: np.ndarray) -> np.ndarray:
    """Float [0, 1] snapped to the 8-bit grid, still float32: what saving and re-reading would give."""
    return to_uint8(img).astype(np.float32) / 255.0


def from_uint8(img: np.ndarray) -> np.ndarray:
    return img.astype(np.float32) / 255.0


def eight_bit(pixels: np.ndarray) -> np.ndarray:
    """16-bit -> 8-bit with rounding (x / 257)."""
    return ((pixels.astype(np.uint32) + 128) // 257).astype(np.uint8)
