"""read_image: any common file -> HxWx3 float32 RGB [0, 1]; broken files -> MemsrError naming the file."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from memsr_deploy.imageio import read_image, save_png, to_uint8
from memsr_deploy.errors import MemsrError


def _rgb(h=20, w=30, seed=0):
    return (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)


def test_png_rgb_roundtrip_and_channel_order(tmp_path):
    rgb = _rgb()
    Image.fromarray(rgb).save(tmp_path / "a.png")
    img = read_image(tmp_path / "a.png")
    assert img.dtype == np.float32 and img.shape == (20, 30, 3)
    np.testing.assert_array_equal(to_uint8(img), rgb)
    save_png(tmp_path / "b.png", img)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "b.png")), rgb)


def test_grey_alpha_and_16bit(tmp_path):
    grey = _rgb()[..., 0]
    Image.fromarray(grey).save(tmp_path / "g.png")
    g = read_image(tmp_path / "g.png")
    assert g.shape == (20, 30, 3)
    np.testing.assert_array_equal(to_uint8(g[..., 2]), grey)

    rgba = np.dstack([_rgb(), np.full((20, 30), 7, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    np.testing.assert_array_equal(to_uint8(read_image(tmp_path / "a.png")), rgba[..., :3])

    deep = (np.random.default_rng(1).random((8, 9, 3)) * 65535).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "d.png"), deep[..., ::-1])
    d = read_image(tmp_path / "d.png")
    np.testing.assert_allclose(d, deep / 65535.0, atol=1e-6)
    Image.fromarray(deep[..., 0]).save(tmp_path / "d1.tif")
    np.testing.assert_allclose(read_image(tmp_path / "d1.tif")[..., 1], deep[..., 0] / 65535.0, atol=1e-6)


def test_other_formats(tmp_path):
    rgb = _rgb()
    for ext in ("bmp", "tif", "webp"):
        Image.fromarray(rgb).save(tmp_path / f"x.{ext}", **({"lossless": True} if ext == "webp" else {}))
        np.testing.assert_array_equal(to_uint8(read_image(tmp_path / f"x.{ext}")), rgb)
    yy, xx = np.mgrid[0:32, 0:48]
    smooth = np.dstack([xx * 5, yy * 7, 255 - xx * 5]).astype(np.uint8)   # JPEG keeps smooth colour
    Image.fromarray(smooth).save(tmp_path / "x.jpg", quality=95)
    assert np.abs(to_uint8(read_image(tmp_path / "x.jpg")).astype(int) - smooth).mean() < 3


@pytest.mark.parametrize("kind", ["missing", "empty", "text", "truncated_jpg", "truncated_png"])
def test_bad_files_raise_memsr_error_naming_file(tmp_path, kind):
    p = tmp_path / f"bad_{kind}.{'png' if kind.endswith('png') else 'jpg'}"
    if kind == "empty":
        p.write_bytes(b"")
    elif kind == "text":
        p.write_text("not an image at all\n" * 10)
    elif kind.startswith("truncated"):
        Image.fromarray(_rgb(64, 64)).save(p)
        data = p.read_bytes()
        p.write_bytes(data[: len(data) // 2])
    with pytest.raises(MemsrError) as e:
        read_image(p)
    assert str(p) in str(e.value)
