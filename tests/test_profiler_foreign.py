"""memsr-profile on ONNX models from elsewhere: Y-only inputs, a ConvTranspose tail's column buffer, fixed shapes."""
import json

import onnx
import pytest
from onnx import TensorProto, helper
from test_receptive_field import Graph, espcn, fsrcnn

from memsr_deploy.cli.profile import main
from memsr_deploy.errors import MemsrError
from memsr_deploy.profiler.analytic import load_subject, measured_prediction, predict
from memsr_deploy.profiler.measure import measure_peak

TOLERANCE = 0.15


def _save(tmp_path, build, channels, name, fixed=None):
    g = Graph(channels=channels)
    model = g.model(build(g))
    if fixed is not None:
        dims = model.graph.input[0].type.tensor_type.shape.dim
        for d, v in zip(dims[2:], fixed):
            d.Clear()
            d.dim_value = v
    onnx.save(model, tmp_path / name)
    return tmp_path / name


def test_a_y_only_model_measured_on_onnxruntime_matches_the_prediction(tmp_path):
    """FSRCNN as published: one (Y) channel in and out, a 9x9 stride-2 ConvTranspose tail. (Narrow odd widths
    such as the ESPCN graph's 8 / 6 / 9 measure 1.36x their walk: ONNX Runtime's channel-blocked layout, which
    the walk of a foreign graph does not model.)"""
    path = _save(tmp_path, fsrcnn, 1, "fsrcnn.onnx")
    sub = load_subject(path)
    assert sub.scale == 2 and sub.halo is not None and load_subject(_save(tmp_path, espcn, 1, "e.onnx")).scale == 3
    expected = measured_prediction(sub, 320, 288, "onnxruntime")
    m = measure_peak(path, "onnxruntime", 320, 288)
    assert abs(m.peak_bytes / expected - 1) < TOLERANCE, (m.peak_bytes, expected)


def test_the_column_buffer_of_a_transposed_conv_is_predicted(tmp_path):
    """FSRCNN's 9x9 stride-2 tail: ONNX Runtime holds Cout*81 input-sized maps of columns, which the ideal walk
    (no workspace) leaves out."""
    sub = load_subject(_save(tmp_path, fsrcnn, 1, "f.onnx"))
    ort = predict(sub, 100, 80, "whole", "fp32", "onnxruntime")
    ideal = predict(sub, 100, 80, "whole", "fp32", "ideal")
    assert ort.peak_bytes - ideal.peak_bytes >= 81 * 100 * 80 * 4 - 8 * 100 * 80 * 4
    assert max(n.workspace_bytes for n in ort.nodes) == 81 * 100 * 80 * 4


def test_a_fixed_shape_model_is_profiled_at_its_own_size(tmp_path, capsys):
    path = _save(tmp_path, espcn, 1, "fixed.onnx", fixed=(40, 48))
    assert main([str(path), "--resolution", "12MP,48x40", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    own = [r for r in rows if r["resolution"] == "48x40" and r["mode"] == "whole"]
    assert len(own) == 1 and own[0]["predicted"] > 0
    other = [r for r in rows if r["resolution"] == "12MP"]
    assert len(other) == 1 and other[0]["predicted"] is None and "fixed input shape 48x40" in other[0]["note"]
    tiled = [r for r in rows if r["mode"] == "tiled"]
    assert tiled and all(r["predicted"] is None and "fixed input shape" in r["note"] for r in tiled)
    with pytest.raises(MemsrError, match="fixed input shape 48x40"):
        predict(load_subject(path), 64, 64, "whole", "fp32", "ideal")


def test_a_channels_last_rgba_input_is_read_as_such(tmp_path):
    from memsr_deploy.formats.foreign_graph import input_layout
    inp = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "H", "W", 4])
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, "H", "W", 4])
    m = helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [inp], [out]))
    assert input_layout(m) == (True, 4, None)
