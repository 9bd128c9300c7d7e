"""The halo of an ncnn .param derived from its layer list (formats/ncnn_receptive.py), on .param texts written
here: the walk's numbers, and (where the ncnn package is installed) tiles with the derived halo equal the whole
image on ncnn itself while one pixel less does not. Random weights, nothing downloaded."""
import struct

import numpy as np
import pytest

from memsr_deploy.formats.ncnn_receptive import radius

# conv 3x3 -> split -> [conv 3x3 dilation 2] + skip -> conv 3x3 to 48 -> pixel shuffle 4 -> bicubic 0.5:
# LR radius 1 + 2 + 1 = 4, and the bicubic taps of the x4 map reach one more LR pixel: halo 5, x2
NET = """7767517
9 10
Input        in0    0 1 in
Convolution  c0     1 1 in a 0=8 1=3 4=1 5=1 6=216 9=1
Split        sp     1 2 a a0 a1
Convolution  c1     1 1 a0 b 0=8 1=3 2=2 4=2 5=1 6=576
BinaryOp     add    2 1 b a1 c 0=0
Convolution  c2     1 1 c d 0=48 1=3 4=1 5=1 6=3456
PixelShuffle ps     1 1 d e 0=4
Interp       down   1 1 e f 0=3 1=0.5 2=0.5
Noop         out    1 1 f out
"""
SHAPES = [(8, 3), (8, 8), (48, 8)]   # (out, in) channels of the three convs


def _with(net: str, line: str) -> str:
    """``net`` with one more layer before its last (blob ``f`` -> ``g``), counts updated."""
    lines = net.splitlines()
    n, b = (int(v) for v in lines[1].split())
    lines[1] = f"{n + 1} {b + 1}"
    lines[-1] = lines[-1].replace(" f out", " g out")
    return "\n".join(lines[:-1] + [line, lines[-1]]) + "\n"


def test_walk_of_convs_skip_shuffle_and_downsample():
    r = radius(NET)
    assert (r.halo, r.scale, r.align) == (5, 2, 1)


def test_rational_resize_and_strided_conv():
    # x4 then bicubic 0.75 (Real-ESRGAN animevideov3 x3's tail): x3, the taps reach one LR pixel past the convs
    r = radius(NET.replace("1=0.5 2=0.5", "1=0.75 2=0.75"))
    assert (r.scale, r.halo) == (3, 5)
    # a stride-2 conv after the x2 output: back to x1, each output pixel reads x2 pixels 2o-1..2o+1, whose
    # fields' union is still LR o-5..o+5
    r = radius(_with(NET, "Convolution  s2     1 1 f g 0=3 1=3 3=2 4=1 5=1 6=81"))
    assert (r.scale, r.halo, r.align) == (1, 5, 1)
    # the same conv before the net: x1 again, but windows must start on even LR pixels
    first = NET.replace("9 10\n", "10 11\n").replace(
        "Convolution  c0     1 1 in a", "Convolution  s0     1 1 in i2 0=3 1=3 3=2 4=1 5=1 6=81\n"
        "Convolution  c0     1 1 i2 a")
    r = radius(first)
    assert r.scale == 1 and r.align == 2 and r.halo % 2 == 0 and r.halo >= 10


def test_whole_image_and_unknown_layers_are_named():
    r = radius(_with(NET, "Pooling      gp     1 1 f g 0=1 4=1"))
    assert r.halo is None and r.reason.startswith("no finite receptive radius") and "'gp'" in r.reason
    r = radius(_with(NET, "Interp       up     1 1 f g 0=2 6=1 1=2.0 2=2.0"))
    assert r.halo is None and "align corners" in r.reason
    r = radius(_with(NET, "Frobnicate   fz     1 1 f g"))
    assert r.halo is None and r.reason.startswith("receptive radius unknown") and "Frobnicate" in r.reason
    with pytest.raises(ValueError):
        radius("not a param file")


def _weights(rng) -> bytes:
    """The .bin of NET: per conv a float32 tag, weights (out, in, 3, 3), biases."""
    out = b""
    for o, i in SHAPES:
        w = rng.standard_normal((o, i, 3, 3)).astype("<f4") / np.float32(3 * np.sqrt(i))
        out += struct.pack("<I", 0) + w.tobytes() + (rng.standard_normal(o).astype("<f4") * 0.1).tobytes()
    return out


def test_derived_halo_makes_tiles_exact_on_ncnn(tmp_path):
    pytest.importorskip("ncnn")
    from memsr_bench.published_ncnn import tiled_vs_whole
    from memsr_deploy.runtime.backends.ncnn_backend import NcnnPairBackend
    param, binf = tmp_path / "net.param", tmp_path / "net.bin"
    param.write_text(NET)
    binf.write_bytes(_weights(np.random.default_rng(0)))
    # Winograd off: its 6x6 blocks would sit differently in tiles and whole image (round-off of ~1e-5, not
    # context); what remains is float32 round-off of kernels that sum a window's right edge in another order
    b = NcnnPairBackend(param, binf, threads=1, winograd=False)
    assert (b.caps.scale, b.caps.halo) == (2, 5)
    img = (np.random.default_rng(1).random((37, 45, 3)) * 255).astype(np.uint8)
    assert tiled_vs_whole(b, img, 8, 5).max() < 1e-6
    assert tiled_vs_whole(b, img, 8, 4).max() > 1e-4
