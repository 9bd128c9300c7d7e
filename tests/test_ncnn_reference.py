"""The ncnn reference row of the benchmark: pnnx conversion, ncnn equal to PyTorch, rows through the tiler.
Skipped where the optional ncnn/pnnx packages (extras group ``bench``) are not installed."""
import numpy as np
import pytest

pytest.importorskip("ncnn")
pytest.importorskip("pnnx")

from memsr_bench import default_path, ncnn_reference  # noqa: E402


def test_converted_student_equals_pytorch(tmp_path):
    param, binf, desc = ncnn_reference.convert("memsr-x2", tmp_path)
    b = ncnn_reference.NcnnBackend(param, binf, desc, threads=1)
    # a size other than the traced one: the converted graph must be shape-free
    assert ncnn_reference.max_abs_diff_vs_torch("memsr-x2", b, hw=(37, 53)) < 1e-4
    y = b.run(np.zeros((2, 3, 20, 24), np.float32))
    assert y.shape == (2, 3, 40, 48)


def test_ncnn_rows_are_timed_and_checked():
    img = (np.random.default_rng(1).random((40, 48, 3)) * 255).astype(np.uint8)
    rows = default_path.ncnn_rows("memsr-x2", img, [1], {1: 1e10}, None)
    fp32, int8 = rows
    assert fp32["backend"] == "ncnn" and fp32["seconds"] > 0 and fp32["max_abs_diff_vs_torch_fp32"] < 1e-4
    assert int8["precision"] == "int8" and int8["error"].startswith("not measured: ")
