"""Measured peak (fresh process, RSS high-water mark) against the prediction for that backend."""
from __future__ import annotations


import pytest
from conftest import make_plain, make_teacher

from memsr_deploy.errors import MemsrError
from memsr_deploy.formats.model_file import save_model
from memsr_deploy.profiler.analytic import load_subject, measured_prediction
from memsr_deploy.profiler.measure import measure_peak

TOLERANCE = 0.15


@pytest.fixture(scope="module")
def small_models(tmp_path_factory):
    d = tmp_path_factory.mktemp("measure")
    save_model(make_plain(widths=(16, 24, 16), acts=("relu", "relu", "none")), d / "plain", kind="student")
    save_model(make_teacher(width=16, blocks=2), d / "teacher")
    return d


@pytest.mark.parametrize("size", [(256, 256), (448, 384)])
def test_torch_measured_matches_prediction(small_models, size):
    h, w = size
    stem = small_models / "plain"
    expected = measured_prediction(load_subject(stem), h, w, "torch")
    m = measure_peak(stem, "torch", h, w)
    assert abs(m.peak_bytes / expected - 1) < TOLERANCE, (m.peak_bytes, expected)
    assert m.settings["hwm_reset"] in (True, False) and m.seconds > 0


def test_torch_tiled_teacher_measured_matches_prediction(small_models):
    stem = small_models / "teacher"
    expected = measured_prediction(load_subject(stem), 300, 280, "torch", mode="tiled", tile=96)
    m = measure_peak(stem, "torch", 300, 280, tile=96)
    assert abs(m.peak_bytes / expected - 1) < TOLERANCE, (m.peak_bytes, expected)


def test_onnxruntime_measured_matches_ideal_walk(small_models, tmp_path):
    model = make_teacher(width=16, blocks=2)
    path = tmp_path / "teacher.onnx"
    import onnx

    from memsr_deploy.formats.onnx_graph import model_to_onnx
    onnx.save_model(model_to_onnx(model), str(path))
    expected = measured_prediction(load_subject(path), 320, 320, "onnxruntime")
    m = measure_peak(path, "onnxruntime", 320, 320)
    assert abs(m.peak_bytes / expected - 1) < TOLERANCE, (m.peak_bytes, expected)
    assert m.settings["enable_cpu_mem_arena"] is False and m.settings["enable_mem_pattern"] is False


def test_failed_measurement_is_a_clean_error(tmp_path):
    with pytest.raises(MemsrError, match="missing.json: model metadata not found"):
        measure_peak(tmp_path / "missing", "torch", 32, 32)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a protobuf")
    with pytest.raises(MemsrError, match="junk.onnx: measurement of 32x32 on onnxruntime failed"):
        measure_peak(junk, "onnxruntime", 32, 32)
    with pytest.raises(MemsrError, match="backend"):
        measure_peak(tmp_path / "missing", "tensorrt", 32, 32)
