"""Feature-range equalisation before int8 fine-tuning: narrower ranges, the same function inside the image."""
import torch

from conftest import make_plain
from memsr_deploy.cli import train as train_cli
from memsr_deploy.formats.model_file import load_model, save_model
from memsr_deploy.method.range_equalise import channel_ranges, equalise_ranges

BORDER = 4   # each of the 3 body layers moves at most one ring of pixels at the border, plus the tail's


def offset_model():
    """A plain net whose features carry what long MemSR training leaves: a ReLU channel on a large constant and
    one wide channel beside narrow ones."""
    m = make_plain(widths=(6, 6, 6), acts=("relu", "none", "relu"), seed=5)
    with torch.no_grad():
        m.layers[0].bias[0] += 8.0            # always positive: the ReLU never clips it
        m.layers[1].weight[2].mul_(6.0)       # a wide channel in a layer without activation
        m.layers[1].bias[3] -= 3.0            # an off-centre one
    return m


def test_ranges_narrow_and_the_output_is_unchanged_inside_the_image():
    m = offset_model()
    ref = offset_model()
    torch.manual_seed(0)
    patches = torch.rand(8, 3, 24, 24)
    widths = [float(hi.max().clamp_min(0) - lo.min().clamp_max(0)) for lo, hi in channel_ranges(m, patches)]
    report = equalise_ranges(m, patches, target=1.0)
    after = [float(hi.max().clamp_min(0) - lo.min().clamp_max(0)) for lo, hi in channel_ranges(m, patches)]
    assert widths[0] > 8 and widths[1] > 3
    assert all(a <= 1.0 + 1e-4 for a in after)   # centred, then no channel wider than the target
    assert [r["range_after"] for r in report] == [[round(min(0.0, a), 3), round(max(0.0, b), 3)]
                                                  for a, b in ((float(lo.min()), float(hi.max()))
                                                               for lo, hi in channel_ranges(m, patches))]
    assert report[0]["channels_shrunk"] >= 1 and report[1]["channels_shrunk"] >= 1
    with torch.no_grad():   # on the patches it was measured on: pixels it has not seen may dip below a ReLU's c
        a, b = ref(patches), m(patches)
    s = BORDER * 2   # output pixels per LR pixel of border, at x2
    inner = (a - b)[..., s:-s, s:-s].abs()
    # percentiles, not minima, set each ReLU's constant, so a rare pixel below it is clipped; nothing else moves
    assert (inner > 1e-4 * a.abs().max()).float().mean() < 0.005
    assert not torch.allclose(a, b, atol=1e-4)   # the border does move: zero padding now stands for -c


def test_shrinking_alone_is_exact_everywhere():
    m = make_plain(widths=(6, 6), acts=("relu", "relu"), seed=2)
    with torch.no_grad():
        m.layers[0].weight[1].mul_(10.0)   # one wide channel
        for conv in m.layers:
            conv.bias.fill_(-0.05)           # every channel is clipped somewhere: nothing to centre
    ref = make_plain(widths=(6, 6), acts=("relu", "relu"), seed=2)
    ref.load_state_dict(m.state_dict())
    patches = torch.rand(4, 3, 16, 16)
    assert all(float(lo.max()) == 0.0 for lo, _ in channel_ranges(m, patches))
    report = equalise_ranges(m, patches, target=0.5)
    assert report[0]["channels_shrunk"] >= 1
    x = torch.rand(1, 3, 15, 17)
    with torch.no_grad():
        assert torch.allclose(ref(x), m(x), atol=1e-5)


def test_cli_equalises_before_fine_tuning_and_records_it(photo_dir, tmp_path):
    save_model(offset_model(), tmp_path / "s", kind="student")
    rc = train_cli.main(["int8", "--model", str(tmp_path / "s"), "--equalise", "1", "--data", str(photo_dir),
                         "--steps", "2", "--batch", "2", "--patch", "12", "--no-val", "--threads", "1",
                         "--out", str(tmp_path / "q")])
    assert rc == 0
    model, desc = load_model(tmp_path / "q" / "model")
    record = desc.extra["training"]["equalised"]
    assert record["target_width"] == 1.0 and len(record["layers"]) == 3
    assert record["layers"][0]["range_before"][1] > 8 > record["layers"][0]["range_after"][1]
