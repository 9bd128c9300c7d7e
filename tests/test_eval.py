"""evaluate_model / memsr-eval, and the bicubic baseline against published Set5 numbers."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import make_plain
from memsr_deploy.cli.evaluate import main
from memsr_deploy.data.datasets import EvalPair, find_pairs, pair_from_hr
from memsr_deploy.data.eval_photos import eval_dir
from memsr_deploy.imageio import quantise, read_image
from memsr_deploy.data.resize import bicubic_upscale
from memsr_deploy.errors import MemsrError
from memsr_deploy.quality.evaluate import centre_crop_pair, evaluate_model, run_model
from memsr_deploy.quality.metrics import psnr_y, ssim_y


def _hr(h, w, seed):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.dstack([0.5 + 0.4 * np.sin(xx / (2.5 + c)) * np.cos(yy / (3.5 + c)) for c in range(3)])
    return quantise(img + 0.05 * rng.random((h, w, 3)))


@pytest.fixture
def eval_folder(tmp_path):
    d = tmp_path / "set"
    d.mkdir()
    for i, (h, w) in enumerate([(48, 64), (50, 45)]):
        Image.fromarray((_hr(h, w, i) * 255).round().astype(np.uint8)).save(d / f"im{i}.png")
    return d


def test_bicubic_scores_match_direct_computation(eval_folder):
    pairs = find_pairs(eval_folder, 2)
    res = evaluate_model("bicubic", pairs, 2)
    for row, p in zip(res.images, pairs):
        sr = bicubic_upscale(p.lr, 2)
        assert row.psnr == pytest.approx(psnr_y(sr, p.hr, 2))
        assert row.ssim == pytest.approx(ssim_y(sr, p.hr, 2))
    assert res.mean_psnr == pytest.approx(np.mean([r.psnr for r in res.images]))
    assert evaluate_model("bicubic", pairs, 2, ssim=False).mean_ssim is None


def test_model_tiled_equals_whole_and_output_is_quantised(eval_folder):
    model = make_plain(scale=2)
    (p, _) = find_pairs(eval_folder, 2)
    whole = run_model(model, p.lr, 2, tile=0)
    tiled = run_model(model, p.lr, 2, tile=7)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)
    seen = {}
    res = evaluate_model(model, [p], 2, tile=7, save=lambda n, sr: seen.setdefault(n, sr))
    np.testing.assert_array_equal(seen[p.name], quantise(whole))
    assert res.images[0].psnr == pytest.approx(psnr_y(whole, p.hr, 2))
    with torch.inference_mode():
        direct = model(torch.from_numpy(p.lr.transpose(2, 0, 1).copy())[None])[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(whole, direct, atol=1e-6)


def test_callable_crop_and_scale_mismatch(eval_folder):
    pairs = find_pairs(eval_folder, 2)
    res = evaluate_model(lambda lr: bicubic_upscale(lr, 2), pairs, 2, name="fn", max_size=20)
    assert res.model == "fn" and len(res.images) == 2
    c = centre_crop_pair(pairs[0], 20, 2)
    assert c.hr.shape == (20, 20, 3) and c.lr.shape == (10, 10, 3)
    np.testing.assert_array_equal(c.lr, pairs[0].lr[7:17, 11:21])
    with pytest.raises(MemsrError, match="x2"):
        evaluate_model(make_plain(scale=2), pairs, 3)
    with pytest.raises(MemsrError, match="no images"):
        evaluate_model("bicubic", [], 2)


def test_cli_model_and_bicubic_json(eval_folder, tiny_plain_path, capsys):
    assert main([str(tiny_plain_path), "--data", str(eval_folder), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["scale"] == 2
    assert [r["name"] for r in doc["bicubic"]["images"]] == ["im0", "im1"]
    assert len(doc["model"]["images"]) == 2 and np.isfinite(doc["model"]["mean_psnr"])
    assert main(["bicubic", "--data", str(eval_folder), "--scale", "3"]) == 0
    out = capsys.readouterr().out
    assert "x3" in out and "mean" in out and "im1" in out


def test_cli_save_dir(eval_folder, tiny_plain_path, tmp_path, capsys):
    out = tmp_path / "sr"
    assert main([str(tiny_plain_path), "--data", str(eval_folder), "--save-dir", str(out), "--no-ssim"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["im0_x2.png", "im1_x2.png"]
    assert read_image(out / "im0_x2.png").shape == (48, 64, 3)


def test_cli_crops_line_up_across_models_and_match_the_whole_output(eval_folder, tiny_plain_path, tmp_path, capsys):
    crops, whole = tmp_path / "crops", tmp_path / "whole"
    argv = ["--data", str(eval_folder), "--no-ssim", "--crops", "2", "--crop-size", "16"]
    assert main([str(tiny_plain_path), "--save-dir", str(crops), *argv]) == 0
    assert main([str(tiny_plain_path), "--data", str(eval_folder), "--no-ssim", "--save-dir", str(whole)]) == 0
    # a second model into the same folder: its own crops, bicubic's and the original's left as they are
    assert main(["bicubic", "--save-dir", str(crops), *argv]) == 0
    names = sorted(p.name for p in crops.iterdir())
    assert names == sorted(f"im{i}_crop{k}_{t}.png" for i in (0, 1) for k in (0, 1)
                           for t in ("bicubic-x2", "original", tiny_plain_path.stem))
    from memsr_deploy.quality.crops import detail_boxes
    for i in (0, 1):
        hr = read_image(eval_folder / f"im{i}.png")
        sr = read_image(whole / f"im{i}_x2.png")
        for k, box in enumerate(detail_boxes(hr, 16, 2)):
            assert np.array_equal(read_image(crops / f"im{i}_crop{k}_{tiny_plain_path.stem}.png"), box.cut(sr))
            assert np.array_equal(read_image(crops / f"im{i}_crop{k}_original.png"), box.cut(hr))
    assert main([str(tiny_plain_path), "--save-dir", str(crops), *argv]) == 2   # its crops exist
    assert "exists" in capsys.readouterr().err
    assert main([str(tiny_plain_path), "--crops", "1", "--data", str(eval_folder)]) == 2
    assert "--save-dir" in capsys.readouterr().err


def test_detail_boxes_pick_the_textured_place_and_do_not_overlap():
    from memsr_deploy.quality.crops import detail_boxes
    hr = np.full((64, 96, 3), 0.5, np.float32)
    hr[40:56, 60:76] = np.random.default_rng(0).random((16, 16, 3))   # the one detailed patch
    first, second = detail_boxes(hr, 16, 2)
    assert abs(first.y - 40) < 16 and abs(first.x - 60) < 16
    assert abs(first.y - second.y) >= 16 or abs(first.x - second.x) >= 16
    assert detail_boxes(hr[:10], 16)[0].size == 10


def test_cli_bad_inputs_exit_2(eval_folder, tiny_plain_path, tmp_path, capsys):
    cases = [
        ["bicubic", "--data", str(tmp_path / "missing")],
        [str(tmp_path / "nomodel"), "--data", str(eval_folder)],
        [str(tiny_plain_path), "--data", str(eval_folder), "--scale", "4"],
        ["--data", str(eval_folder), "--scale", "3"],            # no bundled x3 model exists
        ["bicubic", "--lr-dir", str(eval_folder)],
    ]
    for argv in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "Traceback" not in err and len(err.strip().splitlines()) == 1
    (eval_folder / "zz_broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    assert main(["bicubic", "--data", str(eval_folder)]) == 2
    assert "zz_broken.png" in capsys.readouterr().err


# Published bicubic PSNR-Y of the Set5 butterfly (SRCNN / VDSR per-image tables, MATLAB protocol).
PUBLISHED_BUTTERFLY = {2: 27.43, 3: 24.04, 4: 22.10}


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bicubic_butterfly_matches_published_tables(scale):
    d = eval_dir()
    if d is None or not (d / "butterfly.png").exists():
        pytest.skip("Set5 butterfly not fetched: run `memsr-fetch-photos --eval-only -o data/photos`")
    pair = pair_from_hr("butterfly", read_image(d / "butterfly.png"), scale)
    res = evaluate_model("bicubic", [pair], scale)
    assert res.images[0].psnr == pytest.approx(PUBLISHED_BUTTERFLY[scale], abs=0.05)


def test_eval_pair_is_a_tuple():
    p = EvalPair("x", np.zeros((4, 4, 3), np.float32), np.zeros((2, 2, 3), np.float32))
    name, hr, lr = p
    assert name == "x" and hr.shape == (4, 4, 3)


def test_cli_holdout_scores_the_photos_training_kept_out(tmp_path, tiny_plain_path, capsys):
    from memsr_deploy.data.datasets import holdout_files
    d = tmp_path / "train"
    d.mkdir()
    for i in range(5):
        Image.fromarray((_hr(40, 44, i) * 255).round().astype(np.uint8)).save(d / f"p{i}.png")
    assert main([str(tiny_plain_path), "--data", str(d), "--holdout", "2", "--json", "--no-ssim"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in doc["model"]["images"]] == [p.stem for p in holdout_files(d, 2, 2)]
    assert doc["holdout"] == 2
    bic = find_pairs(d, 2)   # the same pairs as the whole folder's, for the photos held out
    want = {r.name: r.psnr for r in evaluate_model("bicubic", bic, 2, ssim=False).images}
    assert all(r["psnr"] == pytest.approx(want[r["name"]]) for r in doc["bicubic"]["images"])
    assert main(["bicubic", "--holdout", "2"]) == 2
    assert "--holdout needs --data" in capsys.readouterr().err
    assert main(["bicubic", "--data", str(d), "--holdout", "5"]) == 2
    assert "cannot hold out 5 of 5" in capsys.readouterr().err
