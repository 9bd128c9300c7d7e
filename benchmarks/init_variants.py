"""PSNR of the initialised student before any training, for each initialisation variant (docs/method.md).

Variants are compared on photos held out of the training folder (``--holdout``, the same rule as
``memsr-train --holdout``); the evaluation photos are scored only as a final report, never to choose. The init
patches are drawn from the remaining training photos exactly as ``memsr-train student`` draws them.

  python -m memsr_bench.init_variants --teacher teacher-x2 --data data/photos/train --holdout 5
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from memsr_deploy.cli.args import summary
from memsr_deploy.formats.tagged_json import dumps_strict

VARIANTS = {  # name -> init_student keyword arguments (width cap: the teacher's feature width unless "no cap")
    "paper (a=3), no width cap": dict(shift_a=3.0, cap=False),
    "paper (a=3)": dict(shift_a=3.0),
    "a=0": dict(shift_a=0.0),
    "a=1": dict(shift_a=1.0),
    "a=6": dict(shift_a=6.0),
    "a=10": dict(shift_a=10.0),
    "a=30": dict(shift_a=30.0),
    "a=30 + tail refit": dict(shift_a=30.0, refit_tail=True),
    "a=30 + tail refit + bridge refit (default)": dict(shift_a=30.0, refit_tail=True, refit_bridges=True),
    "a=10 + tail refit": dict(shift_a=10.0, refit_tail=True),
    "a=100 + tail refit": dict(shift_a=100.0, refit_tail=True),
    "a=30 + linear refit + tail refit": dict(shift_a=30.0, refit="linear", refit_tail=True),
    "linear refit (a=3)": dict(shift_a=3.0, refit="linear"),
    "ReLU-aware refit (a=3)": dict(shift_a=3.0, refit="relu"),
    "ReLU-aware refit (a=1)": dict(shift_a=1.0, refit="relu"),
    "paper (a=3) + tail refit": dict(shift_a=3.0, refit_tail=True),
    "ReLU-aware refit (a=3) + tail refit": dict(shift_a=3.0, refit="relu", refit_tail=True),
    "paper (a=3), every layer at the cap": dict(shift_a=3.0, uniform=True),
    "ReLU-aware refit + tail refit, every layer at the cap": dict(shift_a=3.0, refit="relu", refit_tail=True,
                                                                 uniform=True),
}


def teacher_saw(desc, held) -> str:
    """Whether the teacher trained on the held-out photos (its provenance names the photos it held out)."""
    its = set((desc.provenance.get("validation") or {}).get("held_out") or [])
    if its and {p.name for p in held} <= its:
        return "The teacher held the same photos out of its own training."
    return "The teacher was trained on all training photos, these held-out ones included."


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=summary(__doc__))
    ap.add_argument("--teacher", required=True, help="teacher model file or bundled name")
    ap.add_argument("--data", required=True, help="training photos")
    ap.add_argument("--holdout", type=int, default=5)
    ap.add_argument("--init-patches", type=int, default=16)
    ap.add_argument("--patch", type=int, default=48)
    ap.add_argument("--max-columns", type=int, default=32768, help="pixels the fits see (subsampled)")
    ap.add_argument("--width", type=int, default=None, help="uniform student width (default: rank rule, capped)")
    ap.add_argument("--width-multiple", type=int, default=16,
                    help="round the rank rule's widths up to this multiple (memsr-train student's default: 16)")
    ap.add_argument("--val-crop", type=int, default=256)
    ap.add_argument("--variants", default=None, help="comma-separated subset of variant names")
    ap.add_argument("--no-eval-photos", action="store_true", help="skip the final report on the eval photos")
    ap.add_argument("--results", default="benchmarks/results")
    ap.add_argument("--name", default=None)
    args = ap.parse_args(argv)

    import torch
    from memsr_deploy.data.datasets import TrainPatches, holdout_files, pair_from_hr
    from memsr_deploy.data.eval_photos import load_eval_photos
    from memsr_deploy.imageio import read_image
    from memsr_deploy.formats.model_file import load_model
    from memsr_deploy.method import student_init
    from memsr_deploy.quality.evaluate import evaluate_model
    from memsr_deploy.training.tasks import init_batch, large_plain_of, teacher_feature_width

    torch.manual_seed(0)
    teacher, desc = load_model(args.teacher)
    scale = desc.scale
    held = holdout_files(args.data, scale, args.holdout)
    data = TrainPatches(args.data, scale, lr_patch=args.patch, exclude=held, length=2 ** 62)
    patches = init_batch(data, args.init_patches)
    plain = large_plain_of(teacher, desc).eval()
    cap = teacher_feature_width(teacher, desc)
    val_pairs = [pair_from_hr(p.stem, read_image(p), scale) for p in held]
    eval_pairs = [] if args.no_eval_photos else [pair_from_hr(n, hr, scale) for n, hr in load_eval_photos()]

    def score(model, pairs, crop):
        return evaluate_model(model, pairs, scale, max_size=crop, ssim=False, tile=0).mean_psnr if pairs else None

    rows = [{"variant": "bicubic", "val": score("bicubic", val_pairs, args.val_crop),
             "eval": score("bicubic", eval_pairs, None)},
            {"variant": f"teacher ({desc.kind})", "val": score(teacher, val_pairs, args.val_crop),
             "eval": score(teacher, eval_pairs, None)}]
    names = args.variants.split(",") if args.variants else list(VARIANTS)
    for name in names:
        kw = dict(VARIANTS[name])
        capped = kw.pop("cap", True)
        width = cap if kw.pop("uniform", False) else args.width
        t0 = time.perf_counter()
        fit = student_init.init_student(plain, patches, width=width, max_width=cap if capped else None,
                                        max_columns=args.max_columns,
                                        width_multiple=args.width_multiple, **kw)
        secs = time.perf_counter() - t0
        student = fit.student
        rows.append({"variant": name, "val": score(student, val_pairs, args.val_crop),
                     "eval": score(student, eval_pairs, None), "seconds": round(secs, 1),
                     "params": sum(p.numel() for p in student.parameters()), "report": fit.report()})
        print(f"{name}: held-out {rows[-1]['val']:.3f} dB ({secs:.0f} s, widths {fit.report()['widths']})",
              flush=True)

    res = Path(args.results)
    res.mkdir(parents=True, exist_ok=True)
    stem = res / (args.name or f"init_variants_x{scale}")
    stem.with_suffix(".json").write_text(dumps_strict(rows, indent=2) + "\n")
    cmd = "python -m memsr_bench.init_variants " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = [f"# Initialised student before training, x{scale}", "",
             f"Teacher `{args.teacher}` ({desc.params:,} params, feature width cap {cap}); "
             f"{args.init_patches} init patches of {args.patch}x{args.patch} LR (fits on at most {args.max_columns} "
             f"of their pixels) from the training photos minus "
             f"{len(held)} held out ({', '.join(p.stem for p in held)}). 'held-out' = PSNR-Y on HR centre crops "
             f"of at most {args.val_crop} px of the held-out photos (used for choosing); 'eval' = PSNR-Y on the "
             "full evaluation photos (reported only, never used to choose). " + teacher_saw(desc, held)
             + f" Rank-rule widths rounded up to multiples of {args.width_multiple}.", "", f"Regenerate: `{cmd}`", "",
             "| variant | held-out PSNR-Y | eval PSNR-Y | params | widths | mean init error | s |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        rep = r.get("report")
        f = lambda v: f"{v:.3f}" if v is not None else "-"
        lines.append(f"| {r['variant']} | {f(r['val'])} | {f(r['eval'])} | {r.get('params', '-')} "
                     f"| {rep['widths'] if rep else '-'} "
                     f"| {sum(rep['feature_errors']) / len(rep['feature_errors']):.3f} " if rep else
                     f"| {r['variant']} | {f(r['val'])} | {f(r['eval'])} | - | - | - ")
        lines[-1] += f"| {r.get('seconds', '-')} |"
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(stem.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
