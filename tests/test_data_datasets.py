"""Training patches (folders, DIV2K layout, bad files, determinism) and evaluation-set layouts."""
from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from memsr_deploy.data.datasets import (DataWarning, TrainPatches, find_pairs,
                                        training_files)
from memsr_deploy.imageio import from_uint8, to_uint8
from memsr_deploy.data.resize import bicubic_downscale, imresize_uint8, modcrop
from memsr_deploy.errors import MemsrError


def _photo(h, w, seed):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.dstack([np.sin(xx / (3 + c) + c) * np.cos(yy / (4 + c)) for c in range(3)])
    return to_uint8(0.5 + 0.3 * base + 0.1 * rng.random((h, w, 3)))


def _save(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


@pytest.fixture
def photo_dir(tmp_path):
    root = tmp_path / "photos"
    _save(root / "a.png", _photo(70, 90, 0))
    _save(root / "sub" / "b.jpg", _photo(64, 64, 1))
    _save(root / "sub" / "c.bmp", _photo(81, 67, 2))     # odd sides: cropped to a multiple of the scale
    (root / "notes.txt").write_text("ignored: not an image extension")
    return root


def test_patches_shapes_range_and_real_lr(photo_dir):
    ds = TrainPatches(photo_dir, 2, lr_patch=16, augment=False, seed=3, length=50, progress=False)
    assert len(ds) == 50 and len(ds.images) == 3
    lr, hr = ds[7]
    assert lr.shape == (3, 16, 16) and hr.shape == (3, 32, 32)
    assert lr.dtype == hr.dtype == torch.float32
    assert 0 <= float(lr.min()) and float(hr.max()) <= 1
    # LR is the standard 8-bit LR of the whole image, cropped: find the patch in its image and check.
    lr8, hr8 = ds.sample(7)
    for im in ds.images:
        assert im.hr.shape[0] % 2 == 0 and im.hr.shape[1] % 2 == 0
        np.testing.assert_array_equal(im.lr, imresize_uint8(modcrop(im.hr, 2), 0.5))
    hits = [(im, y, x) for im in ds.images for y in range(im.lr.shape[0] - 15) for x in range(im.lr.shape[1] - 15)
            if np.array_equal(im.hr[2 * y:2 * y + 32, 2 * x:2 * x + 32], hr8)]
    assert hits, "HR patch is not a crop of a training image"
    im, y, x = hits[0]
    np.testing.assert_array_equal(im.lr[y:y + 16, x:x + 16], lr8)


def test_deterministic_by_seed_and_index(photo_dir):
    a = TrainPatches(photo_dir, 3, lr_patch=12, seed=5, length=2 ** 62, progress=False)
    b = TrainPatches(photo_dir, 3, lr_patch=12, seed=5, length=2 ** 62, progress=False)
    c = TrainPatches(photo_dir, 3, lr_patch=12, seed=6, length=2 ** 62, progress=False)
    for i in (0, 1, 12345, 2 ** 61):
        assert all(torch.equal(x, y) for x, y in zip(a[i], b[i]))
    assert not torch.equal(a[0][1], a[1][1])
    assert not all(torch.equal(a[i][1], c[i][1]) for i in range(4))
    first = a[3]
    a.set_epoch(1)
    assert not torch.equal(first[1], a[3][1])


def test_augment_is_a_dihedral_transform(photo_dir):
    plain = TrainPatches(photo_dir, 2, lr_patch=16, augment=False, seed=1, length=64, progress=False)
    aug = TrainPatches(photo_dir, 2, lr_patch=16, augment=True, seed=1, length=64, progress=False)
    changed = 0
    for i in range(64):
        (l0, h0), (l1, h1) = plain.sample(i), aug.sample(i)
        variants = [(np.rot90(l0, k)[:, ::-1] if f else np.rot90(l0, k), np.rot90(h0, k)[:, ::-1] if f else np.rot90(h0, k))
                    for k in range(4) for f in (0, 1)]
        assert any(np.array_equal(l1, lv) and np.array_equal(h1, hv) for lv, hv in variants)
        changed += not np.array_equal(h0, h1)
    assert changed > 32


def test_channel_shuffle_permutes_the_colours_of_the_same_patch(photo_dir):
    aug = TrainPatches(photo_dir, 2, lr_patch=16, seed=1, length=64, progress=False)
    shuf = TrainPatches(photo_dir, 2, lr_patch=16, seed=1, length=64, progress=False, channel_shuffle=True)
    orders = set()
    for i in range(64):
        (l0, h0), (l1, h1) = aug.sample(i), shuf.sample(i)
        match = [o for o in itertools.permutations(range(3))
                 if np.array_equal(l1, l0[..., list(o)]) and np.array_equal(h1, h0[..., list(o)])]
        assert match, f"patch {i} is not a channel permutation of the unshuffled one"
        orders.add(match[0])
    assert len(orders) >= 4   # not stuck on one order


def test_flat_colours_replace_a_share_of_patches_by_one_colour_and_leave_the_rest(photo_dir):
    base = TrainPatches(photo_dir, 2, lr_patch=16, seed=1, length=200, progress=False)
    mixed = TrainPatches(photo_dir, 2, lr_patch=16, seed=1, length=200, progress=False, flat_colours=0.25)
    flat, colours = 0, []
    for i in range(200):
        (l0, h0), (l1, h1) = base.sample(i), mixed.sample(i)
        if np.array_equal(l0, l1) and np.array_equal(h0, h1):
            continue
        flat += 1
        c = tuple(int(v) for v in l1[0, 0])
        assert (l1 == c).all() and (h1 == c).all() and h1.shape == h0.shape and l1.dtype == np.uint8
        colours.append(c)
    assert 30 <= flat <= 70 and len(set(colours)) > flat // 2   # about a quarter, of many colours
    extreme = np.isin(np.array(colours), [0, 255]).mean()
    assert 0.2 < extreme < 0.5   # a third of the channels on the cube's faces: saturated colours
    with pytest.raises(ValueError, match="flat_colours"):
        TrainPatches(photo_dir, 2, lr_patch=16, length=4, progress=False, flat_colours=1.5)


def test_flat_patches_are_redrawn(tmp_path):
    root = tmp_path / "d"
    _save(root / "flat.png", np.full((100, 100, 3), 128, np.uint8))      # 4x the area of the textured one
    _save(root / "busy.png", _photo(50, 50, 4))
    skip = TrainPatches(root, 2, lr_patch=8, flat_threshold=0.02, max_tries=20, length=200, progress=False)
    keep = TrainPatches(root, 2, lr_patch=8, flat_threshold=0.0, length=200, progress=False)
    def flat_share(ds):
        return np.mean([ds.sample(i)[1].std() == 0 for i in range(200)])
    assert flat_share(keep) > 0.7       # area-weighted: 4 of 5 draws land on the flat image
    # 20 tries find the busy image unless all miss: 0.8 ** 20 ~ 1 %
    assert flat_share(skip) < 0.05


def test_bad_and_tiny_images_are_skipped_with_warning(photo_dir):
    (photo_dir / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    _save(photo_dir / "tiny.png", _photo(20, 20, 5))
    with pytest.warns(DataWarning) as rec:
        ds = TrainPatches(photo_dir, 2, lr_patch=16, length=4, progress=False)
    msgs = " | ".join(str(w.message) for w in rec)
    assert "broken.png" in msgs and "tiny.png" in msgs
    assert len(ds.images) == 3 and ds[0][1].shape == (3, 32, 32)


def test_empty_or_missing_set_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(MemsrError, match="no usable training images"):
        TrainPatches(tmp_path / "empty", 2, progress=False)
    _save(tmp_path / "small" / "x.png", _photo(10, 10, 0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        with pytest.raises(MemsrError, match="no usable"):
            TrainPatches(tmp_path / "small", 2, lr_patch=48, progress=False)
    with pytest.raises(MemsrError, match="not found"):
        TrainPatches(tmp_path / "nope", 2, progress=False)


def test_div2k_layout_uses_lr_folder(tmp_path):
    root = tmp_path / "DIV2K"
    for i in (1, 2):
        hr = _photo(48, 64, i)
        _save(root / "DIV2K_train_HR" / f"{i:04d}.png", hr)
        # A deliberately non-bicubic LR (inverted) proves the LR file is what gets used.
        _save(root / "DIV2K_train_LR_bicubic" / "X2" / f"{i:04d}x2.png", 255 - hr[::2, ::2])
    files = training_files(root, 2)
    assert [(h.name, lr.name) for h, lr in files] == [("0001.png", "0001x2.png"), ("0002.png", "0002x2.png")]
    ds = TrainPatches(root, 2, lr_patch=8, augment=False, length=10, progress=False)
    lr, hr = ds.sample(0)
    np.testing.assert_array_equal(lr, 255 - hr[::2, ::2])
    # No X3 folder: LR is derived, and the HR folder alone works too.
    assert all(lr is None for _, lr in training_files(root, 3))
    assert len(training_files(root / "DIV2K_train_HR", 2)) == 2


# ------------------------------------------------------------------------------------------ evaluation sets

def test_eval_plain_folder_derives_standard_lr(tmp_path):
    _save(tmp_path / "set" / "baby.png", _photo(61, 50, 0))
    _save(tmp_path / "set" / "bird.png", _photo(40, 40, 1))
    pairs = find_pairs(tmp_path / "set", 3)
    assert [p.name for p in pairs] == ["baby", "bird"]
    name, hr, lr = pairs[0]
    assert hr.shape == (60, 48, 3) and lr.shape == (20, 16, 3)
    np.testing.assert_array_equal(lr, bicubic_downscale(from_uint8(_photo(61, 50, 0)), 3))


def test_eval_hr_lr_bicubic_layout(tmp_path):
    hr = _photo(40, 60, 2)
    _save(tmp_path / "Set5" / "HR" / "baby.png", hr)
    _save(tmp_path / "Set5" / "LR_bicubic" / "X2" / "babyx2.png", 255 - hr[::2, ::2])
    (p,) = find_pairs(tmp_path / "Set5", 2)
    assert p.name == "baby"
    np.testing.assert_array_equal(to_uint8(p.lr), 255 - hr[::2, ::2])
    (p4,) = find_pairs(tmp_path / "Set5", 4)               # no X4 folder: derived
    assert p4.lr.shape == (10, 15, 3)


def test_eval_srf_layout(tmp_path):
    d = tmp_path / "Urban100" / "image_SRF_2"
    for i in (1, 2):
        hr = _photo(30, 40, i)
        _save(d / f"img_00{i}_SRF_2_HR.png", hr)
        _save(d / f"img_00{i}_SRF_2_LR.png", 255 - hr[::2, ::2])
        _save(d / f"img_00{i}_SRF_2_bicubic.png", hr)       # other methods' outputs are ignored
    for root in (tmp_path / "Urban100", d):
        pairs = find_pairs(root, 2)
        assert [p.name for p in pairs] == ["img_001", "img_002"]
        np.testing.assert_array_equal(to_uint8(pairs[1].lr), 255 - _photo(30, 40, 2)[::2, ::2])


def test_eval_explicit_lr_dir_and_mismatches(tmp_path):
    hr = _photo(40, 40, 3)
    _save(tmp_path / "hr" / "fox2.png", hr)
    _save(tmp_path / "lr" / "fox2.png", hr[::2, ::2])
    (p,) = find_pairs(tmp_path / "hr", 2, lr_dir=tmp_path / "lr")
    assert p.name == "fox2" and p.lr.shape == (20, 20, 3)
    with pytest.raises(MemsrError, match="not an x4 pair"):
        find_pairs(tmp_path / "hr", 4, lr_dir=tmp_path / "lr")
    _save(tmp_path / "hr" / "other.png", hr)
    with pytest.raises(MemsrError, match="no LR image for other.png"):
        find_pairs(tmp_path / "hr", 2, lr_dir=tmp_path / "lr")
    (tmp_path / "none").mkdir()
    with pytest.raises(MemsrError, match="no images"):
        find_pairs(tmp_path / "none", 2)
    with pytest.raises(MemsrError, match="not found"):
        find_pairs(tmp_path / "missing", 2)
