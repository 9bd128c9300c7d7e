"""memsr-train teacher|student|finetune|int8: train a residual teacher, a plain MemSR student, go on training a
student (finetune), or make an int8-ready student.

Runs unchanged under `torchrun --nproc_per_node N memsr_deploy/cli/train.py ...` (or `python -m torch.distributed.run`):
each process takes --batch patches per step, gradients are averaged (global batch = N * --batch).
"""
from __future__ import annotations

import argparse
import datetime
import shlex
import signal
import sys

import torch

from ..method import models
from ..errors import MemsrError, cli_errors
from ..formats.model_file import load_model, pair_paths, save_model
from ..outputs.atomic import remove_dead_temps
from ..outputs.plan import OutputPlan, check_folder, model_pair_inputs
from . import args as types
from ..training import distributed
from ..training.checkpoint import CHECKPOINT, PREVIOUS, nonfinite_tensors
from ..training.loop import TrainConfig, train
from ..training.tasks import TAIL_CHOICES, finetune_task, int8_task, student_tail, student_task, teacher_task


# Training defaults. "paper": the reference's Adam + one-cycle LR peaking at 2e-4, batch 16, 192 x 192 HR patches.
RECIPES = {"cpu": dict(lr=2e-4, schedule="cosine", batch=16, lr_patch=48),
           "paper": dict(lr=2e-4, schedule="onecycle", global_batch=16, hr_patch=192)}


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="folder of HR photos (any layout, or DIV2K)")
    p.add_argument("--steps", type=types.positive_int, default=3000)
    p.add_argument("--recipe", default=None, choices=sorted(RECIPES),
                   help="optimiser/schedule/batch/patch defaults: 'cpu' (cosine, 48 px LR patches, 16 per process) "
                        "or 'paper' (the reference's: one-cycle LR peaking at 2e-4, global batch 16 split over the "
                        "processes, 192 px HR patches); default cpu, paper for --preset edsr-baseline. Flags given "
                        "explicitly win")
    p.add_argument("--batch", type=types.positive_int, default=None, help="patches per step per process")
    p.add_argument("--patch", type=types.positive_int, default=None, help="LR patch size (HR = patch * scale)")
    p.add_argument("--lr", type=types.positive_float, default=None, help="(peak) learning rate")
    p.add_argument("--schedule", default=None, choices=["cosine", "onecycle", "step", "constant"])
    p.add_argument("--warmup", type=types.non_negative_int, default=0)
    p.add_argument("--flat-threshold", type=types.non_negative_float, default=0.02,
                   help="redraw training patches whose HR standard deviation is below this (0..1 pixels; "
                        "default 0.02: spend the steps on texture); 0 keeps flat patches")
    p.add_argument("--channel-shuffle", action="store_true",
                   help="augment with random RGB channel permutations too (colours the photos lack, such as a "
                        "saturated purple, are then seen in training)")
    p.add_argument("--flat-colours", type=types.fraction, default=0.0, metavar="SHARE",
                   help="replace this share of patches (0..1) by one flat colour drawn from the whole RGB cube, "
                        "so a flat saturated colour comes out flat (default 0; the bundled students took 0.25, "
                        "docs/method.md section 9)")
    p.add_argument("--val-every", type=types.positive_int, default=250)
    p.add_argument("--ckpt-every", type=types.positive_int, default=250)
    p.add_argument("--val-crop", type=types.positive_int, default=256,
                   help="HR centre crop of each eval photo for validation")
    p.add_argument("--holdout", type=types.non_negative_int, default=0,
                   help="hold this many --data photos out of training and validate on them (recommended: "
                        "validation then never sees the evaluation photos)")
    p.add_argument("--val-data", default=None,
                   help="folder of validation photos when --holdout is 0 (default: the evaluation photos)")
    p.add_argument("--no-val", action="store_true")
    p.add_argument("--seed", type=types.non_negative_int, default=0)
    p.add_argument("--ema", type=types.non_negative_float, default=None,
                   help="validate and save an exponential moving average of the weights with this decay "
                        "(0 = the raw weights; default 0.999 for students, whose held-out PSNR swings between "
                        "validations without it, 0.99 for the int8 stage, whose rounded weights swing more, 0 for "
                        "teachers)")
    p.add_argument("--keep", choices=("average", "better"), default=None,
                   help="what a run with --ema saves: the average, or whichever of the average and the raw weights "
                        "validates better after the last step (default: better with --holdout, average otherwise; "
                        "better needs --holdout, so the choice never looks at the evaluation photos)")
    p.add_argument("--threads", type=types.non_negative_int,
                   default=0, help="torch threads per process (0 = torch default)")
    p.add_argument("--max-minutes", type=types.non_negative_float,
                   default=0.0, help="stop (with checkpoint) after this much training")
    p.add_argument("--out", required=True, help="run folder: checkpoint.pt (and checkpoint.prev.pt, the one before, "
                   "used on resume if checkpoint.pt is damaged), train.csv, val.csv")
    p.add_argument("-o", "--output", default=None, help="final model path stem (default: OUT/model)")
    p.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint in OUT")
    p.add_argument("--overwrite", action="store_true", help="replace files of another run in OUT (with --no-resume) "
                   "or an existing -o model")
    p.add_argument("--halt-after", type=types.non_negative_int, default=0, help=argparse.SUPPRESS)
    # testing aid: raise SIGTERM (or SIGINT with "--signal-at N:INT") inside step N
    p.add_argument("--signal-at", default="", help=argparse.SUPPRESS)


def parser() -> argparse.ArgumentParser:
    ap = types.Parser(prog="memsr-train", description=types.summary(__doc__))
    sub = ap.add_subparsers(dest="what", required=True)
    t = sub.add_parser("teacher", help="train a residual (EDSR-style) teacher")
    t.add_argument("--scale", type=types.positive_int, default=2, choices=[2, 3, 4])
    t.add_argument("--preset", default="small", choices=sorted(models.TEACHER_PRESETS))
    t.add_argument("--width", type=types.positive_int, default=None)
    t.add_argument("--blocks", type=types.non_negative_int, default=None)
    t.add_argument("--res-scale", type=types.finite_float, default=None)
    t.add_argument("--anchor", action="store_true", help="image-space anchor skip (input repeated s*s times)")
    t.add_argument("--tail", default="shuffle", choices=["shuffle", "upsampler"],
                   help="shuffle (default): one conv + pixel shuffle (memsr's own teachers); upsampler: EDSR's "
                        "(conv + shuffle per factor, then a conv at the output size) with EDSR's input "
                        "normalisation (DIV2K mean, x255), the published EDSR, saveable in its layouts")
    _common(t)
    s = sub.add_parser("student", help="train a plain student from a teacher (MemSR)")
    s.add_argument("--teacher", required=True, help="teacher (or large plain) model file, bundled name, or EDSR "
                                                    "checkpoint (.pt/.pth/.ckpt/.safetensors, EDSR-PyTorch or "
                                                    "BasicSR layout)")
    s.add_argument("--init", default="memsr", choices=["memsr", "random"])
    s.add_argument("--distill", default="aware", choices=["aware", "feature", "none"],
                   help="aware: bridges from the init (MemSR); feature: random bridges; none: L1 only")
    s.add_argument("--rank-eps", type=types.positive_float, default=0.05,
                   help="low-rank rule: relative error below this")
    s.add_argument("--width", type=types.positive_int, default=None, help="uniform width: every student layer this wide")
    s.add_argument("--max-width", type=types.positive_int, default=None,
                   help="rank rule's cap on layer widths (default: the teacher's feature width)")
    s.add_argument("--width-multiple", type=types.positive_int, default=16,
                   help="round the rank rule's widths up to a multiple of this (default 16: CPU kernels pad "
                        "channels to blocks of 8 or 16, so odd widths cost time without adding capacity); "
                        "1 = the rank itself")
    s.add_argument("--refit", default="none", choices=["none", "linear", "relu"],
                   help="least-squares refit of each layer on the student's own inputs after the analytic init")
    s.add_argument("--tail", default="refit", choices=TAIL_CHOICES,
                   help="the student's tail: refit (default) = one conv + pixel shuffle, least-squares fitted on "
                        "the student's last features to the teacher's output (the lean tail); teacher = the "
                        "teacher's own tail (EDSR's upsampler and output conv copied, as in the paper; for a "
                        "one-conv teacher tail, its conv read through the last bridge)")
    s.add_argument("--refit-tail", action=argparse.BooleanOptionalAction, default=None,
                   help="one-conv teacher tails: refit the tail by least squares against the teacher's output "
                        "(default: on with --tail refit; --no-refit-tail --shift 3 is the paper's init)")
    s.add_argument("--refit-bridges", action=argparse.BooleanOptionalAction, default=True,
                   help="refit the distillation bridges by least squares on the initialised student's own "
                        "features (default on; off = the decomposition's bridges, the paper's)")
    s.add_argument("--feature-scale", type=types.positive_float, default=None,
                   help="weight k of the feature MSE against the L1 (default: calibrated, see --grad-ratio; "
                        "255 = the reference's 0..255 loss scale for [0, 1] models)")
    s.add_argument("--grad-ratio", type=types.positive_float, default=0.9,
                   help="without --feature-scale, k is set so that at step 0 the feature term's gradient on the "
                        "student is this many times the L1's (the reference's: about 0.9)")
    s.add_argument("--init-patches", type=types.positive_int, default=16)
    s.add_argument("--shift", type=types.non_negative_float, default=30.0,
                   help="positivity shift factor a (the paper's: 3; 30 with --refit-tail starts above bicubic, "
                        "see docs/method.md)")
    s.add_argument("--lam", type=types.non_negative_float, default=0.3, help="feature loss weight at step 0")
    s.add_argument("--lam-decay", type=types.non_negative_float, default=1e-5,
                   help="feature weight at the end = lam * lam_decay")
    _common(s)
    f = sub.add_parser("finetune", help="go on training a plain student with L1 from its weights (for a new "
                                        "sampler setting such as --flat-colours; run int8 after it)")
    f.add_argument("--model", required=True, help="plain student (model file or bundled name)")
    _common(f)
    q = sub.add_parser("int8", help="fine-tune a plain student with int8-rounded weights (for int8 export)")
    q.add_argument("--model", required=True, help="plain student (model file or bundled name)")
    q.add_argument("--activations", action="store_true",
                   help="simulate the 8-bit rounding of every layer's output too, not only of the weights "
                        "(experimental: it narrows the int8 drop but moves the float model; measured in "
                        "docs/method.md section 9)")
    q.add_argument("--equalise", type=types.positive_float, default=None, metavar="WIDTH",
                   help="first centre every layer's output channels and shrink those wider than WIDTH, so one "
                        "8-bit grid per layer fits all its channels (for students whose features carry large "
                        "constants; 2 is a good start, see docs/method.md section 9)")
    q.add_argument("--bias-patches", type=types.non_negative_int, default=512, metavar="N",
                   help="after training, shift the tail's bias by the mean residual over N training patches: "
                        "the int8 grid moves colours by up to a level, which near-flat photos show "
                        "(0 = no correction; docs/method.md section 9)")
    _common(q)
    return ap


def _apply_recipe(args, scale: int, world) -> None:
    """Fill the training flags left unset from the recipe (explicit flags win)."""
    if args.recipe is None:
        args.recipe = "paper" if getattr(args, "preset", None) == "edsr-baseline" else "cpu"
    r = RECIPES[args.recipe]
    if args.recipe == "paper" and args.batch is None and r["global_batch"] % world.size:
        raise MemsrError(f"--recipe paper splits a batch of {r['global_batch']} over the processes: "
                         f"{world.size} processes do not divide it (give --batch)")
    args.lr = r["lr"] if args.lr is None else args.lr
    args.schedule = r["schedule"] if args.schedule is None else args.schedule
    args.batch = r["global_batch"] // world.size if args.batch is None and "global_batch" in r else (
        args.batch or r.get("batch"))
    args.patch = (r["hr_patch"] // scale if "hr_patch" in r else r["lr_patch"]) if args.patch is None else args.patch


def _dataset(args, scale: int):
    from ..data.datasets import TrainPatches, holdout_files
    args.holdout_files = holdout_files(args.data, scale, args.holdout)
    # indices grow with the step (see training.loop.batch_at), so the virtual length is unbounded
    return TrainPatches(args.data, scale, lr_patch=args.patch, augment=True, seed=args.seed, length=2 ** 62,
                        exclude=args.holdout_files, channel_shuffle=args.channel_shuffle,
                        flat_threshold=args.flat_threshold, flat_colours=args.flat_colours)


def plan_outputs(args) -> None:
    """Refuse, before any work, a run folder that is a file and outputs that would replace another run's files
    or an input model (outputs.plan). A resumed run replaces its own files."""
    out = check_folder(args.out, "run folder (--out)")
    stem = args.output or f"{args.out}/model"
    run_files = [out / CHECKPOINT, out / "train.csv", out / "val.csv"]
    resuming = not args.no_resume and ((out / CHECKPOINT).exists() or (out / PREVIOUS).exists())
    # checked apart: a hard link to an earlier checkpoint.pt, which the plan would take for the same file
    if (out / PREVIOUS).exists() and not resuming and not args.overwrite:
        raise MemsrError("output exists (pass --overwrite to replace it)", out / PREVIOUS)
    own = [*run_files, *pair_paths(f"{args.out}/model")] if resuming else []
    plan = OutputPlan(inputs=model_pair_inputs(getattr(args, "teacher", None), getattr(args, "model", None)),
                      overwrite=args.overwrite, own=own)
    plan.add(f"the run in {args.out}", *run_files, *pair_paths(stem))
    plan.check()


def _signal_at(text: str) -> dict:
    if not text:
        return {}
    step, _, name = text.partition(":")
    if not step.isdigit() or name not in ("", "TERM", "INT"):
        raise MemsrError(f"--signal-at must be STEP, STEP:TERM or STEP:INT, got {text!r}")
    return {"signal_at": int(step), "signal_num": int(signal.SIGINT if name == "INT" else signal.SIGTERM)}


@cli_errors
def main(argv=None) -> int:
    args = parser().parse_args(argv)
    plan_outputs(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    world = distributed.setup()
    log = print if world.is_main else (lambda *a, **k: None)
    torch.manual_seed(args.seed)
    source, sdesc = (None, None) if args.what == "teacher" else \
        load_model(args.model if args.what in ("int8", "finetune") else args.teacher)
    scale = args.scale if args.what == "teacher" else sdesc.scale
    _apply_recipe(args, scale, world)
    provenance = {"command": "memsr-train " + shlex.join(sys.argv[1:] if argv is None else argv),
                  "torch": torch.__version__, "world_size": world.size, "seed": args.seed,
                  "data": str(args.data), "steps": args.steps, "batch_per_process": args.batch,
                  "lr_patch": args.patch, "lr": args.lr, "schedule": args.schedule, "recipe": args.recipe}
    if args.what == "teacher":
        preset = dict(models.TEACHER_PRESETS[args.preset])
        for k in ("width", "blocks", "res_scale"):
            if getattr(args, k) is not None:
                preset[k] = getattr(args, k)
        if args.tail == "upsampler":
            if args.anchor:
                raise MemsrError("--anchor adds the input to a one-conv tail's channels; --tail upsampler has none")
            from ..formats.edsr_checkpoint import edsr_input
            preset["input"] = edsr_input()
        cfg = models.TeacherConfig(scale=args.scale, anchor=args.anchor, tail=args.tail, **preset)
        dataset = _dataset(args, scale)
        task = teacher_task(cfg)
        provenance["preset"] = args.preset
    elif args.what in ("int8", "finetune"):
        dataset = _dataset(args, scale)
        if args.what == "int8":
            task = int8_task(source, sdesc, activations=args.activations, dataset=dataset,
                             equalise=args.equalise, bias_patches=args.bias_patches, log=log)
        else:
            task = finetune_task(source, sdesc)
        provenance["source_model"] = {"path": str(args.model), "kind": sdesc.kind,
                                      "weights_sha256": sdesc.weights_sha256}
    else:
        teacher, tdesc = source, sdesc
        student_tail(teacher.cfg.tail, args.tail, args.refit_tail, tdesc)  # contradicting flags: before any work
        dataset = _dataset(args, scale)
        task = student_task(teacher, tdesc, dataset, init=args.init, distill=args.distill,
                            rank_eps=args.rank_eps, width=args.width, init_patches=args.init_patches,
                            lam0=args.lam, decay=args.lam_decay, shift_a=args.shift, seed=args.seed, log=log,
                            max_width=args.max_width, refit=args.refit, refit_tail=args.refit_tail,
                            feature_scale=args.feature_scale, grad_ratio=args.grad_ratio,
                            width_multiple=args.width_multiple, refit_bridges=args.refit_bridges,
                            tail=args.tail)
        provenance["teacher"] = {"path": str(args.teacher), "kind": tdesc.kind,
                                 "weights_sha256": tdesc.weights_sha256}
    log(f"training {task.meta['kind']} x{scale}: {sum(p.numel() for p in task.eval_model().parameters()):,} "
        f"params, {len(dataset.images)} training photos")

    validate = None
    if not args.no_val and world.is_main:
        from ..training.validation import make_validator
        validate = make_validator(scale, args.val_crop, args.val_data, files=args.holdout_files)
        provenance["validation"] = ({"held_out": [p.name for p in args.holdout_files]} if args.holdout_files
                                    else {"folder": str(args.val_data or "evaluation photos")})
    # the int8 stage is short (hundreds of steps), so its average must forget faster than a student run's
    default_ema = {"student": 0.999, "finetune": 0.999, "int8": 0.99}.get(args.what, 0.0)
    ema = default_ema if args.ema is None else args.ema
    if ema >= 1.0:
        raise MemsrError(f"--ema must be below 1 (a decay), got {ema}")
    provenance["ema"] = ema
    keep = args.keep or ("better" if args.holdout_files and not args.no_val else "average")
    if keep == "better" and not args.holdout_files:
        raise MemsrError("--keep better chooses on validation, so it needs --holdout (held-out training photos)")
    provenance["channel_shuffle"] = args.channel_shuffle
    provenance["flat_threshold"] = args.flat_threshold
    provenance["flat_colours"] = args.flat_colours
    cfg = TrainConfig(ema=ema, keep_better=keep == "better" and ema > 0,
                      steps=args.steps, batch=args.batch, lr=args.lr, schedule=args.schedule, warmup=args.warmup,
                      val_every=args.val_every, ckpt_every=args.ckpt_every, seed=args.seed, out=args.out,
                      resume=not args.no_resume, halt_after=args.halt_after, max_seconds=args.max_minutes * 60,
                      **_signal_at(args.signal_at),
                      sampler=f"flat_threshold={args.flat_threshold} channel_shuffle={args.channel_shuffle}"
                              # named only when used, so checkpoints from before the option resume unwarned
                              + (f" flat_colours={args.flat_colours}" if args.flat_colours else ""))
    result = train(task, dataset, cfg, world, validate)
    if world.is_main:
        provenance.update(steps_done=result.steps_done, train_seconds=round(result.seconds, 1),
                          date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
        if result.resumed_from:
            provenance["resumed_from_step"] = result.resumed_from
        if result.resume_changes:  # the top-level seed/lr/batch are this invocation's; earlier steps used these
            provenance["resumed_with_changes"] = result.resume_changes
        if result.probes:
            provenance["probes"] = [{"step": s, **{k: round(v, 6) for k, v in p.items()}} for s, p in result.probes]
        if result.val:
            provenance["val_psnr_y"] = result.val[-1][2]
            provenance["val_crop"] = args.val_crop
        if result.saved:
            provenance["saved_weights"] = result.saved
            if "val_psnr_y" in result.saved:
                provenance["val_psnr_y"] = result.saved["val_psnr_y"]
                log(f"saved the {result.saved['weights']} weights (validation: average "
                    f"{result.saved['average_val_psnr_y']:.3f}, raw {result.saved['raw_val_psnr_y']:.3f} dB)")
        final = task.eval_model().cpu()
        if task.finish is not None:
            final = task.finish(final)
            if validate is not None:
                provenance["val_psnr_y_finished"] = validate(final)
                log(f"validation PSNR-Y of the model saved: {provenance['val_psnr_y_finished']:.3f} dB")
        extra = {k: v for k, v in task.meta.items() if k != "kind"}
        stem = args.output or f"{args.out}/model"
        bad = nonfinite_tensors(final.state_dict())
        if bad:  # checkpoints are checked; this guards what a task's finish step did to them
            raise MemsrError(f"the trained model has {len(bad)} non-finite tensors (first: {bad[0]}); not saved")
        for path in pair_paths(stem):  # left by a run killed with SIGKILL while it saved the model
            remove_dead_temps(path.parent, path.stem)
        try:
            desc = save_model(final, stem, kind=task.meta["kind"], provenance=provenance,
                              extra={"training": extra} if extra else None)
        except OSError as e:  # a full disk: both files are renamed only once both are written
            raise MemsrError(f"could not write the model ({e.strerror or e}); a model there before is kept, "
                             "and the same command writes it again from the checkpoint", stem) from None
        log(f"wrote {desc.path} ({result.steps_done} steps, {result.seconds / 60:.1f} min)")
    distributed.teardown(world)
    return 0


if __name__ == "__main__":
    sys.exit(main())
