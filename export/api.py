"""export_model: one model, one target, one precision -> a verified artefact and its sidecar.

The artefact is built and verified in a staging folder inside ``out_dir``; only an artefact that passed
verification is moved into place (then its sidecar is written), so a failed export leaves nothing behind and
never replaces an earlier good one.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import asdict
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from memsr_deploy.errors import MemsrError
from memsr_deploy.formats.vocabulary import TARGET_PRECISIONS, TARGETS
from memsr_deploy.formats.sidecar import Sidecar, file_sha256, read_sidecar, sidecar_text, write_sidecar

from . import shapes, tflite_export
from memsr_deploy.runtime.backends.quiet import quiet
from .source import Source, load_source
from .verify import LIMITS, finish, verify as run_verification

EXTENSIONS = {"onnx": "onnx", "tflite": "tflite", "coreml": "mlpackage", "ncnn": "param"}
PRECISIONS = TARGET_PRECISIONS
D2S_MODES = tflite_export.D2S_MODES
TOOLS = {"onnx": ("onnx", "onnxruntime", "onnxsim", "onnxscript"),
         "tflite": ("ai-edge-litert", "flatbuffers"),
         "coreml": ("coremltools",),
         "ncnn": ("ncnn",)}


def supported(source: Source, target: str, precision: str) -> str | None:
    """Why this combination cannot be exported, or None when it can."""
    if target not in TARGETS:
        return f"unknown target {target!r}; expected one of {', '.join(TARGETS)}"
    if precision not in PRECISIONS[target]:
        return f"{target} supports precisions {', '.join(PRECISIONS[target])}, not {precision!r}"
    if target != "onnx" and source.desc.kind == "foreign":
        return f"another project's model exports to ONNX only, not {target}"
    if target != "onnx" and not source.is_plain:
        return f"{source.desc.kind} models export to ONNX only; convert to a plain net first (memsr-convert)"
    if target == "ncnn":
        from .ncnn_export import unsupported
        return unsupported(source.weights_for(precision), precision)
    return None


def default_name(source: Source, target: str, input_size, d2s: str) -> str:
    # The target is part of the name: sidecars are NAME_PRECISION.json whatever the extension.
    name = f"{source.name}_{target}"
    if input_size is not None:
        name += f"_{input_size[0]}x{input_size[1]}"
    if d2s == "transposed-conv":
        name += "_tconv"
    return name


def output_names(source: Source, target: str, precision: str, input_size=None, name: str | None = None,
                 d2s: str = "depth_to_space") -> tuple[str, str]:
    """(artefact file name, sidecar file name) that export_model writes in its output folder."""
    stem = (name or default_name(source, target, input_size, d2s)).replace(".", "_")
    return f"{stem}_{precision}.{EXTENSIONS[target]}", f"{stem}_{precision}.json"


def data_output_name(target: str, file: str) -> str | None:
    """The second file a two-file artefact writes beside ``file`` (ncnn: the .bin), or None."""
    if target != "ncnn":
        return None
    from .ncnn_export import data_name
    return data_name(file)


STAGING_MARK = ".staging-"


def _remove_stale_staging(out_dir: Path) -> None:
    """Staging folders of exports that were killed (SIGKILL, power loss): their process is gone. SIGTERM and
    SIGINT remove their own (the ``finally`` below); this clears what a hard kill left behind."""
    for p in out_dir.glob(f".*{STAGING_MARK}*"):
        try:
            pid = int(p.name.split(STAGING_MARK, 1)[1].split(".", 1)[0])
        except ValueError:
            continue
        if p.is_dir() and not _alive(pid):
            shutil.rmtree(p, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def tool_versions(target: str) -> dict:
    out = {}
    for pkg in ("memsr", "torch", "numpy", *TOOLS[target]):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            continue
    return out


def _build(source: Source, target: str, precision: str, path: Path, input_size, calib_dir, d2s: str,
           tiles) -> dict:
    """Write the artefact; returns build facts for the sidecar's verification block."""
    if target == "onnx":
        from .onnx_export import build_onnx
        build_onnx(source, path, input_size)
        return {}
    if target == "tflite":
        from .tflite_export import QUANTISED, build_tflite
        calibration = None
        if precision in QUANTISED:
            from .calibration import calibration_samples
            calibration = calibration_samples(source.scale, calib_dir, input_size, value_range=source.value_range)
        return build_tflite(source, path, precision, input_size, calibration, d2s)
    if target == "ncnn":
        from .ncnn_export import build_ncnn
        return build_ncnn(source, path, precision, input_size)
    from .coreml_export import build_coreml
    build_coreml(source, path, precision, input_size, tiles)
    return {}


def _checks(source: Source, target: str, precision: str, path: Path, d2s: str):
    """(I/O description for the sidecar, facts about the graph, structural failures)."""
    float_io = {"dtype": "float32", "quant": None}
    if target == "onnx":
        from .onnx_export import op_counts, structure_failures
        import onnx
        ops = op_counts(onnx.load(str(path), load_external_data=False))
        return (float_io, float_io), {"ops": ops}, structure_failures(path)
    if target == "tflite":
        from .tflite_export import io_details, structure_failures
        ops, failures = structure_failures(path, source, precision, d2s)
        return io_details(path), {"ops": ops}, failures
    if target == "ncnn":
        from .ncnn_export import structure_failures
        ops, failures = structure_failures(path, source, precision)
        return (float_io, float_io), {"ops": ops}, failures
    from .coreml_mil import op_counts
    return (float_io, float_io), {"ops": op_counts(path)}, []


def _runner(sidecar: Path, target: str, source: Source):
    """The artefact as ``memsr-upscale --artefact`` runs it: the runtime's backend for the staged sidecar.
    Off macOS a Core ML artefact cannot be predicted; its saved program is executed instead (coreml_mil),
    behind the same Core ML backend (sidecar decoding, shapes and output checks)."""
    from memsr_deploy.runtime.backends import open_backend
    from .verify import BackendRunner
    if target == "coreml" and sys.platform != "darwin":
        from memsr_deploy.runtime.backends.coreml_backend import CoreMLBackend
        from .coreml_mil import MilProgramRunner
        program = MilProgramRunner(sidecar.with_name(read_sidecar(sidecar, check_file=False).file))
        return BackendRunner(CoreMLBackend(sidecar, program=program), source.value_range, program.description)
    with quiet():  # the XNNPACK delegate announces itself on stderr
        backend = open_backend(artefact=sidecar, threads=2)
    return BackendRunner(backend, source.value_range,
                         f"memsr runtime backend {backend.name} ({_runtime_version(target)})")


def _ncnn_fp16_check(sidecar: Path, source: Source, precision: str, max_photos, progress) -> dict:
    """The ncnn artefact as a stock ncnn app runs it where the CPU has fp16 arithmetic (ncnn's default: fp16
    storage and arithmetic), judged by its own limits; recorded, not a failure of the export, since memsr's runner
    is fp32. On a CPU without fp16 ncnn ignores the options: said so instead (the arm64 check measures it)."""
    from memsr_deploy.runtime.backends.ncnn_backend import NcnnBackend, fp16_effective
    from .verify import NCNN_FP16_LIMITS, BackendRunner
    if not fp16_effective():
        return {"passed": None, "skipped": "this CPU has no fp16 arithmetic, so ncnn runs fp32 whatever the options; "
                                          "benchmarks/arm64_check.py measures fp16 on arm64 (verification.arm64)"}
    with quiet():
        backend = NcnnBackend(sidecar, threads=2, fp16=True)
    runner = BackendRunner(backend, source.value_range, f"ncnn fp16 storage and arithmetic ({_runtime_version('ncnn')})")
    return run_verification(runner, source, precision, max_photos, progress, limits=NCNN_FP16_LIMITS[precision])


def _runtime_version(target: str) -> str:
    pkg = {"onnx": "onnxruntime", "tflite": "ai-edge-litert", "coreml": "coremltools", "ncnn": "ncnn"}[target]
    try:
        return f"{pkg} {version(pkg)}"
    except PackageNotFoundError:
        return pkg


def _shape_fields(target: str, path: Path, input_size, tiles) -> tuple[list | None, dict | None]:
    if input_size is not None:
        return [int(input_size[0]), int(input_size[1])], None
    if target == "coreml":
        from .coreml_package import shape_bounds, shapes_of
        if not tiles:
            return None, shape_bounds(path)
        wins = sorted(shapes_of(path))
        return None, {"min": list(wins[0]), "max": list(wins[-1]), "enumerated": [list(w) for w in wins]}
    return None, {"min": [1, 1], "max": [shapes.MAX_SIDE, shapes.MAX_SIDE]}


def _install(staged: Path, dest: Path) -> None:
    """Move a staged file or .mlpackage folder onto ``dest``; an earlier artefact is renamed away first."""
    old = None
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(dest, old)
    os.replace(staged, dest)
    if old is not None:
        shutil.rmtree(old) if old.is_dir() else old.unlink()


def export_model(model, target: str, precision: str = "fp32", out_dir=".", input_size=None, calib_dir=None,
                 name: str | None = None, d2s: str = "depth_to_space", verify: bool = True, *,
                 coreml_tiles=None, max_photos: int | None = None, progress: bool = True,
                 tf_checks: bool | None = None) -> Path:
    """Export, verify, and write ``{name}_{precision}.{onnx|tflite|mlpackage|param}`` + ``{name}_{precision}.json``
    (ncnn: the .param's ``.bin`` too).

    ``model``: model path/stem or bundled name (or an already loaded ``Source``). ``input_size``: None for
    dynamic height/width, else (H, W) or "1x3xHxW"/"HxW": the fixed LR input, halo included.
    ``coreml_tiles``: Core ML only, core tiles for EnumeratedShapes instead of a RangeDim.
    ``max_photos``: verify on the first N evaluation photos only (all by default).
    ``tf_checks``: TFLite only, TensorFlow's interpreter and GPU compatibility analyzer (``tf_checks.py``) into
    the verification block; None: when tensorflow is installed (the ``[tf]`` extra), True: required.
    Returns the sidecar path. Raises MemsrError on bad input or failed verification (nothing written then).
    """
    source = model if isinstance(model, Source) else load_source(model)
    input_size = shapes.parse_input_size(input_size)
    if source.fixed is not None:   # another project's fixed-shape model: the artefact has its size
        if input_size is not None and tuple(input_size) != tuple(source.fixed):
            raise MemsrError(f"the model's input is fixed at {source.fixed[1]}x{source.fixed[0]} (W x H); it "
                             f"cannot be exported at {input_size[1]}x{input_size[0]}", source.desc.path)
        input_size = tuple(source.fixed)
    tiles = shapes.parse_tiles(coreml_tiles)
    why = supported(source, target, precision)
    if why:
        raise MemsrError(why, source.desc.path)
    if d2s not in D2S_MODES:
        raise MemsrError(f"unknown d2s mode {d2s!r}; expected one of {', '.join(D2S_MODES)}")
    if d2s != "depth_to_space" and target != "tflite":
        raise MemsrError("--d2s transposed-conv applies to TFLite only")
    if tiles and (target != "coreml" or input_size is not None):
        raise MemsrError("Core ML tiles (EnumeratedShapes) apply to a dynamic Core ML export only")
    if calib_dir is not None and not Path(calib_dir).is_dir():
        raise MemsrError("calibration folder not found", calib_dir)
    from . import tf_checks as tfc
    if tf_checks and target == "tflite" and not tfc.available():
        raise MemsrError(f"TensorFlow's checks need tensorflow ({tfc.INSTALL})")
    tile = shapes.default_tile(source.halo, input_size, tiles)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    file, sidecar_name = output_names(source, target, precision, input_size, name, d2s)
    if source.desc.path and (out_dir / file).resolve() == Path(source.desc.path).resolve():
        raise MemsrError("the artefact would replace the model it is exported from: give another -o or --name",
                         out_dir / file)
    data = data_output_name(target, file)
    _remove_stale_staging(out_dir)
    staging = Path(tempfile.mkdtemp(prefix=f".{Path(sidecar_name).stem}{STAGING_MARK}{os.getpid()}.", dir=out_dir))
    try:
        staged = staging / file
        t0 = time.perf_counter()
        weights = source.weights_for(precision)
        built = _build(weights, target, precision, staged, input_size, calib_dir, d2s, tiles)
        build_s = time.perf_counter() - t0
        (io_in, io_out), facts, failures = _checks(weights, target, precision, staged, d2s)
        input_shape, shape_range = _shape_fields(target, staged, input_size, tiles)
        layout = "NHWC" if target == "tflite" else "NCHW"
        vrange = [0.0, source.value_range]

        def sidecar_with(report: dict) -> Sidecar:
            return Sidecar(
                target=target, file=file, precision=precision, scale=source.scale, halo=source.halo, tile=tile,
                layout={"input": layout, "output": layout},
                input={**io_in, "range": vrange}, output={**io_out, "range": vrange},
                source_model=source.summary(precision), file_sha256=file_sha256(staged), input_shape=input_shape,
                data_file=data, data_sha256=file_sha256(staging / data) if data else None,
                shape_range=shape_range, verification=report, tools=tool_versions(target),
                created=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        t1 = time.perf_counter()
        if verify:
            # verified through the sidecar the runtime will read: write it (unverified) beside the staged file
            staged_sidecar = write_sidecar(sidecar_with({"passed": None, "pending": True}),
                                           staging / sidecar_name)
            runner = _runner(staged_sidecar, target, source)
            report = finish(run_verification(runner, source, precision, max_photos, progress), failures)
        else:
            report = {"passed": None, "skipped": True, "limits": asdict(LIMITS[precision]),
                      "failures": failures}
        report.update(facts, **built)
        if verify and target == "ncnn":
            report["ncnn_fp16"] = _ncnn_fp16_check(staging / sidecar_name, source, precision, max_photos, progress)
        if verify and target == "tflite" and tf_checks is not False:
            report["tensorflow"], tf_failures = tfc.tf_checks(staged, source.scale, source.value_range, input_size)
            finish(report, tf_failures)
        report["seconds"] = {"build": round(build_s, 3), "verify": round(time.perf_counter() - t1, 3)}
        if report["failures"]:
            raise MemsrError(f"verification failed: {'; '.join(report['failures'])} (nothing written)",
                             out_dir / file)
        sidecar = sidecar_with(report)
        sidecar_path = out_dir / sidecar_name
        sidecar_text(sidecar, sidecar_path)  # a figure JSON cannot hold is refused before anything is installed
        if data:
            _install(staging / data, out_dir / data)
        _install(staged, out_dir / file)
        return write_sidecar(sidecar, sidecar_path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
