"""The ncnn reference rows of the benchmark: the pair written from the description equals PyTorch, fp32 and int8
rows go through the tiler. Skipped where the optional ncnn package (extras ``ncnn`` / ``bench``) is absent."""
import numpy as np
import pytest
import torch

pytest.importorskip("ncnn")

from memsr_bench import default_path, ncnn_reference  # noqa: E402
from memsr_deploy.formats.model_file import load_model  # noqa: E402
from memsr_deploy.formats.registry import resolve  # noqa: E402


def test_written_student_equals_pytorch():
    b = ncnn_reference.open_ncnn("memsr-x2", "fp32", threads=1)
    # any size: the written graph is shape-free
    assert ncnn_reference.max_abs_diff_vs_torch("memsr-x2", b, hw=(37, 53)) < 1e-4
    y = b.run(np.zeros((2, 3, 20, 24), np.float32))
    assert y.shape == (2, 3, 40, 48)


def test_written_int8_student_is_close_on_a_photo():
    from skimage import data
    x = np.ascontiguousarray(data.astronaut()[100:164, 180:260].transpose(2, 0, 1)[None], np.float32) / 255
    net, _ = load_model(resolve("memsr-x2"))
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    y = ncnn_reference.open_ncnn("memsr-x2", "int8", threads=1).run(x)
    psnr = 10 * np.log10(1 / np.mean((y - ref) ** 2))
    # ncnn's symmetric int8 on the description's ranges: about 42 dB from fp32 on photos (the asymmetric
    # ONNX Runtime / LiteRT int8 about 45); a wrong scale or channel order lands far below 30
    assert 38 < psnr < 60


def test_ncnn_rows_are_timed_and_checked():
    img = (np.random.default_rng(1).random((40, 48, 3)) * 255).astype(np.uint8)
    rows = default_path.ncnn_rows("memsr-x2", img, [1], {1: 1e10}, None)
    fp32, int8, int8_direct = rows
    assert fp32["backend"] == "ncnn" and fp32["seconds"] > 0 and fp32["max_abs_diff_vs_torch_fp32"] < 1e-4
    # the check image is random noise, outside the calibrated ranges: its worst int8 pixel is further off than
    # on photos, yet well inside the [0, 1] output
    assert int8["precision"] == "int8" and int8["seconds"] > 0 and 1e-3 < int8["max_abs_diff_vs_torch_fp32"] < 0.5
    assert int8_direct["note"].endswith("Winograd off") and int8_direct["seconds"] > 0
    # Winograd or not, ncnn's int8 kernels compute the same integers
    assert int8_direct["max_abs_diff_vs_torch_fp32"] == int8["max_abs_diff_vs_torch_fp32"]
    assert "pnnx" not in str(rows)
