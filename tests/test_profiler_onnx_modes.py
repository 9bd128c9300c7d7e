"""memsr-profile's tiled and stream modes on ONNX graphs from elsewhere: tiled runs measured on ONNX Runtime, plain
chains streamed with the budget's strip rule, and graphs that are not chains told why."""
import json

import onnx
import pytest
from test_receptive_field import Graph, _channel_attention, edsr, espcn, fsrcnn

from memsr_deploy.cli.profile import main
from memsr_deploy.errors import MemsrError
from memsr_deploy.formats import memory_budget as budget
from memsr_deploy.profiler.analytic import load_subject, measured_prediction, predict
from memsr_deploy.profiler.measure import measure_peak

TOLERANCE = 0.15


def _save(tmp_path, build, channels, name):
    g = Graph(channels=channels)
    onnx.save(g.model(build(g)), tmp_path / name)
    return tmp_path / name


def residual16(g):       # 16 channels (ONNX Runtime's channel block: no layout padding), one skip, x2 shuffle
    h0 = g.op("Relu", [g.conv("x", 3, 16)])
    h = g.op("Add", [h0, g.conv(g.op("Relu", [g.conv(h0, 16, 16)]), 16, 16)])
    return g.op("DepthToSpace", [g.conv(h, 16, 12)], blocksize=2, mode="CRD")


@pytest.mark.parametrize("build,channels", [(residual16, 3), (espcn, 1)], ids=["residual16", "espcn-y"])
def test_a_tiled_onnxruntime_run_measures_as_predicted(tmp_path, build, channels):
    """The whole image's tile loop through the session, full input and output images held (and, for a Y-only
    model, channel 0 of each window copied)."""
    path = _save(tmp_path, build, channels, "m.onnx")
    sub = load_subject(path)
    h, w, tile = 360, 480, 128
    expected = measured_prediction(sub, h, w, "onnxruntime", mode="tiled", tile=tile)
    m = measure_peak(path, "onnxruntime", h, w, tile=tile, halo=sub.halo, scale=sub.scale)
    assert m.settings["tile"] == tile and m.settings["halo"] == sub.halo
    assert abs(m.peak_bytes / expected - 1) < TOLERANCE, (m.peak_bytes, expected)
    whole = measured_prediction(sub, h, w, "onnxruntime")
    assert expected < whole or channels == 1   # the window, not the image, holds activations


def test_the_profiler_measures_tiled_rows_of_an_onnx_file(tmp_path, capsys):
    path = _save(tmp_path, residual16, 3, "r.onnx")
    assert main([str(path), "--resolution", "96x80", "--tile", "32", "--mode", "tiled,stream", "--measure",
                 "--json"]) == 0
    rows = {r["mode"]: r for r in json.loads(capsys.readouterr().out)["rows"]}
    assert rows["tiled"]["measured"] > 0 and rows["tiled"]["measured_backend"] == "onnxruntime"
    assert rows["stream"]["predicted"] is None and "Add (skip) at node" in rows["stream"]["note"]
    with pytest.raises(MemsrError, match="halo and scale"):
        measure_peak(path, "onnxruntime", 32, 32, tile=16)
    # no finite receptive radius (channel attention): tiled with --halo, measured, still labelled approximate
    path = _save(tmp_path, _channel_attention, 3, "rcan.onnx")
    assert main([str(path), "--resolution", "96x80", "--tile", "32", "--halo", "3", "--mode", "tiled", "--measure",
                 "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["rows"]
    assert row["measured"] > 0 and row["note"].count("approximate") == 1


def test_a_plain_onnx_chain_streams_with_the_strip_rule(tmp_path, capsys):
    """ESPCN (5x5, 3x3, 3x3 convs, tanh, pixel shuffle x3, Y only): a 5x5 conv keeps 4 rows, a 3x3 conv 2."""
    path = _save(tmp_path, espcn, 1, "espcn.onnx")
    assert main([str(path), "--resolution", "200x100", "--mode", "stream", "--rows", "8", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["rows"]
    carries = 4 * 1 + 2 * 8 + 2 * 6
    steps = [(1 + 8) * 8 + 4 * 1, (8 + 6) * 8 + 2 * 8, (6 + 9) * 8 + 2 * 6, 2 * 9 * 8]
    assert row["predicted"] == 200 * 4 * (carries + max(steps)) and row["note"] == "8-row strips"


def test_a_students_onnx_graph_streams_as_its_description(tiny_plain_path, tmp_path):
    from memsr_deploy.formats.model_file import load_plain_arrays
    from memsr_deploy.formats.onnx_graph import build_fp32
    desc, convs = load_plain_arrays(tiny_plain_path)
    onnx.save(build_fp32(desc, convs), tmp_path / "student.onnx")
    sub = load_subject(tmp_path / "student.onnx")
    assert predict(sub, 90, 120, "stream", rows=16).peak_bytes == budget.peak_bytes_stream(desc, 120, 16)


@pytest.mark.parametrize("build,channels,why", [
    (edsr, 3, "Add (skip) at node 'Add_"),
    (fsrcnn, 1, "ConvTranspose at node"),
])
def test_a_graph_that_is_not_a_chain_says_why_it_does_not_stream(tmp_path, capsys, build, channels, why):
    path = _save(tmp_path, build, channels, "m.onnx")
    assert main([str(path), "--resolution", "64x48", "--mode", "stream", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["rows"]
    assert row["predicted"] is None and why in row["note"]
    assert "plain chain of convs and pointwise ops" in row["note"]
    with pytest.raises(MemsrError, match="plain chain"):
        predict(load_subject(path), 48, 64, "stream")


def test_an_onnxruntime_gap_from_the_nchwc_layout_is_named(tmp_path):
    """ESPCN's narrow odd widths (8 / 6 / 9): ORT's NCHWc transformer pads them to 16 and copies between layouts
    around DepthToSpace, 1.36x the walk; with that transformer left out the run measures as walked."""
    from memsr_deploy.profiler.measure import NCHWC_OFF, explain_ort_gap
    path = _save(tmp_path, espcn, 1, "espcn.onnx")
    h, w = 320, 384
    expected = measured_prediction(load_subject(path), h, w, "onnxruntime")
    m = measure_peak(path, "onnxruntime", h, w)
    off = measure_peak(path, "onnxruntime", h, w, disabled_optimizers=NCHWC_OFF)
    assert m.peak_bytes / expected > 1 + TOLERANCE and abs(off.peak_bytes / expected - 1) < TOLERANCE
    assert off.settings["disabled_optimizers"] == list(NCHWC_OFF)
    why = explain_ort_gap(path, expected, m.peak_bytes, h, w)
    assert "NCHWc layout transformer off" in why and why.endswith("the cause)")
    assert explain_ort_gap(path, expected, expected, h, w) == ""
