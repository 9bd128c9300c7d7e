"""MemSR ablation: four students with identical layers and activations, one teacher, one data set, one seed.

  (a) random init + L1                    (b) random init + feature distillation (random 1x1 adapters, bias
  (c) MemSR init + L1                         at the target mean, the teacher's own channels as targets)
  (d) MemSR init + initialisation-aware distillation (bridges from the decomposition)

Every arm runs alone (one `memsr-train student` process at a time, never two: the seconds are compared), for
the same number of steps; its training seconds (validation excluded) are recorded. Then every arm that was
faster than the slowest is run again for as many steps as fit in the slowest arm's seconds (a complete
schedule, not a cut one): "equal time". Validation uses photos held out of the training folder (--holdout);
the final table scores the full evaluation photos. Outputs in --results: a Markdown table, a JSON, and a PNG of
validation PSNR against steps and against seconds.

  python -m memsr_bench.ablation --teacher runs/teacher_x2/model --data data/photos/train --steps 2000
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

from memsr_deploy.cli.args import summary

RUNS = {
    "a": ("random init + L1", ["--init", "random", "--distill", "none"]),
    "b": ("random init + feature distillation", ["--init", "random", "--distill", "feature"]),
    "c": ("MemSR init + L1", ["--init", "memsr", "--distill", "none"]),
    "d": ("MemSR init + init-aware distillation", ["--init", "memsr", "--distill", "aware"]),
}


def label(key: str) -> str:
    return RUNS[key[0]][0] + (" (equal time)" if key.endswith("_eqtime") else "")


def train_cmd(args, key: str, out: Path, steps: int) -> list[str]:
    return [sys.executable, "-m", "memsr_deploy.cli.train", "student", "--teacher", args.teacher,
            "--data", args.data, *RUNS[key[0]][1], "--steps", str(steps), "--batch", str(args.batch),
            "--patch", str(args.patch), "--lr", str(args.lr), "--seed", str(args.seed),
            "--holdout", str(args.holdout), "--val-every", str(args.val_every), "--ckpt-every", str(args.val_every),
            "--threads", str(args.threads), "--out", str(out), *(["--width", str(args.width)] if args.width else []),
            *args.student_args.split()]


def run_alone(key: str, cmd: list[str], out: Path) -> None:
    """One training process, waited for before anything else starts; its log in OUT/log.txt."""
    out.mkdir(parents=True, exist_ok=True)
    print(f"[{key}] {' '.join(cmd[2:])}", flush=True)
    with open(out / "log.txt", "w") as log:
        rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "OMP_NUM_THREADS": str(cmd[cmd.index("--threads") + 1])}).returncode
    if rc:
        sys.exit(f"run {key} failed (exit {rc}); see {out / 'log.txt'}")
    print(f"[{key}] done", flush=True)


def train_seconds(out: Path) -> float:
    return json.loads((out / "model.json").read_text())["provenance"]["train_seconds"]


def read_val(path: Path) -> list[tuple[int, float, float]]:
    with open(path) as f:
        return [(int(r["step"]), float(r["seconds"]), float(r["psnr_y"])) for r in csv.DictReader(f)]


def peak_mb(model, h: int = 540, w: int = 960) -> float:
    from memsr_deploy.formats.liveness import walk
    from memsr_deploy.formats.torch_liveness import trace
    return walk(trace(model, h, w)).peak_bytes / 2 ** 20


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=summary(__doc__))
    ap.add_argument("--teacher", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--holdout", type=int, default=5, help="training photos held out for validation")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--patch", type=int, default=48)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--width", type=int, default=None, help="uniform student width (default: rank rule, capped)")
    ap.add_argument("--student-args", default="", help="more memsr-train student flags for every arm")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--val-every", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--arms", default="abcd")
    ap.add_argument("--out", default="runs/ablation")
    ap.add_argument("--results", default="benchmarks/results")
    ap.add_argument("--name", default=None, help="results file stem (default ablation_x{scale})")
    ap.add_argument("--no-equal-time", action="store_true")
    ap.add_argument("--eval-crop", type=int, default=0, help="HR centre crop of each eval photo (0 = full photos)")
    args = ap.parse_args(argv)

    from memsr_deploy.formats.model_file import load_model
    from memsr_deploy.formats.tagged_json import dumps_strict
    teacher, tdesc = load_model(args.teacher)
    out = Path(args.out)
    arms = list(args.arms)
    for k in arms:  # sequentially: each arm has the machine to itself while it is timed
        if not (out / k / "model.json").exists():
            run_alone(k, train_cmd(args, k, out / k, args.steps), out / k)
    keys = list(arms)
    if not args.no_equal_time:
        t = {k: train_seconds(out / k) for k in arms}
        slowest = max(t.values())
        for k in arms:
            if t[k] < 0.95 * slowest:
                key = f"{k}_eqtime"
                if not (out / key / "model.json").exists():
                    run_alone(key, train_cmd(args, key, out / key, round(args.steps * slowest / t[k])), out / key)
                keys.append(key)

    from memsr_deploy.data.datasets import pair_from_hr
    from memsr_deploy.data.eval_photos import load_eval_photos
    from memsr_deploy.quality.evaluate import evaluate_model
    scale = tdesc.scale
    pairs = [pair_from_hr(n, hr, scale) for n, hr in load_eval_photos()]
    rows = []

    def add(name, model, key=None):
        r = evaluate_model(model, pairs, scale, name=name, progress=True, max_size=args.eval_crop or None)
        prov = json.loads((out / key / "model.json").read_text())["provenance"] if key else {}
        val = read_val(out / key / "val.csv") if key else []
        probes = prov.get("probes", [])
        rows.append({"run": key or "-", "model": name, "psnr": r.mean_psnr, "ssim": r.mean_ssim,
                     "per_image": {i.name: round(i.psnr, 3) for i in r.images},
                     "params": sum(p.numel() for p in model.parameters()) if model != "bicubic" else 0,
                     "peak_mb": peak_mb(model) if model != "bicubic" else None,
                     "steps": prov.get("steps_done"), "seconds": prov.get("train_seconds"),
                     "init_val_psnr": val[0][2] if val else None, "final_val_psnr": val[-1][2] if val else None,
                     "grad_ratio_0": probes[0].get("grad_ratio") if probes else None,
                     "widths": getattr(getattr(model, "cfg", None), "widths", None)})

    add("bicubic", "bicubic")
    add(f"teacher ({tdesc.kind})", teacher)
    for k in keys:
        add(label(k), load_model(out / k / "model")[0], k)
    widths = {str(r["widths"]) for r in rows[2:]}
    if len(widths) > 1:
        sys.exit(f"arms have different student widths ({widths}): not a like-for-like comparison")

    name = args.name or f"ablation_x{scale}"
    res = Path(args.results)
    res.mkdir(parents=True, exist_ok=True)
    write_table(res / f"{name}.md", rows, args, tdesc, scale, argv)
    (res / f"{name}.json").write_text(dumps_strict(rows, indent=2) + "\n")
    plot(res / f"{name}.png", out, keys, scale)
    print((res / f"{name}.md").read_text())
    return 0


def write_table(path: Path, rows: list[dict], args, tdesc, scale: int, argv) -> None:
    bic = rows[0]["psnr"]
    cmd = "python -m memsr_bench.ablation " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = [f"# MemSR ablation, x{scale}", "",
             f"Teacher: `{args.teacher}` ({tdesc.params:,} params). Budget per arm: {args.steps} steps of "
             f"{args.batch} LR patches {args.patch}x{args.patch}, Adam lr {args.lr} cosine, seed {args.seed}, "
             f"student widths {rows[2]['widths'] if len(rows) > 2 else '-'} in every arm; arms run one at a time "
             "('train s' excludes validation). Equal-time rows: the arm rerun for as many steps as fit in the "
             f"slowest arm's seconds. Validation: PSNR-Y on centre crops of {args.holdout} training photos held out "
             "of training ('init' = before the first step). Final: PSNR/SSIM-Y on the "
             f"{'full ' if not args.eval_crop else f'{args.eval_crop}px centre crops of the '}evaluation photos "
             f"({len(rows[0]['per_image'])} images), {scale} px border crop. Peak activation memory: analytic "
             f"liveness walk, x{scale} on a 960x540 input, fp32. 'grad ratio' = feature-term / L1 gradient norm on "
             "the student at step 0.", "", f"Regenerate: `{cmd}`", "",
             "| run | model | PSNR-Y | vs bicubic | SSIM-Y | params | peak act. MB | steps | train s | init val | "
             "final val | grad ratio |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        f = lambda v, spec: format(v, spec) if v is not None else "-"
        lines.append(f"| {r['run']} | {r['model']} | {r['psnr']:.3f} | {r['psnr'] - bic:+.3f} | {f(r['ssim'], '.4f')} "
                     f"| {r['params']:,} | {f(r['peak_mb'], '.1f')} | {f(r['steps'], 'd')} | {f(r['seconds'], '.0f')} "
                     f"| {f(r['init_val_psnr'], '.2f')} | {f(r['final_val_psnr'], '.2f')} "
                     f"| {f(r['grad_ratio_0'], '.3g')} |")
    names = list(rows[0]["per_image"])
    lines += ["", "Per image PSNR-Y:", "", "| model | " + " | ".join(names) + " |",
              "|---|" + "---|" * len(names)]
    for r in rows:
        lines.append(f"| {r['model']} | " + " | ".join(f"{r['per_image'][n]:.2f}" for n in names) + " |")
    path.write_text("\n".join(lines) + "\n")


def plot(path: Path, out: Path, keys: list[str], scale: int) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for k in keys:
        v = read_val(out / k / "val.csv")
        style = "--" if k.endswith("_eqtime") else "-"
        axes[0].plot([s for s, _, _ in v], [p for _, _, p in v], style, label=label(k))
        axes[1].plot([t for _, t, _ in v], [p for _, _, p in v], style, label=label(k))
    top = max(p for k in keys for _, _, p in read_val(out / k / "val.csv"))
    for ax, xl in zip(axes, ("training step", "training time (s, validation excluded)")):
        ax.set_ylim(top - 8, top + 0.5)  # random-init runs start near 8 dB; keep the end of the race readable
        ax.set_xlabel(xl)
        ax.set_ylabel("validation PSNR-Y (dB, held-out photos)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"MemSR ablation x{scale}: validation PSNR-Y against steps and time")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    sys.exit(main())
