"""Reading and writing the images that the upscaler works on, at their native bit depth.

A decoded image is kept as stored (uint8, uint16 or float32 in [0, 1]; grey, grey+alpha, RGB or RGBA) and only
the windows the network needs are turned into float RGB, so a 100 MP 8-bit input costs 300 MB, not 1.2 GB.
Uncompressed TIFFs are memory-mapped instead of read. EXIF orientation is applied as a numpy view.
The pixel count is checked from the header, before anything is decoded (decompression-bomb guard).
"""
from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import MemsrError

DEFAULT_MAX_PIXELS = 250_000_000
WRITERS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF", ".webp": "WEBP",
           ".bmp": "BMP"}
READABLE = tuple(WRITERS)
# Formats that can only hold 8 bits per sample, and those that cannot hold an alpha channel.
EIGHT_BIT_ONLY = ("JPEG", "WEBP", "BMP")
NO_ALPHA = ("JPEG",)


@dataclass
class Picture:
    """Pixels as stored: H x W x C with C = 1 (grey), 2 (grey+alpha), 3 (RGB) or 4 (RGBA)."""
    pixels: np.ndarray
    path: Path | None = None

    def __post_init__(self):
        if self.pixels.ndim == 2:
            self.pixels = self.pixels[:, :, None]
        if self.pixels.ndim != 3 or self.pixels.shape[2] not in (1, 2, 3, 4):
            raise MemsrError(f"unsupported pixel layout {self.pixels.shape}", self.path)
        if self.pixels.dtype not in (np.uint8, np.uint16, np.float32):
            raise MemsrError(f"unsupported sample type {self.pixels.dtype} (8-bit, 16-bit or float32 only)",
                             self.path)

    @property
    def height(self) -> int:
        return self.pixels.shape[0]

    @property
    def width(self) -> int:
        return self.pixels.shape[1]

    @property
    def channels(self) -> int:
        return self.pixels.shape[2]

    @property
    def is_grey(self) -> bool:
        return self.channels in (1, 2)

    @property
    def has_alpha(self) -> bool:
        return self.channels in (2, 4)

    @property
    def dtype(self) -> np.dtype:
        return self.pixels.dtype

    @property
    def maxval(self) -> float:
        return {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(self.pixels.dtype, 1.0)

    def colour(self, ys: slice, xs: slice) -> np.ndarray:
        """Float32 RGB window in [0, 1] (grey is replicated: the network always sees RGB)."""
        block = self.pixels[ys, xs]
        rgb = block[:, :, :1].repeat(3, axis=2) if self.is_grey else block[:, :, :3]
        return to_float(rgb, self.maxval)

    def alpha(self, ys: slice) -> np.ndarray:
        """Float32 alpha rows in [0, 1], full width."""
        return to_float(self.pixels[ys, :, -1], self.maxval)


def to_float(a: np.ndarray, maxval: float) -> np.ndarray:
    out = np.asarray(a, dtype=np.float32)
    return out * np.float32(1.0 / maxval) if maxval != 1.0 else out.copy()


def from_float(a: np.ndarray, dtype) -> np.ndarray:
    """Round and clip float [0, 1] samples into the output sample type."""
    dtype = np.dtype(dtype)
    if dtype == np.float32:
        return np.clip(a, 0.0, 1.0).astype(np.float32)
    top = 255.0 if dtype == np.uint8 else 65535.0
    return np.clip(np.rint(a * np.float32(top)), 0, top).astype(dtype)


def output_format(path) -> str:
    fmt = WRITERS.get(Path(path).suffix.lower())
    if fmt is None:
        raise MemsrError(f"unknown output format {Path(path).suffix!r}; use one of {', '.join(WRITERS)}", path)
    return fmt


# ---------------------------------------------------------------------------------------------------- reading

def _orient(a: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1..8) to H x W x C pixels; returns a view where numpy can."""
    t = lambda x: x.transpose(1, 0, 2)  # noqa: E731
    return {1: lambda x: x, 2: lambda x: x[:, ::-1], 3: lambda x: x[::-1, ::-1], 4: lambda x: x[::-1],
            5: t, 6: lambda x: np.rot90(x, k=-1), 7: lambda x: t(x)[::-1, ::-1],
            8: lambda x: np.rot90(x, k=1)}.get(orientation, lambda x: x)(a)


def _check_size(h: int, w: int, max_pixels: int, path) -> None:
    if h < 1 or w < 1:
        raise MemsrError(f"image has no pixels ({w}x{h})", path)
    if max_pixels and h * w > max_pixels:
        raise MemsrError(f"image is {w}x{h} = {h * w / 1e6:.0f} MP, above the {max_pixels / 1e6:.0f} MP limit that "
                         "guards against decompression bombs (raise it with --max-pixels)", path)


@contextlib.contextmanager
def _pil_limit(max_pixels: int):
    """PIL has its own global bomb check; ours (above) is the one that applies, with our message."""
    from PIL import Image
    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS = old


def read_picture(path, max_pixels: int = DEFAULT_MAX_PIXELS) -> Picture:
    """Decode an image file (JPEG, PNG, TIFF, WebP, BMP) with its orientation applied."""
    path = Path(path)
    if not path.exists():
        raise MemsrError("no such file", path)
    if path.is_dir():
        raise MemsrError("is a folder, not an image", path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError as e:
        raise MemsrError(f"cannot read ({e.strerror})", path) from None
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return _read_tiff(path, max_pixels)
    return _read_pil(path, max_pixels)


def _read_tiff(path: Path, max_pixels: int) -> Picture:
    import tifffile
    try:
        with tifffile.TiffFile(path) as tf:
            series = tf.series[0]
            page = tf.pages[0]
            axes, shape = series.axes, series.shape
            orientation = int(page.tags["Orientation"].value) if "Orientation" in page.tags else 1
            if axes not in ("YX", "YXS", "SYX"):
                raise MemsrError(f"unsupported TIFF layout (axes {axes}, shape {shape}): one 2-D image expected",
                                 path)
            h, w = (shape[1], shape[2]) if axes == "SYX" else (shape[0], shape[1])
            _check_size(h, w, max_pixels, path)
            mappable = page.is_contiguous and page.compression == 1 and axes != "SYX"
            data = None if mappable else series.asarray()
        if mappable:
            data = tifffile.memmap(path, mode="r")  # uncompressed: read pages lazily, never all of it
    except MemsrError:
        raise
    except Exception as e:  # codecs raise their own types (zlib.error, ...): any failure means unreadable
        raise MemsrError(f"unreadable or truncated TIFF ({e.__class__.__name__}: {e})", path) from None
    if axes == "SYX":
        data = data.transpose(1, 2, 0)
    if data.dtype == np.float64 or data.dtype == np.float16:
        data = data.astype(np.float32)
    pic = Picture(data, path)
    pic.pixels = _orient(pic.pixels, orientation)
    return pic


def _png_is_16bit_colour(im) -> bool:
    raw = im.tile[0].args if im.tile else ""
    return im.format == "PNG" and isinstance(raw, str) and raw.endswith(";16B") and im.mode in ("RGB", "RGBA", "LA")


def _read_pil(path: Path, max_pixels: int) -> Picture:
    from PIL import Image, UnidentifiedImageError
    with _pil_limit(max_pixels):
        try:
            with Image.open(path) as im:
                w, h = im.size
                _check_size(h, w, max_pixels, path)
                png16 = _png_is_16bit_colour(im)  # before getexif(): for PNG it may decode the pixels
                orientation = int(im.getexif().get(0x0112, 1) or 1)
                if png16:
                    pixels = _read_png16(path, im.mode)
                elif im.format == "JPEG" and im.mode in ("RGB", "L"):
                    pixels = _read_jpeg(path, im.mode)
                else:
                    pixels = _pil_pixels(im, path)
        except UnidentifiedImageError:
            raise MemsrError("not an image, or a format that cannot be read (JPEG, PNG, TIFF, WebP, BMP)",
                             path) from None
        except (OSError, SyntaxError, ValueError) as e:
            raise MemsrError(f"unreadable, truncated or corrupt image ({e})", path) from None
    return Picture(_orient(pixels if pixels.ndim == 3 else pixels[:, :, None], orientation), path)


def _pil_pixels(im, path) -> np.ndarray:
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L"):
        return np.asarray(im).astype(np.uint16)
    if mode == "I":
        a = np.asarray(im)
        if a.min() < 0 or a.max() > 65535:
            raise MemsrError("32-bit integer images are not supported", path)
        return a.astype(np.uint16)
    if mode == "F":
        return np.clip(np.asarray(im, dtype=np.float32), 0, 1)
    if mode in ("L", "LA", "RGB", "RGBA"):
        im.load()
        return np.asarray(im)
    if mode == "1":
        return np.asarray(im.convert("L"))
    has_alpha = mode in ("PA", "RGBa", "La") or (mode == "P" and "transparency" in im.info)
    return np.asarray(im.convert("RGBA" if has_alpha else "RGB"))


def _read_jpeg(path: Path, mode: str) -> np.ndarray:
    """cv2 decodes straight into one array; PIL holds 4 bytes per pixel plus a copy (a 100 MP JPEG peaks at about
    1 GB through PIL, 0.6 GB here). cv2 does not fail on a truncated JPEG, so the end-of-image marker is checked
    first."""
    import cv2
    with open(path, "rb") as fh:
        fh.seek(0, 2)
        fh.seek(max(fh.tell() - 4096, 0))
        tail = fh.read().rstrip(b"\x00")
    if not tail.endswith(b"\xff\xd9"):
        raise MemsrError("unreadable, truncated or corrupt image (JPEG has no end-of-image marker)", path)
    flags = (cv2.IMREAD_GRAYSCALE if mode == "L" else cv2.IMREAD_COLOR) | cv2.IMREAD_IGNORE_ORIENTATION
    a = cv2.imread(str(path), flags)
    if a is None:
        raise MemsrError("unreadable, truncated or corrupt JPEG", path)
    return a if a.ndim == 2 else a[:, :, ::-1]  # BGR -> RGB as a view: windows are copied anyway


def _read_png16(path: Path, mode: str) -> np.ndarray:
    import cv2
    from PIL import Image
    with Image.open(path) as im:
        im.verify()  # cv2 decodes a truncated PNG into a partly grey image with only a console warning
    a = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)  # PIL would cut 16-bit colour PNGs to 8 bits
    if a is None:
        raise MemsrError("unreadable, truncated or corrupt PNG", path)
    if a.ndim == 3 and a.shape[2] in (3, 4):
        a = a[:, :, [2, 1, 0, 3][:a.shape[2]]]  # BGR(A) -> RGB(A)
    if mode == "LA" and a.shape[2] == 4:
        a = a[:, :, [0, 3]]
    return a


# ---------------------------------------------------------------------------------------------------- writing

def write_picture(path, pixels: np.ndarray, quality: int = 95) -> None:
    """Write H x W x C pixels (C in 1..4) to ``path`` (format from the extension) atomically."""
    from ..outputs.atomic import atomic_path
    path = Path(path)
    fmt = output_format(path)
    pixels = prepare_for_format(pixels, fmt)
    try:
        with atomic_path(path) as tmp:
            readable_by_all(tmp)
            if fmt == "TIFF":
                _write_tiff_array(tmp, pixels)
            elif fmt == "PNG" and pixels.dtype == np.uint16:
                _write_png16(tmp, pixels)
            else:
                _write_pil(tmp, pixels, fmt, quality)
    except OSError as e:
        raise MemsrError(f"cannot write output ({e.strerror or e})", path) from None


def readable_by_all(tmp: Path) -> None:
    """Temporary files are created private (0600); an output image gets the usual umask-based mode."""
    import os
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)


def prepare_for_format(pixels: np.ndarray, fmt: str) -> np.ndarray:
    """Convert what a format cannot store: float and 16-bit -> 8-bit where needed, alpha dropped for JPEG."""
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if fmt in NO_ALPHA and pixels.shape[2] in (2, 4):
        warnings.warn(f"{fmt} has no alpha channel: transparency dropped", stacklevel=3)
        pixels = pixels[:, :, :-1]
    if pixels.dtype == np.float32 and fmt != "TIFF":
        pixels = from_float(pixels, np.uint16 if fmt == "PNG" else np.uint8)
    if pixels.dtype == np.uint16 and fmt in EIGHT_BIT_ONLY:
        warnings.warn(f"{fmt} holds 8 bits per sample: 16-bit output reduced to 8 bits", stacklevel=3)
        pixels = ((pixels.astype(np.uint32) + 128) // 257).astype(np.uint8)
    return pixels


def tiff_kwargs(channels: int) -> dict:
    if channels in (3, 4):
        kw = {"photometric": "rgb"}
    else:
        kw = {"photometric": "minisblack"}
    if channels in (2, 4):
        kw["extrasamples"] = ["unassalpha"]
    return kw


def _write_tiff_array(tmp: Path, pixels: np.ndarray) -> None:
    import tifffile
    data = pixels[:, :, 0] if pixels.shape[2] == 1 else pixels
    tifffile.imwrite(tmp, data, bigtiff=pixels.nbytes > 2 ** 31, compression="zlib",
                     compressionargs={"level": 1}, **tiff_kwargs(pixels.shape[2]))


def _write_png16(tmp: Path, pixels: np.ndarray) -> None:
    import cv2
    c = pixels.shape[2]
    if c == 2:  # cv2 has no grey+alpha: store as RGBA, which every reader maps back
        pixels = pixels[:, :, [0, 0, 0, 1]]
    elif c in (3, 4):
        pixels = pixels[:, :, [2, 1, 0, 3][:c]]
    if not cv2.imwrite(str(tmp), np.ascontiguousarray(pixels)):
        raise OSError("PNG encoder failed")


def _write_pil(tmp: Path, pixels: np.ndarray, fmt: str, quality: int) -> None:
    from PIL import Image
    c = pixels.shape[2]
    im = Image.fromarray(np.ascontiguousarray(pixels[:, :, 0] if c == 1 else pixels))  # L, LA, RGB or RGBA
    if fmt == "BMP" and c == 2:
        im = im.convert("RGBA")
    kw = {"quality": int(quality)} if fmt in ("JPEG", "WEBP") else {}
    im.save(tmp, format=fmt, **kw)
