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
