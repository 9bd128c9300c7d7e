"""The paper's memory setting: x2 on a 960x540 LR input, fp32, teacher vs MemSR student; predicted and measured.

    python -m memsr_bench.profile_bench [--teacher T] [--student S] [--random] [--no-measure]

Defaults are the bundled teacher-x2 / memsr-x2; ``--random`` (or when they are not shipped) uses randomly
initialised models of the paper's shapes instead: EDSR-baseline (width 64, 16 blocks, ESPCN tail) and its
34-layer width-64 plain student. Weights do not change memory, so the figures hold for trained models of the
same shapes. Writes ``benchmarks/results/profile_paper.md`` (and ``.json``): the paper's setting measured on
PyTorch CPU and ONNX Runtime CPU, and predictions at phone-camera resolutions in all three modes.
"""
from __future__ import annotations

from memsr_deploy.cli.args import summary
from memsr_deploy.cli.profile import _onnx_for
import argparse
import datetime
import platform
import sys
import tempfile
from pathlib import Path

from memsr_deploy.errors import MemsrError, cli_errors
from memsr_deploy.formats.tagged_json import dumps_strict

RESULTS = Path("benchmarks/results")  # under the current folder: never inside the installed package


def _random_models(workdir: Path) -> tuple[Path, Path]:
    import torch

    from memsr_deploy.method import models
    from memsr_deploy.formats.model_file import save_model

    torch.manual_seed(0)
    teacher = models.ResidualSR(models.TeacherConfig(scale=2, **models.TEACHER_PRESETS["edsr-baseline"]))
    # the student MemSR derives from EDSR-baseline: 2*16 + 2 = 34 body layers, rank 64 each (reference runs)
    student = models.PlainSR(models.PlainConfig(scale=2, widths=[64] * 34,
                                                acts=["none"] + ["relu", "none"] * 16 + ["none"]))
    provenance = {"note": "random weights of the paper's shapes, for memory profiling only"}
    save_model(teacher.eval(), workdir / "edsr_baseline_x2_random", kind="teacher", provenance=provenance)
    save_model(student.eval(), workdir / "memsr_student_x2_random", kind="student", provenance=provenance)
    return workdir / "edsr_baseline_x2_random", workdir / "memsr_student_x2_random"


def _bundled() -> tuple[str, str] | None:
    from memsr_deploy.formats import registry
    have = registry.available()
    return ("teacher-x2", "memsr-x2") if {"teacher-x2", "memsr-x2"} <= set(have) else None


def mib(n) -> str:
    return "-" if n is None else f"{n / 2 ** 20:,.1f}"


def run(teacher_spec, student_spec, height: int, width: int, measure: bool, threads: int, workdir: Path,
        tile: int, rows: int) -> dict:
    from tqdm import tqdm

    from memsr_deploy.profiler.analytic import load_subject, measured_prediction, predict
    from memsr_deploy.profiler.measure import measure_peak
    from memsr_deploy.profiler.report import PRESETS

    subjects = {"teacher": load_subject(teacher_spec), "student": load_subject(student_spec)}
    if subjects["teacher"].kind != "teacher" or not subjects["student"].desc.is_plain:
        raise MemsrError("--teacher must be a residual teacher and --student a plain model")
    if subjects["teacher"].scale != subjects["student"].scale:
        raise MemsrError(f"--teacher is x{subjects['teacher'].scale} but --student is x{subjects['student'].scale}")
    paper = {}
    jobs = [(role, b) for role in subjects for b in ("torch", "onnxruntime")] if measure else []
    bar = tqdm(total=len(jobs), desc="measured runs", unit="run", file=sys.stderr, disable=not jobs)
    for role, sub in subjects.items():
        entry = {"name": sub.path or sub.name, "params": sub.desc.params, "convs": len(sub.desc.layer_widths),
                 "ideal": predict(sub, height, width, "whole", "fp32", "ideal").peak_bytes,
                 "torch_activations": predict(sub, height, width, "whole", "fp32", "torch").peak_bytes}
        for backend in ("torch", "onnxruntime"):
            entry[f"{backend}_expected"] = measured_prediction(sub, height, width, backend)
            if measure:
                target = sub.path if backend == "torch" else _onnx_for(sub, workdir)
                m = measure_peak(target, backend, height, width, threads=threads)
                entry[f"{backend}_measured"] = m.peak_bytes
                entry[f"{backend}_seconds"] = m.seconds
                entry[f"{backend}_settings"] = m.settings
                bar.update()
        paper[role] = entry
    bar.close()

    phones = []
    for label in ("12MP", "48MP", "100MP", "200MP"):
        w, h = PRESETS[label]
        t_whole = predict(subjects["teacher"], h, w, "whole").peak_bytes
        for role, sub in subjects.items():
            for mode in ("whole", "tiled", "stream"):
                if mode == "stream" and role == "teacher":
                    continue
                p = predict(sub, h, w, mode, tile=tile, rows=rows)
                phones.append({"resolution": label, "width": w, "height": h, "model": role, "mode": mode,
                               "peak_bytes": p.peak_bytes, "vs_teacher_whole": p.peak_bytes / t_whole})
    return {"scale": subjects["student"].scale, "height": height, "width": width, "paper": paper, "phones": phones,
            "tile": tile, "rows": rows}


def markdown(res: dict, meta: dict) -> str:
    p = res["paper"]
    t = p["teacher"]
    lines = [
        "# Peak activation memory: MemSR student vs its teacher",
        "",
        f"x{res['scale']}, {res['width']}x{res['height']} LR input (960x540 is the paper's setting), fp32, batch 1. Generated by "
        f"`{meta['command']}` on {meta['date']} ({meta['cpu']}, {meta['threads']} thread(s)).",
        f"Models: {meta['models']}.",
        "",
        "Sizes in MiB. *ideal* = liveness walk with ReLU/adds in place and no workspace (the runtime's budget rule; "
        "what ONNX Runtime achieves). *torch* = PyTorch eager CPU model: out-of-place ops plus oneDNN's "
        "blocked-layout copies of each conv's input/output. *expected* adds the input tensor the caller holds. "
        "*measured* = VmHWM - baseline RSS of a fresh process after model load and a 64x64 warm-up "
        "(MALLOC_MMAP_THRESHOLD_=65536; ONNX Runtime with enable_cpu_mem_arena=False, enable_mem_pattern=False, "
        "default graph optimisations).",
        "",
        "| model | params | convs | ideal peak | torch peak | torch expected | torch measured | meas/exp "
        "| ORT expected | ORT measured | meas/exp | ideal x teacher |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for role in ("teacher", "student"):
        e = p[role]
        tm, om = e.get("torch_measured"), e.get("onnxruntime_measured")
        tr = f"{tm / e['torch_expected']:.3f}" if tm else "-"
        orr = f"{om / e['onnxruntime_expected']:.3f}" if om else "-"
        lines.append(
            f"| {role} ({e['name']}) | {e['params']:,} | {e['convs']} | {mib(e['ideal'])} "
            f"| {mib(e['torch_activations'])} | {mib(e['torch_expected'])} | {mib(tm)} | {tr} "
            f"| {mib(e['onnxruntime_expected'])} | {mib(om)} | {orr} | x{e['ideal'] / t['ideal']:.3f} |")
    s = p["student"]
    lines += [
        "",
        f"Student / teacher: ideal x{s['ideal'] / t['ideal']:.3f}, PyTorch eager "
        f"x{s['torch_activations'] / t['torch_activations']:.3f}"
        + (f", measured on PyTorch x{s['torch_measured'] / t['torch_measured']:.3f}, on ONNX Runtime "
           f"x{s['onnxruntime_measured'] / t['onnxruntime_measured']:.3f}" if "torch_measured" in s else "") + ".",
        "",
        f"## Phone-camera photos (input size; predicted, ideal; tile {res['tile']} LR px + halo, {res['rows']}-row strips)",
        "",
        "| input photo | model | mode | peak | x teacher whole |",
        "|---|---|---|---|---|",
    ]
    for r in res["phones"]:
        lines.append(f"| {r['resolution']} {r['width']}x{r['height']} | {r['model']} | {r['mode']} "
                     f"| {mib(r['peak_bytes'])} | x{r['vs_teacher_whole']:.4f} |")
    return "\n".join(lines) + "\n"


@cli_errors
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=summary(__doc__))
    ap.add_argument("--teacher", help="teacher model (default: bundled teacher-x2, else --random)")
    ap.add_argument("--student", help="plain student (default: bundled memsr-x2, else --random)")
    ap.add_argument("--random", action="store_true", help="random models of the paper's shapes")
    ap.add_argument("--resolution", default="960x540", help="LR input WxH (default %(default)s)")
    ap.add_argument("--no-measure", action="store_true", help="predictions only")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--tile", type=int, default=512)
    ap.add_argument("--rows", type=int, default=16)
    ap.add_argument("--out", default=str(RESULTS / "profile_paper.md"))
    args = ap.parse_args(argv)
    from memsr_deploy.outputs.atomic import write_text
    from memsr_deploy.profiler.report import parse_resolution

    _, h, w = parse_resolution(args.resolution)
    with tempfile.TemporaryDirectory(prefix="memsr-profile-bench-") as tmp:
        tmp = Path(tmp)
        teacher, student = args.teacher, args.student
        if args.random or not (teacher and student):
            bundled = None if args.random else _bundled()
            if bundled and not (teacher or student):
                teacher, student = bundled
            elif not (teacher and student):
                rt, rs = _random_models(tmp)
                teacher, student = teacher or rt, student or rs
        res = run(teacher, student, h, w, not args.no_measure, args.threads, tmp, args.tile, args.rows)
    meta = {"command": "python -m memsr_bench.profile_bench " + " ".join(argv if argv is not None else sys.argv[1:]),
            "date": datetime.date.today().isoformat(), "cpu": platform.processor() or platform.machine(),
            "threads": args.threads,
            "models": ", ".join(f"{r} = {res['paper'][r]['name']}" for r in ("teacher", "student"))}
    out = Path(args.out)
    write_text(out, markdown(res, meta))
    write_text(out.with_suffix(".json"), dumps_strict({"meta": meta, **res}, indent=2, default=str) + "\n")
    print(markdown(res, meta))
    print(f"written to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
