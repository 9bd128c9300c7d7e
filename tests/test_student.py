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
