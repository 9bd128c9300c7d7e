"""The peers benchmark's networks, written from their papers: shapes, and parameter counts the papers publish."""
import pytest
import torch

from memsr_bench.peer_nets import PEERS, build, input_channels

# IMDN's paper: 694K (x2), 715K (x4); FSRCNN (d=56, s=12, m=4): 12.6K weights (+ biases, PReLU slopes);
# SwinIR's: 878K (x2), 897K (x4), which leave out the 24 relative position bias tables (225 x 6 each, 32,400)
PUBLISHED = {("IMDN", 2): 694_404, ("IMDN", 4): 715_176, ("FSRCNN", 2): 12_809,
             ("SwinIR-light", 2): 877_752 + 32_400, ("SwinIR-light", 4): 897_228 + 32_400}


@pytest.mark.parametrize("name", sorted(PEERS))
@pytest.mark.parametrize("scale", [2, 4])
def test_peer_shapes_and_sizes(name, scale):
    net = build(name, scale)
    c = input_channels(net)
    assert c == (1 if name in ("FSRCNN", "ESPCN") else 3)
    with torch.no_grad():
        # RFDN's spatial attention pools 7x7 after a stride-2 conv: inputs under ~17 px are too small for it
        assert net(torch.rand(1, c, 24, 19)).shape == (1, c, 24 * scale, 19 * scale)
    if (name, scale) in PUBLISHED:
        assert sum(p.numel() for p in net.parameters()) == PUBLISHED[(name, scale)]


def test_photo_timing_plan_covers_the_photo_with_one_window_shape():
    from memsr_bench.peers import PAPER, timing_plan
    from memsr_deploy.formats.tile_plan import plan
    (wy, wx), count = timing_plan(19, (3000, 4000))
    tiles = plan(3000, 4000, 512, 19)
    assert count == len(tiles) == 6 * 8
    assert {(t.y.win, t.x.win) for t in tiles} == {(wy, wx)} and (wy, wx) == (500 + 38, 500 + 38)
    # no finite radius: the paper's size, scaled by pixels
    shape, count = timing_plan(None, (3000, 4000))
    assert shape == PAPER and count == pytest.approx(12e6 / (960 * 540))


def test_seconds_per_photo_runs_the_window_it_times(tmp_path):
    import onnx

    from memsr_bench.peers import seconds_per_photo
    from memsr_deploy.formats.onnx_graph import model_to_onnx
    net = build("ESPCN", 2).eval()
    path = tmp_path / "espcn.onnx"
    onnx.save(model_to_onnx(net, channels=1), str(path))
    assert seconds_per_photo(path, 1, 4, size=(40, 60)) > 0
