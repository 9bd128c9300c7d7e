"""Package a trained model as a bundled one: copy its file pair into memsr_deploy/pretrained/ under its registry
name, with its evaluation table (PSNR/SSIM-Y on the evaluation photos, bicubic and its teacher beside it) and the
recipe (the exact commands that produced it) in its JSON.

  python -m benchmarks.package_bundled runs/student_x2/model --name memsr-x2 --teacher runs/teacher_x2/model \
      --recipe "memsr-train teacher ..." --recipe "memsr-train student ..."
"""
from __future__ import annotations

import argparse
import sys

from memsr_deploy.data.datasets import pair_from_hr
from memsr_deploy.data.eval_photos import load_eval_photos
from memsr_deploy.evaluate import evaluate_model
from memsr_deploy.model_file import load_model, save_model
from memsr_deploy.registry import MODELS, PRETRAINED_DIR


def table(results: dict) -> dict:
    return {label: {"mean_psnr_y": round(r.mean_psnr, 3), "mean_ssim_y": round(r.mean_ssim, 4),
                    "images": {i.name: round(i.psnr, 3) for i in r.images}} for label, r in results.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--name", required=True, choices=sorted(MODELS))
    ap.add_argument("--teacher", default=None, help="teacher to evaluate beside it")
    ap.add_argument("--recipe", action="append", default=[], help="a command that produced it (repeatable)")
    ap.add_argument("--eval-data", default=None)
    args = ap.parse_args(argv)

    model, desc = load_model(args.model)
    pairs = [pair_from_hr(n, hr, desc.scale) for n, hr in load_eval_photos(args.eval_data)]
    results = {"bicubic": evaluate_model("bicubic", pairs, desc.scale, name="bicubic")}
    if args.teacher:
        teacher, _ = load_model(args.teacher)
        results["teacher"] = evaluate_model(teacher, pairs, desc.scale, name="teacher", progress=True)
    results[args.name] = evaluate_model(model, pairs, desc.scale, name=args.name, progress=True)
    ev = table(results)
    ev["gain_over_bicubic_db"] = round(results[args.name].mean_psnr - results["bicubic"].mean_psnr, 3)
    if args.teacher:
        ev["gap_to_teacher_db"] = round(results["teacher"].mean_psnr - results[args.name].mean_psnr, 3)
    extra = dict(desc.extra)
    extra.update(evaluation=ev, recipe=args.recipe, registry_name=args.name)
    stem = PRETRAINED_DIR / MODELS[args.name][0]
    save_model(model, stem, kind=desc.kind, provenance=desc.provenance, extra=extra)
    for label, r in results.items():
        print(f"{label:<12} PSNR-Y {r.mean_psnr:.3f}  SSIM-Y {r.mean_ssim:.4f}")
    print(f"wrote {stem}.json/.safetensors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
