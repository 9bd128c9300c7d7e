"""Decoder strictness and odd inputs through memsr-upscale (issue 12): corrupt data is an error, trailers are
not, extra frames are announced, huge inputs are priced against memory before decoding, tiny images work."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from memsr_deploy.cli.upscale import main
from memsr_deploy.imageio import read_picture
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def run(capsys, *argv):
    rc = main([str(a) for a in argv] + ["-q"])
    return rc, capsys.readouterr().err


def photo(h=96, w=128, seed=0) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    noise = np.random.default_rng(seed).integers(0, 40, (h, w, 3))
    return (np.dstack([xx * 2, yy * 2, 255 - xx]) % 200 + noise).astype(np.uint8)


def jpeg_bytes(a, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "JPEG", quality=90, **kw)
    return buf.getvalue()


def only_hidden(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_truncated_jpeg_with_end_marker_appended_fails_with_no_output(tmp_path, tiny_plain_path, capsys):
    blob = jpeg_bytes(photo())
    src = tmp_path / "cut.jpg"
    src.write_bytes(blob[:int(len(blob) * 0.4)] + b"\xff\xd9")
    before = src.read_bytes()
    rc, err = run(capsys, src, "-o", tmp_path / "out.png", "--model", tiny_plain_path)
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "cut.jpg" in lines[0], err
    assert "corrupt" in lines[0].lower() or "premature" in lines[0].lower()
    assert not (tmp_path / "out.png").exists() and only_hidden(tmp_path) == []
    assert src.read_bytes() == before


def test_jpeg_with_trailer_decodes_like_the_jpeg_alone(tmp_path, tiny_plain_path, capsys):
    blob = jpeg_bytes(photo())
    (tmp_path / "plain.jpg").write_bytes(blob)
    (tmp_path / "motion.jpg").write_bytes(blob + b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 64)
    np.testing.assert_array_equal(read_picture(tmp_path / "motion.jpg").pixels,
                                  read_picture(tmp_path / "plain.jpg").pixels)
    for name in ("plain", "motion"):
        rc, err = run(capsys, tmp_path / f"{name}.jpg", "-o", tmp_path / f"{name}_x2.png", "--model", tiny_plain_path)
        assert rc == 0, err
    np.testing.assert_array_equal(read_picture(tmp_path / "plain_x2.png").pixels,
                                  read_picture(tmp_path / "motion_x2.png").pixels)


@pytest.mark.parametrize("name", ["anim.gif", "pages.tif"])
def test_extra_frames_are_announced(tmp_path, tiny_plain_path, capsys, name):
    a = photo(24, 32)
    Image.fromarray(a).save(tmp_path / name, save_all=True, append_images=[Image.fromarray(a[::-1].copy())])
    rc, err = run(capsys, tmp_path / name, "-o", tmp_path / "out.png", "--model", tiny_plain_path)
    assert rc == 0, err
    assert "only the first is used" in err and name in err
    assert read_picture(tmp_path / "out.png").pixels.shape[:2] == (48, 64)


def test_huge_input_is_priced_against_memory_before_decoding(tmp_path, tiny_plain_path, capsys, monkeypatch):
    """With the pixel guard raised, what decides is the memory the job's pixels need - for a streamed format
    the band buffers, for WebP the whole output - checked from the header, before any decoding."""
    import psutil

    from memsr_deploy.imageio import decode
    a = photo(200, 300)
    Image.fromarray(a).save(tmp_path / "big.png")
    avail = type("mem", (), {"available": 40 << 20})  # pretend 40 MiB are free
    monkeypatch.setattr(psutil, "virtual_memory", lambda: avail)
    decoded = []
    monkeypatch.setattr(decode.VipsReader, "_rows", lambda self: decoded.append(1) or iter(()))
    rc, err = run(capsys, tmp_path / "big.png", "-o", tmp_path / "out.webp", "--model", tiny_plain_path)
    # a 600x400 WebP fits in 40 MiB: the check passes and decoding starts (rows are stubbed, so it then fails)
    assert "GiB available" not in err and decoded == [1], err
    # the same file declaring a huge size, as a bomb would; the pixel guard raised
    import struct
    import zlib
    ihdr = struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0)
    blob = (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr
            + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr)))
    (tmp_path / "huge.png").write_bytes(blob + (tmp_path / "big.png").read_bytes()[33:])
    decoded.clear()
    rc, err = run(capsys, tmp_path / "huge.png", "-o", tmp_path / "huge.webp", "--model", tiny_plain_path,
                  "--max-pixels", "1e12")
    assert rc == 2 and "GiB available" in err and "whole output" in err and decoded == [], err
    rc, err = run(capsys, tmp_path / "huge.png", "-o", tmp_path / "huge.png.jpg", "--model", tiny_plain_path,
                  "--max-pixels", "1e12")
    # streamed JPEG output of a 60000 px wide image: band buffers alone exceed 40 MiB, refused the same way
    assert rc == 2 and "GiB available" in err and "bands" in err and decoded == [], err
    assert not (tmp_path / "huge.webp").exists() and not (tmp_path / "huge.png.jpg").exists()


@pytest.mark.parametrize("h,w", [(1, 1), (2, 3), (3, 2)])
@pytest.mark.parametrize("ext", ["png", "jpg"])
def test_tiny_images_upscale(tmp_path, tiny_plain_path, capsys, h, w, ext):
    from memsr_deploy.runtime import RunOptions, Upscaler, open_backend
    a = photo(h, w)
    Image.fromarray(a).save(tmp_path / f"in.{ext}")
    rc, err = run(capsys, tmp_path / f"in.{ext}", "-o", tmp_path / "out.png", "--model", tiny_plain_path)
    assert rc == 0, err
    out = read_picture(tmp_path / "out.png").pixels
    assert out.shape == (2 * h, 2 * w, 3)
    ref = Upscaler(open_backend(model=str(tiny_plain_path)), RunOptions(tile=0))
    want = ref.upscale_array(read_picture(tmp_path / f"in.{ext}").pixels)
    assert np.abs(out.astype(int) - want.astype(int)).max() <= 1
