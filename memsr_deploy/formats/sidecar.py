"""The sidecar JSON that sits beside every exported artefact (ARTEFACT.json next to ARTEFACT.tflite/.onnx/...).

The tiled runtime, the on-device benchmark and the Android demo read only this file to run an artefact:
scale, halo (the model's receptive radius in LR pixels), tile size, layout, dtype/range/quantisation of
input and output, fixed shape or range, precision, verification figures, checksums and tool versions.

Fields (version 1):
  format "memsr-artefact", version 1
  target        "onnx" | "tflite" | "coreml"
  file          artefact file name, relative to the sidecar
  file_sha256   checksum of the artefact
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
  source_model  {"name", "kind", "path", "weights_sha256", "receptive_radius", "layer_widths", "layer_acts"}
  verification  {"passed": bool, "max_abs_diff": float, "psnr_y_vs_torch": float, ...}; a PSNR of identical
                outputs is infinite and written as null (strict JSON: no NaN/Infinity, see tagged_json.dumps_strict)
  tools         {"torch": "2.13.0", ...}
  created       ISO 8601 UTC
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, asdict
from pathlib import Path

from ..outputs.atomic import write_text
from ..errors import MemsrError
from .tagged_json import dumps_strict, read_tagged_json

FORMAT = "memsr-artefact"
VERSION = 1
TARGETS = ("onnx", "tflite", "coreml")
PRECISIONS = ("fp32", "fp16", "dynamic", "int8", "int8-uint8io")


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

    def to_json(self) -> dict:
        d = asdict(self)
        d.pop("path")
        return {"format": FORMAT, "version": VERSION, **d, "receptive_radius": self.halo}


def sidecar_path(artefact) -> Path:
    """ARTEFACT.json for ARTEFACT.tflite / .onnx / .mlpackage."""
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
    try:
        fields = {k: d[k] for k in Sidecar.__dataclass_fields__ if k in d and k != "path"}
        sc = Sidecar(**fields, path=str(path))
    except TypeError as e:
        raise MemsrError(f"sidecar is missing fields ({e})", path) from None
    if sc.target not in TARGETS:
        raise MemsrError(f"unknown target {sc.target!r}", path)
    if sc.precision not in PRECISIONS:
        raise MemsrError(f"unknown precision {sc.precision!r}", path)
    if int(sc.scale) not in (2, 3, 4) or int(sc.halo) < 0 or int(sc.tile) < 1:
        raise MemsrError(f"bad scale/halo/tile ({sc.scale}/{sc.halo}/{sc.tile})", path)
    if check_file:
        art = sc.artefact_path()
        if not art.exists():
            raise MemsrError(f"artefact {sc.file} named by the sidecar is missing", path)
        if sc.file_sha256 and file_sha256(art) != sc.file_sha256:
            raise MemsrError("artefact does not match the checksum in its sidecar", art)
    return sc
