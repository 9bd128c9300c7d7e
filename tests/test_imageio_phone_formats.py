"""Phones' and cameras' own formats (issue 32): HEIC in and out (8 and 10-bit, orientation, ICC, EXIF), camera
RAW / DNG in (a minimal DNG written here), HDR gain maps announced, bad files as one-line errors, and the memory
check pricing these whole-image decoders before they decode."""
from __future__ import annotations

import io

import numpy as np
import pillow_heif
import pytest
from PIL import Image, ImageCms

from memsr_deploy.cli.upscale import main
from memsr_deploy.imageio import open_image, read_picture
from memsr_deploy.imageio.gainmap import has_gain_map
pytestmark = pytest.mark.usefixtures("one_torch_thread")

ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def run(capsys, *argv):
    rc = main([str(a) for a in argv] + ["-q", "--backend", "torch"])  # no speed probe of the auto choice
    return rc, capsys.readouterr().err


def scene(h, w, top, seed=0, dtype=np.uint8):
    """Smooth gradients with a little noise and a bright block at the top-left corner (to see rotations)."""
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    rgb = np.dstack([0.2 + 0.5 * xx, 0.2 + 0.5 * yy, 0.6 - 0.3 * xx])
    rgb += np.random.default_rng(seed).normal(0, 0.01, rgb.shape)
    rgb[:6, :8] = 1.0
    return np.clip(np.rint(rgb * top), 0, top).astype(dtype)


def write_heic(path, pixels, orientation=1, icc=ICC, make="MemsrPhone"):
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = make
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[pixels.shape[2]] + (";16" if pixels.dtype == np.uint16 else "")
    heif = pillow_heif.from_bytes(mode, (pixels.shape[1], pixels.shape[0]), pixels.tobytes())
    # near-lossless: 4:4:4 at top quality, so pixels can be compared with the source
    heif.save(path, quality=100, chroma=444, exif=exif.tobytes(), icc_profile=icc)


def rot90_cw(a):
    return np.rot90(a, k=-1)


# --------------------------------------------------------------------------------------------------- HEIC in

def test_heic_8bit_is_oriented_and_keeps_icc_and_exif(tmp_path):
    a = scene(24, 40, 255)
    write_heic(tmp_path / "p.heic", a, orientation=6)
    reader = open_image(tmp_path / "p.heic")
    assert not reader.streamed and (reader.height, reader.width) == (40, 24)   # sizes from the header
    assert reader.icc == ICC and b"MemsrPhone" in reader.exif
    pic = reader.picture()
    assert pic.dtype == np.uint8 and pic.pixels.shape == (40, 24, 3)
    want = rot90_cw(a)  # orientation 6: turned a quarter clockwise; the bright corner is now top right
    assert np.abs(pic.pixels.astype(int) - want).mean() < 2.0
    assert pic.pixels[:8, -6:].min() > 240 and pic.pixels[:8, :6].max() < 200


def test_heic_10bit_reads_as_full_range_16bit(tmp_path):
    a = scene(20, 30, 65535, dtype=np.uint16)
    write_heic(tmp_path / "p10.heic", a)
    assert pillow_heif.open_heif(tmp_path / "p10.heic").info["bit_depth"] == 10
    px = read_picture(tmp_path / "p10.heic").pixels
    assert px.dtype == np.uint16 and px.shape == (20, 30, 3)
    assert px.max() == 65535                        # white is white, not 65472 (1023 << 6)
    np.testing.assert_array_equal(px & 63, px >> 10)  # the 10 stored bits, repeated into the low 6
    assert np.abs(px.astype(int) - a).mean() < 6 * 64  # HEVC at top quality: a few 10-bit steps from the source


def test_heic_through_the_upscaler_keeps_depth_metadata_and_orientation(tmp_path, tiny_plain_path, capsys):
    a = scene(20, 28, 65535, dtype=np.uint16)
    write_heic(tmp_path / "in.heic", a, orientation=6)
    for name in ("out.png", "out.jpg", "out.heic"):
        rc, err = run(capsys, tmp_path / "in.heic", "-o", tmp_path / name, "--model", tiny_plain_path)
        assert rc == 0, err
    png = read_picture(tmp_path / "out.png").pixels
    assert png.dtype == np.uint16 and png.shape == (56, 40, 3)     # 10-bit -> 16-bit where the format holds it
    assert read_picture(tmp_path / "out.jpg").pixels.dtype == np.uint8
    heic = pillow_heif.open_heif(tmp_path / "out.heic", convert_hdr_to_8bit=False)
    assert heic.size == (40, 56) and heic.info["bit_depth"] == 10   # not turned a second time
    assert heic.info["icc_profile"] == ICC
    exif = Image.Exif()
    exif.load(heic.info["exif"])
    assert exif[0x0112] == 1 and exif[0x010F] == "MemsrPhone"
    with Image.open(tmp_path / "out.jpg") as im:
        assert im.info["icc_profile"] == ICC and im.getexif()[0x0112] == 1 and im.getexif()[0x010F] == "MemsrPhone"
    # the HEIC output holds the PNG output's picture, to HEVC's precision (the random model's output is noisy:
    # 4:2:0 chroma loses some of it), with no shift in level
    diff = read_picture(tmp_path / "out.heic").pixels.astype(float) - png
    assert np.abs(diff).mean() < 0.05 * 65535 and np.abs(diff.mean(axis=(0, 1))).max() < 0.005 * 65535


def test_grey_and_alpha_heic_round_trip(tmp_path, tiny_plain_path, capsys):
    g = scene(16, 16, 255)[:, :, :1].copy()
    rgba = np.concatenate([scene(16, 16, 255), np.full((16, 16, 1), 128, np.uint8)], axis=2)
    write_heic(tmp_path / "g.heic", g)
    write_heic(tmp_path / "a.heic", rgba)
    assert read_picture(tmp_path / "g.heic").channels == 1
    assert read_picture(tmp_path / "a.heic").channels == 4
    rc, err = run(capsys, tmp_path / "g.heic", tmp_path / "a.heic", "-o", tmp_path / "out", "--model", tiny_plain_path)
    assert rc == 0, err
    assert read_picture(tmp_path / "out" / "g_x2.heic").pixels.shape == (32, 32, 1)
    out = read_picture(tmp_path / "out" / "a_x2.heic").pixels
    assert out.shape == (32, 32, 4) and abs(int(out[:, :, 3].mean()) - 128) <= 2


@pytest.mark.parametrize("cut", ["half", "boxes"])
def test_corrupt_heic_is_one_line_naming_the_file(tmp_path, tiny_plain_path, capsys, cut):
    write_heic(tmp_path / "ok.heic", scene(32, 48, 255))
    blob = (tmp_path / "ok.heic").read_bytes()
    bad = blob[:len(blob) // 2] if cut == "half" else blob[:40] + bytes(60) + blob[100:]
    (tmp_path / "bad.heic").write_bytes(bad)
    rc, err = run(capsys, tmp_path / "bad.heic", "-o", tmp_path / "out.png", "--model", tiny_plain_path)
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and "bad.heic" in lines[0] and "corrupt" in lines[0], err
    assert not (tmp_path / "out.png").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


# ---------------------------------------------------------------------------------------------------- DNG in

def write_dng(path, cfa: np.ndarray, orientation=1, neutral=(0.5, 1.0, 0.8), white=4095):
    """A minimal DNG 1.4: one uncompressed 16-bit RGGB mosaic in IFD0 with the tags LibRaw needs (CFA layout,
    DNG version, levels, a colour matrix and the as-shot white balance)."""
    import tifffile

    def rationals(values, den=10000):
        return [x for v in values for x in (int(round(v * den)), den)]

    tags = [(33421, "H", 2, (2, 2), True),                  # CFARepeatPatternDim
            (33422, "B", 4, (0, 1, 1, 2), True),            # CFAPattern: R G / G B
            (50706, "B", 4, (1, 4, 0, 0), True),            # DNGVersion
            (50707, "B", 4, (1, 1, 0, 0), True),            # DNGBackwardVersion
            (50708, "s", 0, "Memsr Test Camera", True),     # UniqueCameraModel
            (50714, "H", 1, 0, True),                       # BlackLevel
            (50717, "H", 1, white, True),                   # WhiteLevel
            (50721, "2i", 9, rationals([1, 0, 0, 0, 1, 0, 0, 0, 1]), True),  # ColorMatrix1 (XYZ -> camera)
            (50728, "2I", 3, rationals(neutral), True),     # AsShotNeutral: the camera's white balance
            (50778, "H", 1, 21, True),                      # CalibrationIlluminant1: D65
            (271, "s", 0, "Memsr", True), (272, "s", 0, "Test", True), (274, "H", 1, orientation, True)]
    tifffile.imwrite(path, cfa, photometric=32803, subfiletype=0, extratags=tags)


def grey_mosaic(h, w, neutral=(0.5, 1.0, 0.8), white=4095):
    """A grey scene brightening left to right, as a sensor behind an RGGB filter whose red and blue respond
    ``neutral`` times as strongly as green."""
    level = np.linspace(0.05, 0.6, w)[None, :].repeat(h, 0)
    gain = np.empty((h, w))
    gain[0::2, 0::2], gain[0::2, 1::2], gain[1::2, 0::2], gain[1::2, 1::2] = neutral[0], 1, 1, neutral[2]
    return np.rint(level * gain * white).astype(np.uint16)


def test_dng_is_demosaiced_white_balanced_16bit_srgb_and_oriented(tmp_path):
    write_dng(tmp_path / "cam.dng", grey_mosaic(48, 64), orientation=6)
    reader = open_image(tmp_path / "cam.dng")
    assert not reader.streamed and (reader.height, reader.width, reader.channels) == (64, 48, 3)
    px = reader.read_all()
    assert px.dtype == np.uint16 and px.shape == (64, 48, 3)
    mid = px[8:-8, 8:-8].astype(float)
    mid = mid[mid.max(axis=2) < 60000]                      # LibRaw's auto exposure clips the brightest 1%
    assert len(mid) > 500
    # the camera's white balance makes the grey scene grey again (without it red would be half of green)
    assert np.abs(mid[:, 0] / mid[:, 1] - 1).max() < 0.05 and np.abs(mid[:, 2] / mid[:, 1] - 1).max() < 0.05
    # turned a quarter clockwise: the scene's left-to-right brightening now runs top to bottom
    rows = px.astype(float).mean(axis=(1, 2))
    assert rows[5] < rows[30] < rows[55]


def test_dng_through_the_upscaler_defaults_to_16bit_tiff(tmp_path, tiny_plain_path, capsys):
    write_dng(tmp_path / "cam.dng", grey_mosaic(24, 32))
    rc, err = run(capsys, tmp_path / "cam.dng", "--model", tiny_plain_path)
    assert rc == 0, err
    out = read_picture(tmp_path / "cam_x2.tif").pixels
    assert out.dtype == np.uint16 and out.shape == (48, 64, 3)


def test_corrupt_dng_is_one_line_and_libraw_prints_nothing(tmp_path, tiny_plain_path, capfd):
    write_dng(tmp_path / "ok.dng", grey_mosaic(48, 64))
    blob = (tmp_path / "ok.dng").read_bytes()
    (tmp_path / "cut.dng").write_bytes(blob[:len(blob) // 2])
    (tmp_path / "junk.dng").write_bytes(b"not a raw file " * 40)
    for name, reason in (("cut.dng", "Unexpected end of file"), ("junk.dng", "not a camera RAW file")):
        rc = main([str(tmp_path / name), "-o", str(tmp_path / "out.png"), "--model", str(tiny_plain_path), "-q",
                   "--backend", "torch"])
        err = capfd.readouterr().err   # file descriptor 2 itself: LibRaw's own report must not leak
        lines = err.strip().splitlines()
        assert rc == 2 and len(lines) == 1 and name in lines[0] and reason in lines[0], err
    assert not (tmp_path / "out.png").exists()


# ------------------------------------------------------------------------------------- priced before decoding

@pytest.mark.parametrize("name", ["big.heic", "big.dng"])
def test_whole_image_decoders_are_priced_before_decoding(tmp_path, tiny_plain_path, capsys, monkeypatch, name):
    import psutil

    from memsr_deploy.imageio import heif, raw
    if name.endswith("heic"):
        write_heic(tmp_path / name, scene(240, 320, 255))
    else:
        write_dng(tmp_path / name, grey_mosaic(240, 320))
    decoded = []
    monkeypatch.setattr(heif.HeifReader, "_load", lambda self: decoded.append(1))
    monkeypatch.setattr(raw.RawReader, "_load", lambda self: decoded.append(1))
    monkeypatch.setattr(psutil, "virtual_memory", lambda: type("mem", (), {"available": 1 << 20}))
    rc, err = run(capsys, tmp_path / name, "-o", tmp_path / "out.heic", "--model", tiny_plain_path)
    assert rc == 2 and "GiB available" in err and "decoded input" in err and "whole output" in err, err
    assert decoded == [] and not (tmp_path / "out.heic").exists()


# --------------------------------------------------------------------------------------------- HDR gain maps

def jpeg(a, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "JPEG", quality=90, **kw)
    return buf.getvalue()


def with_app1(blob: bytes, payload: bytes) -> bytes:
    """The JPEG with one more APP1 segment right after its start marker."""
    return blob[:2] + b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload + blob[2:]


XMP = b"http://ns.adobe.com/xap/1.0/\x00"


def test_hdr_gain_maps_are_announced(tmp_path, tiny_plain_path, capsys):
    a = scene(24, 32, 255)
    gain = scene(12, 16, 255, seed=1)
    # Ultra HDR: the primary's XMP names the hdrgm namespace, the gain map JPEG follows it
    ultra = with_app1(jpeg(a), XMP + b'<x:xmpmeta><rdf:Description xmlns:hdrgm="http://ns.adobe.com/hdr-gain-map/'
                               b'1.0/" hdrgm:Version="1.0"/></x:xmpmeta>') + jpeg(gain)
    (tmp_path / "ultra.jpg").write_bytes(ultra)
    # an MPF file whose second picture is the gain map (as Apple and ISO 21496-1 files mark it)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "MPO", save_all=True, append_images=[Image.fromarray(gain)])
    mpo = buf.getvalue()
    second = mpo.index(b"\xff\xd8", 2)
    marked = with_app1(mpo[second:], XMP + b'<rdf:Description apdi:AuxiliaryImageType="urn:com:apple:photo:2020:'
                                           b'aux:hdrgainmap"/>')
    (tmp_path / "apple.jpg").write_bytes(mpo[:second] + marked)
    (tmp_path / "stereo.jpg").write_bytes(mpo)   # MPF with a plain second picture: no gain map
    (tmp_path / "plain.jpg").write_bytes(jpeg(a))
    assert [has_gain_map(tmp_path / n) for n in ("ultra.jpg", "apple.jpg", "stereo.jpg", "plain.jpg")] == \
        [True, True, False, False]
    rc, err = run(capsys, tmp_path, "-o", tmp_path / "out", "--model", tiny_plain_path)
    assert rc == 0, err
    noted = [ln for ln in err.splitlines() if "gain map is not carried to the output" in ln]
    assert len(noted) == 2 and any("ultra.jpg" in ln for ln in noted) and any("apple.jpg" in ln for ln in noted), err
    assert len([p for p in (tmp_path / "out").iterdir() if not p.name.startswith(".")]) == 4   # + the job's journal
