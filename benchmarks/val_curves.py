"""Held-out PSNR-Y against steps for training runs: the validated model (the weight average when the run used
--ema) and, where probe.csv recorded them, the raw weights at the same steps. One PNG.

  python -m memsr_bench.val_curves runs/student_x2 runs/student_x4 --out benchmarks/runs/students/val_curves.png
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from memsr_deploy.cli.args import summary

from .ablation import read_val


def read_raw(run: Path) -> list[tuple[int, float]]:
    path = run / "probe.csv"
    if not path.exists():
        return []
    with open(path) as f:
        return [(int(r["step"]), float(r["val_psnr_y_raw"])) for r in csv.DictReader(f) if r.get("val_psnr_y_raw")]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=summary(__doc__))
    ap.add_argument("runs", nargs="+", help="run folders (val.csv, probe.csv)")
    ap.add_argument("--label", action="append", default=[], help="legend label per run, in order")
    ap.add_argument("--out", required=True, help="PNG")
    args = ap.parse_args(argv)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    runs = [Path(r) for r in args.runs]
    labels = args.label + [r.name for r in runs[len(args.label):]]
    fig, axes = plt.subplots(1, len(runs), figsize=(6 * len(runs), 4.5), squeeze=False)
    for ax, run, name in zip(axes[0], runs, labels):
        val, raw = read_val(run / "val.csv"), read_raw(run)
        ax.plot([s for s, _, _ in val], [p for _, _, p in val], "o-", label="validated model" +
                (" (weight average)" if raw else ""))
        if raw:
            ax.plot([s for s, _ in raw], [p for _, p in raw], "x--", label="raw weights")
        ax.set_title(name)
        ax.set_xlabel("training step")
        ax.set_ylabel("PSNR-Y on held-out training photos (dB)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
