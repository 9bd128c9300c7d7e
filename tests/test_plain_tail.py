"""Plain nets with EDSR's upsampler tail: layout, description round trip and the exact halo."""
import pytest
import torch

from memsr_deploy.formats import model_file
from memsr_deploy.method import models, plain_layout


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("tail", plain_layout.TAILS)
def test_halo_is_exact_and_one_less_is_not(scale, tail):
    torch.manual_seed(0)
    cfg = models.PlainConfig(scale=scale, widths=[6, 6, 6], acts=["relu", "none", "relu"], tail=tail)
    net = models.PlainSR(cfg).eval()
    x = torch.rand(1, 3, 22, 9)
    with torch.no_grad():
        full = net(x)
        a, b = 9, 13
        errs = []
        for h in (cfg.receptive_radius, cfg.receptive_radius - 1):
            out = net(x[:, :, a - h:b + h])[:, :, h * scale:(h + b - a) * scale]
            errs.append(float((out - full[:, :, a * scale:b * scale]).abs().max()))
    assert errs[0] == 0.0
    assert errs[1] > 1e-4


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_upsampler_description_round_trip(tmp_path, scale):
    cfg = models.PlainConfig(scale=scale, widths=[5, 7], acts=["relu", "none"], tail="upsampler")
    net = models.PlainSR(cfg).eval()
    desc = model_file.save_model(net, tmp_path / "m", kind="student")
    assert desc.params == sum(p.numel() for p in net.parameters()) == plain_layout.param_count([5, 7], scale,
                                                                                              "upsampler")
    assert desc.layer_widths == [5, 7] + [7 * f * f for f in plain_layout.scale_factors(scale)] + [3]
    assert desc.receptive_radius == 4   # 2 body convs + the LR upsampler conv + the HR convs' fraction, rounded up
    net2, desc2 = model_file.load_model(tmp_path / "m")
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(net(x), net2(x))
    _, convs = model_file.load_plain_arrays(tmp_path / "m")
    assert [w.shape for w, _ in convs] == [tuple(c.weight.shape) for c in net.convs()]


def test_shuffle_tail_description_unchanged():
    # descriptions written before the upsampler tail existed carry no "tail" key and still validate
    arch = models.PlainConfig(scale=2, widths=[4], acts=["relu"]).to_dict()
    assert "tail" not in arch
    assert models.PlainConfig.from_dict(arch).tail == "shuffle"
