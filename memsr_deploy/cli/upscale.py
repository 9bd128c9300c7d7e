"""memsr-upscale: super-resolve photos with exact tiling or streaming, in bounded memory.

    memsr-upscale photo.jpg                          # bundled x2 student -> photo_x2.jpg
    memsr-upscale photo.jpg -o big.tif --scale 4     # TIFF output is streamed to disk (any size)
    memsr-upscale photos/ -o out/ --max-memory 512M  # a folder; tile size chosen from the budget
    memsr-upscale photo.png --artefact memsr_x2_fp32.json --threads 4
    memsr-upscale photo.png --mode stream            # strips, memory ~ width
    memsr-upscale photo.png --precision int8         # int8 model: faster, slightly lower quality
    memsr-upscale photo.png --backend torch --threads 1
    memsr-upscale photo.jpg --model realesr-general-x4v3.pth   # another project's model, on ONNX Runtime
    memsr-upscale IMG_0001.HEIC shot.dng -o out/ --ext heic   # HEIC and camera RAW in, HEIC out
"""
from __future__ import annotations

import argparse
import glob
import sys
import warnings
from pathlib import Path

from ..formats.vocabulary import RUNTIME_BACKENDS, RUNTIME_PRECISIONS
from ..errors import MemsrError, cli_errors
from . import args as types


def _bundled_help() -> str:
    """Which bundled model to pick, from the registry (only the ones this build ships)."""
    from ..formats.registry import MODELS, available
    shipped = available()
    if not shipped:
        return ""
    width = max(map(len, shipped))
    return "\nbundled models (--model NAME; the model card: memsr_deploy/pretrained/README.md):\n" + "\n".join(
        f"    {n:<{width}}  {MODELS[n][1]}" for n in shipped)


def build_parser() -> argparse.ArgumentParser:
    p = types.Parser(prog="memsr-upscale", description=types.summary(__doc__),
                     formatter_class=argparse.RawDescriptionHelpFormatter,
                     epilog="\n".join(__doc__.split("\n")[2:]) + _bundled_help())
    p.add_argument("inputs", nargs="+", help="image files, folders or glob patterns (JPEG, PNG, TIFF, WebP, "
                                               "HEIC, camera RAW / DNG, BMP)")
    p.add_argument("-o", "--output", help="output file (one input) or folder (several inputs or a folder); "
                                          "default: NAME_xS.EXT beside each input")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--model", help="model file (NAME, NAME.json or NAME.safetensors), bundled name, EDSR "
                                     "checkpoint (.pt/.pth/.ckpt/.safetensors; runs on PyTorch), or another "
                                     "project's model: a Compact / ESRGAN / SPAN checkpoint (others with spandrel "
                                     "installed) or an .onnx file, on ONNX Runtime")
    src.add_argument("--artefact", help="exported artefact or its sidecar .json (ONNX Runtime, LiteRT, Core ML)")
    p.add_argument("--scale", type=types.positive_int, choices=(2, 3, 4),
                   help="upscaling factor (picks the bundled model; checked against a given model)")
    p.add_argument("--backend", choices=RUNTIME_BACKENDS, default="auto",
                   help="runtime for a model file: auto (default) = the faster of ONNX Runtime and LiteRT for "
                        "this model's architecture here (its tile loop timed on each the first time the inputs "
                        "are large enough to pay for it, then remembered in ~/.cache/memsr; ONNX Runtime until "
                        "then, and for --mode stream and --tile 0, as the leaner), "
                        "both built in memory with no export step, else PyTorch; an artefact runs on its own "
                        "runtime")
    p.add_argument("--precision", choices=RUNTIME_PRECISIONS, default="fp32",
                   help="fp32 (default, exact) or int8 (the model's int8 version, on LiteRT by default: several "
                        "times faster, at the quality cost it prints)")
    p.add_argument("--mode", choices=("tile", "stream"), default="tile",
                   help="tile: exact tiling (default); stream: full-width row strips (memory ~ image width)")
    p.add_argument("--tile", type=types.non_negative_int,
                   help="core tile in LR pixels (>= 1), 0 = whole image at once")
    p.add_argument("--rows", type=types.positive_int, help="strip height in LR rows for --mode stream "
                                                           "(default: about 64k pixels per strip, 4 to 64 rows)")
    p.add_argument("--halo", type=types.non_negative_int,
                   help="override the exact halo (demonstration only: seams appear)")
    p.add_argument("--batch", type=types.positive_int, help="windows per backend call (default: automatic)")
    p.add_argument("--max-memory", type=types.memory_size,
                   help="peak memory (RSS) of the whole process, e.g. 500M or 2G: picks the tile / strip size "
                        "(and, with --backend auto, the runtime) that fits; a --tile, --rows or --tile 0 that "
                        "cannot fit is refused before any work")
    p.add_argument("--threads", type=types.positive_int, help="CPU threads for the backend (default: every core)")
    p.add_argument("--ncnn-fp16", action="store_true",
                   help="ncnn artefacts: fp16 storage and arithmetic, as ncnn's own default runs them on ARMv8.2+ "
                        "phones (memsr's default is fp32; x86 CPUs ignore it; the cost is the sidecar's "
                        "verification.arm64 ncnn fp16 row)")
    p.add_argument("--quality", type=types.int_in(1, 100), default=95, help="JPEG/WebP quality (default 95)")
    p.add_argument("--ext", help="output format for folder runs (png, jpg, tif, webp, heic, bmp); default: the "
                                 "input's (tif for camera RAW)")
    p.add_argument("--max-pixels", type=types.pixel_count, default=250e6,
                   help="refuse inputs above this many pixels (decompression-bomb guard; default 250e6)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace existing output files (never an input); without it they are refused, or "
                        "skipped in folder runs, and a batch run keeps what an earlier run of the same command "
                        "finished (after a crash, run the command again to finish)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    return p


def expand_inputs(items: list[str]) -> tuple[list[Path], bool]:
    """Files to process, and whether the run is a batch (folder, glob or several inputs).

    Folders are listed like the glob ``*``: hidden files are left out, among them the temporary files of
    a killed run (outputs.atomic names them ".NAME.memsr-tmp.*")."""
    from ..imageio import READABLE
    files, batch = [], len(items) > 1
    for item in items:
        p = Path(item)
        if p.is_dir():
            batch = True
            found = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in READABLE
                           and not f.name.startswith("."))
            if not found:
                raise MemsrError("folder holds no images (JPEG, PNG, TIFF, WebP, HEIC, camera RAW, BMP)", p)
            files += found
        elif not p.exists() and any(c in item for c in "*?["):
            batch = True
            found = sorted(Path(f) for f in glob.glob(item) if Path(f).is_file())
            if not found:
                raise MemsrError("pattern matches no files", item)
            files += found
        else:
            files.append(p)  # missing files are reported when their turn comes
    return files, batch


def plan_outputs(files: list[Path], args, scale: int, batch: bool, log, job=None) -> tuple[list[Path], dict]:
    """The files to run and their outputs, checked all at once before the first pixel (outputs.plan).

    With a shared ``job`` (batch runs: outputs.folder_job), the outputs an earlier run of the same job finished
    are kept and left out, and, in a folder this run writes to, are not inputs either."""
    import os

    from ..outputs.plan import OutputPlan
    from_folder = any(Path(i).is_dir() or (not Path(i).exists() and any(c in i for c in "*?["))
                      for i in args.inputs)
    outputs = {src: output_for(src, args, scale, batch) for src in files}
    if job is not None:
        written_to = {os.path.realpath(o.parent) for o in outputs.values()}
        files = [f for f in files if not (os.path.realpath(f.parent) in written_to and job.is_own_output(f))]
    plan = OutputPlan(inputs=[f for f in files if f.exists()], overwrite=args.overwrite,
                      skip_existing=from_folder, log=log)
    done = 0
    for src in files:
        kept = job.finished(src, outputs[src]) if job is not None and src.exists() else None
        done += kept == "earlier"
        if not kept:
            plan.add(src, outputs[src])
    if done:
        job.log(f"{done} of {len(files)} photo(s) already done by an earlier run of this command: kept "
                f"(--overwrite redoes them)")
    return plan.check(), outputs


def job_settings(args, backend) -> dict:
    """What decides an output's pixels, for the shared job's key (outputs.folder_job)."""
    import os
    return {"weights": backend.desc.weights_sha256, "model": str(args.model or ""),
            "artefact": os.path.realpath(args.artefact) if args.artefact else "", "backend": args.backend,
            "precision": args.precision, "scale": backend.caps.scale, "halo": args.halo, "quality": args.quality}


def lr_pixels(files) -> int:
    """Pixels the run will upscale, from the headers (what the backend choice weighs its probe against); a file
    whose header does not open counts 0 here and fails in its turn with its own message."""
    from ..imageio.decode import open_image
    total = 0
    for src in files:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                reader = open_image(src, max_pixels=2 ** 62)
            total += reader.height * reader.width
            reader.close()
        except (MemsrError, OSError):
            pass
    return total


def output_for(src: Path, args, scale: int, batch: bool) -> Path:
    from ..imageio.formats import RAW_EXTENSIONS, RAW_OUTPUT
    ext = ("." + args.ext.lstrip(".")) if args.ext else RAW_OUTPUT if src.suffix.lower() in RAW_EXTENSIONS \
        else ".heic" if src.suffix.lower() == ".hif" else src.suffix
    name = f"{src.stem}_x{scale}{ext}"
    if args.output is None:
        return src.with_name(name)
    out = Path(args.output)
    if batch or out.is_dir() or args.output.endswith(("/", "\\")):
        if out.exists() and not out.is_dir():
            raise MemsrError("several inputs need -o to be a folder", out)
        return out / name
    return out


def is_foreign(model) -> bool:
    """Another project's model (an .onnx file without a sidecar, a foreign checkpoint). A checkpoint whose export
    is cached is one without reading it (reading a .pth imports torch, which a budget would then have to pay)."""
    from ..formats.checkpoint import file_sha256, is_checkpoint
    from ..formats.foreign_graph import foreign_state, is_foreign_onnx
    if str(model).lower().endswith(".onnx"):
        return is_foreign_onnx(model)
    if not is_checkpoint(model) or not Path(str(model)).is_file():
        return False
    from ..runtime.backends.foreign_backend import cache_path
    return cache_path(file_sha256(model)).is_file() or foreign_state(model) is not None


def backend_for_budget(args, files: list[Path], batch: bool) -> str:
    """``--backend auto`` under ``--max-memory`` for a plain model: the runtime remembered as the faster here
    (else ONNX Runtime, the leaner), unless its plan for the first photo cannot keep the default tile within the
    budget and the other's can (footprint.first_that_fits). No speed probe: it opens both runtimes at once."""
    from ..formats.model_file import read_description
    from ..formats.registry import default_model, names, resolve
    from ..imageio import open_image, output_format
    from ..runtime import footprint, memory
    from ..runtime.backends import fastest
    model = args.model or default_model(args.scale or 2)
    desc = read_description(resolve(str(model)) if str(model) in names() else model)
    installed = fastest.installed()
    if not desc.is_plain or not installed:
        return "auto"
    lean = args.mode == "stream" or args.tile == 0
    first = fastest.remembered(desc, args.threads) if not lean else None
    order = sorted(installed, key=lambda n: (n != (first or "onnxruntime"), n))
    src = next((f for f in files if f.is_file()), None)
    if src is None or len(order) < 2:
        return order[0]
    reader = open_image(src, int(args.max_pixels))
    try:
        fmt = output_format(output_for(src, args, desc.scale, batch))
        rows = memory.default_recompute_rows(reader.width, desc.receptive_radius)
        rt, _ = footprint.first_that_fits([footprint.Runtime(n, desc) for n in order], reader, args.max_memory,
                                          mode=args.mode, tile=args.tile, rows=args.rows, batch=args.batch,
                                          default_rows=rows, fmt=fmt)
    finally:
        reader.close()
    return rt.name


@cli_errors
def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from tqdm import tqdm

    from ..imageio.decode import require_file
    from ..runtime import RunOptions, Upscaler, open_backend
    from ..runtime.heap import settle_heap
    settle_heap()  # before the first large buffer: see runtime/heap.py

    def log(msg: str) -> None:
        tqdm.write(f"warning: {msg}", file=sys.stderr)

    def note(msg: str) -> None:
        if not args.quiet:
            print(f"note: {msg}", file=sys.stderr, flush=True)

    def job_note(msg: str) -> None:   # what other runs did: said even with -q
        tqdm.write(f"note: {msg}", file=sys.stderr)

    files, batch = expand_inputs(args.inputs)
    if not batch:   # before the backend: its first opening may probe speed for a minute
        require_file(files[0])
    name = args.backend
    if args.max_memory and name == "auto" and args.artefact is None and args.precision == "fp32" \
            and not (args.model is not None and is_foreign(args.model)):   # foreign: ONNX Runtime only
        name = backend_for_budget(args, files, batch)
    lean = args.mode == "stream" or args.tile == 0
    measures = name == "auto" and args.artefact is None and args.precision == "fp32" and not lean
    backend = open_backend(model=args.model, artefact=args.artefact, threads=args.threads, scale=args.scale,
                           backend=name, precision=args.precision, lean=lean, log=note,
                           work=lr_pixels(files) if measures else None, ncnn_fp16=args.ncnn_fp16)
    if args.max_memory:   # once, not once per photo
        from ..runtime import footprint
        footprint.check_floor(footprint.Runtime.of(backend, args.halo), args.max_memory)
    job = None
    if batch:   # other processes and re-runs of this job may share its outputs: outputs/folder_job.py
        from ..outputs.folder_job import SharedJob, job_key
        job = SharedJob(job_key(job_settings(args, backend)), args.overwrite, job_note, log)
    files, outputs = plan_outputs(files, args, backend.caps.scale, batch, log, job)
    folders = sorted({outputs[f].parent for f in files})
    if job is not None:
        job.clean(folders)
    if args.precision == "int8":
        from ..formats.onnx_graph import int8_cost_note
        print(f"note: {int8_cost_note(backend.desc)}", file=sys.stderr)
    approximate = getattr(backend, "approximate", None)
    if approximate and args.halo is not None and not (args.mode == "tile" and args.tile == 0):
        log(f"{backend.source}: {approximate}: --halo {args.halo} tiles it anyway; the output is approximate "
            "(seams)")
    elif args.halo is not None and args.halo != backend.caps.halo:
        log(f"--halo {args.halo} replaces the exact halo {backend.caps.halo}: the output is NOT exact (seams)")
    options = RunOptions(mode=args.mode, tile=args.tile, halo=args.halo, rows=args.rows, batch=args.batch,
                         max_memory=args.max_memory,
                         quality=args.quality, max_pixels=int(args.max_pixels), progress=not args.quiet)
    up = Upscaler(backend, options, log)
    failed = 0

    def work(src: Path, before_rename=None) -> None:
        with tqdm(unit="tile" if args.mode == "tile" else "row", desc=src.name, leave=False, delay=0.5,
                  disable=args.quiet, file=sys.stderr) as bar, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            up.upscale_file(src, outputs[src], bar, before_rename)
        for w in caught:
            log(f"{src}: {w.message}")

    def one(src: Path, wait: bool = False) -> None:
        nonlocal failed
        try:
            if job is None:
                work(src)
            else:
                job.attempt(src, outputs[src], work, wait)
        except (MemsrError, OSError) as e:
            if not batch:
                raise
            failed += 1
            msg = str(e) if isinstance(e, MemsrError) else f"{src}: {e.strerror or e}"
            tqdm.write(f"error: {msg}", file=sys.stderr)

    for src in tqdm(files, unit="file", disable=args.quiet or len(files) < 2, file=sys.stderr):
        one(src)
    if job is not None:
        job.finish(outputs, one, folders)
    if failed:
        print(f"error: {failed} of {len(files)} files failed", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
