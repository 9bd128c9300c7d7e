"""The one image reader: every file is decoded here, for training, evaluation and the upscaler alike.

Rules, the same for every caller:
* EXIF orientation is applied (as cameras and viewers expect), and the pixels are what a viewer shows.
* Samples are kept as stored (uint8, uint16 or float32; grey, grey+alpha, RGB or RGBA); CMYK and other colour
  spaces are converted to sRGB.
* The pixel count is checked from the header, before anything is decoded (decompression-bomb guard).
* A decoder warning (corrupt or premature data) is an error; bytes after a JPEG's end-of-image marker (motion
  photos) are ignored, so such a file decodes exactly like the JPEG alone.
* Only the first frame of an animation or multi-page file is used, and a warning says so.

JPEG, PNG, TIFF, WebP and GIF are decoded by libvips, top to bottom, a chunk of rows at a time (``chunks``),
so an upscaling job holds only the rows its windows need. Orientations other than 1 need the whole image
(a rotated image's first row is the stored image's first column), so such files are decoded whole. BMP and
other formats libvips lacks go through Pillow, whole. HEVC HEIF (heif.py, pillow-heif) and camera RAW
(raw.py, rawpy) are decoded whole by their own libraries; the pipeline prices such inputs from the header
(``decode_bytes``) before decoding. A JPEG's HDR gain map is announced with a warning (gainmap.py).
"""
from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..errors import MemsrError
from .ahead import ahead
from .formats import DEFAULT_MAX_PIXELS
from .picture import Picture, check_layout

# Rows per decoded chunk: about this many bytes. libvips' own buffers grow with the rows asked for at once
# (measured, 6928 px wide PNG: 64-row fetches 41 MB above the process at rest, 512-row fetches 123 MB).
CHUNK_BYTES = 1 << 20
_VIPS_FORMATS = {"uchar": np.uint8, "ushort": np.uint16, "float": np.float32, "double": np.float32}
_SRGB_FROM = ("cmyk", "lab", "labq", "labs", "lch", "cmc", "xyz", "yxy", "hsv")  # float RGB (scrgb): values kept as stored
_NOT_AN_IMAGE = ("not an image, or a format that cannot be read (JPEG, PNG, TIFF, WebP, HEIC, camera RAW, BMP, "
                 "GIF)")


def orient(a: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1..8) to H x W x C pixels; returns a view where numpy can."""
    t = lambda x: x.transpose(1, 0, 2)  # noqa: E731
    return {1: lambda x: x, 2: lambda x: x[:, ::-1], 3: lambda x: x[::-1, ::-1], 4: lambda x: x[::-1],
            5: t, 6: lambda x: np.rot90(x, k=-1), 7: lambda x: t(x)[::-1, ::-1],
            8: lambda x: np.rot90(x, k=1)}.get(orientation, lambda x: x)(a)


def check_size(h: int, w: int, max_pixels: int, path) -> None:
    if h < 1 or w < 1:
        raise MemsrError(f"image has no pixels ({w}x{h})", path)
    if max_pixels and h * w > max_pixels:
        raise MemsrError(f"image is {w}x{h} = {h * w / 1e6:.0f} MP, above the {max_pixels / 1e6:.0f} MP limit that "
                         "guards against decompression bombs (raise it with --max-pixels)", path)


def _first_line(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip() and not ln.strip().startswith("unable to")]
    return (lines or [e.__class__.__name__])[0]


class ImageReader:
    """An opened image: size, layout and metadata from the header; pixels on demand.

    height, width, channels, dtype: the decoded (oriented) image. ``streamed``: rows come top to bottom
    without the whole image in memory. ``icc`` / ``exif``: the input's metadata blobs (None if absent), for
    the writer to copy; ``exif`` still carries the stored orientation, which the writer resets.
    """

    path: Path
    height: int
    width: int
    channels: int
    dtype: np.dtype
    streamed: bool
    frames: int = 1
    icc: bytes | None = None
    exif: bytes | None = None

    def chunks(self) -> Iterator[np.ndarray]:
        """Rows top to bottom, in chunks (H_i x W x C), decoded a chunk ahead in a worker thread."""
        raise NotImplementedError

    def read_all(self) -> np.ndarray:
        parts = list(self.chunks())
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def picture(self) -> Picture:
        return Picture(self.read_all(), self.path)

    def close(self) -> None:
        pass

    @property
    def nbytes(self) -> int:
        return self.height * self.width * self.channels * np.dtype(self.dtype).itemsize

    @property
    def decode_bytes(self) -> int:
        """Bytes held while a reader that is not streamed decodes the whole image (the pipeline's memory check):
        by default the decoder's buffer and the oriented copy."""
        return self.nbytes * 2


# ------------------------------------------------------------------------------------------------- libvips

class VipsReader(ImageReader):
    def __init__(self, path: Path, image, max_pixels: int):
        self.path = path
        self.frames = image.get("n-pages") if image.get_typeof("n-pages") else 1
        orientation = image.get("orientation") if image.get_typeof("orientation") else 1
        self.orientation = orientation if orientation in range(1, 9) else 1
        if self.frames > 1:
            warnings.warn(f"holds {self.frames} frames or pages; only the first is used", stacklevel=3)
        self.exif = image.get("exif-data") if image.get_typeof("exif-data") else None
        self.icc = image.get("icc-profile-data") if image.get_typeof("icc-profile-data") else None
        self._input_icc = self.icc
        if self.orientation in (5, 6, 7, 8):
            check_size(image.width, image.height, max_pixels, path)
            self.height, self.width = image.width, image.height
        else:
            check_size(image.height, image.width, max_pixels, path)
            self.height, self.width = image.height, image.width
        self._converted(image)  # refuse an unsupported layout now, before any pixel
        self.streamed = self.orientation in (1, 2)
        self._whole = None

    def _open(self, access: str, fh=None):
        """The image, converted; with ``fh`` (an open file) read through it: libvips maps a file it opens
        itself, which puts all of a large input's pages into the process' resident memory as it is read
        (measured, 57 MB JPEG: +37 MB peak RSS); read calls keep only what the decoder holds."""
        import pyvips
        try:
            if fh is None:
                image = pyvips.Image.new_from_file(str(self.path), access=access, fail_on="warning")
            else:
                source = pyvips.SourceCustom()
                source.on_read(fh.read)
                source.on_seek(fh.seek)
                image = pyvips.Image.new_from_source(source, "", access=access, fail_on="warning")
        except pyvips.Error as e:
            raise MemsrError(f"unreadable, truncated or corrupt image ({_first_line(e)})", self.path) from None
        return self._converted(image)

    def _converted(self, image):
        """Into one of the stored layouts the upscaler knows (lazily: libvips converts as rows are read)."""
        interp = image.interpretation
        if interp == "cmyk" and self._input_icc is None and image.bands >= 4:
            # no profile: the plain formula, as Pillow converts (libvips would assume a print profile)
            top = 65535 if image.format == "ushort" else 255
            rgb = (top - image.extract_band(0, n=3)) * (top - image.extract_band(3)) / top
            image = rgb.rint().cast(image.format).copy(interpretation="srgb" if top == 255 else "rgb16")
        elif interp in _SRGB_FROM:
            if interp == "cmyk":
                image = image.icc_transform("srgb", embedded=True, input_profile="cmyk")
            else:
                image = image.colourspace("srgb")
            self.icc = None  # the input's profile described the old colour space
        fmt = image.format
        if fmt not in _VIPS_FORMATS:
            raise MemsrError(f"unsupported sample type {fmt} (8-bit, 16-bit or float only)", self.path)
        if fmt == "double":
            image = image.cast("float")
        if image.bands > 4:
            image = image.extract_band(0, n=4)
        self.channels = image.bands
        self.dtype = np.dtype(_VIPS_FORMATS[fmt])
        check_layout(self.channels, self.dtype, self.path)
        return image

    def _rows(self) -> Iterator[np.ndarray]:
        if not self.streamed:
            yield self.read_all()
            return
        try:
            fh = open(self.path, "rb")
        except OSError as e:
            raise MemsrError(f"cannot read ({e.strerror})", self.path) from None
        with fh:
            yield from self._stream(self._open("sequential", fh))

    def _stream(self, image) -> Iterator[np.ndarray]:
        import pyvips
        w, c = image.width, image.bands
        step = max(8, min(512, CHUNK_BYTES // max(w * c * self.dtype.itemsize, 1)))
        try:
            region = pyvips.Region.new(image)
            for y in range(0, image.height, step):
                n = min(step, image.height - y)
                rows = np.frombuffer(region.fetch(0, y, w, n), self.dtype).reshape(n, w, c)
                yield rows[:, ::-1] if self.orientation == 2 else rows
        except pyvips.Error as e:
            raise MemsrError(f"unreadable, truncated or corrupt image ({_first_line(e)})", self.path) from None

    def read_all(self) -> np.ndarray:
        if self.streamed:
            return super().read_all()
        if self._whole is None:  # rotated: decoded whole, once
            import pyvips
            image = self._open("random")
            try:
                whole = np.frombuffer(image.write_to_memory(), self.dtype)
            except pyvips.Error as e:
                raise MemsrError(f"unreadable, truncated or corrupt image ({_first_line(e)})", self.path) from None
            self._whole = orient(whole.reshape(image.height, image.width, image.bands), self.orientation)
        return self._whole

    def chunks(self) -> Iterator[np.ndarray]:
        return ahead(self._rows(), depth=2)


# -------------------------------------------------------------------------------------------------- Pillow

@contextlib.contextmanager
def _pil_limit():
    """PIL has its own global bomb check; ours (check_size) is the one that applies, with our message."""
    from PIL import Image
    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS = old


class WholeReader(ImageReader):
    """A reader whose library gives the whole image at once (Pillow, libheif, LibRaw): decoded on first use by
    ``_load`` into ``_pixels``, then handed out as one chunk."""
    streamed = False
    _pixels: np.ndarray | None = None

    def _load(self) -> None:
        raise NotImplementedError

    def chunks(self) -> Iterator[np.ndarray]:
        yield self.read_all()

    def read_all(self) -> np.ndarray:
        if self._pixels is None:
            self._load()
        return self._pixels


class PilReader(WholeReader):
    """Formats libvips lacks (BMP, ...): decoded whole by Pillow on first use."""

    def __init__(self, path: Path, max_pixels: int):
        from PIL import Image, UnidentifiedImageError
        self.path = path
        with _pil_limit():
            try:
                with Image.open(path) as im:
                    w, h = im.size
                    self.frames = getattr(im, "n_frames", 1)
                    self.orientation = int(im.getexif().get(0x0112, 1) or 1)
                    self.icc = im.info.get("icc_profile")
                    self.exif = im.info.get("exif")
                    self.channels, self.dtype = _pil_layout(im)
            except UnidentifiedImageError:
                if _known_signature(path):  # an image's header with no readable body: cut short
                    raise MemsrError("unreadable, truncated or corrupt image (no readable header after the "
                                     "signature)", path) from None
                raise MemsrError(_NOT_AN_IMAGE, path) from None
            except (OSError, SyntaxError, ValueError) as e:
                raise MemsrError(f"unreadable, truncated or corrupt image ({e})", path) from None
        if self.frames > 1:
            warnings.warn(f"holds {self.frames} frames or pages; only the first is used", stacklevel=3)
        if self.orientation in (5, 6, 7, 8):
            w, h = h, w
        check_size(h, w, max_pixels, path)
        self.height, self.width = h, w
        self._pixels = None  # Pillow cannot give rows: the whole image is decoded on first use

    def _load(self) -> None:
        from PIL import Image
        with _pil_limit(), warnings.catch_warnings():
            warnings.simplefilter("error")  # a decoder warning is an error
            try:
                with Image.open(self.path) as im:
                    pixels = _pil_pixels(im, self.path)
            except MemsrError:
                raise
            except Exception as e:  # noqa: BLE001 - Pillow's plugins raise many types for a corrupt file
                raise MemsrError(f"unreadable, truncated or corrupt image ({e})", self.path) from None
        pixels = orient(pixels if pixels.ndim == 3 else pixels[:, :, None], self.orientation)
        check_layout(pixels.shape[2], pixels.dtype, self.path, pixels.shape)
        if (pixels.shape[2], pixels.dtype) != (self.channels, self.dtype):
            raise MemsrError(f"decoded as {pixels.shape[2]} x {pixels.dtype}, header said {self.channels} x "
                             f"{self.dtype}", self.path)
        self._pixels = pixels



def _pil_layout(im) -> tuple[int, np.dtype]:
    """Channels and sample type that _pil_pixels will return for this image, from its header."""
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        return 1, np.dtype(np.uint16)
    if mode == "F":
        return 1, np.dtype(np.float32)
    if mode in ("L", "1"):
        return 1, np.dtype(np.uint8)
    if mode == "LA":
        return 2, np.dtype(np.uint8)
    if mode in ("RGB", "RGBA"):
        return len(mode), np.dtype(np.uint8)
    has_alpha = mode in ("PA", "RGBa", "La") or (mode == "P" and "transparency" in im.info)
    return (4 if has_alpha else 3), np.dtype(np.uint8)


_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+", b"GIF87a",
               b"GIF89a", b"BM")


def _known_signature(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(16)
    return head.startswith(_SIGNATURES) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


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


# ------------------------------------------------------------------------------------------------ entry points

def require_file(path) -> Path:
    """The path, if it names an existing file (the first check of every read; callers may run it early)."""
    path = Path(path)
    if not path.exists():
        raise MemsrError("no such file", path)
    if path.is_dir():
        raise MemsrError("is a folder, not an image", path)
    return path


def open_image(path, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageReader:
    """Open an image file: header read and checked, nothing decoded yet (except for Pillow's formats)."""
    import pyvips
    # libvips' operation cache would keep each header load, and with it the file (WebP's loader holds it
    # open): a folder run had up to 4 inputs open long after they were done (benchmarks/soak.py). Every file
    # here is read once, so nothing is lost.
    pyvips.cache_set_max(0)
    path = require_file(path)
    from .formats import RAW_EXTENSIONS
    from .heif import is_hevc_heif
    try:
        with open(path, "rb") as fh:
            head = fh.read(64)
    except OSError as e:
        raise MemsrError(f"cannot read ({e.strerror})", path) from None
    if not head:
        raise MemsrError(f"{_NOT_AN_IMAGE} (empty file)", path)
    if path.suffix.lower() in RAW_EXTENSIONS:  # many RAW files are TIFF inside: told apart by name
        from .raw import RawReader
        return RawReader(path, max_pixels)
    if is_hevc_heif(head):  # libvips here has no HEVC decoder
        from .heif import HeifReader
        return HeifReader(path, max_pixels)
    loader = pyvips.vips_lib.vips_foreign_find_load(str(path).encode())
    if loader == pyvips.ffi.NULL:
        pyvips.vips_lib.vips_error_clear()
        return PilReader(path, max_pixels)
    try:
        image = pyvips.Image.new_from_file(str(path), fail_on="warning")
    except pyvips.Error as e:
        raise MemsrError(f"unreadable, truncated or corrupt image ({_first_line(e)})", path) from None
    reader = VipsReader(path, image, max_pixels)
    if head.startswith(b"\xff\xd8\xff"):
        from .gainmap import has_gain_map
        from .heif import GAIN_MAP_NOTE
        if has_gain_map(path):
            warnings.warn(GAIN_MAP_NOTE, stacklevel=2)
    return reader


def read_picture(path, max_pixels: int = DEFAULT_MAX_PIXELS) -> Picture:
    """The whole image as stored (oriented), for callers that need it all at once."""
    return open_image(path, max_pixels).picture()


def read_image(path, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """HxWx3 float32 RGB in [0, 1]: grey replicated to RGB, alpha dropped, 16-bit scaled by 1/65535.
    The training and evaluation view of a file (same pixels as the upscaler reads)."""
    px = read_picture(path, max_pixels).pixels
    rgb = px[:, :, :1].repeat(3, axis=2) if px.shape[2] in (1, 2) else px[:, :, :3]
    if rgb.dtype == np.float32:
        return np.clip(rgb, 0.0, 1.0).astype(np.float32)
    # divided, not multiplied by the reciprocal: the float values training and evaluation have always used
    return rgb.astype(np.float32) / (255.0 if rgb.dtype == np.uint8 else 65535.0)


def read_image_uint8(path) -> np.ndarray:
    """HxWx3 uint8 RGB (16-bit files are rounded to 8 bits); for in-memory training sets."""
    from .formats import to_uint8
    return to_uint8(read_image(path))
