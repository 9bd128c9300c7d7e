"""memsr-export: export a model to ONNX / TFLite / Core ML / ncnn, verify each artefact, print a summary table.

  memsr-export                                   # bundled x2 student, every target, fp32
  memsr-export runs/student_x4 --target tflite --precision all -o out/
  memsr-export model.json --target tflite --precision int8-uint8io --input-size 256x256 --calib photos/
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from memsr_deploy.errors import MemsrError, cli_errors
from memsr_deploy.formats.registry import default_model
from memsr_deploy.cli import args as types
from memsr_deploy.formats import vocabulary
from memsr_deploy.formats.sidecar import read_sidecar
from memsr_deploy.outputs.plan import OutputPlan, check_folder, model_pair_inputs

from .api import D2S_MODES, PRECISIONS, TARGETS, data_output_name, export_model, output_names, supported
from .shapes import default_tile, parse_input_size, parse_tiles
from .source import QUANTISED, load_source


def build_parser() -> types.Parser:
    p = types.Parser(prog="memsr-export", description=types.summary(__doc__),
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("model", nargs="?", help="model stem/.json/.safetensors or bundled name "
                   "(default: the bundled student for --scale)")
    p.add_argument("--scale", type=types.positive_int,
                   choices=(2, 3, 4), default=2, help="scale of the default bundled model (default 2)")
    p.add_argument("--target", choices=(*TARGETS, "all"), default="all")
    p.add_argument("--precision", choices=(*vocabulary.PRECISIONS, "all"), default="fp32",
                   help="all = every precision each target supports (onnx: fp32; tflite: all five; "
                        "coreml: fp32, fp16; ncnn: fp32, int8)")
    p.add_argument("-o", "--out", default=".", help="output folder (default: current folder)")
    p.add_argument("--input-size", help="fixed LR input incl. halo: 1x3xHxW, HxW or one side (default: dynamic)")
    p.add_argument("--calib", help="folder of images to calibrate int8 on (default: scikit-image photos)")
    p.add_argument("--d2s", choices=D2S_MODES, default="depth_to_space",
                   help="TFLite: transposed-conv replaces DEPTH_TO_SPACE for GPU delegates (fixed size only)")
    p.add_argument("--coreml-tiles", help="Core ML: EnumeratedShapes at these core tiles, e.g. 128,192,256 "
                   "(default: a RangeDim)")
    p.add_argument("--name", help="artefact name stem (default: MODEL_TARGET[_HxW][_tconv])")
    p.add_argument("--max-photos", type=types.positive_int, help="verify on the first N evaluation photos only")
    p.add_argument("--no-verify", action="store_true", help="skip the numerical verification (not advised)")
    p.add_argument("--no-tf-checks", action="store_true", help="TFLite: skip TensorFlow's interpreter and GPU "
                   "compatibility checks (run by default when tensorflow is installed: memsr[tf])")
    p.add_argument("--overwrite", action="store_true", help="replace existing artefacts and sidecars of the same "
                   "name (without it they are refused)")
    return p


def plan(source, target: str, precision: str) -> tuple[list[tuple[str, str]], list[str]]:
    """(target, precision) pairs to export, and notes on what an "all" selection skips."""
    targets = TARGETS if target == "all" else (target,)
    jobs, notes = [], []
    for t in targets:
        precs = PRECISIONS[t] if precision == "all" else (precision,)
        for p in precs:
            why = supported(source, t, p)
            if why is None:
                jobs.append((t, p))
            elif target == "all":
                if why not in notes:
                    notes.append(why)
            else:
                raise MemsrError(why, source.desc.path)
    if not jobs:
        raise MemsrError(f"nothing to export for --target {target} --precision {precision}: {'; '.join(notes)}")
    return jobs, notes


def _size(*paths: Path) -> str:
    n = sum(sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.is_dir() else p.stat().st_size
            for p in paths)
    return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"


def _row(target: str, precision: str, sidecar_path: Path) -> list[str]:
    sc = read_sidecar(sidecar_path)
    v = sc.verification
    verified = v.get("passed") is not None
    # a null PSNR in a sidecar means identical outputs (infinite PSNR; JSON has no infinity)
    fmt = (lambda key, f: ("inf" if v[key] is None else f.format(v[key])) if verified and key in v else "-")
    secs = v.get("seconds", {})
    files = [sc.artefact_path(), *filter(None, [sc.data_path()])]  # ncnn: .param + .bin
    return [target, precision, sc.file, _size(*files), fmt("max_abs_diff", "{:.2e}"),
            fmt("psnr_y_vs_torch", "{:.2f}"), fmt("psnr_y_drop", "{:+.3f}") if precision in QUANTISED else "-",
            f"{secs.get('build', 0) + secs.get('verify', 0):.1f}"]


def print_table(rows: list[list[str]]) -> None:
    head = ["target", "precision", "file", "size", "max diff", "PSNR-Y vs torch", "drop dB", "time s"]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    for r in [head, ["-" * w for w in widths], *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


def _name(args, several_targets: bool, target: str) -> str | None:
    return f"{args.name}_{target}" if args.name and several_targets else args.name


@cli_errors
def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    source = load_source(args.model if args.model else default_model(args.scale))
    input_size = parse_input_size(args.input_size)
    tiles = parse_tiles(args.coreml_tiles)
    if args.calib is not None and not Path(args.calib).is_dir():
        raise MemsrError("calibration folder not found", args.calib)
    if tiles and input_size is not None:
        raise MemsrError("--coreml-tiles and --input-size exclude each other (enumerated vs fixed shape)")
    default_tile(source.halo, input_size)  # a fixed size too small for the halo fails here, once
    jobs, notes = plan(source, args.target, args.precision)
    if args.d2s == "transposed-conv" and input_size is None and any(t == "tflite" for t, _ in jobs):
        raise MemsrError("--d2s transposed-conv needs a fixed --input-size")
    for note in notes:
        print(f"skipped: {note}", file=sys.stderr)
    several_targets = len({t for t, _ in jobs}) > 1
    names = {job: _name(args, several_targets, job[0]) for job in jobs}
    check_folder(args.out)
    out_plan = OutputPlan(inputs=model_pair_inputs(source.desc.path, source.int8 and source.int8.desc.path),
                          overwrite=args.overwrite)
    for (target, precision), name in names.items():
        files = output_names(source, target, precision, input_size, name,
                             args.d2s if target == "tflite" else "depth_to_space")
        files = (*files, *filter(None, [data_output_name(target, files[0])]))
        out_plan.add(f"{target} {precision}", *(Path(args.out) / f for f in files))
    out_plan.check()
    rows, failed = [], 0
    bar = tqdm(jobs, desc="export", unit="artefact", disable=None if len(jobs) > 1 else True)
    for target, precision in bar:
        name = names[(target, precision)]
        try:
            sidecar = export_model(
                source, target, precision, out_dir=args.out, input_size=input_size, calib_dir=args.calib,
                name=name, d2s=args.d2s if target == "tflite" else "depth_to_space", verify=not args.no_verify,
                coreml_tiles=tiles if target == "coreml" else None, max_photos=args.max_photos,
                tf_checks=False if args.no_tf_checks else None)
        except MemsrError as e:
            # Keep going: the other artefacts are independent; the failure is reported and sets the exit code.
            tqdm.write(f"error: {e}", file=sys.stderr)
            rows.append([target, precision, "FAILED", "-", "-", "-", "-", "-"])
            failed += 1
            continue
        rows.append(_row(target, precision, sidecar))
    print_table(rows)
    return 2 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
