"""memsr-profile: peak activation memory of SR models at phone-camera resolutions, predicted and measured."""
from __future__ import annotations

import hashlib
import sys
import tempfile
from pathlib import Path

from ..errors import MemsrError, cli_errors
from ..formats.tagged_json import dumps_strict
from ..formats import memory_budget as budget
from . import args as types

DESCRIPTION = """\
Peak activation memory of super-resolution models, per inference mode, predicted by walking the model's graph
in execution order with tensor liveness (a tensor lives from the op that makes it to its last reader), and
optionally measured as the RSS high-water mark of a fresh process (--measure).

RESOLUTION is the size of the INPUT photo, i.e. the camera image you want to upscale (the LR side); the output
is scale times larger on each side. Presets: 12MP 4000x3000, 48MP 8000x6000, 50MP 8160x6144, 100MP 12240x8160,
108MP 12000x9000, 200MP 16320x12240; also N MP (4:3) or WxH.

Modes: whole (one pass over the full image; the output image is part of the peak), tiled (the exact tile plan:
one window of tile + 2*halo LR pixels at a time; full input/output images not counted), stream (strips of
--rows LR rows over the full width: plain models, and ONNX graphs that are one chain of stride-1 convs, pixel
shuffles and pointwise ops such as ESPCN; budget rule of memsr_deploy.formats.memory_budget).
Backends for the prediction: ideal (ReLU/adds in place, no workspace: the runtime's budget rule, matched by
ONNX Runtime), onnxruntime (same), torch (PyTorch eager on CPU: out-of-place ops plus oneDNN layout copies)."""


def build_parser() -> types.Parser:
    p = types.Parser(prog="memsr-profile", description=DESCRIPTION,
                     formatter_class=types.argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="*", metavar="MODEL",
                   help="model file (stem, .json or .safetensors), bundled name, EDSR checkpoint (.pt/.pth/.ckpt/"
                        ".safetensors), .onnx file, or .tflite file "
                        "with its sidecar (walked as its source model, measured with LiteRT) "
                        "(default: the bundled student for --scale)")
    p.add_argument("--scale", type=types.positive_int,
                   choices=(2, 3, 4), default=2, help="scale of the default bundled model (default 2)")
    p.add_argument("--resolution", default="12MP,48MP,100MP,200MP",
                   help="comma-separated INPUT photo sizes: presets, N MP or WxH (default %(default)s)")
    p.add_argument("--mode", default="whole,tiled,stream", help="comma-separated: whole, tiled, stream")
    p.add_argument("--tile", type=types.positive_int,
                   default=512, help="core tile side in LR pixels for tiled mode (default 512)")
    p.add_argument("--halo", type=types.non_negative_int, default=None,
                   help="tile halo in LR pixels (default: the model's receptive radius, the exact halo)")
    p.add_argument("--rows", type=types.positive_int,
                   default=16, help="strip height in LR rows for stream mode (default 16)")
    p.add_argument("--dtype", default="fp32",
                   help="activation type: fp32, fp16 or int8 (default fp32); int8 prices the graph --precision int8 "
                        "runs, at fp32's bytes where it keeps conv outputs in float (mixed precision)")
    p.add_argument("--backend", default="ideal", help="prediction model: ideal, onnxruntime or torch (default ideal)")
    p.add_argument("--process", metavar="RUNTIME", choices=("onnxruntime", "litert", "torch"),
                   help="also predict the peak RSS of the whole memsr-upscale process (Python, libraries and runtime "
                        "at rest, weights, image rows and bands, activations: the model --max-memory plans with) "
                        "for a JPEG -> PNG job on this runtime: onnxruntime, litert or torch")
    p.add_argument("--measure", action="store_true",
                   help="also run each model (whole and tiled modes; tiled: the whole image's tile loop, full input "
                        "and output images held) in a fresh process and measure its RSS peak on torch or "
                        "onnxruntime (litert: whole only); heavy: runs are skipped when they would not fit in the "
                        "free RAM")
    p.add_argument("--measure-backend", default=None,
                   help="torch, onnxruntime or litert (default: torch for model files, onnxruntime for .onnx, "
                        "litert for .tflite)")
    p.add_argument("--threads", type=types.positive_int,
                   default=1, help="intra-op threads of measured runs (default 1)")
    p.add_argument("--per-layer", action="store_true", help="print the live bytes of every op of each prediction")
    p.add_argument("--plot", metavar="PNG", help="draw memory vs megapixels per model and mode (log scale)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --plot file")
    p.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    return p


def _split(text: str, allowed: tuple[str, ...], what: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in items if t not in allowed]
    if bad or not items:
        raise MemsrError(f"unknown {what} {bad[0] if bad else text!r}; expected some of {', '.join(allowed)}")
    return items


def _note(pred) -> str:
    d = pred.details
    if pred.mode == "tiled":
        return f"tile {d['tile']} + 2x{d['halo']} halo: window {d['window'][1]}x{d['window'][0]}, {d['windows']} windows"
    if pred.mode == "stream":
        return f"{d['rows']}-row strips"
    return f"peak at {pred.peak_node}"


def _activation_dtype(subject, dtype: str) -> tuple[str | int, str]:
    """The dtype to predict ``subject`` at, and a note when it is not ``dtype``: an int8 run reads the int8
    sibling where the model names one, and a mixed int8 graph is priced by the runtime's own rule
    (``onnx_graph.activation_bytes``: a float conv holds its maps in float32)."""
    if dtype != "int8" or subject.desc is None or not subject.desc.is_plain:
        return dtype, ""
    from ..formats.model_file import int8_model, read_description
    from ..formats.onnx_graph import activation_bytes, int8_float_tensors
    sibling = int8_model(subject.desc)
    int8_desc = read_description(sibling) if sibling is not None else subject.desc
    n = activation_bytes(int8_desc, dtype)
    if n == budget.dtype_bytes(dtype):
        return dtype, ""
    kept = ", ".join(str(i) for i in sorted(int8_float_tensors(int8_desc)))
    return n, f"mixed int8 (conv outputs {kept} in float32): {n} bytes per activation"


def _onnx_for(subject, workdir: Path) -> Path:
    """An ONNX file for a torch subject (dynamic H/W), for measuring with ONNX Runtime: the one ONNX builder,
    so a plain net is measured as the graph memsr-upscale runs and memsr-export writes."""
    if subject.onnx_model is not None:   # an .onnx file, or a checkpoint's graph exported in memory
        if Path(subject.path).suffix == ".onnx":
            return Path(subject.path)
        import onnx
        path = workdir / f"{Path(subject.path).stem}-{hashlib.sha256(subject.path.encode()).hexdigest()[:12]}.onnx"
        if not path.exists():
            onnx.save_model(subject.onnx_model, str(path))
        return path
    import onnx

    from ..formats.onnx_graph import model_to_onnx
    # Keyed by the model file, not the display name: two models called model.json must not share one ONNX.
    key = subject.path or subject.name
    path = workdir / f"{Path(subject.name).stem}-{hashlib.sha256(key.encode()).hexdigest()[:12]}.onnx"
    if not path.exists():
        plain_file = subject.path if subject.desc is not None and subject.desc.is_plain else None
        onnx.save_model(model_to_onnx(plain_file or subject.module), str(path))
    return path


def _measure_rows(rows, subjects, dtypes, args, workdir: Path) -> None:
    import psutil
    from tqdm import tqdm

    from ..profiler.analytic import measured_prediction
    from ..profiler.measure import explain_ort_gap, measure_peak

    todo = [r for r in rows if r.predicted is not None]
    for r in tqdm(todo, desc="measuring", unit="run", file=sys.stderr, disable=len(todo) < 2):
        sub = subjects[r.model]
        backend = args.measure_backend or ("onnxruntime" if sub.kind == "onnx" else
                                           "litert" if sub.artefact else "torch")
        r.measured_backend = backend
        if r.mode == "stream":
            # the strip rule's carries live inside a per-layer runner (runtime.stream); a session runs whole graphs
            r.note += f"; stream not measured on {backend}"
            continue
        if backend == "torch" and sub.kind == "onnx":
            raise MemsrError("an ONNX file is measured with --measure-backend onnxruntime", sub.path)
        if backend == "litert" and not sub.artefact:
            raise MemsrError("LiteRT measures .tflite files: give the exported .tflite as MODEL", sub.path)
        if r.mode != "whole" and backend == "litert":
            r.note += f"; {r.mode} not measured on litert"
            continue
        r.expected_rss = measured_prediction(sub, r.height, r.width, backend, dtypes[r.model], r.mode, args.tile)
        free = psutil.virtual_memory().available
        if r.expected_rss > 0.8 * free:
            r.note += f"; not measured: needs ~{r.expected_rss / 2 ** 30:.1f} GiB, {free / 2 ** 30:.1f} GiB free"
            continue
        target = {"torch": sub.path, "litert": sub.artefact}.get(backend) or _onnx_for(sub, workdir)
        if backend == "litert":
            r.note += "; litert expected = ideal walk + I/O copies, a lower bound (XNNPACK not modelled)"
        m = measure_peak(target, backend, r.height, r.width, threads=args.threads,
                         tile=args.tile if r.mode == "tiled" else 0, dtype=args.dtype, halo=sub.halo,
                         scale=sub.scale)
        r.measured, r.measured_seconds, r.settings = m.peak_bytes, m.seconds, m.settings
        if backend == "onnxruntime":
            why = explain_ort_gap(target, r.expected_rss, m.peak_bytes, r.height, r.width, threads=args.threads,
                                  tile=args.tile if r.mode == "tiled" else 0, dtype=args.dtype, halo=sub.halo,
                                  scale=sub.scale)
            r.note += f"; {why}" if why else ""


def _process(subject, height: int, width: int, mode: str, dtype, args) -> int | None:
    """The whole memsr-upscale process's predicted peak RSS (runtime.footprint: the model --max-memory plans
    with); None where that runtime does not run this subject."""
    from ..runtime import footprint
    if subject.desc is None or (args.process != "torch" and not subject.desc.is_plain):
        return None
    rt = footprint.Runtime(args.process, subject.desc, budget.dtype_bytes(dtype),
                           subject.module if args.process == "torch" else None,
                           layered_stream=args.process == "torch" and subject.desc.is_plain)
    plan = footprint.predict(rt, footprint.Frame(height, width), {"tiled": "tile"}.get(mode, mode),
                             tile=args.tile, rows=args.rows)
    return plan.total


@cli_errors
def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from ..profiler.analytic import MODES, load_subject, predict, stream_links, why_no_stream
    from ..formats.runtime_memory import BACKENDS
    from ..profiler.report import Row, parse_resolution, plot, table

    modes = _split(args.mode, MODES, "mode")
    if args.backend not in BACKENDS:
        raise MemsrError(f"unknown backend {args.backend!r}; expected one of {', '.join(BACKENDS)}")
    if args.measure_backend not in (None, "torch", "onnxruntime", "litert"):
        raise MemsrError(f"unknown measuring backend {args.measure_backend!r}; expected torch, onnxruntime or "
                         "litert")
    budget.dtype_bytes(args.dtype)
    resolutions = [parse_resolution(t) for t in args.resolution.split(",") if t.strip()]
    if not resolutions:
        raise MemsrError("no resolution given")
    specs = args.models
    if not specs:
        from ..formats.registry import default_model
        specs = [default_model(args.scale)]
    if args.plot:
        from ..outputs.plan import check_outputs, model_pair_inputs
        check_outputs([args.plot], inputs=[*model_pair_inputs(*specs), *specs], overwrite=args.overwrite)

    subjects = {}
    for spec in specs:
        sub = load_subject(spec)
        if args.halo is not None:
            exact = sub.halo
            sub.halo = args.halo
            if exact is None or args.halo < exact:
                sub.halo_note = (f"approximate: --halo {args.halo} " + (f"is under the exact {exact}" if exact is not None
                                 else f"where the graph gives {sub.halo_note or 'no exact halo'}"))
        if sub.name in subjects and sub.path:  # model files are often all called model.json: name the folder
            sub.name = f"{Path(sub.path).parent.name}/{sub.name}"
        while sub.name in subjects:
            sub.name += "'"
        subjects[sub.name] = sub

    teacher = next((s for s in subjects.values() if s.is_teacher), None)
    rows, preds, dtypes = [], [], {}
    for sub in subjects.values():
        sub_resolutions = resolutions
        if sub.fixed is not None:   # its own shape, once; every other size is one n/a row
            own = f"{sub.fixed[1]}x{sub.fixed[0]}"
            for label, h, w in resolutions:
                if (h, w) != sub.fixed:
                    rows.append(Row(model=sub.name, kind=sub.kind, mode="whole", resolution=label, height=h,
                                    width=w, scale=sub.scale, dtype=args.dtype, backend=args.backend,
                                    predicted=None, note=f"n/a: fixed input shape {own}; profiled at that size"))
            sub_resolutions = [(own, *sub.fixed)]
        dtypes[sub.name], dtype_note = _activation_dtype(sub, args.dtype)
        for label, h, w in sub_resolutions:
            teacher_whole = None
            if teacher is not None:
                teacher_whole = predict(teacher, h, w, "whole", args.dtype, args.backend).peak_bytes
            for mode in modes:
                base = dict(model=sub.name, kind=sub.kind, mode=mode, resolution=label, height=h, width=w,
                            scale=sub.scale, dtype=args.dtype, backend=args.backend)
                if mode == "stream" and stream_links(sub) is None:
                    rows.append(Row(**base, predicted=None, note=f"n/a: {why_no_stream(sub)}"))
                    continue
                if mode == "tiled" and sub.halo is None:
                    rows.append(Row(**base, predicted=None, note=f"n/a: {sub.halo_note}; --halo N profiles an "
                                                                 "approximate tile plan"))
                    continue
                backend = "ideal" if mode == "stream" else args.backend
                pred = predict(sub, h, w, mode, dtypes[sub.name], backend, tile=args.tile, rows=args.rows)
                preds.append(pred)
                note = "; ".join(n for n in (_note(pred), sub.halo_note if mode == "tiled" else "", dtype_note) if n)
                rows.append(Row(**base, predicted=pred.peak_bytes, note=note,
                                vs_teacher=pred.peak_bytes / teacher_whole if teacher_whole else None,
                                process=_process(sub, h, w, mode, dtypes[sub.name], args) if args.process else None))

    if args.measure:
        with tempfile.TemporaryDirectory(prefix="memsr-profile-") as tmp:
            _measure_rows(rows, subjects, dtypes, args, Path(tmp))

    if args.json:
        print(dumps_strict({"rows": [r.to_dict() for r in rows],
                          "layers": [p.to_dict(per_layer=True) for p in preds] if args.per_layer else None},
                         indent=2))
    else:
        print(table(rows, markdown=args.markdown))
        if args.per_layer:
            for p in preds:
                print(f"\n{p.model} {p.mode} {p.width}x{p.height} {p.dtype} ({p.backend}):")
                for n in p.nodes:
                    ws = f"  (+{n.workspace_bytes / 2 ** 20:.1f} MiB workspace)" if n.workspace_bytes else ""
                    print(f"  {n.name:<24} {n.op:<16} {n.live_bytes / 2 ** 20:>12.1f} MiB live{ws}")
    if args.plot:
        plot(rows, args.plot)
        print(f"plot written to {args.plot}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
