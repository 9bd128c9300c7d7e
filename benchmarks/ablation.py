"""MemSR ablation: three students with identical layers and activations, one teacher, one budget.

  (a) random init + L1           (b) random init + feature distillation (random 1x1 bridges)
  (c) MemSR init + initialisation-aware distillation (bridges from the decomposition)
plus (a) again for the wall-clock time that (c) took ("equal time": distillation pays a teacher pass per step).

Each run is `memsr-train student ...` in its own process. The results (PSNR/SSIM-Y on the full evaluation photos,
params, peak activation memory at x2 on 960x540 as in the paper, wall-clock) go to a Markdown table, and the
validation curves to a PNG (PSNR against steps and against training time).

  python -m memsr_bench.ablation --teacher runs/teacher_x2/model --data data/photos/train --steps 1500
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

RUNS = {
    "a": ("random init + L1", ["--init", "random", "--distill", "none"]),
    "b": ("random init + feature distillation", ["--init", "random", "--distill", "feature"]),
    "c": ("MemSR init + init-aware distillation", ["--init", "memsr", "--distill", "aware"]),
}


def train_cmd(args, key: str, out: Path, steps: int) -> list[str]:
    return [sys.executable, "-m", "memsr_deploy.cli.train", "student", "--teacher", args.teacher,
            "--data", args.data, *RUNS[key[0]][1], "--steps", str(steps), "--batch", str(args.batch),
            "--patch", str(args.patch), "--lr", str(args.lr), "--seed", str(args.seed),
            "--val-every", str(args.val_every), "--ckpt-every", str(args.val_every), "--threads", str(args.threads),
            "--out", str(out), *(["--width", str(args.width)] if args.width else []),
            *(["--val-data", args.val_data] if args.val_data else [])]


def run_all(jobs: list[tuple[str, list[str], Path]], parallel: int) -> None:
    """Run training commands, ``parallel`` at a time, each logging to OUT/log.txt."""
    pending, running = list(jobs), []
    while pending or running:
        while pending and len(running) < parallel:
            key, cmd, out = pending.pop(0)
            out.mkdir(parents=True, exist_ok=True)
            log = open(out / "log.txt", "w")
            print(f"[{key}] {' '.join(cmd[2:])}", flush=True)
            running.append((key, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                                  env={**os.environ, "OMP_NUM_THREADS": "1"}), log))
        time.sleep(2)
        for item in list(running):
            key, proc, log = item
            if proc.poll() is not None:
                log.close()
                running.remove(item)
                if proc.returncode:
                    sys.exit(f"run {key} failed (exit {proc.returncode}); see its log.txt")
                print(f"[{key}] done", flush=True)


def read_val(path: Path) -> list[tuple[int, float, float]]:
    with open(path) as f:
        return [(int(r["step"]), float(r["seconds"]), float(r["psnr_y"])) for r in csv.DictReader(f)]


def peak_mb(model, h: int = 540, w: int = 960) -> float:
    from memsr_deploy.profiler.liveness import walk
    from memsr_deploy.profiler.torch_graph import trace
    return walk(trace(model, h, w)).peak_bytes / 2 ** 20


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--teacher", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--val-data", default=None)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--patch", type=int, default=48)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--width", type=int, default=None, help="fixed student width (default: rank rule)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--val-every", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--parallel", type=int, default=2)
    ap.add_argument("--out", default="runs/ablation")
    ap.add_argument("--results", default="benchmarks/results")
    ap.add_argument("--name", default=None, help="results file stem (default ablation_x{scale})")
    ap.add_argument("--no-equal-time", action="store_true")
    args = ap.parse_args(argv)

    from memsr_deploy.formats.model_file import load_model
    from memsr_deploy.formats.tagged_json import dumps_strict
    teacher, tdesc = load_model(args.teacher)
    out = Path(args.out)
    jobs = [(k, train_cmd(args, k, out / k, args.steps), out / k) for k in RUNS if not (out / k / "model.json").exists()]
    run_all(jobs, args.parallel)
    if not args.no_equal_time:
        t = {k: json.loads((out / k / "model.json").read_text())["provenance"]["train_seconds"] for k in ("a", "c")}
        eq_steps = max(args.steps, round(args.steps * t["c"] / t["a"]))
        if not (out / "a_eqtime" / "model.json").exists():
            run_all([("a_eqtime", train_cmd(args, "a_eqtime", out / "a_eqtime", eq_steps), out / "a_eqtime")], 1)

    from memsr_deploy.data.datasets import pair_from_hr
    from memsr_deploy.data.eval_photos import load_eval_photos
    from memsr_deploy.quality.evaluate import evaluate_model
    scale = tdesc.scale
    pairs = [pair_from_hr(n, hr, scale) for n, hr in load_eval_photos(args.val_data)]
    rows = []

    def add(label, model, key=None):
        r = evaluate_model(model, pairs, scale, name=label, progress=True)
        prov = json.loads((out / key / "model.json").read_text())["provenance"] if key else {}
        val = read_val(out / key / "val.csv") if key else []
        rows.append({"run": key or "-", "model": label, "psnr": r.mean_psnr, "ssim": r.mean_ssim,
                     "per_image": {i.name: round(i.psnr, 3) for i in r.images},
                     "params": sum(p.numel() for p in model.parameters()) if model != "bicubic" else 0,
                     "peak_mb": peak_mb(model) if model != "bicubic" else None,
                     "steps": prov.get("steps_done"), "seconds": prov.get("train_seconds"),
                     "init_val_psnr": val[0][2] if val else None})

    add("bicubic", "bicubic")
    add(f"teacher ({tdesc.kind})", teacher)
    keys = [k for k in ("a", "b", "c", "a_eqtime") if (out / k / "model.json").exists()]
    for k in keys:
        label = RUNS[k[0]][0] + (" (equal time)" if k == "a_eqtime" else "")
        add(label, load_model(out / k / "model")[0], k)

    name = args.name or f"ablation_x{scale}"
    res = Path(args.results)
    res.mkdir(parents=True, exist_ok=True)
    write_table(res / f"{name}.md", rows, args, tdesc, scale)
    (res / f"{name}.json").write_text(dumps_strict(rows, indent=2) + "\n")
    plot(res / f"{name}.png", out, keys, rows, scale)
    print((res / f"{name}.md").read_text())
    return 0


def write_table(path: Path, rows: list[dict], args, tdesc, scale: int) -> None:
    bic = rows[0]["psnr"]
    lines = [f"# MemSR ablation, x{scale}", "",
             f"Teacher: `{args.teacher}` ({tdesc.params:,} params). Budget per run: {args.steps} steps of "
             f"{args.batch} LR patches {args.patch}x{args.patch}, Adam lr {args.lr} cosine, seed {args.seed}; "
             "identical student layers and activations in every run. Evaluation: PSNR/SSIM-Y on the full "
             f"evaluation photos ({len(rows[0]['per_image'])} images), {scale} px border crop. Peak activation "
             "memory: analytic liveness walk, x{0} on a 960x540 input, fp32. "
             "'init' = validation PSNR-Y (centre crops) before the first step.".format(scale), "",
             f"Regenerate: `python -m memsr_bench.ablation --teacher {args.teacher} --data {args.data} "
             f"--steps {args.steps} --out {args.out}`", "",
             "| run | model | PSNR-Y | vs bicubic | SSIM-Y | params | peak act. MB | steps | train s | init val PSNR |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        f = lambda v, spec: format(v, spec) if v is not None else "-"
        lines.append(f"| {r['run']} | {r['model']} | {r['psnr']:.3f} | {r['psnr'] - bic:+.3f} | {f(r['ssim'], '.4f')} "
                     f"| {r['params']:,} | {f(r['peak_mb'], '.1f')} | {f(r['steps'], 'd')} | {f(r['seconds'], '.0f')} "
                     f"| {f(r['init_val_psnr'], '.2f')} |")
    names = list(rows[0]["per_image"])
    lines += ["", "Per image PSNR-Y:", "", "| model | " + " | ".join(names) + " |",
              "|---|" + "---|" * len(names)]
    for r in rows:
        lines.append(f"| {r['model']} | " + " | ".join(f"{r['per_image'][n]:.2f}" for n in names) + " |")
    path.write_text("\n".join(lines) + "\n")


def plot(path: Path, out: Path, keys: list[str], rows: list[dict], scale: int) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for k in keys:
        v = read_val(out / k / "val.csv")
        label = RUNS[k[0]][0] + (" (equal time)" if k == "a_eqtime" else "")
        axes[0].plot([s for s, _, _ in v], [p for _, _, p in v], label=label)
        axes[1].plot([t for _, t, _ in v], [p for _, _, p in v], label=label)
    top = max(p for k in keys for _, _, p in read_val(out / k / "val.csv"))
    for ax, xl in zip(axes, ("training step", "training time (s)")):
        ax.set_ylim(top - 6, top + 0.5)  # random-init runs start near 8 dB; keep the end of the race readable
        ax.set_xlabel(xl)
        ax.set_ylabel("validation PSNR-Y (dB, centre crops)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"MemSR ablation x{scale}: validation PSNR-Y against steps and time")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    sys.exit(main())
