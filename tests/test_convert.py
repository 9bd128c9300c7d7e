"""Teacher -> plain conversion is exact everywhere, borders included."""
import json

import pytest
import torch

from conftest import make_teacher
from memsr_deploy.method import convert, models
from memsr_deploy.cli import convert as convert_cli
from memsr_deploy.formats.model_file import load_model, save_model

SPECS = [models.InputSpec(), models.InputSpec(1.0, (0.4488, 0.4371, 0.404), 1.0),
         models.InputSpec(255.0, (114.4, 111.5, 103.0), 127.5)]


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("anchor", [False, True])
@pytest.mark.parametrize("spec", range(len(SPECS)))
def test_conversion_exact(scale, anchor, spec):
    s = SPECS[spec]
    t = make_teacher(scale=scale, width=12, blocks=3, anchor=anchor, input_spec=s, seed=scale)
    p = convert.teacher_to_plain(t)
    assert len(p.cfg.widths) == 2 * 3 + 2 and p.receptive_radius == t.receptive_radius
    assert all(a in ("relu", "none") for a in p.cfg.acts)
    x = torch.rand(3, 3, 17, 23) * s.value_range
    with torch.no_grad():
        ref, out = t(x), p(x)
    assert out.shape == ref.shape == (3, 3, 17 * scale, 23 * scale)
    diff = (ref - out).abs() / s.value_range
    assert float(diff.max()) < 1e-4
    # border pixels explicitly (where a folded bias or padded offset would show)
    b = scale
    for region in (diff[..., :b, :], diff[..., -b:, :], diff[..., :, :b], diff[..., :, -b:]):
        assert float(region.max()) < 1e-4


def test_plain_is_a_chain_and_activations_follow_teacher():
    t = make_teacher(width=8, blocks=2, anchor=True)
    p = convert.teacher_to_plain(t)
    assert p.cfg.acts == ["none", "relu", "none", "relu", "none", "none"]
    assert p.cfg.widths == [3 + 16, 3 + 24, 3 + 16, 3 + 24, 3 + 16, 3 + 8]


def test_a_wrong_offset_is_caught():
    """The check can fail: an offset far too small for the features breaks exactness."""
    t = make_teacher(width=8, blocks=2)
    with torch.no_grad():
        t.head.bias.fill_(-5.0)  # negative carried features need beta > 5
    p = convert.teacher_to_plain(t, beta=0.0)
    x = torch.rand(1, 3, 9, 9)
    with torch.no_grad():
        assert float((t(x) - p(x)).abs().max()) > 1e-3


def test_cli_writes_plain_and_reports(tmp_path, capsys):
    save_model(make_teacher(scale=3, width=8, blocks=2), tmp_path / "t")
    assert convert_cli.main([str(tmp_path / "t.json"), "-o", str(tmp_path / "p"), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["passed"] and rep["max_abs_diff"] < 1e-4
    plain, desc = load_model(tmp_path / "p")
    assert desc.kind == "plain" and desc.scale == 3 and desc.provenance["max_abs_diff"] < 1e-4


def test_cli_fails_and_writes_nothing_when_not_exact(tmp_path, capsys):
    t = make_teacher(width=8, blocks=2)
    with torch.no_grad():
        t.head.bias.fill_(-5.0)
    save_model(t, tmp_path / "t")
    assert convert_cli.main([str(tmp_path / "t"), "-o", str(tmp_path / "p"), "--beta", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not exact" in err[0]
    assert not list(tmp_path.glob("p*"))


def test_cli_rejects_non_teacher(tmp_path, tiny_plain_path, capsys):
    assert convert_cli.main([str(tiny_plain_path), "-o", str(tmp_path / "p")]) == 2
    assert "only teachers" in capsys.readouterr().err


def test_plain_features_from_teacher_match_the_plain_net():
    t = make_teacher(scale=2, width=8, blocks=3, anchor=True, input_spec=SPECS[1])
    p = convert.teacher_to_plain(t)
    x = torch.rand(2, 3, 15, 11)
    with torch.no_grad():
        sr_p, fp = p.features(x)
        sr_t, ft = convert.plain_features(t, x)
    assert len(fp) == len(ft)
    assert float((sr_p - sr_t).abs().max()) < 1e-4
    for a, b in zip(fp, ft):
        assert a.shape == b.shape and float((a - b).abs().max()) < 1e-4
