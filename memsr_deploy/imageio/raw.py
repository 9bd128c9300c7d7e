"""Camera RAW and DNG input, through rawpy (LibRaw).

The sensor's mosaic is demosaiced by LibRaw (AHD) with the camera's own white balance (the as-shot
multipliers the file records; LibRaw's daylight ones where a file has none), converted to sRGB primaries
with the sRGB tone curve, and kept at 16 bits per sample. LibRaw's default exposure is kept: it brightens
the picture until 1% of the pixels clip, as dcraw does. The orientation the camera recorded is applied.
No ICC profile (the pixels are sRGB) and no EXIF are carried to the output.

LibRaw decodes a whole picture at once, so a RAW input is held whole; the pixel-memory check prices it from
the header (``decode_bytes``) before anything is decoded.

LibRaw reports damaged data (a short file, corrupt compressed data) on standard error and, for some faults,
goes on with the pixels it has. rawpy offers no hook for those reports, so file descriptor 2 is sent to a
temporary file while LibRaw runs; a report there makes the read fail (a decoder warning is an error), and
anything else written meanwhile is passed on to standard error.
"""
from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..errors import MemsrError
from .decode import WholeReader, check_size

_CAPTURE = threading.Lock()


@contextlib.contextmanager
def _libraw_reports(path: Path) -> Iterator[None]:
    """Run LibRaw with its standard-error reports captured; raise the first one that names ``path``."""
    with _CAPTURE, tempfile.TemporaryFile() as sink:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:  # a report is the better reason, also when rawpy raised its own error
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            ours, others = [], []
            for line in sink.read().decode(errors="replace").splitlines():
                (ours if line.startswith(str(path)) else others).append(line)
            if others:
                sys.stderr.write("\n".join(others) + "\n")
            if ours:
                reason = ours[0][len(str(path)):].lstrip(": ").strip()
                raise MemsrError(f"unreadable, truncated or corrupt image ({reason})", path)


def _reason(e: BaseException) -> str:
    arg = e.args[0] if e.args else e.__class__.__name__
    return (arg.decode(errors="replace") if isinstance(arg, bytes) else str(arg)).strip()


def _open(path: Path):
    import rawpy
    try:
        with _libraw_reports(path):
            return rawpy.imread(str(path))
    except rawpy.LibRawFileUnsupportedError:
        raise MemsrError("not a camera RAW file that LibRaw can read", path) from None
    except (rawpy.LibRawError, rawpy.NotSupportedError, OSError) as e:
        raise MemsrError(f"unreadable, truncated or corrupt image ({_reason(e)})", path) from None


def raw_size(sizes) -> tuple[int, int]:
    """Height and width of LibRaw's output, from the header: the visible area, stretched to square pixels
    (as LibRaw's stretch step does) and turned by the orientation."""
    h, w = sizes.height, sizes.width
    aspect = sizes.pixel_aspect or 1.0
    if aspect < 1:
        h = int(h / aspect + 0.5)
    elif aspect > 1:
        w = int(w * aspect + 0.5)
    return (w, h) if sizes.flip & 4 else (h, w)


class RawReader(WholeReader):
    channels = 3
    dtype = np.dtype(np.uint16)

    def __init__(self, path: Path, max_pixels: int):
        self.path = path
        raw = _open(path)
        try:
            h, w = raw_size(raw.sizes)
            self._raw_bytes = raw.sizes.raw_height * raw.sizes.raw_width * 2
        finally:
            raw.close()  # reopened to decode: a folder run keeps no file open per waiting input
        check_size(h, w, max_pixels, path)
        self.height, self.width = h, w
        self._pixels = None

    @property
    def decode_bytes(self) -> int:
        # measured, 12 MP DNG: 17 bytes per output pixel above the process at rest (the sensor data, LibRaw's
        # 4-channel 16-bit picture, its 3-channel output and rawpy's copy), then our picture
        return self._raw_bytes + 4 * self.nbytes

    def _load(self) -> None:
        import rawpy
        raw = _open(self.path)
        try:
            with _libraw_reports(self.path):
                rgb = raw.postprocess(use_camera_wb=True, output_bps=16, output_color=rawpy.ColorSpace.sRGB,
                                      gamma=(2.4, 12.92))
        except (rawpy.LibRawError, rawpy.NotSupportedError, OSError) as e:
            raise MemsrError(f"unreadable, truncated or corrupt image ({_reason(e)})", self.path) from None
        finally:
            raw.close()
        if rgb.shape != (self.height, self.width, 3) or rgb.dtype != np.uint16:
            raise MemsrError(f"LibRaw gave {rgb.shape[1]}x{rgb.shape[0]} {rgb.dtype} pixels, the header said "
                             f"{self.width}x{self.height}", self.path)
        self._pixels = rgb

