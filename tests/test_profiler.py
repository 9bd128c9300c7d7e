"""Analytic peak memory: hand-computed graphs, modes against their formulas, ONNX walk vs torch walk."""
from __future__ import annotations


import pytest
import torch.nn as nn
import torch.nn.functional as F
from conftest import make_plain, make_teacher

from memsr_deploy.errors import MemsrError
from memsr_deploy.formats.model_file import describe
from memsr_deploy.formats import memory_budget as budget
from memsr_deploy.profiler.analytic import load_subject, predict
from memsr_deploy.formats.runtime_memory import onednn_block, torch_cpu_conv_workspace
from memsr_deploy.formats.liveness import Graph, Node, walk

H, W = 6, 5  # tiny: every expected figure below is channels * H * W * 4 bytes
UNIT = H * W * 4


def live(model, backend="ideal", h=H, w=W):
    p = predict(load_subject(model), h, w, backend=backend)
    return p, [(n.name, n.live_bytes // (h * w * 4)) for n in p.nodes]


def test_plain_chain_by_hand():
    # C = [3, 8, 20, 4, 12]; ideal: a conv holds its input and output, ReLU runs in place.
    m = make_plain(widths=(8, 20, 4), acts=("relu", "relu", "none"))
    p, per = live(m)
    assert per == [("layers.0", 11), ("relu", 8), ("layers.1", 28), ("relu_1", 20), ("layers.2", 24),
                   ("tail", 16), ("pixel_shuffle", 24)]
    assert p.peak_bytes == 28 * UNIT and p.peak_node == "layers.1"
    # PyTorch eager: F.relu makes a copy, so conv output and ReLU output coexist (20 + 20).
    from memsr_deploy.formats.torch_liveness import trace
    eager = walk(trace(m, H, W), 4, inplace=False)
    assert [n.live_bytes // UNIT for n in eager.nodes] == [11, 16, 28, 40, 24, 16, 24]


class OneBlock(nn.Module):
    """head conv then one residual block: the block input stays alive across the branch."""

    def __init__(self):
        super().__init__()
        self.head = nn.Conv2d(3, 8, 3, padding=1)
        self.conv1 = nn.Conv2d(8, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x):
        h = self.head(x)
        return h + self.conv2(F.relu(self.conv1(h)))


def test_one_residual_block_by_hand():
    from memsr_deploy.formats.torch_liveness import trace
    g = trace(OneBlock(), H, W)
    ideal = walk(g, 4, inplace=True)
    assert [n.live_bytes // UNIT for n in ideal.nodes] == [11, 16, 16, 24, 16]  # h + relu out + conv2 out = 24
    eager = walk(g, 4, inplace=False)
    assert [n.live_bytes // UNIT for n in eager.nodes] == [11, 16, 24, 24, 24]
    assert ideal.peak_bytes == 24 * UNIT  # a plain chain of the same widths peaks at 16


def test_long_skip_by_hand():
    # width 16, one block, no anchor: the head output h0 lives until the body conv's add.
    t = make_teacher(width=16, blocks=1, anchor=False)
    p, per = live(t)
    assert per == [("head", 19), ("blocks.0.conv1", 32), ("relu", 32), ("blocks.0.conv2", 48), ("mul", 32),
                   ("add", 32), ("body_conv", 48), ("add_1", 32), ("tail", 28), ("pixel_shuffle", 24),
                   ("mul_1", 12), ("add_2", 12)]
    assert p.peak_bytes == 48 * UNIT


def test_teacher_per_pixel_channels_is_4c_plus_anchor():
    # block input + h0 (long skip) + conv1 out + conv2 out = 4c, plus the image the anchor reads later
    for width, anchor in [(8, True), (16, False), (12, True)]:
        t = make_teacher(width=width, blocks=2, anchor=anchor)
        assert budget.per_pixel_channels(describe(t)) == 4 * width + 3 * anchor


def test_liveness_frees_after_last_reader_and_keeps_outputs():
    shapes = {"x": (1, 1, 1, 10), "a": (1, 1, 1, 10), "b": (1, 1, 1, 20), "c": (1, 1, 1, 5)}
    g = Graph([Node("n1", "conv", ["x"], ["a"]), Node("n2", "conv", ["a"], ["b"]),
               Node("n3", "conv", ["a", "b"], ["c"])], shapes, ["x"], ["c"])
    w = walk(g, 1)
    assert [n.live_bytes for n in w.nodes] == [20, 30, 35]  # x dies at n1; a lives to n3
    assert walk(g, 1, keep_inputs=True).peak_bytes == 45    # the held input adds 10 to n3
    assert walk(g, 2).peak_bytes == 70


def test_ideal_plain_walk_equals_budget_rule():
    # the shared rule P is exactly what the liveness walk finds for a plain model with fused activations
    for widths, scale in [((8, 20, 4), 2), ((16, 5, 30, 7), 3), ((4,), 4), ((40, 40), 2)]:
        m = make_plain(scale=scale, widths=widths, acts=["relu"] * len(widths))
        p = predict(load_subject(m), 9, 7)
        assert p.peak_bytes == budget.per_pixel_channels(describe(m)) * 9 * 7 * 4


def test_tiled_and_stream_below_whole_and_match_formulas():
    m = make_plain(widths=(8, 12, 8), acts=("relu", "none", "relu"))
    desc, sub = describe(m), load_subject(m)
    halo, tile = desc.receptive_radius, 24
    h, w = 200, 180
    whole = predict(sub, h, w, "whole").peak_bytes
    tiled = predict(sub, h, w, "tiled", tile=tile)
    # 200 -> 9 tiles of 23, 180 -> 8 tiles of 23: plan windows are core + 2*halo, inside the rule's tile + 2*halo
    assert tiled.details["window"] == [23 + 2 * halo, 23 + 2 * halo]
    assert tiled.peak_bytes == budget.per_pixel_channels(desc) * (23 + 2 * halo) ** 2 * 4
    assert tiled.peak_bytes <= budget.peak_bytes_tiled(desc, tile)
    exact = predict(sub, 10 * 24, 10 * 24, "tiled", tile=tile)  # core == tile: the rule is exact
    assert exact.peak_bytes == budget.peak_bytes_tiled(desc, tile)
    stream = predict(sub, h, w, "stream", rows=16)
    assert stream.peak_bytes == budget.peak_bytes_stream(desc, w, 16)
    assert max(tiled.peak_bytes, stream.peak_bytes) < whole / 4
    # by hand: C = [3, 8, 12, 8, 12]; carries 2*(3+8+12+8) = 62; widest step at R = 16: the shuffle, 2*16*12
    assert stream.peak_bytes == w * 4 * (62 + 384)
    for fp16 in (predict(sub, h, w, mode, "fp16", tile=tile) for mode in ("whole", "tiled", "stream")):
        assert fp16.peak_bytes * 2 == predict(sub, h, w, fp16.mode, "fp32", tile=tile).peak_bytes


def test_stream_and_tiling_refused_where_they_cannot_apply(tmp_path):
    t = load_subject(make_teacher())
    with pytest.raises(MemsrError, match="plain"):
        predict(t, 32, 32, "stream")
    with pytest.raises(MemsrError, match="mode"):
        predict(t, 32, 32, "diagonal")
    with pytest.raises(MemsrError, match="dtype"):
        predict(t, 32, 32, dtype="fp8")


def test_torch_backend_adds_onednn_layout_copies():
    block = onednn_block()
    shapes = {"x": (1, 32, 10, 10), "y": (1, 12, 10, 10), "z": (1, 32, 10, 10)}
    g = Graph([Node("a", "conv", ["x"], ["y"]), Node("b", "conv", ["y"], ["z"])], shapes, ["x"], ["z"])
    pad = lambda c: -(-c // block) * block  # noqa: E731
    # 32 -> 12: blocked input copy + padded blocked output outweigh output + its blocked copy
    in_b, out_b = pad(32) * 100, pad(12) * 100
    assert torch_cpu_conv_workspace(g.nodes[0], g) == max(in_b + out_b, out_b + 1200) - 1200
    # 12 -> 32: the small input is read in NCHW only when below the block size
    expect_in = pad(12) * 100 if 12 >= block else 0
    assert torch_cpu_conv_workspace(g.nodes[1], g) == max(expect_in + 3200, 3200 + 3200) - 3200


def _export(model, path):
    import onnx

    from memsr_deploy.formats.onnx_graph import model_to_onnx
    onnx.save_model(model_to_onnx(model), str(path))
    return path


@pytest.mark.parametrize("kind", ["plain", "teacher"])
def test_onnx_walk_agrees_with_torch_walk(tmp_path, kind):
    model = make_plain(widths=(8, 20, 4), acts=("relu", "relu", "none")) if kind == "plain" else make_teacher()
    onnx_sub = load_subject(_export(model, tmp_path / f"{kind}.onnx"))
    torch_sub = load_subject(model)
    assert onnx_sub.scale == torch_sub.scale == 2
    for h, w in [(7, 9), (40, 33)]:
        a = predict(onnx_sub, h, w, "whole", backend="ideal")
        b = predict(torch_sub, h, w, "whole", backend="ideal")
        assert a.peak_bytes == b.peak_bytes
        # eager semantics (no in-place) agree too: same ops, same tensors
        wa = walk(onnx_sub.graph(h, w), 4, inplace=False).peak_bytes
        wb = walk(torch_sub.graph(h, w), 4, inplace=False).peak_bytes
        assert wa == wb


def test_bad_onnx_file_is_a_clean_error(tmp_path):
    bad = tmp_path / "junk.onnx"
    bad.write_bytes(b"not a protobuf at all")
    with pytest.raises(MemsrError, match="junk.onnx"):
        load_subject(bad)
