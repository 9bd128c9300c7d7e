"""Memory-quality table for phone developers: plain students of uniform width, x2 and x4.

For each scale and each width (16, 24, 32 and the teacher's width when larger) a student is trained from the
teacher (`memsr-train student --width W`, MemSR init + init-aware distillation, one run at a time), then scored:
PSNR-Y on the evaluation photos, parameters, and the predicted peak activation memory (profiler liveness walk,
fp32, ideal allocator) at 12 MP and 100 MP LR input, whole image and exact tiles. The teacher is listed for
comparison. Writes RESULTS/tradeoff.md, tradeoff.json and tradeoff.png.

  python -m memsr_bench.tradeoff --data data/photos/train --steps 4000
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from memsr_deploy.cli.args import summary
from memsr_deploy.formats.tagged_json import dumps_strict

RESOLUTIONS = ("12MP", "100MP")


def train_cmd(args, teacher: str, width: int, out: Path) -> list[str]:
    return [sys.executable, "-m", "memsr_deploy.cli.train", "student", "--teacher", teacher, "--data", args.data,
            "--width", str(width), "--steps", str(args.steps), "--batch", str(args.batch), "--patch",
            str(args.patch), "--lr", str(args.lr), "--holdout", str(args.holdout), "--val-every",
            str(args.val_every), "--ckpt-every", str(args.val_every), "--threads", str(args.threads),
            "--seed", str(args.seed), "--out", str(out), *args.student_args.split()]


def parse_widths(text: str, teacher_width: int) -> list[int]:
    """'16,24,32,teacher' -> [16, 24, 32, 48] for a 48-wide teacher; 'teacher' adds nothing when not wider."""
    tokens = [t.strip() for t in text.split(",") if t.strip()]
    widths = {int(t) for t in tokens if t != "teacher"}
    if "teacher" in tokens and (not widths or teacher_width > max(widths)):
        widths.add(teacher_width)
    return sorted(widths)


def peaks(model, tile: int) -> dict:
    """Predicted peak bytes: {'12MP whole': ..., '12MP tiled': ..., ...}."""
    from memsr_deploy.profiler.analytic import load_subject, predict
    from memsr_deploy.profiler.report import parse_resolution
    subject = load_subject(model)
    out = {}
    for res in RESOLUTIONS:
        _, w, h = parse_resolution(res)
        for mode in ("whole", "tiled"):
            out[f"{res} {mode}"] = predict(subject, h, w, mode=mode, tile=tile).peak_bytes
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=summary(__doc__))
    ap.add_argument("--teacher-x2", default="teacher-x2")
    ap.add_argument("--teacher-x4", default="teacher-x4")
    ap.add_argument("--scales", default="2,4")
    ap.add_argument("--widths", default="16,24,32,teacher",
                    help="uniform widths to train; 'teacher' = the teacher's feature width when wider than the rest")
    ap.add_argument("--also", default="",
                    help="comma-separated models already trained (e.g. the rank-rule students) listed as rows of "
                         "their scale, with their own steps")
    ap.add_argument("--data", required=True)
    ap.add_argument("--holdout", type=int, default=5)
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--patch", type=int, default=48)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--val-every", type=int, default=500)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--student-args", default="", help="more memsr-train student flags for every run")
    ap.add_argument("--tile", type=int, default=512, help="LR tile side for the tiled predictions")
    ap.add_argument("--eval-crop", type=int, default=0, help="HR centre crop of each eval photo (0 = full)")
    ap.add_argument("--out", default="runs/tradeoff")
    ap.add_argument("--results", default="benchmarks/results")
    args = ap.parse_args(argv)

    from memsr_deploy.data.datasets import pair_from_hr
    from memsr_deploy.data.eval_photos import load_eval_photos
    from memsr_deploy.formats.model_file import load_model
    from memsr_deploy.quality.evaluate import evaluate_model
    from memsr_deploy.training.tasks import teacher_feature_width

    photos = load_eval_photos()
    also = {spec: load_model(spec) for spec in filter(None, args.also.split(","))}
    rows = []
    for scale in (int(s) for s in args.scales.split(",")):
        tspec = getattr(args, f"teacher_x{scale}")
        teacher, tdesc = load_model(tspec)
        if tdesc.scale != scale:
            sys.exit(f"--teacher-x{scale}: {tspec} is an x{tdesc.scale} model")
        tw = teacher_feature_width(teacher, tdesc)
        widths = parse_widths(args.widths, tw)
        pairs = [pair_from_hr(n, hr, scale) for n, hr in photos]

        def score(model):
            return evaluate_model(model, pairs, scale, ssim=False, max_size=args.eval_crop or None).mean_psnr

        bic = score("bicubic")

        def row(label, model, desc, width, layers=None):
            return {"scale": scale, "model": label, "width": width, "psnr": score(model), "bicubic": bic,
                    "params": desc.params, "peaks": peaks(model, args.tile), "layers": layers,
                    "steps": desc.provenance.get("steps_done")}

        rows.append(row(f"teacher, {tw} wide", teacher, tdesc, tw))
        for w in widths:
            out = Path(args.out) / f"x{scale}_w{w}"
            if not (out / "model.json").exists():  # one run at a time
                out.mkdir(parents=True, exist_ok=True)
                cmd = train_cmd(args, str(tdesc.path or tspec), w, out)
                print(f"[x{scale} w{w}] {' '.join(cmd[2:])}", flush=True)
                with open(out / "log.txt", "w") as log:
                    rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT,
                                        env={**os.environ, "OMP_NUM_THREADS": str(args.threads)}).returncode
                if rc:
                    sys.exit(f"training x{scale} width {w} failed (exit {rc}); see {out / 'log.txt'}")
            student, sdesc = load_model(out / "model")
            rows.append(row(f"student, width {w}", student, sdesc, w, len(student.cfg.widths)))
            print(f"x{scale} width {w}: {rows[-1]['psnr']:.3f} dB", flush=True)
        for spec, (model, desc) in also.items():
            if desc.scale == scale:
                body = model.cfg.widths[:-1]  # the last conv's width is the pixel-shuffle's 3 * scale ** 2
                rows.append(row(f"{spec} (widths {min(body)}-{max(body)})", model, desc, max(body),
                                len(model.cfg.widths)))

    res = Path(args.results)
    res.mkdir(parents=True, exist_ok=True)
    (res / "tradeoff.json").write_text(dumps_strict(rows, indent=2) + "\n")
    write_table(res / "tradeoff.md", rows, args, argv)
    plot(res / "tradeoff.png", rows)
    print((res / "tradeoff.md").read_text())
    return 0


def _size(b: int) -> str:
    return f"{b / 2 ** 30:.2f} GiB" if b >= 2 ** 30 else f"{b / 2 ** 20:.1f} MiB"


def write_table(path: Path, rows: list[dict], args, argv) -> None:
    cmd = "python -m memsr_bench.tradeoff " + " ".join(argv if argv is not None else sys.argv[1:])
    cols = [f"{r} {m}" for r in RESOLUTIONS for m in ("whole", "tiled")]
    lines = ["# Memory against quality: plain students of uniform width", "",
             f"Students: MemSR init + init-aware distillation from the teacher, every layer the same width, "
             f"{args.steps} steps of {args.batch} LR patches {args.patch}x{args.patch} (validation on {args.holdout} "
             "held-out training photos). PSNR-Y on the "
             f"{'full ' if not args.eval_crop else f'{args.eval_crop}px centre crops of the '}evaluation photos. "
             "Peak = predicted activation memory (liveness walk, fp32, ideal allocator) for a 12 MP (4000x3000) or "
             f"100 MP (12240x8160) LR input, whole image or exact tiles of {args.tile} LR px.", "",
             "Rows named by a path or a bundled name are models trained elsewhere (`--also`), listed for comparison: "
             "their own teacher and recipe (see their model card); 'steps' is their last training stage's.", "",
             f"Regenerate: `{cmd}`", "",
             "| scale | model | layers | steps | params | PSNR-Y | vs bicubic | "
             + " | ".join(f"peak {c}" for c in cols) + " |",
             "|---|---|---|---|---|---|---|" + "---|" * len(cols)]
    for r in rows:
        lines.append(f"| x{r['scale']} | {r['model']} | {r['layers'] or ''} | {r.get('steps') or ''} | "
                     f"{r['params']:,} | {r['psnr']:.3f} | {r['psnr'] - r['bicubic']:+.3f} | "
                     + " | ".join(_size(r['peaks'][c]) for c in cols) + " |")
    path.write_text("\n".join(lines) + "\n")


def plot(path: Path, rows: list[dict]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    scales = sorted({r["scale"] for r in rows})
    fig, axes = plt.subplots(1, len(scales), figsize=(6 * len(scales), 4.5), squeeze=False)
    for ax, scale in zip(axes[0], scales):
        rs = [r for r in rows if r["scale"] == scale]
        placed: list[tuple[float, float, int]] = []
        for r in rs:
            gib = r["peaks"]["12MP whole"] / 2 ** 30
            ax.scatter(gib, r["psnr"], marker="s" if r["model"].startswith("teacher") else "o")
            # At x4 every student has the same peak (the output dominates): stack labels that would collide.
            near = 1 + max((k for g, p, k in placed if abs(g - gib) < 0.8 and abs(p - r["psnr"]) < 0.25),
                           default=-1)
            placed.append((gib, r["psnr"], near))
            ax.annotate(r["model"].split(" (")[0], (gib, r["psnr"]), fontsize=8, xytext=(8, 2 + 10 * near),
                        textcoords="offset points", arrowprops={"arrowstyle": "-", "lw": 0.5} if near else None)
        ax.axhline(rs[0]["bicubic"], color="grey", ls=":", label="bicubic")
        ax.set_xlabel("predicted peak activations, 12 MP LR input, whole image (GiB)")
        ax.set_ylabel("PSNR-Y on the evaluation photos (dB)")
        ax.set_title(f"x{scale}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    sys.exit(main())
