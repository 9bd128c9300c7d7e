"""memsr-bench-device: latency and memory of exported TFLite artefacts on an Android phone, or here (--host).

On a phone (over adb) it pushes the artefacts and LiteRT's native ``benchmark_model`` to a fresh folder on the
device, runs every model x delegate x threads x size, parses the tool's output and removes the folder again
(also after a failure). With --host it runs the same matrix with the LiteRT Python interpreter on this
computer. Results: PREFIX.csv, PREFIX.json and PREFIX.md (the table that is also printed).

  memsr-bench-device out/memsr_x2_fp32.tflite --benchmark-binary ~/benchmark_model \
      --delegates cpu,gpu --threads 1,4 --sizes 128x128,256x256 --taskset f0 --out results/pixel7
  memsr-bench-device out/memsr_x2_fp32.tflite --host --threads 1,2 --out results/host
"""
from __future__ import annotations

import os
import sys

from tqdm import tqdm

from memsr_deploy.cli import args as types
from memsr_deploy.errors import MemsrError, cli_errors
from memsr_deploy.outputs.plan import check_outputs

from .device import report
from .device.adb import Adb, find_adb
from .device.matrix import build_matrix, load_model, parse_delegates, parse_list, parse_size, parse_threads
from .device.parse import BenchOutput
from .device.runners import DEFAULT_REMOTE_DIR, CellResult, DeviceRunner, HostRunner, resolve_binary


def _parser() -> types.Parser:
    p = types.Parser(prog="memsr-bench-device", description=types.summary(__doc__),
                     formatter_class=types.argparse.RawDescriptionHelpFormatter)
    p.add_argument("artefacts", nargs="+", help="exported .tflite artefacts (or their sidecar .json); give a "
                   "teacher and a student to compare them")
    p.add_argument("--host", action="store_true", help="run here with the LiteRT Python interpreter (no adb)")
    p.add_argument("--serial", default=os.environ.get("ANDROID_SERIAL"),
                   help="device serial when several are attached (default: $ANDROID_SERIAL)")
    p.add_argument("--adb", default=None, help="adb executable (default: adb on PATH)")
    p.add_argument("--benchmark-binary", default=None,
                   help="LiteRT's benchmark_model built for the device (default: $MEMSR_BENCHMARK_MODEL)")
    p.add_argument("--delegates", default="cpu", help="comma list of cpu (XNNPACK), gpu, nnapi (default: cpu)")
    p.add_argument("--threads", default="1,4", help="comma list of thread counts (default: 1,4)")
    p.add_argument("--sizes", default=None, help="input windows HxW incl. halo for dynamic-shape models, e.g. "
                   "128x128,256x256 (default: the sidecar's tile + 2*halo; fixed-shape models use their own)")
    p.add_argument("--warmup-runs", type=types.non_negative_int,
                   default=5, help="warm-up runs before timing (default: 5)")
    p.add_argument("--num-runs", type=types.positive_int, default=50, help="timed runs (default: 50)")
    p.add_argument("--taskset", default=None, help="hex CPU mask to pin the benchmark to, e.g. f0 for the big "
                   "cores (the device facts give big_core_mask)")
    p.add_argument("--photos", default=report.DEFAULT_PHOTOS,
                   help=f"photo sizes HxW (LR pixels) to project times for (default: {report.DEFAULT_PHOTOS})")
    p.add_argument("--remote-dir", default=DEFAULT_REMOTE_DIR,
                   help=f"device folder to work in; a fresh sub-folder is made and removed (default: "
                   f"{DEFAULT_REMOTE_DIR})")
    p.add_argument("--run-timeout", type=types.positive_float,
                   default=900.0, help="seconds per benchmark cell (default: 900)")
    p.add_argument("--out", default="device_bench", help="output prefix for .csv/.json/.md (default: device_bench)")
    p.add_argument("--overwrite", action="store_true", help="replace existing PREFIX.csv/.json/.md")
    return p


def _memsr_version() -> str:
    try:
        from importlib.metadata import version
        return version("memsr")
    except Exception:  # noqa: BLE001 - an uninstalled checkout still benchmarks
        return "unknown"


@cli_errors
def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    delegates = parse_delegates(args.delegates)
    threads = parse_threads(args.threads)
    sizes = parse_list(args.sizes, "size", parse_size) if args.sizes else None
    photos = parse_list(args.photos, "photo", parse_size)
    check_outputs(report.output_paths(args.out).values(), inputs=_input_files(args.artefacts),
                  overwrite=args.overwrite)
    models = [load_model(a) for a in args.artefacts]
    configs = build_matrix(models, delegates, threads, sizes)

    if args.host:
        runner = HostRunner(args.warmup_runs, args.num_runs, args.taskset, args.run_timeout)
    else:
        # Everything that can be checked here is checked before the device is touched.
        binary = resolve_binary(args.benchmark_binary)
        adb = Adb(find_adb(args.adb))
        runner = DeviceRunner(adb, binary, args.remote_dir, args.warmup_runs, args.num_runs, args.taskset,
                              args.serial, args.run_timeout)

    rows, logs, meta = [], [], {}
    try:
        meta = runner.open(models)
        meta["tool"]["memsr"] = _memsr_version()
        for cfg in tqdm(configs, desc="benchmark", unit="cell", file=sys.stderr, disable=None):
            res = _skipped() if cfg.problem else runner.run(cfg)
            if not cfg.problem:
                logs.append({"model": cfg.model.name, "delegate": cfg.delegate, "threads": cfg.threads,
                             "size": list(cfg.size), "command": res.command, "status": res.status,
                             "output_tail": res.log[-2000:] if res.status != "ok" else ""})
            rows.append(report.make_row(cfg, res, meta["device"], meta["tool"], runner.mode, runner.taskset,
                                        photos))
    except MemsrError as e:
        # A phone that goes away mid-run must not cost the cells already measured.
        if rows:
            meta["incomplete"] = str(e)
            _write(args, rows, meta, runner, delegates, threads, sizes, photos, logs)
        raise
    finally:
        runner.close()

    _write(args, rows, meta, runner, delegates, threads, sizes, photos, logs)
    print(report.to_markdown(rows, meta, photos), end="")
    if not any(r["status"] == "ok" for r in rows):
        print("error: no benchmark cell produced figures (see the status column)", file=sys.stderr)
        return 1
    return 0


def _write(args, rows, meta, runner, delegates, threads, sizes, photos, logs) -> None:
    meta.update(mode=runner.mode, settings={
        "delegates": delegates, "threads": threads, "sizes": [list(s) for s in sizes] if sizes else None,
        "warmup_runs": args.warmup_runs, "num_runs": args.num_runs, "taskset": runner.taskset,
        "photos": [list(p) for p in photos]},
        notes=_notes(runner.mode), runs=logs)
    paths = report.write_outputs(args.out, rows, meta, photos)
    print(f"wrote {paths['csv']}, {paths['json']}, {paths['md']}", file=sys.stderr)


def _input_files(artefacts) -> list:
    from memsr_deploy.formats.sidecar import sidecar_path
    out = []
    for a in artefacts:
        out += [a, sidecar_path(a)]
    return out


def _skipped() -> CellResult:
    return CellResult("skipped", BenchOutput(), "")


def _notes(mode: str) -> list[str]:
    notes = ["latency = benchmark_model's 'Inference (avg)' over the timed runs, one input window per run",
             "cells whose delegate failed or only partly took the graph carry a status, not figures",
             "gpu runs use benchmark_model's defaults (fp16 precision loss allowed) with XNNPACK off"]
    if mode == "host":
        notes.append("host: peak_mem_mb and mem_*_mb are the rise of RSS over the Python worker's baseline")
    else:
        notes.append("device: peak_mem_mb is the tool's periodic peak of its process footprint")
    return notes


if __name__ == "__main__":
    sys.exit(main())
