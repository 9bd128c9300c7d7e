"""SwinIR-light as the peers benchmark runs it: exported by torch's exporter with dynamic H and W, run in ONNX
Runtime at sizes that are no multiple of the window, its receptive radius, and the profiler's walk of its graph.
A two-layer network (one plain, one shifted window layer) stands in for the 24-layer one: the same code paths."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from memsr_bench.peer_nets import SwinIRLight
from memsr_deploy.formats.liveness import walk
from memsr_deploy.formats.onnx_graph import model_to_onnx
from memsr_deploy.formats.onnx_liveness import ORT_WALK, graph_of
from memsr_deploy.formats.receptive_field import radius
from memsr_deploy.profiler.analytic import load_subject, measured_prediction
from memsr_deploy.profiler.measure import NCHWC_OFF, explain_ort_gap, measure_peak

HEADS, N = 6, 64   # attention heads, tokens per 8x8 window


@pytest.fixture(scope="module")
def swinir():
    torch.manual_seed(0)
    net = SwinIRLight(2, groups=1, depth=2).eval()
    return net, model_to_onnx(net)


@pytest.mark.parametrize("h,w", [(37, 53), (16, 27)])
def test_the_exported_graph_matches_torch_at_sizes_off_the_window_grid(swinir, h, w):
    net, model = swinir
    x = torch.rand(1, 3, h, w)
    with torch.no_grad():
        ref = net(x).numpy()
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    out = sess.run(None, {"input": x.numpy()})[0]
    assert out.shape == (1, 3, 2 * h, 2 * w)
    assert np.abs(out - ref).max() < 1e-4


def test_windows_fixed_to_the_origin_have_no_finite_radius(swinir):
    r = radius(swinir[1])
    assert r.halo is None and r.reason.startswith("no finite receptive radius"), r.reason
    assert "MatMul" in r.reason and "attention" in r.reason and "Reshape" in r.reason


def test_the_walk_holds_the_attention_scores_and_their_softmax_together(swinir):
    h, w = 64, 48
    g = graph_of(swinir[1], h, w)
    scores = (h // 8) * (w // 8) * HEADS * N * N
    made = {(n.op, g.numel(o)) for n in g.nodes for o in n.outputs}
    assert ("matmul", scores) in made and ("softmax", scores) in made
    assert walk(g, 4, **ORT_WALK).peak_bytes >= 2 * scores * 4


def test_onnxruntime_holds_what_the_walk_counts_once_its_buffer_reuse_is_off(swinir, tmp_path):
    """The walk is the graph's liveness. ORT's allocation planner gives a dead tensor's buffer to a later tensor
    of the same shape and holds it in between, so the score matrices of one layer stay allocated into the next:
    the measured gap names that."""
    path = tmp_path / "swinir.onnx"
    onnx.save(swinir[1], path)
    h, w = 96, 128
    expected = measured_prediction(load_subject(path), h, w, "onnxruntime")
    bare = measure_peak(path, "onnxruntime", h, w, disabled_optimizers=NCHWC_OFF, mem_reuse=False)
    assert abs(bare.peak_bytes / expected - 1) < 0.15 and bare.settings["mem_reuse"] is False
    measured = measure_peak(path, "onnxruntime", h, w).peak_bytes
    why = explain_ort_gap(path, expected, measured, h, w)
    assert measured / expected > 1.15 and "buffer reuse off as well" in why and why.endswith("the cause)"), why
