"""memsr-upscale: super-resolve photos with exact tiling or streaming, in bounded memory.

    memsr-upscale photo.jpg                          # bundled x2 student -> photo_x2.jpg
    memsr-upscale photo.jpg -o big.tif --scale 4     # TIFF output is streamed to disk (any size)
    memsr-upscale photos/ -o out/ --max-memory 512M  # a folder; tile size chosen from the budget
    memsr-upscale photo.png --artefact memsr_x2_fp32.json --threads 4
    memsr-upscale photo.png --mode stream            # strips, memory ~ width
    memsr-upscale photo.png --precision int8         # int8 model: faster, slightly lower quality
    memsr-upscale photo.png --backend torch --threads 1
"""
from __future__ import annotations

import argparse
import glob
import sys
import warnings
from pathlib import Path

from ..errors import MemsrError, cli_errors


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="memsr-upscale", description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n".join(__doc__.split("\n")[2:]))
    p.add_argument("inputs", nargs="+", help="image files, folders or glob patterns (JPEG, PNG, TIFF, WebP, BMP)")
    p.add_argument("-o", "--output", help="output file (one input) or folder (several inputs or a folder); "
                                          "default: NAME_xS.EXT beside each input")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--model", help="model file (NAME, NAME.json or NAME.safetensors) or bundled name")
    src.add_argument("--artefact", help="exported artefact or its sidecar .json (ONNX Runtime, LiteRT, Core ML)")
    p.add_argument("--scale", type=int, choices=(2, 3, 4), help="upscaling factor (picks the bundled model; "
                                                                "checked against a given model)")
    p.add_argument("--backend", choices=("auto", "onnxruntime", "litert", "torch"), default="auto",
                   help="runtime for a model file: auto (default) = ONNX Runtime when installed (graph built in "
                        "memory, no export step), else PyTorch; litert writes the model in memory too; an artefact "
                        "runs on its own runtime")
    p.add_argument("--precision", choices=("fp32", "int8"), default="fp32",
                   help="fp32 (default, exact) or int8 (the model's int8 version, on LiteRT by default: several "
                        "times faster, at the quality cost it prints)")
    p.add_argument("--mode", choices=("tile", "stream"), default="tile",
                   help="tile: exact tiling (default); stream: full-width row strips (memory ~ image width)")
    p.add_argument("--tile", type=int, help="core tile in LR pixels (>= 1), 0 = whole image at once")
    p.add_argument("--rows", type=int, help="strip height in LR rows for --mode stream "
                                            "(default: about 64k pixels per strip, 4 to 64 rows)")
    p.add_argument("--halo", type=int, help="override the exact halo (demonstration only: seams appear)")
    p.add_argument("--batch", type=int, help="windows per backend call (default: automatic)")
    p.add_argument("--max-memory", help="activation memory budget, e.g. 512M or 2G: picks the tile / strip size")
    p.add_argument("--threads", type=int, help="CPU threads for the backend (default: every core)")
    p.add_argument("--quality", type=int, default=95, help="JPEG/WebP quality (default 95)")
    p.add_argument("--ext", help="output format for folder runs (png, jpg, tif, webp, bmp); default: the input's")
    p.add_argument("--max-pixels", type=float, default=250e6,
                   help="refuse inputs above this many pixels (decompression-bomb guard; default 250e6)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    return p


def expand_inputs(items: list[str]) -> tuple[list[Path], bool]:
    """Files to process, and whether the run is a batch (folder, glob or several inputs)."""
    from ..imageio import READABLE
    files, batch = [], len(items) > 1
    for item in items:
        p = Path(item)
        if p.is_dir():
            batch = True
            found = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in READABLE)
            if not found:
                raise MemsrError("folder holds no images (JPEG, PNG, TIFF, WebP, BMP)", p)
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


def output_for(src: Path, args, scale: int, batch: bool) -> Path:
    ext = ("." + args.ext.lstrip(".")) if args.ext else src.suffix
    name = f"{src.stem}_x{scale}{ext}"
    if args.output is None:
        return src.with_name(name)
    out = Path(args.output)
    if batch or out.is_dir() or args.output.endswith(("/", "\\")):
        if out.exists() and not out.is_dir():
            raise MemsrError("several inputs need -o to be a folder", out)
        return out / name
    return out


@cli_errors
def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from tqdm import tqdm

    from ..runtime import RunOptions, Upscaler, open_backend, parse_size

    def log(msg: str) -> None:
        tqdm.write(f"warning: {msg}", file=sys.stderr)

    if args.tile is not None and args.tile < 0:
        raise MemsrError(f"--tile must be >= 0 (0 = whole image), got {args.tile}")
    if args.rows is not None and args.rows < 1:
        raise MemsrError(f"--rows must be >= 1, got {args.rows}")
    if args.halo is not None and args.halo < 0:
        raise MemsrError(f"--halo must be >= 0, got {args.halo}")
    for flag, value in (("--batch", args.batch), ("--threads", args.threads)):
        if value is not None and value < 1:
            raise MemsrError(f"{flag} must be >= 1, got {value}")
    if not 1 <= args.quality <= 100:
        raise MemsrError(f"--quality must be in 1..100, got {args.quality}")
    files, batch = expand_inputs(args.inputs)
    backend = open_backend(model=args.model, artefact=args.artefact, threads=args.threads, scale=args.scale,
                           backend=args.backend, precision=args.precision)
    if args.precision == "int8":
        from ..formats.onnx_graph import int8_cost_note
        print(f"note: {int8_cost_note(backend.desc)}", file=sys.stderr)
    if args.halo is not None and args.halo != backend.caps.halo:
        log(f"--halo {args.halo} replaces the exact halo {backend.caps.halo}: the output is NOT exact (seams)")
    options = RunOptions(mode=args.mode, tile=args.tile, halo=args.halo, rows=args.rows, batch=args.batch,
                         max_memory=parse_size(args.max_memory) if args.max_memory else None,
                         quality=args.quality, max_pixels=int(args.max_pixels), progress=not args.quiet)
    up = Upscaler(backend, options, log)
    failed = 0
    outer = tqdm(files, unit="file", disable=args.quiet or len(files) < 2, file=sys.stderr)
    for src in outer:
        try:
            dst = output_for(src, args, backend.caps.scale, batch)
            with tqdm(unit="tile" if args.mode == "tile" else "row", desc=src.name, leave=False, delay=0.5,
                      disable=args.quiet, file=sys.stderr) as bar, warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                up.upscale_file(src, dst, bar)
            for w in caught:
                log(f"{src}: {w.message}")
        except (MemsrError, OSError) as e:
            if not batch:
                raise
            failed += 1
            msg = str(e) if isinstance(e, MemsrError) else f"{src}: {e.strerror or e}"
            tqdm.write(f"error: {msg}", file=sys.stderr)
    if failed:
        print(f"error: {failed} of {len(files)} files failed", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
