"""How hard the feature term pulls at step 0: ||d(feature term)|| / ||d(L1)|| on the student's weights, for the
distillation arms at the old loss scale (k = 1, losses on [0, 1] pixels), the reference's (k = 255) and the
calibrated default (k set on the init patches for a ratio of 0.9; measured here on other patches).

  python -m memsr_bench.grad_ratio --teacher teacher-x2 --data data/photos/train --holdout 5
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from memsr_deploy.cli.args import summary


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=summary(__doc__))
    ap.add_argument("--teacher", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--holdout", type=int, default=5)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--patch", type=int, default=48)
    ap.add_argument("--batches", type=int, default=3, help="step-0 ratios averaged over this many batches")
    ap.add_argument("--shift", type=float, default=30.0, help="positivity shift a of the MemSR init")
    ap.add_argument("--no-refit-tail", action="store_true", help="the paper's init: no tail refit")
    ap.add_argument("--results", default="benchmarks/results")
    ap.add_argument("--name", default=None, help="results file stem (default grad_ratio_x{scale})")
    args = ap.parse_args(argv)

    import torch
    from memsr_deploy.data.datasets import TrainPatches, holdout_files
    from memsr_deploy.formats.model_file import load_model
    from memsr_deploy.training.tasks import student_task

    teacher, desc = load_model(args.teacher)
    held = holdout_files(args.data, desc.scale, args.holdout)
    data = TrainPatches(args.data, desc.scale, lr_patch=args.patch, exclude=held, length=2 ** 62)
    rows = []
    for init, distill in (("memsr", "aware"), ("random", "feature")):
        for k in (1.0, 255.0, None):  # None: calibrated to a ratio of 0.9 on the init patches
            task = student_task(teacher, desc, data, init=init, distill=distill, feature_scale=k,
                                shift_a=args.shift, refit_tail=not args.no_refit_tail, log=lambda *a: None)
            ratios = []
            for b in range(args.batches):
                lr = torch.stack([data[b * args.batch + i][0] for i in range(args.batch)])
                hr = torch.stack([data[b * args.batch + i][1] for i in range(args.batch)])
                ratios.append(task.probe(task.module, lr, hr, 0, 1000)["grad_ratio"])
            rows.append((f"{init} init + {distill}", task.meta["feature_scale"], sum(ratios) / len(ratios)))
            print(rows[-1], flush=True)
    cmd = "python -m memsr_bench.grad_ratio " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = [f"# Feature-term gradient ratio at step 0, x{desc.scale}", "",
             f"Teacher `{args.teacher}`; {args.batches} batches of {args.batch} LR patches {args.patch}x{args.patch} "
             f"from the training photos (held-out ones excluded); MemSR init with a = {args.shift:g}"
             f"{', no tail refit' if args.no_refit_tail else ' + tail refit'}; lambda(0) = 0.3. Ratio = ||d(lambda k MSE)|| / "
             "||d L1|| over the student's weights (bridges excluded); targets: the teacher's own channels.", "",
             f"Regenerate: `{cmd}`", "", "| arm | k (feature scale) | gradient ratio |", "|---|---|---|"]
    lines += [f"| {a} | {k:g} | {r:.4g} |" for a, k, r in rows]
    out = Path(args.results) / f"{args.name or f'grad_ratio_x{desc.scale}'}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print(out.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
