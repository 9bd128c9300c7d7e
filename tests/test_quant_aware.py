"""Quantisation-aware int8 fine-tuning: the weight grid, the saved model, and that training closes the gap."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import make_plain
from memsr_deploy.cli import train as train_cli
from memsr_deploy.formats.model_file import describe, load_model, save_model
from memsr_deploy.method.bias_correct import correct_tail_bias
from memsr_deploy.method.quant_aware import int8_weight, snapped, with_int8_weights
from memsr_deploy.training.tasks import int8_task


def carry_model():
    """A plain net with a near-identity carry tap beside small weights, as a MemSR initialisation leaves."""
    m = make_plain(widths=(8, 8, 8), seed=3)
    with torch.no_grad():
        for conv in m.convs():
            conv.weight.mul_(0.5)
        m.layers[1].weight[:, 0, 1, 1] = 8.0
    return m


def on_grid(w):
    scale = w.abs().amax(dim=(1, 2, 3), keepdim=True) / 127
    q = w / scale
    return torch.allclose(q, q.round(), atol=1e-3)


def test_snapped_model_is_on_the_int8_grid_and_computes_the_quantised_forward():
    q = with_int8_weights(carry_model())
    plain = snapped(q)
    assert all(on_grid(c.weight) for c in plain.convs())
    assert not hasattr(plain.layers[1], "parametrizations")  # a plain net again, as saved
    assert not on_grid(q.layers[1].parametrizations.weight.original)  # the float weights themselves are left alone
    x = torch.rand(1, 3, 13, 11)
    with torch.no_grad():
        assert torch.allclose(plain(x), q(x), atol=1e-6)
    w = torch.randn(4, 3, 3, 3, requires_grad=True)
    int8_weight(w).sum().backward()
    assert torch.equal(w.grad, torch.ones_like(w))  # straight-through


def test_fine_tuning_closes_the_gap_to_the_float_model():
    m = carry_model()
    ref = make_plain(widths=(8, 8, 8), seed=3)
    ref.load_state_dict(m.state_dict())
    task = int8_task(m, describe(m, "student"))
    torch.manual_seed(0)
    x = torch.rand(8, 3, 16, 16)
    with torch.no_grad():
        hr = ref(x)  # both loss terms aim at the float model here

    def gap():
        with torch.no_grad():
            return F.l1_loss(task.eval_model()(x), hr).item()
    before = gap()
    opt = torch.optim.Adam(task.module.parameters(), lr=1e-5)  # steps well below the grid's (~8/127)
    for step in range(150):
        loss, _ = task.loss(task.module, x, hr, step, 150)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert gap() < 0.8 * before  # measured: 0.64x


def test_cli_writes_an_int8_ready_student(photo_dir, tmp_path):
    save_model(carry_model(), tmp_path / "s", kind="student")
    rc = train_cli.main(["int8", "--model", str(tmp_path / "s"), "--data", str(photo_dir), "--steps", "2",
                         "--batch", "2", "--patch", "12", "--bias-patches", "40", "--no-val", "--threads", "1",
                         "--out", str(tmp_path / "q")])
    assert rc == 0
    model, desc = load_model(tmp_path / "q" / "model")
    assert desc.kind == "student" and all(on_grid(c.weight) for c in model.convs())
    assert desc.provenance["source_model"]["path"] == str(tmp_path / "s")
    assert np.isfinite(desc.provenance["train_seconds"])
    assert desc.provenance["ema"] == 0.99   # the int8 stage's default average (docs/method.md section 9)
    record = desc.extra["training"]["tail_bias_correction"]
    assert record["patches"] == 40 and len(record["offsets"]) == 3 * desc.scale ** 2


def test_tail_bias_correction_removes_a_colour_offset_exactly():
    m = make_plain(seed=5)
    torch.manual_seed(1)
    batches = []
    for _ in range(3):
        lr = torch.rand(4, 3, 14, 14)
        with torch.no_grad():
            batches.append((lr, m(lr)))  # the model itself is the target: its residual is zero
    shift = torch.linspace(-0.01, 0.01, m.tail.bias.numel())
    with torch.no_grad():
        m.tail.bias += shift  # what rounding the tail's weights does to flat regions
    offsets = correct_tail_bias(m, iter(batches))
    assert torch.allclose(torch.tensor(offsets), -shift, atol=1e-6)
    with torch.no_grad():
        assert all(torch.allclose(m(lr), hr, atol=1e-6) for lr, hr in batches)


def test_tail_bias_correction_refuses_patches_inside_the_border():
    m = make_plain(seed=5)
    lr = torch.rand(1, 3, 6, 6)
    with pytest.raises(ValueError, match="nothing inside"):
        correct_tail_bias(m, [(lr, m(lr).detach())])


def test_activation_grid_rounds_to_256_levels_and_passes_gradients():
    from memsr_deploy.method.quant_aware import ActivationGrid
    g = ActivationGrid(relu=False)
    x = torch.linspace(-1.0, 3.0, 1001, requires_grad=True)
    assert torch.equal(g.eval()(x), x)   # no range seen yet: left alone
    y = g.train()(x)
    step = 4.0 / 255
    k = y.detach() / step   # the grid holds 0 exactly (an integer zero point), so values are multiples of step
    assert torch.allclose(k, k.round(), atol=1e-4) and k.max() - k.min() <= 255
    assert (y - x).abs()[(x > -0.99) & (x < 2.99)].max() <= step / 2 + 1e-6
    y.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))   # straight through
    r = ActivationGrid(relu=True).train()(torch.linspace(-1.0, 3.0, 9))
    assert r.min() == 0 and torch.allclose(r[r > 0], torch.linspace(-1.0, 3.0, 9)[r > 0], atol=3 / 255)


def test_activations_option_simulates_the_layer_outputs_and_saves_a_plain_net(photo_dir, tmp_path):
    q = with_int8_weights(carry_model(), activations=True)
    x = torch.rand(2, 3, 12, 12)
    q.train()(x)   # one batch sets the ranges
    plain = snapped(q)
    with torch.no_grad():
        coarse, exact = q.eval()(x), plain(x)
    assert 0 < (coarse - exact).abs().max() < 0.1   # 8-bit layer outputs: close, not equal
    assert not hasattr(plain, "activation_grids") and not plain.layers[0]._forward_hooks
    save_model(carry_model(), tmp_path / "s", kind="student")
    rc = train_cli.main(["int8", "--model", str(tmp_path / "s"), "--activations", "--data", str(photo_dir),
                         "--steps", "2", "--batch", "2", "--patch", "12", "--no-val", "--threads", "1",
                         "--out", str(tmp_path / "q")])
    assert rc == 0
    model, desc = load_model(tmp_path / "q" / "model")
    assert all(on_grid(c.weight) for c in model.convs())
