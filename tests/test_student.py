"""MemSR student initialisation and initialisation-aware distillation."""
import pytest
import torch

from conftest import make_teacher
from memsr_deploy.method import convert, models, student_init as si
from memsr_deploy.method.distill import DistillLoss, StudentWithBridges, feature_weight
from memsr_deploy.formats.model_file import load_model, save_model


def test_rank_rule_on_known_rank():
    torch.manual_seed(0)
    F = torch.randn(40, 5, dtype=torch.float64) @ torch.randn(5, 3000, dtype=torch.float64)
    F = F + 1e-4 * torch.randn_like(F) + 3.0  # rank 5 + tiny noise + an offset (removed by centring)
    M, b, fit = si.decompose(F, relu=False, eps=0.05, width=None)
    assert fit.width == 5 and fit.rank_error < 0.05
    assert M.shape == (40, 5)
    assert torch.allclose(M.T @ M, torch.eye(5, dtype=torch.float64), atol=1e-8)
    P = M.T @ (F - b[:, None])
    assert float((M @ P + b[:, None] - F).norm() / (F - F.mean(1, keepdim=True)).norm()) < 1e-3
    # a stricter rule asks for more components, never fewer
    S = torch.linalg.svdvals(F - F.mean(1, keepdim=True))
    assert si.choose_rank(S, 1e-9) > 5 and si.choose_rank(S, 0.5) <= 5


def test_positivity_shift_and_bias_keep_reconstruction():
    torch.manual_seed(1)
    F = torch.relu(torch.randn(12, 4, dtype=torch.float64) @ torch.randn(4, 2000, dtype=torch.float64))
    M, b, fit = si.decompose(F, relu=True, eps=None, width=12)
    P = M.T @ (F - b[:, None])
    assert fit.shift > 0
    assert float(P.clamp(max=0).abs().mean()) < float((M.T @ (F - F.mean(1, keepdim=True))).clamp(max=0).abs().mean())
    assert torch.allclose(M @ P + b[:, None], F, atol=1e-8)  # full width: exact despite the shift


@pytest.fixture(scope="module")
def setup():
    t = make_teacher(scale=2, width=12, blocks=3, anchor=True, seed=3)
    plain = convert.teacher_to_plain(t)
    torch.manual_seed(0)
    patches = torch.rand(8, 3, 24, 24)
    return t, plain, patches


def test_initialised_student_tracks_large_plain_net(setup):
    t, plain, patches = setup
    fit = si.init_student(plain, patches, eps=0.05)
    assert len(fit.student.cfg.widths) == len(plain.cfg.widths)
    assert fit.student.cfg.acts == plain.cfg.acts
    assert fit.student.cfg.widths[-1] == plain.cfg.widths[-1]  # last body layer is not compressed
    assert all(w <= c for w, c in zip(fit.student.cfg.widths, plain.cfg.widths))
    x = torch.rand(4, 3, 20, 20)
    with torch.no_grad():
        ref = plain(x)
        err_init = float((fit.student(x) - ref).pow(2).mean())
        errs_random = [float((models.PlainSR(fit.student.cfg)(x) - ref).pow(2).mean()) for _ in range(3)]
    assert err_init * 10 < min(errs_random)
    assert len(fit.feature_errors) == len(plain.cfg.widths) and fit.feature_errors[0] < 0.2


def test_fixed_width(setup):
    _, plain, patches = setup
    fit = si.init_student(plain, patches, width=6)
    assert fit.student.cfg.widths[:-1] == [6] * (len(plain.cfg.widths) - 1)


def test_one_distillation_step_lowers_feature_loss(setup):
    _, plain, patches = setup
    fit = si.init_student(plain, patches, eps=0.05)
    module = StudentWithBridges(fit.student, fit.bridges)
    loss = DistillLoss(plain.features, lam0=1.0, decay=1.0)
    opt = torch.optim.SGD(module.parameters(), lr=1e-3)
    x = patches[:4]
    with torch.no_grad():
        hr = plain(x)
    total, before = loss(module, x, hr, 0, 100)
    opt.zero_grad()
    total.backward()
    opt.step()
    _, after = loss(module, x, hr, 0, 100)
    assert after["feat"] < before["feat"]


def test_feature_weight_decays():
    assert feature_weight(0, 100) == pytest.approx(0.3)
    assert feature_weight(100, 100) == pytest.approx(0.3e-5)
    assert feature_weight(50, 100) == pytest.approx(0.3 * 1e-5 ** 0.5)


def test_student_file_round_trip(tmp_path, setup):
    _, plain, patches = setup
    fit = si.init_student(plain, patches, eps=0.05)
    save_model(fit.student, tmp_path / "s", kind="student", extra={"training": {"init_report": fit.report()}})
    s2, d = load_model(tmp_path / "s")
    assert d.kind == "student" and d.extra["training"]["init_report"]["widths"] == fit.student.cfg.widths
    x = torch.rand(1, 3, 13, 7)
    with torch.no_grad():
        assert torch.equal(fit.student(x), s2(x))


def test_width_cap_and_uniform_width(setup):
    t, plain, patches = setup
    fit = si.init_student(plain, patches, eps=1e-6, max_width=t.cfg.width)  # eps that asks for every component
    assert max(fit.student.cfg.widths) == t.cfg.width  # capped, the last (anchor-carrying) layer included
    assert plain.cfg.widths[-1] > t.cfg.width
    rep = fit.report()
    assert rep["max_width"] == t.cfg.width and len(rep["kept_energy"]) == len(rep["widths"])
    assert all(0.0 <= e <= 1.0 for e in rep["kept_energy"]) and "kept energy" in fit.table()
    uni = si.init_student(plain, patches, width=5)
    assert uni.student.cfg.widths == [5] * len(plain.cfg.widths)


def test_relu_aware_refit_solves_a_relu_regression():
    torch.manual_seed(0)
    x = torch.randn(2, 4, 16, 16)
    true = torch.nn.Conv2d(4, 3, 3, padding=1)
    with torch.no_grad():
        T = torch.relu(true(x)).permute(1, 0, 2, 3).reshape(3, -1).double().T
        A = si._columns(x, torch.arange(T.shape[0]))
        errs = {}
        for aware in (False, True):
            conv = torch.nn.Conv2d(4, 3, 3, padding=1)
            si._refit_layer(conv, A, T, relu=True, relu_aware=aware)
            errs[aware] = float((torch.relu(conv(x)) - torch.relu(true(x))).norm() / torch.relu(true(x)).norm())
    assert errs[True] < 0.1 < 0.3 < errs[False]  # converges slowly but surely (0.35 -> 0.05 in 20 steps)


def test_refits_lower_the_feature_error(setup):
    _, plain, patches = setup
    base = si.init_student(plain, patches, width=6)
    refit = si.init_student(plain, patches, width=6, refit="relu", refit_tail=True)
    assert sum(refit.feature_errors) < sum(base.feature_errors)
    with torch.no_grad():
        ref = plain(patches)
        assert float((refit.student(patches) - ref).pow(2).mean()) < float((base.student(patches) - ref).pow(2).mean())


def test_refitted_bridges_read_the_student_back_better_and_leave_it_alone(setup):
    _, plain, patches = setup
    kw = dict(width=6, shift_a=30.0, refit_tail=True)
    base = si.init_student(plain, patches, **kw)
    rb = si.init_student(plain, patches, refit_bridges=True, **kw)
    # least squares per layer: never worse than the analytic bridge on the patches it was fitted on
    assert all(r <= b + 1e-6 for r, b in zip(rb.feature_errors, base.feature_errors))
    assert sum(rb.feature_errors) < sum(base.feature_errors)
    for a, b in zip(base.student.parameters(), rb.student.parameters()):  # the student itself is untouched
        assert torch.equal(a, b)
    assert rb.report()["refit_bridges"] is True and base.report()["refit_bridges"] is False


def test_own_channels_match_the_layout(setup):
    t, plain, patches = setup
    own = convert.own_channels(t.cfg)
    assert len(own) == len(plain.cfg.widths) and all(len(o) == t.cfg.width for o in own)
    with torch.no_grad():
        _, feats = convert.plain_features(t, patches)
    A, C = 3, t.cfg.width
    # every other channel is a copy of an own channel plus a constant: h0 + beta, x_{k-1} + beta, xn + offset
    h0 = feats[0][:, own[0]]
    for k, f in enumerate(feats):
        if k < len(feats) - 1:
            assert torch.allclose(f[:, A:A + C] - convert.DEFAULT_BETA, h0, atol=1e-4)
    for k in range(1, len(feats) - 1, 2):
        assert torch.allclose(feats[k][:, A + C:A + 2 * C] - convert.DEFAULT_BETA, feats[k - 1][:, own[k - 1]], atol=1e-4)


def test_feature_scale_and_gradient_ratio(setup):
    _, plain, patches = setup
    fit = si.init_student(plain, patches, width=6)
    module = StudentWithBridges(fit.student, fit.bridges)
    x = patches[:4]
    with torch.no_grad():
        hr = torch.nn.functional.interpolate(x, scale_factor=2, mode="bicubic")
    r1 = DistillLoss(plain.features, feature_scale=1.0).grad_ratio(module, x, hr, 0, 100)
    r255 = DistillLoss(plain.features, feature_scale=255.0).grad_ratio(module, x, hr, 0, 100)
    assert r1["grad_ratio"] > 0
    assert r255["grad_ratio"] == pytest.approx(255 * r1["grad_ratio"], rel=1e-4)
    assert DistillLoss(None).grad_ratio(module, x, hr, 0, 100) == {}


def test_rank_widths_round_up_to_the_kernel_block(setup):
    """The rank rule's widths are rounded up to a multiple (CPU kernels pad channels to blocks anyway), never past
    the cap; the body widths the rule left alone stay exact with a multiple of 1."""
    t, plain, patches = setup
    exact = si.init_student(plain, patches, eps=0.3, max_width=t.cfg.width)   # widths 10 and 11 among 12s
    blocked = si.init_student(plain, patches, eps=0.3, max_width=t.cfg.width, width_multiple=8)
    body = zip(exact.student.cfg.widths[:-1], blocked.student.cfg.widths[:-1])
    assert any(e % 8 for e, _ in body)  # there is something to round in this setup
    for e, b in zip(exact.student.cfg.widths[:-1], blocked.student.cfg.widths[:-1]):
        assert b == min(-(-e // 8) * 8, t.cfg.width), (exact.student.cfg.widths, blocked.student.cfg.widths)
    assert blocked.report()["width_multiple"] == 8
