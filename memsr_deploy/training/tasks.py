"""What memsr trains: a residual teacher (L1); a plain student (MemSR or random init, with initialisation-aware,
ordinary or no feature distillation); and an int8-ready copy of a trained student (quantisation-aware
fine-tuning, see quant_aware.py)."""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from ..method import models, student_init
from ..method.convert import plain_features, teacher_to_plain
from ..method.distill import DistillLoss, StudentWithBridges, random_bridges
from ..errors import MemsrError
from ..formats.model_file import ModelDescription
from ..method.quant_aware import snapped, with_int8_weights
from .loop import Task

INIT_PATCH_OFFSET = 10 ** 9  # dataset indices for the init batch, far from any training step's


def teacher_task(cfg: models.TeacherConfig) -> Task:
    model = models.ResidualSR(cfg)

    def loss(net, lr, hr, step, total):
        l1 = F.l1_loss(net(lr), hr)
        return l1, {"l1": l1.item()}

    return Task(model, loss, lambda: model, meta={"kind": "teacher"})


def large_plain_of(model: torch.nn.Module, desc: ModelDescription) -> models.PlainSR:
    """The exact plain equivalent of a teacher (a plain model is already one)."""
    if desc.kind == "teacher":
        return teacher_to_plain(model)
    return model


def init_batch(dataset, n: int) -> torch.Tensor:
    return torch.stack([dataset[INIT_PATCH_OFFSET + i][0] for i in range(n)])


def student_task(teacher: torch.nn.Module, desc: ModelDescription, dataset, init: str = "memsr",
                 distill: str = "aware", rank_eps: float = 0.05, width: int | None = None,
                 init_patches: int = 16, lam0: float = 0.3, decay: float = 1e-5, shift_a: float = 3.0,
                 seed: int = 0, log=print) -> Task:
    if init not in ("memsr", "random"):
        raise MemsrError(f"--init must be memsr or random, got {init!r}")
    if distill not in ("aware", "feature", "none"):
        raise MemsrError(f"--distill must be aware, feature or none, got {distill!r}")
    if distill == "aware" and init != "memsr":
        raise MemsrError("initialisation-aware distillation needs --init memsr (its bridges come from the init)")
    plain = large_plain_of(teacher, desc).eval()
    patches = init_batch(dataset, init_patches)
    fit = student_init.init_student(plain, patches, eps=rank_eps, width=width, shift_a=shift_a, seed=seed)
    report = fit.report()
    log(f"student widths: {report['widths']}")
    log(f"rank errors:    {report['rank_errors']}")
    log(f"feature errors: {report['feature_errors']}")
    student, bridges = fit.student, fit.bridges
    if init == "random":
        torch.manual_seed(seed)
        student = models.PlainSR(student.cfg)  # same layers and activations, standard initialisation
    if distill == "feature":
        torch.manual_seed(seed + 1)
        bridges = random_bridges(student, plain)
    module = StudentWithBridges(student, bridges if distill != "none" else None)
    targets = None
    if distill != "none":
        teacher.eval().requires_grad_(False)
        plain.requires_grad_(False)
        targets = (lambda x: plain_features(teacher, x)) if desc.kind == "teacher" else plain.features
    loss = DistillLoss(targets, lam0, decay)
    meta = {"kind": "student", "init": init, "distill": distill, "rank_eps": rank_eps, "width": width,
            "init_report": report if init == "memsr" else {"widths": report["widths"]},
            "lam0": lam0, "lam_decay": decay}
    return Task(module, loss, lambda: module.student, meta=meta)


def int8_task(student: torch.nn.Module, desc: ModelDescription) -> Task:
    """Fine-tune a plain student with int8-rounded weights. Loss: L1 to HR plus L1 to the student's own float
    output, which keeps the fine-tuned net close to the model it replaces."""
    if not isinstance(student, models.PlainSR):
        raise MemsrError("int8 fine-tuning needs a plain model (a trained student or a converted teacher)",
                         desc.path)
    reference = copy.deepcopy(student).eval().requires_grad_(False)
    module = with_int8_weights(student)

    def loss(net, lr, hr, step, total):
        sr = net(lr)
        with torch.no_grad():
            ref = reference(lr)
        l1, keep = F.l1_loss(sr, hr), F.l1_loss(sr, ref)
        return l1 + keep, {"l1": l1.item(), "to_float": keep.item()}

    return Task(module, loss, lambda: snapped(module), meta={"kind": desc.kind, "int8_weights": "per-output-channel"})
