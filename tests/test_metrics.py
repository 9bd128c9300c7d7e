"""PSNR-Y / SSIM-Y: the BT.601 luma of MATLAB's rgb2ycbcr, 8-bit quantisation, border crop, Wang et al.'s SSIM."""
from __future__ import annotations

import math

import numpy as np
import pytest
from skimage.color import rgb2ycbcr
from skimage.metrics import structural_similarity

from memsr_deploy.quality.metrics import psnr_y, rgb_to_y, ssim_y


def _img(seed, shape=(40, 50, 3)):
    return np.random.default_rng(seed).random(shape).astype(np.float32)


def test_y_matches_bt601_and_skimage():
    img = _img(0)
    y = rgb_to_y(img)
    q = np.floor(img.astype(np.float64) * 255 + 0.5) / 255
    np.testing.assert_allclose(y, 16 + 65.481 * q[..., 0] + 128.553 * q[..., 1] + 24.966 * q[..., 2])
    np.testing.assert_allclose(y, rgb2ycbcr(q)[..., 0], atol=1e-9)
    assert rgb_to_y(np.zeros((2, 2, 3)))[0, 0] == pytest.approx(16)
    assert rgb_to_y(np.ones((2, 2, 3)))[0, 0] == pytest.approx(235)


def test_psnr_identical_is_inf_and_known_mse():
    a = _img(1)
    assert psnr_y(a, a) == math.inf
    # Raising every channel by one 8-bit level raises Y by (65.481 + 128.553 + 24.966) / 255 exactly.
    q = np.floor(a * 254 + 0.5) / 255          # room to add a level without clipping
    b = q + 1 / 255
    dy = (65.481 + 128.553 + 24.966) / 255
    assert psnr_y(q, b) == pytest.approx(10 * math.log10(255 ** 2 / dy ** 2), abs=1e-6)


def test_psnr_quantises_first_and_crop_shaves_borders():
    a = _img(2)
    q = np.floor(a * 255 + 0.5) / 255
    assert psnr_y(a, q) == math.inf                       # sub-level differences vanish in 8 bits
    b = q.copy()
    b[:3] = 0                                             # damage only the top 3 rows
    assert psnr_y(q, b, crop=3) == math.inf
    assert psnr_y(q, b, crop=2) < 40
    assert psnr_y(q, np.clip(q + 0.3, 0, 1)) < psnr_y(q, np.clip(q + 0.05, 0, 1))


def test_ssim_matches_skimage_gaussian_ssim():
    a = _img(3, (64, 72, 3))
    b = np.clip(a + np.random.default_rng(4).normal(0, 0.05, a.shape), 0, 1)
    ya, yb = rgb_to_y(a)[4:-4, 4:-4], rgb_to_y(b)[4:-4, 4:-4]
    ref = structural_similarity(ya, yb, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                data_range=255)
    assert ssim_y(a, b, crop=4) == pytest.approx(ref, abs=1e-6)
    assert ssim_y(a, a) == pytest.approx(1.0)
    assert 0 < ssim_y(a, b) < 1


def test_shape_checks():
    with pytest.raises(ValueError, match="shape"):
        psnr_y(_img(0), _img(0, (40, 51, 3)))
    with pytest.raises(ValueError, match="small"):
        psnr_y(_img(0, (6, 6, 3)), _img(1, (6, 6, 3)), crop=3)
    with pytest.raises(ValueError, match="window"):
        ssim_y(_img(0, (12, 12, 3)), _img(1, (12, 12, 3)), crop=2)
