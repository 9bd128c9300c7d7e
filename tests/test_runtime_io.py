"""Image I/O of the upscaler: bit depths, grey, alpha, orientation, formats, streamed TIFF output."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageOps

from conftest import make_plain
from memsr_deploy.errors import MemsrError
from memsr_deploy.runtime import RunOptions, Upscaler
from memsr_deploy.imageio import tiff_stream
from memsr_deploy.runtime.backends.torch_backend import TorchBackend
from memsr_deploy.imageio import read_picture, write_picture
pytestmark = pytest.mark.usefixtures("one_torch_thread")
from test_runtime_exact import random_image


@pytest.fixture(scope="module")
def backend():
    return TorchBackend(module=make_plain(seed=1))


def model_rgb(backend, rgb01):
    """Reference: the network on the whole float image."""
    return backend.run(rgb01.transpose(2, 0, 1)[None].copy())[0].transpose(1, 2, 0)


def to_int(a, dtype):
    top = np.iinfo(dtype).max
    return np.clip(np.rint(a * top), 0, top).astype(dtype)


def test_16bit_stays_16bit(tmp_path, backend):
    rgb = random_image(np.random.default_rng(0), 21, 26)
    src = tmp_path / "in16.png"
    write_picture(src, to_int(rgb, np.uint16))
    pic = read_picture(src)
    assert pic.dtype == np.uint16 and pic.channels == 3
    np.testing.assert_array_equal(pic.pixels, to_int(rgb, np.uint16))
    for ext in ("png", "tif"):
        dst = tmp_path / f"out16.{ext}"
        Upscaler(backend, RunOptions(tile=6)).upscale_file(src, dst)
        out = read_picture(dst).pixels
        assert out.dtype == np.uint16 and out.shape == (42, 52, 3)
        want = to_int(np.clip(model_rgb(backend, pic.pixels / np.float32(65535)), 0, 1), np.uint16)
        assert np.abs(out.astype(int) - want).max() <= 1  # round-off may flip one 16-bit step


def test_16bit_grey_png_and_tiff_round_trip(tmp_path):
    g = (np.random.default_rng(1).random((13, 17)) * 65535).astype(np.uint16)
    for name in ("g.png", "g.tif"):
        write_picture(tmp_path / name, g[:, :, None])
        pic = read_picture(tmp_path / name)
        assert pic.dtype == np.uint16 and pic.channels == 1
        np.testing.assert_array_equal(pic.pixels[:, :, 0], g)


def test_grey_runs_as_rgb_and_comes_back_grey(tmp_path, backend):
    g = (random_image(np.random.default_rng(2), 19, 23, 1) * 255).round().astype(np.uint8)
    Image.fromarray(g[:, :, 0]).save(tmp_path / "g.png")
    Upscaler(backend, RunOptions(mode="stream", rows=5)).upscale_file(tmp_path / "g.png", tmp_path / "o.png")
    with Image.open(tmp_path / "o.png") as im:
        assert im.mode == "L" and im.size == (46, 38)
        out = np.asarray(im)
    rgb = np.repeat(g / np.float32(255), 3, axis=2)
    want = to_int(np.clip(model_rgb(backend, rgb).mean(axis=2), 0, 1), np.uint8)
    assert np.abs(out.astype(int) - want).max() <= 1


@pytest.mark.parametrize("mode,tile", [("tile", 0), ("tile", 5), ("stream", None)])
def test_alpha_is_upscaled_separately_and_reattached(tmp_path, backend, mode, tile):
    import cv2
    rng = np.random.default_rng(3)
    rgba = to_int(random_image(rng, 22, 25, 4), np.uint8)
    Image.fromarray(rgba).save(tmp_path / "a.png")
    Upscaler(backend, RunOptions(mode=mode, tile=tile, rows=4)).upscale_file(tmp_path / "a.png", tmp_path / "o.png")
    with Image.open(tmp_path / "o.png") as im:
        assert im.mode == "RGBA" and im.size == (50, 44)
        out = np.asarray(im)
    a = rgba[:, :, 3].astype(np.float32) / 255
    want_a = to_int(np.clip(cv2.resize(a, (50, 44), interpolation=cv2.INTER_CUBIC), 0, 1), np.uint8)
    np.testing.assert_array_equal(out[:, :, 3], want_a)  # banded alpha == whole-image bicubic, bit for bit
    want_rgb = to_int(np.clip(model_rgb(backend, rgba[:, :, :3] / np.float32(255)), 0, 1), np.uint8)
    assert np.abs(out[:, :, :3].astype(int) - want_rgb).max() <= 1


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(tmp_path, orientation):
    rng = np.random.default_rng(orientation)
    a = (rng.random((7, 11, 3)) * 255).astype(np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(a).save(tmp_path / "o.png", exif=exif)
    with Image.open(tmp_path / "o.png") as im:
        want = np.asarray(ImageOps.exif_transpose(im))
    np.testing.assert_array_equal(read_picture(tmp_path / "o.png").pixels, want)


def test_exif_orientation_of_jpeg_and_tiff(tmp_path):
    a = np.zeros((20, 40, 3), np.uint8)
    a[:, :20] = 255  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown rotated 90 degrees clockwise: white half ends on top
    Image.fromarray(a).save(tmp_path / "p.jpg", exif=exif, quality=95)
    import tifffile
    tifffile.imwrite(tmp_path / "p.tif", a, photometric="rgb", extratags=[(274, "H", 1, 6, True)])
    for name in ("p.jpg", "p.tif"):
        px = read_picture(tmp_path / name).pixels
        assert px.shape == (40, 20, 3)
        assert px[:20].mean() > 200 and px[20:].mean() < 50


def test_formats_by_extension(tmp_path, backend):
    rgb = to_int(random_image(np.random.default_rng(4), 16, 16), np.uint8)
    Image.fromarray(rgb).save(tmp_path / "in.bmp")
    up = Upscaler(backend, RunOptions(tile=8))
    sizes = {}
    for name, fmt in (("o.jpg", "JPEG"), ("o.webp", "WEBP"), ("o.bmp", "BMP"), ("o.tiff", None), ("o.png", "PNG")):
        up.upscale_file(tmp_path / "in.bmp", tmp_path / name)
        pic = read_picture(tmp_path / name)
        assert pic.pixels.shape == (32, 32, 3) and pic.dtype == np.uint8
        if fmt:
            with Image.open(tmp_path / name) as im:
                assert im.format == fmt
    for q in (20, 95):
        Upscaler(backend, RunOptions(tile=8, quality=q)).upscale_file(tmp_path / "in.bmp", tmp_path / f"q{q}.jpg")
        sizes[q] = (tmp_path / f"q{q}.jpg").stat().st_size
    assert sizes[20] < sizes[95]


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_streamed_tiff_equals_in_memory_output(tmp_path, backend, channels):
    img = to_int(random_image(np.random.default_rng(5), 27, 21, channels), np.uint16)
    write_picture(tmp_path / "in.tif", img)
    up = Upscaler(backend, RunOptions(tile=5))
    up.upscale_file(tmp_path / "in.tif", tmp_path / "out.tif")
    up.upscale_file(tmp_path / "in.tif", tmp_path / "out.png")
    a, b = read_picture(tmp_path / "out.tif").pixels, read_picture(tmp_path / "out.png").pixels
    assert a.shape == (54, 42, channels) and a.dtype == np.uint16
    np.testing.assert_array_equal(a, b)
    import tifffile
    with tifffile.TiffFile(tmp_path / "out.tif") as tf:
        assert tf.is_bigtiff and tf.pages[0].is_tiled


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_float_tiff_is_written_tile_by_tile(tmp_path, backend, monkeypatch, channels):
    """Small TIFF tiles force several slabs, partial edge tiles and bands that straddle slabs."""
    monkeypatch.setattr(tiff_stream, "TILE", 16)
    img = random_image(np.random.default_rng(8), 27, 21, channels).astype(np.float32)
    write_picture(tmp_path / "in.tif", img)
    Upscaler(backend, RunOptions(tile=5)).upscale_file(tmp_path / "in.tif", tmp_path / "out.tif")
    out = read_picture(tmp_path / "out.tif").pixels
    assert out.shape == (54, 42, channels) and out.dtype == np.float32
    want = Upscaler(backend, RunOptions(tile=0)).upscale_array(img, clip=True)
    np.testing.assert_allclose(out, want, atol=1e-5)


def test_input_is_read_in_rows_not_whole(tmp_path, backend, monkeypatch):
    """A tiled run holds a window's rows of the input, not the image (imageio.RowWindows)."""
    from memsr_deploy.imageio import RowWindows, decode, open_image
    monkeypatch.setattr(decode, "CHUNK_BYTES", 40 * 3 * 8)  # chunks of 8 rows
    img = to_int(random_image(np.random.default_rng(6), 300, 40), np.uint8)
    write_picture(tmp_path / "tall.png", img)
    reader = open_image(tmp_path / "tall.png")
    assert reader.streamed
    pic = RowWindows(reader)
    up = Upscaler(backend, RunOptions(tile=8))
    got = np.concatenate([b.pixels for b in up.bands(pic)])
    want = Upscaler(backend, RunOptions(tile=8)).upscale_array(img)
    np.testing.assert_array_equal(got, want)
    assert pic.peak_rows < 100 and pic.restarts == 0


def test_pixel_limit_guards_before_decoding(tmp_path):
    Image.new("RGB", (400, 300)).save(tmp_path / "big.png")
    with pytest.raises(MemsrError, match="decompression bombs"):
        read_picture(tmp_path / "big.png", max_pixels=100_000)
    assert read_picture(tmp_path / "big.png", max_pixels=120_000).pixels.shape == (300, 400, 3)


@pytest.mark.parametrize("name,data,reason", [
    ("text.png", b"hello, not an image", "text.png: not an image"),
    ("empty.jpg", b"", "empty.jpg: not an image"),
])
def test_non_images_are_refused(tmp_path, name, data, reason):
    (tmp_path / name).write_bytes(data)
    with pytest.raises(MemsrError, match=reason):
        read_picture(tmp_path / name)


@pytest.mark.parametrize("ext,dtype", [("png", np.uint8), ("png", np.uint16), ("jpg", np.uint8), ("tif", np.uint16),
                                       ("webp", np.uint8), ("bmp", np.uint8)])
def test_truncated_images_are_refused(tmp_path, ext, dtype):
    a = (np.random.default_rng(7).random((64, 64, 3)) * np.iinfo(dtype).max).astype(dtype)
    write_picture(tmp_path / f"full.{ext}", a)
    blob = (tmp_path / f"full.{ext}").read_bytes()
    (tmp_path / f"cut.{ext}").write_bytes(blob[:len(blob) // 2])
    with pytest.raises(MemsrError, match=rf"cut\.{ext}: unreadable.* truncated"):
        read_picture(tmp_path / f"cut.{ext}")


@pytest.mark.parametrize("ext", ["jpg", "png", "tif", "webp"])
def test_icc_and_exif_are_copied_with_orientation_reset(tmp_path, backend, ext):
    """Pixels are rotated when read, so the output's EXIF says orientation 1; the rest of the EXIF (here the
    camera make) and the ICC profile travel with the image. TIFF: libvips' tiffsave writes no EXIF block, only
    the orientation tag (so the camera tags are lost there)."""
    import pyvips
    from PIL import ImageCms
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    a = to_int(random_image(np.random.default_rng(9), 12, 20), np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "MemsrCam"
    Image.fromarray(a).save(tmp_path / "in.jpg", exif=exif, icc_profile=icc, quality=95)
    Upscaler(backend, RunOptions(tile=8)).upscale_file(tmp_path / "in.jpg", tmp_path / f"out.{ext}")
    out = pyvips.Image.new_from_file(str(tmp_path / f"out.{ext}"))
    assert (out.width, out.height) == (24, 40)  # 20x12 stored, rotated to 12x20, x2
    assert out.get("icc-profile-data") == icc
    with Image.open(tmp_path / f"out.{ext}") as im:
        tags = im.getexif()
        assert tags.get(0x0112) == 1
        assert tags.get(0x010F) == (None if ext == "tif" else "MemsrCam")


def test_row_windows_going_back_restart_the_decoder(tmp_path, monkeypatch):
    from memsr_deploy.imageio import RowWindows, decode, open_image, to_float
    monkeypatch.setattr(decode, "CHUNK_BYTES", 10 * 3 * 8)
    img = to_int(random_image(np.random.default_rng(10), 240, 10), np.uint8)
    write_picture(tmp_path / "t.png", img)
    Image.fromarray(img).save(tmp_path / "t.bmp")  # Pillow's whole-image path, same interface
    for name in ("t.png", "t.bmp"):
        pic = RowWindows(open_image(tmp_path / name))
        np.testing.assert_array_equal(pic.colour(slice(200, 210), slice(2, 5)), to_float(img[200:210, 2:5], 255.0))
        np.testing.assert_array_equal(pic.colour(slice(0, 5), slice(None)),
                                      to_float(img[0:5], 255.0))
        assert pic.restarts == (1 if name == "t.png" else 0)
        pic.close()


@pytest.mark.parametrize("channels,dtype", [(3, np.uint8), (1, np.uint8), (2, np.uint16), (4, np.float32)])
def test_windows_read_into_a_kept_buffer_equal_fresh_ones(channels, dtype):
    """The tile loop reads each window into a slot of its kept batch buffer: same floats as a fresh read, grey
    replicated to RGB, alpha left out."""
    from memsr_deploy.imageio import Picture
    rng = np.random.default_rng(12)
    a = random_image(rng, 20, 17, channels)
    pic = Picture(a if dtype == np.float32 else to_int(a, dtype))
    buf = np.full((2, 9, 6, 3), np.nan, np.float32)
    got = pic.colour(slice(4, 13), slice(5, 11), out=buf[1])
    assert np.shares_memory(got, buf)
    np.testing.assert_array_equal(buf[1], pic.colour(slice(4, 13), slice(5, 11)))
    assert np.isnan(buf[0]).all()


@pytest.mark.parametrize("ext", ["jpg", "tif"])
def test_cmyk_without_profile_reads_as_pillow_converts_it(tmp_path, ext):
    a = to_int(random_image(np.random.default_rng(11), 16, 24), np.uint8)
    Image.fromarray(a).convert("CMYK").save(tmp_path / f"c.{ext}", **({"quality": 95} if ext == "jpg" else {}))
    with Image.open(tmp_path / f"c.{ext}") as im:
        want = np.asarray(im.convert("RGB")).astype(int)
    pic = read_picture(tmp_path / f"c.{ext}")
    assert pic.channels == 3 and pic.dtype == np.uint8
    assert np.abs(pic.pixels.astype(int) - want).max() <= 1
