"""EDSR checkpoints (EDSR-PyTorch and BasicSR layouts) as memsr teachers: import equal to an independent EDSR,
exact conversion to a plain net with EDSR's upsampler, MemSR students with either tail, bad input refused."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from edsr_reference import EdsrBasicSR, EdsrPyTorch, randomise
from memsr_deploy.cli import convert as convert_cli
from memsr_deploy.cli import import_model as import_cli
from memsr_deploy.cli import train as train_cli
from memsr_deploy.errors import MemsrError
from memsr_deploy.formats.checkpoint import import_checkpoint
from memsr_deploy.formats.model_file import load_model, read_description
from memsr_deploy.method import convert

# (scale, width, blocks, res_scale, given): baseline-like (res_scale 1), and "full" ones (res_scale 0.1): one
# at EDSR's full width 256, where the importer infers 0.1 as for the published full models, and narrow ones with
# res_scale given (checkpoints do not store it), all with fewer blocks
VARIANTS = [(2, 16, 2, 1.0, False), (3, 12, 2, 1.0, False), (4, 12, 2, 1.0, False), (2, 256, 1, 0.1, False),
            (3, 12, 2, 0.1, True), (4, 12, 2, 0.1, True)]


def _save(net, path, layout):
    state = net.state_dict()
    if path.suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    elif layout == "BasicSR":
        torch.save({"params": state, "params_ema": state}, path)
    else:
        torch.save(state, path)
    return path


def _x(seed=0, h=9, w=11):
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("scale,width,blocks,res_scale,given", VARIANTS)
def test_imported_teacher_equals_the_original_edsr_in_both_layouts(tmp_path, scale, width, blocks, res_scale,
                                                                   given):
    x = _x(scale)
    pt = randomise(EdsrPyTorch(scale, width, blocks, res_scale), seed=scale)
    bs = randomise(EdsrBasicSR(scale, width, blocks, res_scale), seed=scale + 7)
    suffix = ".safetensors" if width == 256 else ".pt"
    for net, layout, ref_out in ((pt, "EDSR-PyTorch", lambda: pt(x * 255) / 255), (bs, "BasicSR", lambda: bs(x))):
        path = _save(net, tmp_path / f"{layout}{suffix}", layout)
        model, desc = import_checkpoint(path, res_scale=res_scale) if given else load_model(path)
        info = desc.provenance["imported_from"]
        assert (desc.kind, desc.scale, info["layout"], info["width"], info["blocks"], info["res_scale"]) == \
            ("teacher", scale, layout, width, blocks, res_scale)
        assert model.cfg.tail == "upsampler" and not model.cfg.anchor
        with torch.no_grad():
            ref, ours = ref_out(), model(x)
        assert ours.shape == (1, 3, 9 * scale, 11 * scale)
        assert float((ref - ours).abs().max()) <= 1e-5, layout
        assert float(ref.std()) > 1e-3   # not a trivially flat output


def test_meanshift_is_read_from_the_file(tmp_path):
    """A non-standard std and mean in sub_mean / add_mean are honoured (folded exactly), not assumed."""
    net = randomise(EdsrPyTorch(2, 8, 1, 1.0, std=(0.9, 1.1, 1.0)), seed=3)
    with torch.no_grad():
        net.add_mean.bias.add_(torch.tensor([3.0, -2.0, 1.0]))
    model, _ = load_model(_save(net, tmp_path / "odd.pth", "EDSR-PyTorch"))
    x = _x(1)
    with torch.no_grad():
        assert float((net(x * 255) / 255 - model(x)).abs().max()) <= 1e-5


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_conversion_to_a_plain_net_with_the_upsampler_is_exact(tmp_path, scale):
    net = randomise(EdsrPyTorch(scale, 8, 2, 1.0), seed=scale)
    teacher, _ = load_model(_save(net, tmp_path / "t.pt", "EDSR-PyTorch"))
    plain = convert.teacher_to_plain(teacher)
    assert plain.cfg.tail == "upsampler" and plain.receptive_radius == teacher.receptive_radius
    assert [tuple(c.weight.shape) for c in plain.convs()[len(plain.layers):]] == \
        [tuple(c.weight.shape) for c in [*teacher.upsample, teacher.tail]]
    # every pixel, borders included: odd sizes, images of all-0 and all-1 (the carries' extremes)
    for x in (_x(2, 7, 10), _x(3, 1, 5), torch.zeros(1, 3, 6, 5), torch.ones(1, 3, 5, 6)):
        assert convert.max_abs_diff(teacher, plain, x) <= 1e-4
    # the distillation features the teacher computes are the plain net's layer outputs
    with torch.no_grad():
        sr, feats = convert.plain_features(teacher, _x(4))
        psr, pfeats = plain.features(_x(4))
    assert float((sr - psr).abs().max()) <= 1e-4
    beta = convert.default_beta(teacher.cfg.input)
    assert beta == 100.0 * 255
    for f, g in zip(feats, pfeats):
        assert f.shape == g.shape and float((f - g).abs().max()) <= 1e-6 * beta
    own = convert.own_channels(teacher.cfg)
    assert [len(o) for o in own] == [8] * len(feats) and own[-1] == list(range(8))


def test_memsr_convert_and_import_clis_write_exact_descriptions(tmp_path, capsys):
    ckpt = _save(randomise(EdsrBasicSR(2, 8, 1, 1.0), seed=5), tmp_path / "basicsr_x2.pth", "BasicSR")
    assert convert_cli.main([str(ckpt), "-o", str(tmp_path / "plain")]) == 0
    plain, pdesc = load_model(tmp_path / "plain")
    assert pdesc.kind == "plain" and pdesc.arch["tail"] == "upsampler"
    assert pdesc.provenance["max_abs_diff"] <= 1e-4
    assert import_cli.main([str(ckpt), "-o", str(tmp_path / "imported" / "teacher"), "--scale", "2"]) == 0
    t, tdesc = load_model(tmp_path / "imported" / "teacher")
    ref, _ = load_model(ckpt)
    with torch.no_grad():
        assert torch.equal(t(_x()), ref(_x()))
    meta = json.loads((tmp_path / "imported" / "teacher.json").read_text())
    assert meta["arch"]["tail"] == "upsampler" and meta["provenance"]["imported_from"]["layout"] == "BasicSR"
    assert read_description(ckpt).weights_sha256 == meta["provenance"]["imported_from"]["sha256"]


def _state(layout="EDSR-PyTorch", scale=2):
    net = EdsrPyTorch(scale, 8, 2) if layout == "EDSR-PyTorch" else EdsrBasicSR(scale, 8, 2)
    return dict(randomise(net, seed=1).state_dict())


def _refused(tmp_path, capsys, name, payload, argv=(), match=""):
    path = tmp_path / name
    if isinstance(payload, bytes):
        path.write_bytes(payload)
    else:
        torch.save(payload, path)
    out = tmp_path / "out" / "model"
    assert import_cli.main([str(path), "-o", str(out), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(path) in err and match in err, err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    return err


def test_bad_checkpoints_are_refused_in_one_line_naming_the_first_bad_key(tmp_path, capsys):
    good = _state()
    _refused(tmp_path, capsys, "x2.pt", good, ["--scale", "4"], "x2")
    mixed = dict(good)
    mixed["conv_last.weight"] = mixed.pop("tail.1.weight")
    _refused(tmp_path, capsys, "mixed.pt", mixed, match="'conv_last.weight'")
    missing = {k: v for k, v in good.items() if k != "body.1.body.2.bias"}
    _refused(tmp_path, capsys, "missing.pt", missing, match="'body.1.body.2.bias'")
    extra = {**good, "body.0.body.1.weight": torch.zeros(3)}
    _refused(tmp_path, capsys, "extra.pt", extra, match="'body.0.body.1.weight'")
    wrong = {**good, "body.1.body.0.weight": torch.zeros(8, 8, 5, 5)}
    _refused(tmp_path, capsys, "wrong.pt", wrong, match="'body.1.body.0.weight'")
    blob = (tmp_path / "x2.pt").read_bytes()
    _refused(tmp_path, capsys, "truncated.pt", blob[: len(blob) // 2], match="unreadable")
    _refused(tmp_path, capsys, "other.pt", {"conv.weight": torch.zeros(3)}, match="supported")
    bs = _state("BasicSR")
    _refused(tmp_path, capsys, "bs_missing.pt", {"params": {k: v for k, v in bs.items() if "conv_after" not in k}},
             match="'conv_after_body.weight'")


def test_load_model_refuses_a_truncated_safetensors_checkpoint(tmp_path):
    p = tmp_path / "t.safetensors"
    save_file({k: v.contiguous() for k, v in _state().items()}, str(p))
    p.write_bytes(p.read_bytes()[:300])
    with pytest.raises(MemsrError, match="t.safetensors"):
        load_model(p)


def _teacher_ckpt(tmp_path, scale=2):
    # a random EDSR whose features vary: the student init works from its recorded features
    return _save(randomise(EdsrPyTorch(scale, 8, 2, 1.0), seed=11, gain=1.5), tmp_path / f"edsr_x{scale}.pt",
                 "EDSR-PyTorch")


@pytest.mark.parametrize("tail", ["teacher", "refit"])
def test_students_of_an_edsr_checkpoint(photo_dir, tmp_path, tail):
    ckpt = _teacher_ckpt(tmp_path)
    teacher, _ = load_model(ckpt)
    out = tmp_path / tail
    assert train_cli.main(["student", "--teacher", str(ckpt), "--data", str(photo_dir), "--tail", tail,
                           "--width", "8", "--steps", "2", "--batch", "2", "--patch", "12", "--init-patches", "4",
                           "--no-val", "--threads", "1", "--out", str(out)]) == 0
    s, d = load_model(out / "model")
    assert d.kind == "student" and d.extra["training"]["tail"] == tail
    assert len(s.cfg.widths) == 2 * 2 + 2   # the paper's depth: one student layer per plain layer
    assert d.provenance["teacher"]["path"] == str(ckpt)
    if tail == "teacher":
        # the teacher's upsampler and output conv (de-normalisation folded in) are the student's, and its last
        # body layer is as wide as the teacher's body feature
        plain = convert.teacher_to_plain(teacher)
        assert s.cfg.tail == "upsampler" and s.cfg.widths[-1] == 8
        init = d.extra["training"]["init_report"]
        assert init["tail_init"] == "copied" and init["widths"][-1] == 8
        assert s.receptive_radius == plain.receptive_radius
    else:
        assert s.cfg.tail == "shuffle" and d.extra["training"]["init_report"]["tail_init"] == "fitted"


def test_teacher_tail_init_copies_the_upsampler_and_keeps_y(photo_dir, tmp_path):
    """At init (before training) the --tail teacher student's tail convs are the plain net's, bit for bit, and
    its last layer reads out y through an identity bridge; the refit student's fitted tail beats the mean."""
    from memsr_deploy.data.datasets import TrainPatches
    from memsr_deploy.method.student_init import init_student
    teacher, _ = load_model(_teacher_ckpt(tmp_path, scale=4))
    plain = convert.teacher_to_plain(teacher)
    patches = TrainPatches(photo_dir, 4, lr_patch=10, length=64, progress=False)
    lr = torch.stack([patches[i][0] for i in range(4)])
    fit = init_student(plain, lr, width=6, shift_a=30.0, refit_tail=False, tail="upsampler")
    s = fit.student
    assert s.cfg.widths[:-1] == [6] * (len(s.cfg.widths) - 1) and s.cfg.widths[-1] == 8
    for a, b in zip(s.convs()[len(s.layers):], plain.convs()[len(plain.layers):]):
        assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)
    assert torch.equal(fit.bridges[-1].weight.view(8, 8), torch.eye(8))
    refit = init_student(plain, lr, width=6, shift_a=30.0, refit_tail=True, tail="shuffle").student
    # the same body (the analytic init does not depend on the tail), then a fitted one-conv tail
    for a, b in zip(refit.layers[:-1], s.layers[:-1]):
        assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)
    with torch.no_grad():
        target = plain(lr)
        err = float((refit(lr) - target).pow(2).mean() / (target - target.mean()).pow(2).mean())
    assert refit.cfg.tail == "shuffle" and err < 0.4   # an unfitted tail: >= 1


def test_tail_flags_that_contradict_are_refused(photo_dir, tmp_path, capsys):
    ckpt = _teacher_ckpt(tmp_path)
    base = ["student", "--teacher", str(ckpt), "--data", str(photo_dir), "--steps", "1", "--no-val",
            "--out", str(tmp_path / "o")]
    assert train_cli.main([*base, "--tail", "teacher", "--refit-tail"]) == 2
    assert train_cli.main([*base, "--tail", "refit", "--no-refit-tail"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all("tail" in line for line in err)


def test_a_teacher_trained_here_saves_in_both_edsr_layouts(photo_dir, tmp_path):
    """memsr-train teacher --tail upsampler is the published EDSR: its weights, in either layout, load into the
    independent EDSR and give the same output, and import back to the same teacher."""
    from memsr_deploy.formats.edsr_checkpoint import state_from_teacher
    assert train_cli.main(["teacher", "--tail", "upsampler", "--preset", "tiny", "--scale", "3", "--data",
                           str(photo_dir), "--steps", "2", "--batch", "2", "--patch", "12", "--no-val",
                           "--threads", "1", "--out", str(tmp_path / "t")]) == 0
    teacher, desc = load_model(tmp_path / "t" / "model")
    assert desc.arch["tail"] == "upsampler"
    x = _x(6)
    with torch.no_grad():
        ours = teacher(x)
        for layout, ref in (("EDSR-PyTorch", EdsrPyTorch(3, 16, 2)), ("BasicSR", EdsrBasicSR(3, 16, 2))):
            ref.load_state_dict(state_from_teacher(teacher, layout), strict=True)
            out = ref(x * 255) / 255 if layout == "EDSR-PyTorch" else ref(x)
            assert float((out - ours).abs().max()) <= 1e-5, layout
            back, _ = load_model(_save(ref, tmp_path / f"{layout}.pt", layout))
            assert float((back(x) - ours).abs().max()) <= 1e-5, layout


def test_the_runtime_and_the_profiler_take_a_checkpoint(tmp_path):
    """memsr-upscale --model and memsr-profile reach the checkpoint through the same loader: a teacher, run on
    PyTorch, with the exact halo of EDSR's tail."""
    import numpy as np

    from memsr_deploy.profiler.analytic import load_subject, predict
    from memsr_deploy.runtime.backends import open_backend
    net = randomise(EdsrPyTorch(2, 8, 1), seed=2)
    ckpt = _save(net, tmp_path / "edsr.pth", "EDSR-PyTorch")
    backend = open_backend(model=ckpt, threads=1)
    assert backend.name == "torch" and backend.caps.scale == 2 and backend.caps.halo == 6
    x = _x(1).numpy()
    with torch.no_grad():
        assert np.abs(backend.run(x) - net(torch.from_numpy(x) * 255).numpy() / 255).max() <= 1e-5
    subject = load_subject(ckpt)
    assert subject.kind == "teacher" and subject.halo == 6
    assert predict(subject, 32, 40, "whole").peak_bytes > 0
