"""What memsr trains: a residual teacher (L1); a plain student (MemSR or random init, with initialisation-aware,
ordinary or no feature distillation); and an int8-ready copy of a trained student (quantisation-aware
fine-tuning, see quant_aware.py)."""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from ..method import models, student_init
from ..method.convert import own_channels, plain_features, teacher_to_plain
from ..method.distill import (DistillLoss, StudentWithBridges, random_bridges, reference_feature_scale,
                              select_bridges)
from ..errors import MemsrError
from ..formats.model_file import ModelDescription
from ..method.bias_correct import correct_tail_bias
from ..method.quant_aware import snapped, with_int8_weights
from ..method.range_equalise import equalise_ranges
from .loop import Task, patch_batch

INIT_PATCH_OFFSET = 10 ** 9  # dataset indices for the init batch, far from any training step's
BIAS_PATCH_OFFSET = 2 * 10 ** 9  # and for the int8 stage's bias correction


def l1_to_hr(net, lr, hr, step, total):
    l1 = F.l1_loss(net(lr), hr)
    return l1, {"l1": l1.item()}


def teacher_task(cfg: models.TeacherConfig) -> Task:
    model = models.ResidualSR(cfg)
    return Task(model, l1_to_hr, lambda: model, meta={"kind": "teacher"})


def finetune_task(student: torch.nn.Module, desc: ModelDescription) -> Task:
    """Go on training a plain student with L1 from its weights as they are (no init, no teacher): for a new
    sampler setting such as flat colours. Weights that were on the int8 grid leave it: run the int8 stage after."""
    if not isinstance(student, models.PlainSR):
        raise MemsrError("fine-tuning needs a plain model (a trained student)", desc.path)
    return Task(student, l1_to_hr, lambda: student, meta={"kind": desc.kind, "finetuned_from": desc.weights_sha256})


def large_plain_of(model: torch.nn.Module, desc: ModelDescription) -> models.PlainSR:
    """The exact plain equivalent of a teacher (a plain model is already one)."""
    if desc.kind == "teacher":
        return teacher_to_plain(model)
    return model


def teacher_feature_width(model: torch.nn.Module, desc: ModelDescription) -> int:
    """The cap on student layer widths: the teacher's feature width (a plain model's widest layer)."""
    return int(model.cfg.width) if desc.kind == "teacher" else max(int(w) for w in model.cfg.widths)


TAIL_CHOICES = ("refit", "teacher")


def student_tail(teacher_tail: str, tail: str, refit_tail: bool | None, desc: ModelDescription) -> tuple[str, bool]:
    """(the student's tail kind, whether init_student fits it) for ``--tail`` and ``--refit-tail``.

    A teacher with a one-conv shuffle tail: the student's tail is that kind either way; ``refit`` fits it (today's
    default, ``--refit-tail``), ``teacher`` reads the teacher's conv through the last bridge (``--no-refit-tail``).
    A teacher with EDSR's upsampler: ``refit`` gives the student a one-conv shuffle tail fitted to the teacher's
    output (the lean tail), ``teacher`` the teacher's upsampler and output conv, copied (the paper's)."""
    if tail not in TAIL_CHOICES:
        raise MemsrError(f"--tail must be one of {', '.join(TAIL_CHOICES)}, got {tail!r}")
    if teacher_tail == "upsampler":
        if tail == "teacher":
            if refit_tail:
                raise MemsrError("--tail teacher copies the teacher's upsampler; --refit-tail applies to one-conv "
                                 "tails (use --tail refit)", desc.path)
            return "upsampler", False
        if refit_tail is False:
            raise MemsrError("--tail refit on a teacher with EDSR's upsampler fits a one-conv tail, which has no "
                             "other init (drop --no-refit-tail, or use --tail teacher)", desc.path)
        return "shuffle", True
    if refit_tail is None:
        return "shuffle", tail == "refit"
    if tail == "teacher" and refit_tail:
        raise MemsrError("--tail teacher keeps the teacher's tail; it contradicts --refit-tail", desc.path)
    return "shuffle", bool(refit_tail)


def init_batch(dataset, n: int) -> torch.Tensor:
    return patch_batch(dataset, INIT_PATCH_OFFSET, n)[0]


def student_task(teacher: torch.nn.Module, desc: ModelDescription, dataset, init: str = "memsr",
                 distill: str = "aware", rank_eps: float = 0.05, width: int | None = None,
                 init_patches: int = 16, lam0: float = 0.3, decay: float = 1e-5, shift_a: float = 30.0,
                 seed: int = 0, log=print, max_width: int | None = None, refit: str = "none",
                 refit_tail: bool | None = None, feature_scale: float | None = None,
                 grad_ratio: float = 0.9, width_multiple: int = 16, refit_bridges: bool = True,
                 tail: str = "refit") -> Task:
    """A plain student of ``teacher``. Widths: ``width`` for every layer, else the rank rule rounded up to
    ``width_multiple`` with no layer wider than ``max_width`` (default: the teacher's feature width). ``feature_scale``: the weight k of the
    feature MSE; None = calibrated on the init patches so that at step 0 the feature term's gradient on the
    student is ``grad_ratio`` times the L1's (the reference's ratio is about 0.9). ``tail``: "refit" (a one-conv
    pixel-shuffle tail least-squares fitted to the teacher's output) or "teacher" (the teacher's own tail: its
    one conv read through the last bridge, or EDSR's upsampler copied); see ``student_tail``. See docs/method.md."""
    if init not in ("memsr", "random"):
        raise MemsrError(f"--init must be memsr or random, got {init!r}")
    if distill not in ("aware", "feature", "none"):
        raise MemsrError(f"--distill must be aware, feature or none, got {distill!r}")
    if distill == "aware" and init != "memsr":
        raise MemsrError("initialisation-aware distillation needs --init memsr (its bridges come from the init)")
    plain = large_plain_of(teacher, desc).eval()
    kind, refit_tail = student_tail(plain.cfg.tail, tail, refit_tail, desc)
    patches = init_batch(dataset, init_patches)
    cap = max_width if max_width is not None else teacher_feature_width(teacher, desc)
    fit = student_init.init_student(plain, patches, eps=rank_eps, width=width, shift_a=shift_a, seed=seed,
                                    max_width=cap, refit=refit, refit_tail=refit_tail,
                                    width_multiple=width_multiple, refit_bridges=refit_bridges, tail=kind)
    report = fit.report()
    log(f"student init (width cap {cap}, shift a={shift_a}, refit {refit}{' + tail' if refit_tail else ''}"
        f"{', bridges refitted' if refit_bridges else ''}; {kind} tail, {report['tail_init']}):")
    log(fit.table())
    student, bridges = fit.student, fit.bridges
    if init == "random":
        torch.manual_seed(seed)
        student = models.PlainSR(student.cfg)  # same layers and activations, standard initialisation
    module = StudentWithBridges(student, None)
    targets = None
    scale = feature_scale if feature_scale is not None else reference_feature_scale(plain.cfg.input.value_range)
    calibrated = None
    # distil the teacher's own channels only: the converted net's carries are copies plus constants
    own = own_channels(teacher.cfg) if desc.kind == "teacher" else None
    if distill != "none":
        teacher.eval().requires_grad_(False)
        plain.requires_grad_(False)
        full = (lambda x: plain_features(teacher, x)) if desc.kind == "teacher" else plain.features

        def targets(x):
            sr, feats = full(x)
            return sr, feats if own is None else [f[:, idx] for f, idx in zip(feats, own)]

        if distill == "feature":
            torch.manual_seed(seed + 1)
            with torch.no_grad():
                bridges = random_bridges(student, targets(patches)[1])
        else:
            bridges = select_bridges(bridges, own)
        module = StudentWithBridges(student, bridges)
        if feature_scale is None:
            # the ratio is linear in k: measure it at k = 1 on the init patches and solve for the target
            hr = torch.stack([dataset[INIT_PATCH_OFFSET + i][1] for i in range(init_patches)])
            calibrated = DistillLoss(targets, lam0, decay, 1.0).grad_ratio(module, patches, hr, 0, 1)["grad_ratio"]
            scale = grad_ratio / max(calibrated, 1e-12)
            log(f"feature scale k = {scale:.4g} (step-0 gradient ratio {calibrated:.4g} at k = 1, target {grad_ratio})")
    loss = DistillLoss(targets, lam0, decay, scale)
    meta = {"kind": "student", "init": init, "distill": distill, "tail": tail, "rank_eps": rank_eps, "width": width,
            "max_width": cap, "init_report": report if init == "memsr" else {"widths": report["widths"]},
            "lam0": lam0, "lam_decay": decay, "feature_scale": scale,
            "feature_scale_rule": None if distill == "none" else f"calibrated: step-0 gradient ratio {grad_ratio}"
            if calibrated is not None else "given",
            "feature_targets": None if distill == "none" else "all channels" if own is None else
            "the teacher's own channels (offset carries excluded)"}
    return Task(module, loss, lambda: module.student, meta=meta, probe=loss.grad_ratio if targets else None)


def int8_task(student: torch.nn.Module, desc: ModelDescription, activations: bool = False, dataset=None,
              equalise: float | None = None, equalise_patches: int = 64, bias_patches: int = 512,
              log=print) -> Task:
    """Fine-tune a plain student with int8-rounded weights (and, with ``activations``, 8-bit layer outputs).
    Loss: L1 to HR plus L1 to the student's own float output, which keeps the fine-tuned net close to the model
    it replaces. ``equalise``: first narrow the feature ranges to this width (range_equalise.py), measured on
    ``equalise_patches`` training patches of ``dataset``; the float reference stays the model as given.
    ``bias_patches``: at the end, the tail's bias takes the mean residual over that many training patches
    (bias_correct.py; 0 = no correction)."""
    if not isinstance(student, models.PlainSR):
        raise MemsrError("int8 fine-tuning needs a plain model (a trained student or a converted teacher)",
                         desc.path)
    reference = copy.deepcopy(student).eval().requires_grad_(False)
    meta = {"kind": desc.kind, "int8_weights": "per-output-channel"}
    if equalise is not None:
        meta["equalised"] = {"target_width": equalise, "patches": equalise_patches,
                             "layers": equalise_ranges(student, init_batch(dataset, equalise_patches), equalise)}
    module = with_int8_weights(student, activations)

    def loss(net, lr, hr, step, total):
        sr = net(lr)
        with torch.no_grad():
            ref = reference(lr)
        l1, keep = F.l1_loss(sr, hr), F.l1_loss(sr, ref)
        return l1 + keep, {"l1": l1.item(), "to_float": keep.item()}

    if activations:
        meta["int8_activations"] = "per-tensor, simulated in training"

    def finish(model):
        """The tail bias correction (bias_correct.py) on the saved model."""
        if bias_patches:
            if dataset is None:
                raise MemsrError("the tail bias correction needs the training patches (dataset); "
                                 "bias_patches=0 turns it off")
            batches = (patch_batch(dataset, BIAS_PATCH_OFFSET + i, min(32, bias_patches - i))
                       for i in range(0, bias_patches, 32))
            offsets = correct_tail_bias(model, batches)
            meta["tail_bias_correction"] = {"patches": bias_patches, "offsets": [round(v, 6) for v in offsets]}
            log(f"tail bias corrected: offsets up to {max(abs(v) for v in offsets) * 255:.2f} levels "
                f"({bias_patches} patches)")
        return model
    return Task(module, loss, lambda: snapped(module), meta=meta, finish=finish)
