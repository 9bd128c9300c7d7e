"""HEIC / HEIF (HEVC) in and out, through pillow-heif (libheif with libde265 and x265).

libvips as ``pyvips-binary`` ships it reads and writes AV1 HEIF (AVIF) only, so HEVC files, the iPhone's
default, come here; AVIF still goes to libvips. libheif decodes and encodes a whole picture at once: a HEIF
input is held whole (priced before decoding by the pipeline's memory check, ``decode_bytes``) and a HEIF
output is encoded from the whole upscaled picture.

Reading: libheif applies the file's rotation and mirroring (irot / imir boxes), which is the orientation a HEIF
file has; the EXIF orientation tag, which HEIF readers ignore, is not applied again, and the writer resets it.
10- and 12-bit pictures become 16-bit, with the top bits repeated into the low ones (1023 -> 65535), so a
16-bit output (PNG, TIFF) keeps every level. The ICC profile and EXIF are carried as for JPEG.

A file cut short or with broken boxes is refused with one line. Damage inside the HEVC data itself is not
caught: libheif decodes it as best it can, and pillow-heif offers neither libheif's strict decoding nor its
decoding warnings (measured: 200 flipped bytes in a 128x96 picture decoded without a word).

Writing: 8-bit samples as 8-bit HEIC, 16-bit ones as 10-bit HEIC (x265's depth for high bit depth); grey as
monochrome; ``quality`` as for JPEG (1..100).
"""
from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..errors import MemsrError
from .decode import WholeReader, check_size
from .picture import check_layout

# The brands of HEVC-coded HEIF files (ISO/IEC 23008-12); AV1 brands (avif, avis) are left to libvips.
_HEVC_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"}
_MODES = {"L": (1, np.uint8), "LA": (2, np.uint8), "RGB": (3, np.uint8), "RGBA": (4, np.uint8),
          "I;16": (1, np.uint16), "L;16": (1, np.uint16), "LA;16": (2, np.uint16), "RGB;16": (3, np.uint16),
          "RGBA;16": (4, np.uint16)}
# nclx colour descriptions that mean sRGB (BT.709 primaries; sRGB, BT.709 or unspecified transfer)
_SRGB_PRIMARIES = (1, 2)
_SRGB_TRANSFER = (1, 2, 6, 13, 14, 15)


def is_hevc_heif(head: bytes) -> bool:
    """Whether a file's first bytes (32 or more) are an ``ftyp`` box naming an HEVC HEIF brand."""
    if len(head) < 16 or head[4:8] != b"ftyp":
        return False
    size = int.from_bytes(head[:4], "big")
    brands = [head[8:12]] + [head[i:i + 4] for i in range(16, min(size, len(head)) - 3, 4)]
    return any(b in _HEVC_BRANDS for b in brands)


def _error(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else e.__class__.__name__


class HeifReader(WholeReader):

    def __init__(self, path: Path, max_pixels: int):
        import pillow_heif
        self.path = path
        try:
            # the file's bytes are read now, the picture is decoded on first use
            self._file = pillow_heif.open_heif(path, convert_hdr_to_8bit=False)
            mode, (w, h) = self._file.mode, self._file.size
            info = self._file.info
        except (ValueError, SyntaxError, RuntimeError, EOFError, OSError, IndexError) as e:
            raise MemsrError(f"unreadable, truncated or corrupt image ({_error(e)})", path) from None
        if mode not in _MODES:
            raise MemsrError(f"unsupported HEIF pixel layout {mode}", path)
        self.channels, dtype = _MODES[mode]
        self.dtype = np.dtype(dtype)
        self.bit_depth = int(info.get("bit_depth") or 8)
        self.frames = len(self._file)
        self.icc = info.get("icc_profile") or None
        self.exif = info.get("exif") or None
        self._file_bytes = path.stat().st_size
        check_size(h, w, max_pixels, path)
        self.height, self.width = h, w
        if self.frames > 1:
            warnings.warn(f"holds {self.frames} pictures; only the primary one is used", stacklevel=3)
        if any("hdrgainmap" in str(k).lower() for k in (info.get("aux") or {})):
            warnings.warn(GAIN_MAP_NOTE, stacklevel=3)
        nclx = info.get("nclx_profile")
        if self.icc is None and nclx and (nclx.get("color_primaries") not in _SRGB_PRIMARIES
                                          or nclx.get("transfer_characteristics") not in _SRGB_TRANSFER):
            warnings.warn(f"colours are described by an nclx box (primaries {nclx.get('color_primaries')}, "
                          f"transfer {nclx.get('transfer_characteristics')}) that the output does not carry: "
                          "they are written as sRGB", stacklevel=3)
        self._pixels = None

    @property
    def decode_bytes(self) -> int:
        # measured, 12 MP: libheif's planes and picture plus our copy, about twice the decoded size, and the file
        return 2 * self.nbytes + self._file_bytes

    def _load(self) -> None:
        try:
            a = np.asarray(self._file)  # decodes (libheif keeps the bytes; the copy below frees them)
            if a.dtype == np.uint16 and self.bit_depth < 16:
                a = a | (a >> self.bit_depth)  # libheif shifts 10-bit samples up by 6: fill the low bits too
            else:
                a = a.copy()
        except (ValueError, SyntaxError, RuntimeError, EOFError, OSError) as e:
            raise MemsrError(f"unreadable, truncated or corrupt image ({_error(e)})", self.path) from None
        finally:
            self._file = None
        if a.ndim == 2:
            a = a[:, :, None]
        check_layout(a.shape[2], a.dtype, self.path, a.shape)
        if a.shape != (self.height, self.width, self.channels) or a.dtype != self.dtype:
            raise MemsrError(f"decoded as {a.shape} {a.dtype}, header said {(self.height, self.width, self.channels)}"
                             f" {self.dtype}", self.path)
        self._pixels = a


    def close(self) -> None:
        self._file = None


GAIN_MAP_NOTE = ("holds an HDR gain map: only the standard-range picture is upscaled; the gain map is not carried "
                 "to the output")

# Output bytes per pixel that HEIF encoding holds at its peak (measured, 12 MP RGB: our picture, libheif's
# YCbCr planes and x265's buffers; 21 bytes per pixel for 8-bit, 33 for 16-bit in 10-bit HEIC).
HEIF_ENCODE_BYTES = {1: 24, 2: 36}


def write_heif(tmp: Path, bands: Iterable[np.ndarray], height: int, width: int, channels: int, dtype,
               quality: int, icc: bytes | None, exif: bytes | None) -> None:
    import pillow_heif
    parts = list(bands)
    pixels = parts[0] if len(parts) == 1 else np.concatenate(parts)
    del parts
    if pixels.shape[:2] != (height, width):
        raise RuntimeError(f"bands covered {pixels.shape[0]} of {height} rows")
    sixteen = np.dtype(dtype) == np.uint16
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[channels] + (";16" if sixteen else "")
    info = {"quality": int(quality)}
    if icc:
        info["icc_profile"] = icc
    if exif:
        # the pixels were oriented when read: orientation 1, or pillow-heif would store a rotation (irot) again
        meta = {"exif": exif}
        pillow_heif.set_orientation(meta)
        info["exif"] = meta["exif"]
    try:
        heif = pillow_heif.from_bytes(mode, (width, height), memoryview(np.ascontiguousarray(pixels)))
        heif.save(tmp, **info)
    except (ValueError, RuntimeError, SyntaxError) as e:
        raise OSError(f"HEIF encoder failed ({_error(e)})") from None
