"""Reading and writing images as HxWx3 float32 RGB in [0, 1], whatever the file's bit depth or channel layout."""
from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from ..outputs.atomic import atomic_path
from ..errors import MemsrError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def is_image_file(path) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def _check_complete(data: bytes, path) -> None:
    """cv2 decodes a truncated JPEG/PNG into a half-grey image with only a console warning; PIL raises."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
    except UnidentifiedImageError:
        return  # a format PIL cannot open; cv2 alone decides
    except (OSError, SyntaxError, ValueError) as e:
        raise MemsrError(f"corrupt or truncated image ({e})", path) from None
    except Image.DecompressionBombError as e:
        raise MemsrError(f"image too large ({e})", path) from None


def _to_rgb(arr: np.ndarray, path) -> np.ndarray:
    """cv2 channel layouts (grey, grey+alpha, BGR, BGRA) -> RGB; alpha is dropped, not composited."""
    if arr.ndim == 2:
        return np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3:
        raise MemsrError(f"unsupported image shape {arr.shape}", path)
    c = arr.shape[2]
    if c == 1 or c == 2:
        return np.repeat(arr[:, :, :1], 3, axis=2)
    if c == 3 or c == 4:
        return np.ascontiguousarray(arr[:, :, 2::-1])
    raise MemsrError(f"unsupported number of channels ({c})", path)


def read_image_uint8(path) -> np.ndarray:
    """HxWx3 uint8 RGB (16-bit files are rounded to 8 bits); for in-memory training sets."""
    return to_uint8(read_image(path))


def read_image(path) -> np.ndarray:
    """HxWx3 float32 RGB in [0, 1]. Grey is replicated to RGB, alpha dropped, 16-bit scaled by 1/65535.

    Raises MemsrError naming the file when it is missing, unreadable, truncated or not an image.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise MemsrError(f"cannot read image ({e.strerror or e})", path) from None
    if not data:
        raise MemsrError("empty file, not an image", path)
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        # Formats cv2 lacks (e.g. GIF) may still open in PIL.
        try:
            with Image.open(io.BytesIO(data)) as im:
                im.load()
                im = im.convert("RGBA" if "A" in im.getbands() or "transparency" in im.info else "RGB")
                arr = np.asarray(im)[:, :, :3]
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
            raise MemsrError("not a readable image", path) from None
        return arr.astype(np.float32) / 255.0
    _check_complete(data, path)
    rgb = _to_rgb(arr, path)
    if rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise MemsrError("image has no pixels", path)
    if rgb.dtype == np.uint8:
        return rgb.astype(np.float32) / 255.0
    if rgb.dtype == np.uint16:
        return rgb.astype(np.float32) / 65535.0
    if rgb.dtype in (np.float32, np.float64):
        return np.clip(rgb, 0.0, 1.0).astype(np.float32)
    raise MemsrError(f"unsupported sample type {rgb.dtype}", path)


def to_uint8(img: np.ndarray) -> np.ndarray:
    """Float [0, 1] -> uint8, clipped and rounded half up (as MATLAB's im2uint8 / uint8())."""
    return np.floor(np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def quantise(img: np.ndarray) -> np.ndarray:
    """Float [0, 1] snapped to the 8-bit grid, still float32: what saving and re-reading would give."""
    return to_uint8(img).astype(np.float32) / 255.0


def from_uint8(img: np.ndarray) -> np.ndarray:
    return img.astype(np.float32) / 255.0


def save_png(path, img: np.ndarray) -> Path:
    """Write an HxWx3 (or HxW) image as 8-bit PNG, atomically. Float input is taken as [0, 1]."""
    path = Path(path)
    arr = img if img.dtype == np.uint8 else to_uint8(img)
    if arr.ndim == 3:
        arr = np.ascontiguousarray(arr[:, :, ::-1])
    with atomic_path(path, suffix=".png") as tmp:
        if not cv2.imwrite(str(tmp), arr):
            raise MemsrError("could not write PNG", path)
    return path
