"""The sidecar JSON that sits beside every exported artefact (ARTEFACT.json next to ARTEFACT.tflite/.onnx/...).

The tiled runtime, the on-device benchmark and the Android demo read only this file to run an artefact:
scale, halo (the model's receptive radius in LR pixels), tile size, layout, dtype/range/quantisation of
input and output, fixed shape or range, precision, verification figures, checksums and tool versions.

Fields (version 1):
  format "memsr-artefact", version 1
  target        "onnx" | "tflite" | "coreml" | "ncnn"
  file          artefact file name, relative to the sidecar (ncnn: the .param)
  file_sha256   checksum of the artefact
  data_file     the second file of a two-file artefact, relative to the sidecar (ncnn: the .bin, required there);
                absent for one-file artefacts
  data_sha256   its checksum (present exactly when data_file is)
  precision     "fp32" | "fp16" | "dynamic" | "int8" | "int8-uint8io"
  scale         2 | 3 | 4
  halo          LR pixels of context per side that exact tiling needs (= receptive_radius)
  receptive_radius  same number, named as in the model description
  tile          core tile edge in LR pixels that the runtime should use by default (input = tile + 2*halo)
  input_shape   [H, W] of a fixed-shape artefact (LR, halo included), or null when dynamic
  shape_range   {"min": [h, w], "max": [h, w]} for dynamic artefacts, else null
  layout        {"input": "NCHW"|"NHWC", "output": "NCHW"|"NHWC"}
  input / output  {"dtype": "float32"|"float16"|"uint8"|"int8", "range": [lo, hi],
                   "quant": {"scale": float, "zero_point": int} or null}
  channel_order "RGB"
  source_model  {"name", "kind", "path", "weights_sha256", "receptive_radius", "layer_widths", "layer_acts",
                 optional "tail": "shuffle" (absent: the one-conv tail) | "upsampler" (EDSR's: a pixel shuffle
                 after each LR-side tail conv, then a conv at the output resolution; plain_layout.py),
                 optional "int8_float_tensors": [conv index, ...] (a mixed-precision int8 artefact: those conv
                 outputs are float32, so its memory budget counts 4 bytes per activation)}
  verification  {"passed": bool, "max_abs_diff": float, "psnr_y_vs_torch": float, ...}; a PSNR of identical
                outputs is infinite and written as null (strict JSON: no NaN/Infinity, see tagged_json.dumps_strict);
                optional blocks: "tensorflow" (TFLite: TF's interpreter against LiteRT's, TF's GPU delegate
                compatibility analyzer; export/tf_checks.py), "ncnn_fp16" (ncnn: the artefact with ncnn's fp16
                arithmetic, verified where the CPU has it), "arm64" (the aarch64 runtimes under qemu,
                benchmarks/arm64_check.py)
  tools         {"torch": "2.13.0", ...}
  created       ISO 8601 UTC
"""
from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field, asdict
from pathlib import Path

from ..outputs.atomic import write_text
from ..errors import MemsrError
from ..method.plain_layout import TAILS
from .vocabulary import PRECISIONS, TARGETS
from .tagged_json import dumps_strict, read_tagged_json

FORMAT = "memsr-artefact"
VERSION = 1


@dataclass
class Sidecar:
    target: str
    file: str
    precision: str
    scale: int
    halo: int
    tile: int
    layout: dict
    input: dict
    output: dict
    source_model: dict
    file_sha256: str = ""
    data_file: str | None = None
    data_sha256: str | None = None
    input_shape: list[int] | None = None
    shape_range: dict | None = None
    channel_order: str = "RGB"
    verification: dict = field(default_factory=dict)
    tools: dict = field(default_factory=dict)
    created: str = ""
    path: str | None = None  # where it was read from; not written

    @property
    def receptive_radius(self) -> int:
        return self.halo

    @property
    def fixed_shape(self) -> bool:
        return self.input_shape is not None

    def artefact_path(self) -> Path:
        base = Path(self.path).parent if self.path else Path(".")
        return base / self.file

    def data_path(self) -> Path | None:
        """The second file of a two-file artefact (ncnn's .bin), or None."""
        if self.data_file is None:
            return None
        return self.artefact_path().with_name(self.data_file)

    def to_json(self) -> dict:
        d = asdict(self)
        d.pop("path")
        if self.data_file is None:  # one-file artefacts keep the fields older readers know
            d.pop("data_file")
            d.pop("data_sha256")
        return {"format": FORMAT, "version": VERSION, **d, "receptive_radius": self.halo}


def sidecar_path(artefact) -> Path:
    """ARTEFACT.json for ARTEFACT.tflite / .onnx / .mlpackage / .param (or its .bin)."""
    p = Path(artefact)
    return p.with_name(p.name.split(".")[0] + ".json") if p.suffix != ".json" else p


def file_sha256(path) -> str:
    path = Path(path)
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:  # an .mlpackage is a folder: hash its files in a fixed order
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def sidecar_text(sc: Sidecar, path=None) -> str:
    """The sidecar as strict JSON text; MemsrError (naming ``path``) for a figure JSON cannot hold."""
    return dumps_strict(sc.to_json(), path, indent=2) + "\n"


def write_sidecar(sc: Sidecar, path) -> Path:
    path = Path(path)
    write_text(path, sidecar_text(sc, path))
    return path


def read_sidecar(path, check_file: bool = True) -> Sidecar:
    """Read and validate a sidecar; given an artefact path, read the sidecar beside it."""
    path = sidecar_path(path)
    d = read_tagged_json(path, FORMAT, VERSION, "artefact sidecar", "sidecar JSON not found beside the artefact",
                         short="sidecar")
    validate_sidecar(d, path)
    fields = {k: d[k] for k in Sidecar.__dataclass_fields__ if k in d and k != "path"}
    sc = Sidecar(**fields, path=str(path))
    if check_file:
        art = sc.artefact_path()
        if not art.exists():
            raise MemsrError(f"artefact {sc.file} named by field 'file' is missing", path)
        if file_sha256(art) != sc.file_sha256:
            raise MemsrError(f"artefact does not match the checksum in field 'file_sha256' of its sidecar "
                             f"{path.name}", art)
        data = sc.data_path()
        if data is not None and not data.exists():
            raise MemsrError(f"artefact file {sc.data_file} named by field 'data_file' is missing", path)
        if data is not None and file_sha256(data) != sc.data_sha256:
            raise MemsrError(f"artefact file does not match the checksum in field 'data_sha256' of its sidecar "
                             f"{path.name}", data)
    return sc


# Checked in this order, with the same messages as the Android core's Sidecar.parse (android_demo/core), which
# tests/test_android_vectors.py holds to this code: a new check here needs its Java twin and a fault case in
# android_demo/make_test_vectors.py (field_faults).
REQUIRED = ("target", "file", "precision", "scale", "halo", "tile", "layout", "input", "output", "source_model",
            "file_sha256")
DTYPES = ("float32", "float16", "uint8", "int8")
LAYOUTS = ("NCHW", "NHWC")
TWO_FILE_TARGETS = ("ncnn",)   # artefacts of these targets are file + data_file
QUANT_RANGE = {"uint8": (0, 255), "int8": (-128, 127)}  # where an 8-bit tensor's zero point can be
INT32_MAX = 2 ** 31 - 1


def _int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _integral(v) -> bool:
    """An integer, or a float with an integer value (as the Android core's JSON reader accepts)."""
    return _int(v) or (isinstance(v, float) and math.isfinite(v) and v == int(v))


def _num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _same_number(v, n: int) -> bool:
    """v is the number n (11 or 11.0; not True for 1, which Python's == lets through)."""
    return _num(v) and v == n


def _hw(v) -> bool:
    return isinstance(v, list) and len(v) == 2 and all(_int(x) and x >= 1 for x in v)


def _file_name(f) -> bool:
    """A plain file name (no folder part), as ``file`` and ``data_file`` must be."""
    return isinstance(f, str) and bool(f) and Path(f).name == f and f not in (".", "..")


def _py(v) -> str:
    return "None" if v is None else str(v)


def validate_sidecar(d: dict, path) -> None:
    """Every field the runtime, benchmark and demo read: present, of the right type and range, consistent.
    Errors name the field (the runtime trusts halo for exact tiling and input/output for the pixel mapping)."""
    def bad(name: str, why: str):
        raise MemsrError(f"sidecar field {name!r} {why}", path)

    missing = [k for k in REQUIRED if k not in d]
    if missing:
        raise MemsrError(f"sidecar is missing fields ({', '.join(missing)})", path)
    if d["target"] not in TARGETS:
        raise MemsrError(f"unknown target {d['target']!r}", path)
    if d["precision"] not in PRECISIONS:
        raise MemsrError(f"unknown precision {d['precision']!r}", path)
    for name in ("scale", "halo", "tile"):
        if not _integral(d[name]):
            raise MemsrError(f"{name} must be an integer, got {_py(d[name])}", path)
    if d["scale"] not in (2, 3, 4):
        bad("scale", f"must be 2, 3 or 4, got {_py(d['scale'])}")
    for name, lo in (("halo", 0), ("tile", 1)):  # the phone's tile loop counts in 32-bit ints
        if not lo <= d[name] <= INT32_MAX:
            bad(name, f"must be from {lo} to {INT32_MAX}, got {_py(d[name])}")
    d["scale"], d["halo"], d["tile"] = int(d["scale"]), int(d["halo"]), int(d["tile"])
    f = d["file"]
    if not _file_name(f):
        bad("file", f"must be a file name beside the sidecar, got {f!r}")
    if not isinstance(d["file_sha256"], str) or not re.fullmatch(r"[0-9a-f]{64}", d["file_sha256"]):
        bad("file_sha256", "must be the artefact's SHA-256 hex digest")
    data, two_files = d.get("data_file"), d["target"] in TWO_FILE_TARGETS
    if data is not None and not two_files:
        bad("data_file", f"is given but {d['target']} artefacts are one file")
    if two_files:
        if not _file_name(data) or data == f:
            bad("data_file", f"must be a file name beside the sidecar other than 'file' ({d['target']} artefacts "
                             f"are two files), got {data!r}")
        if not isinstance(d.get("data_sha256"), str) or not re.fullmatch(r"[0-9a-f]{64}", d["data_sha256"]):
            bad("data_sha256", "must be the SHA-256 hex digest of data_file")
    elif d.get("data_sha256") is not None:
        bad("data_sha256", "is given but data_file is not")
    if "receptive_radius" in d and not _same_number(d["receptive_radius"], d["halo"]):
        bad("receptive_radius", f"is {d['receptive_radius']!r} but halo is {d['halo']!r} (they are one number)")
    layout = d["layout"]
    if not isinstance(layout, dict) or any(layout.get(k) not in LAYOUTS for k in ("input", "output")):
        bad("layout", f"must give input and output as NCHW or NHWC, got {layout!r}")
    for side in ("input", "output"):
        io = d[side]
        if not isinstance(io, dict):
            bad(side, "must be an object")
        if io.get("dtype") not in DTYPES:
            bad(f"{side}.dtype", f"is {io.get('dtype')!r}; expected one of {', '.join(DTYPES)}")
        rng = io.get("range")
        if not (isinstance(rng, list) and len(rng) == 2 and all(_num(x) for x in rng) and rng[0] < rng[1]):
            bad(f"{side}.range", f"must be [lo, hi] with finite lo < hi, got {rng!r}")
        q = io.get("quant")
        if q is not None and not (isinstance(q, dict) and _num(q.get("scale")) and q["scale"] > 0
                                  and _int(q.get("zero_point"))):
            bad(f"{side}.quant", f"must be null or {{scale > 0, integer zero_point}}, got {q!r}")
        if io["dtype"] in ("uint8", "int8") and q is None:
            bad(f"{side}.quant", f"is null but {side}.dtype is {io['dtype']} (no way to map pixels)")
        if io["dtype"] in QUANT_RANGE and q is not None:
            lo, hi = QUANT_RANGE[io["dtype"]]
            if not lo <= q["zero_point"] <= hi:
                bad(f"{side}.quant", f"zero_point {q['zero_point']} is outside {io['dtype']}'s {lo}..{hi}")
    shape, srange = d.get("input_shape"), d.get("shape_range")
    if shape is not None and not _hw(shape):
        bad("input_shape", f"must be null or [H, W] of positive integers, got {shape!r}")
    if srange is not None and not (isinstance(srange, dict) and _hw(srange.get("min")) and _hw(srange.get("max"))
                                   and all(a <= b for a, b in zip(srange["min"], srange["max"]))):
        bad("shape_range", f"must be null or {{min: [h, w], max: [h, w]}} with min <= max, got {srange!r}")
    sm = d["source_model"]
    if not isinstance(sm, dict):
        bad("source_model", "must be an object")
    if "receptive_radius" in sm and not _same_number(sm["receptive_radius"], d["halo"]):
        bad("source_model.receptive_radius", f"is {sm['receptive_radius']!r} but halo is {d['halo']!r}")
    if "tail" in sm and sm["tail"] not in TAILS:
        bad("source_model.tail", f"is {sm['tail']!r}; expected one of {', '.join(TAILS)}")
