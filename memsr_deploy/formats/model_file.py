"""The model description: every trained model is a file pair, NAME.safetensors + NAME.json.

The JSON is the single source of truth that conversion, exporters, the tiled runtime, the profiler and the
Android demo read: kind, scale, architecture, input range/normalisation, receptive radius (the exact tile
halo), layer widths and activations, parameter count, a checksum of the weights and training provenance.
Loading never unpickles: weights come from safetensors and are checked against the JSON before use.
Reading a description and a plain net's weights as arrays (``load_plain_arrays``) needs no torch, so the
default runtime path never imports it.
"""
from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from safetensors import SafetensorError as SafetensorsError

from ..method import plain_layout
from ..method.input_spec import InputSpec
from ..outputs.atomic import atomic_path
from ..errors import MemsrError
from .tagged_json import dumps_strict, read_tagged_json

FORMAT = "memsr-model"
VERSION = 1
INT8_MODEL_KEY = "int8_model"     # optional: {"file": sibling .json, "weights_sha256": ...}; see int8_model()


def pair_paths(path) -> tuple[Path, Path]:
    """(weights, metadata) paths for a model given as NAME, NAME.json or NAME.safetensors."""
    p = Path(path)
    if p.suffix in (".json", ".safetensors"):
        p = p.with_suffix("")
    return p.with_name(p.name + ".safetensors"), p.with_name(p.name + ".json")


@dataclass
class ModelDescription:
    kind: str                      # "teacher", "plain" (converted teacher) or "student"
    scale: int
    arch: dict                     # constructor config of the network (models.*Config.to_dict())
    receptive_radius: int          # LR pixels; the exact halo for tiling
    layer_widths: list[int]        # output channels of every conv in execution order, tail last
    layer_acts: list[str]          # "relu" or "none" per conv, tail last
    params: int
    weights_sha256: str = ""
    provenance: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)   # e.g. student init report, evaluation table
    path: str | None = None        # metadata file it was read from

    @property
    def input(self) -> InputSpec:
        return InputSpec.from_dict(self.arch.get("input", {}))

    @property
    def is_plain(self) -> bool:
        return self.kind in ("plain", "student")

    @property
    def shuffles(self) -> list[int]:
        """A plain net's pixel-shuffle factor after each conv, tail convs included (1 = none): what every graph
        writer, the runtime and the profiler read the chain's resolutions from (plain_layout.shuffle_after).
        Without body widths in ``arch`` (an artefact's description, built from its sidecar) the body is every
        conv the tail does not account for."""
        tail = self.arch.get("tail", "shuffle")
        widths = self.arch.get("widths")
        n_body = len(widths) if widths is not None else len(self.layer_widths) - len(
            plain_layout.shuffle_after(0, self.scale, tail))
        return plain_layout.shuffle_after(n_body, self.scale, tail)

    def to_json(self) -> dict:
        return {"format": FORMAT, "version": VERSION, "kind": self.kind, "scale": self.scale,
                "arch": self.arch, "input": self.input.to_dict(), "receptive_radius": self.receptive_radius,
                "layer_widths": self.layer_widths, "layer_acts": self.layer_acts, "params": self.params,
                "weights_sha256": self.weights_sha256, "provenance": self.provenance, **self.extra}


def describe(model, kind: str | None = None, provenance: dict | None = None,
             extra: dict | None = None) -> ModelDescription:
    from ..method import models
    cfg = model.cfg
    if isinstance(model, models.ResidualSR):
        kind = kind or "teacher"
        widths = plain_layout.conv_channels([cfg.width] * cfg.body_convs, cfg.scale, cfg.tail)[1:]
        acts = ["none"] + ["relu", "none"] * cfg.blocks + ["none"] * (len(widths) - 2 * cfg.blocks - 1)
    else:
        kind = kind or "plain"
        widths = cfg.channels()[1:]
        acts = [*cfg.acts] + ["none"] * (len(widths) - len(cfg.acts))
    return ModelDescription(kind=kind, scale=cfg.scale, arch=cfg.to_dict(),
                            receptive_radius=model.receptive_radius, layer_widths=[int(w) for w in widths],
                            layer_acts=acts, params=sum(p.numel() for p in model.parameters()),
                            provenance=dict(provenance or {}), extra=dict(extra or {}))


def weights_bytes(model) -> bytes:
    from safetensors.torch import save as st_save
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    return st_save(state)


def save_model(model, path, kind: str | None = None, provenance: dict | None = None,
               extra: dict | None = None) -> ModelDescription:
    """Write NAME.safetensors and NAME.json atomically; return the description written."""
    wpath, jpath = pair_paths(path)
    desc = describe(model, kind, provenance, extra)
    blob = weights_bytes(model)
    desc.weights_sha256 = hashlib.sha256(blob).hexdigest()
    meta = desc.to_json()
    meta["weights"] = wpath.name
    text = dumps_strict(meta, jpath, indent=2) + "\n"  # before writing anything: a NaN figure is refused
    # both files are written in full before either is renamed, so a full disk keeps the previous pair whole
    with atomic_path(wpath, sync=True) as wtmp, atomic_path(jpath, sync=True) as jtmp:
        wtmp.write_bytes(blob)
        jtmp.write_text(text)
    desc.path = str(jpath)
    return desc


_KNOWN = {"format", "version", "kind", "scale", "arch", "input", "receptive_radius", "layer_widths",
          "layer_acts", "params", "weights_sha256", "provenance", "weights"}


def read_description(path) -> ModelDescription:
    """Parse and validate NAME.json without touching the weights. A PyTorch checkpoint of a supported
    architecture (checkpoint.is_checkpoint) is described from its keys and shapes instead."""
    from .checkpoint import import_checkpoint, is_checkpoint
    if is_checkpoint(path):
        return import_checkpoint(path, keep=True)[1]
    _, jpath = pair_paths(path)
    meta = read_tagged_json(jpath, FORMAT, VERSION, "model description",
                            "model metadata not found (expected a .json beside the .safetensors)")
    try:
        desc = ModelDescription(
            kind=str(meta["kind"]), scale=int(meta["scale"]), arch=dict(meta["arch"]),
            receptive_radius=int(meta["receptive_radius"]), layer_widths=[int(w) for w in meta["layer_widths"]],
            layer_acts=list(meta["layer_acts"]), params=int(meta["params"]),
            weights_sha256=str(meta.get("weights_sha256", "")), provenance=dict(meta.get("provenance", {})),
            extra={k: v for k, v in meta.items() if k not in _KNOWN}, path=str(jpath))
    except KeyError as e:
        raise MemsrError(f"model description lacks the field {e.args[0]!r}", jpath) from None
    except (TypeError, ValueError) as e:
        raise MemsrError(f"malformed model description ({e.__class__.__name__}: {e})", jpath) from None
    validate_description(desc, meta, jpath)
    return desc


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _finite_positive(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0


def _expected_layout(kind: str, arch: dict) -> dict:
    """Receptive radius, layer widths and activations, and parameter count that ``arch`` implies.
    Plain nets are worked out from the arch dict itself, so the default (ONNX Runtime) path needs no torch;
    a teacher is built, as it only ever runs on PyTorch."""
    if kind == "teacher":
        from ..method import models
        expected = describe(models.build(kind, arch), kind)
        return {k: getattr(expected, k) for k in ("receptive_radius", "layer_widths", "layer_acts", "params")}
    widths, acts, scale = [int(w) for w in arch["widths"]], list(arch["acts"]), int(arch["scale"])
    tail = arch.get("tail", "shuffle")
    if not widths or len(widths) != len(acts) or min(widths) < 1 or set(acts) - {"relu", "none"}:
        raise ValueError(f"{len(widths)} widths and {len(acts)} activations")
    chans = plain_layout.conv_channels(widths, scale, tail)
    return {"receptive_radius": plain_layout.receptive_radius(len(widths), scale, tail),
            "layer_widths": chans[1:], "layer_acts": [*acts] + ["none"] * (len(chans) - 1 - len(acts)),
            "params": plain_layout.param_count(widths, scale, tail)}


def validate_description(desc: ModelDescription, meta: dict, jpath) -> None:
    """The description must agree with the architecture it names: a wrong receptive radius gives seams in
    tiled output, a zero or NaN value range garbage, so each field is recomputed or range-checked here.
    Errors name the field."""
    def bad(field_name: str, why: str):
        raise MemsrError(f"field {field_name!r} {why}", jpath)

    if desc.kind not in ("teacher", "plain", "student"):
        bad("kind", f"is {desc.kind!r}; expected teacher, plain or student")
    for name in ("scale", "receptive_radius", "params"):
        if not _is_int(meta[name]):
            bad(name, f"must be an integer, got {meta[name]!r}")
    if desc.scale not in (2, 3, 4):
        bad("scale", f"is {desc.scale}; expected 2, 3 or 4")
    if not isinstance(meta.get("weights_sha256"), str) or not re.fullmatch(r"[0-9a-f]{64}", meta["weights_sha256"]):
        bad("weights_sha256", "is missing or not a SHA-256 hex digest (required: it ties the .json to its weights)")
    spec = meta.get("input", desc.arch.get("input", {}))
    if not isinstance(spec, dict):
        bad("input", "must be an object")
    for key in ("value_range", "norm"):
        if key in spec and not _finite_positive(spec[key]):
            bad(f"input.{key}", f"must be a finite number > 0, got {spec[key]!r}")
    mean = spec.get("mean", [0.0, 0.0, 0.0])
    if not (isinstance(mean, list) and len(mean) == 3
            and all(isinstance(m, (int, float)) and not isinstance(m, bool) and math.isfinite(m) for m in mean)):
        bad("input.mean", f"must be three finite numbers, got {mean!r}")
    if "input" in meta and InputSpec.from_dict(meta["input"]) != desc.input:
        bad("input", "differs from arch.input (the network is built from arch.input)")
    if desc.arch.get("scale") != desc.scale:
        bad("arch.scale", f"is {desc.arch.get('scale')!r} but the model's scale is {desc.scale}")
    try:
        expected = _expected_layout(desc.kind, desc.arch)
    except (TypeError, ValueError, KeyError) as e:
        bad("arch", f"does not describe a valid network ({e})")
    if INT8_MODEL_KEY in meta:
        link = meta[INT8_MODEL_KEY]
        if not (isinstance(link, dict) and isinstance(link.get("file"), str) and link["file"].endswith(".json")
                and Path(link["file"]).name == link["file"] and isinstance(link.get("weights_sha256"), str)
                and re.fullmatch(r"[0-9a-f]{64}", link["weights_sha256"])):
            bad(INT8_MODEL_KEY, 'must be {"file": "NAME.json" (beside this file), "weights_sha256": hex digest}')
    if desc.receptive_radius != expected["receptive_radius"]:
        bad("receptive_radius", f"is {desc.receptive_radius} but the architecture's {len(expected['layer_widths'])} "
                                f"3x3 convs give {expected['receptive_radius']} (a smaller halo would leave seams)")
    for name in ("layer_widths", "layer_acts", "params"):
        if getattr(desc, name) != expected[name]:
            bad(name, f"is {getattr(desc, name)!r} but the architecture gives {expected[name]!r}")


def int8_model(desc: ModelDescription) -> Path | None:
    """The model file an int8 run uses instead of this one, or None (this one's own weights).

    A float model may name an int8 sibling (field ``int8_model``): the same network trained on through the int8
    stage (``memsr-train int8``), whose weights lie on the int8 grid. Its fp32 output is a little worse than the
    float model's on some photos, its int8 output much better than this model's own weights quantised, so int8
    runs and exports take the sibling and fp32 ones the float weights. The sibling must describe the same
    network and carry the weights checksum this description recorded."""
    link = desc.extra.get(INT8_MODEL_KEY)
    if link is None:
        return None
    if desc.path is None:
        raise MemsrError(f"field {INT8_MODEL_KEY!r} needs the description's folder (read it from a file)")
    jpath = Path(desc.path).parent / link["file"]
    if not jpath.exists():
        raise MemsrError(f"the int8 model named by field {INT8_MODEL_KEY!r} of {Path(desc.path).name} is missing",
                         jpath)
    sibling = read_description(jpath)
    if INT8_MODEL_KEY in sibling.extra:
        raise MemsrError(f"an int8 model may not name another ({INT8_MODEL_KEY})", jpath)
    for name in ("kind", "scale", "arch", "layer_widths", "layer_acts"):
        if getattr(sibling, name) != getattr(desc, name):
            raise MemsrError(f"int8 model differs from {Path(desc.path).name} in field {name!r}", jpath)
    if sibling.weights_sha256 != link["weights_sha256"]:
        raise MemsrError(f"int8 model's weights_sha256 is not the one field {INT8_MODEL_KEY!r} of "
                         f"{Path(desc.path).name} recorded (replaced by another model?)", jpath)
    return jpath.with_suffix("")


def model_for(path, precision: str = "fp32"):
    """The model file a run at ``precision`` reads (bundled names resolved): for int8 the int8 sibling when the
    description names one (``int8_model``), otherwise ``path`` itself."""
    path = _resolve(path)
    if precision == "int8" and (sibling := int8_model(read_description(path))) is not None:
        return sibling
    return path


def _resolve(path):
    if str(path) in _registry_names():
        from .registry import resolve
        return resolve(str(path))
    return path


def _read_pair(path, verify_checksum: bool = True) -> tuple[ModelDescription, Path, bytes]:
    """Description and checked weight bytes of a model given as a path or a bundled name."""
    wpath, jpath = pair_paths(_resolve(path))
    desc = read_description(jpath)
    if not wpath.exists():
        raise MemsrError("model weights not found", wpath)
    blob = wpath.read_bytes()
    if verify_checksum and hashlib.sha256(blob).hexdigest() != desc.weights_sha256:
        raise MemsrError("weights do not match the checksum in field 'weights_sha256' of their .json (corrupt or from "
                         "another model)", wpath)
    return desc, wpath, blob


def load_model(path, verify_checksum: bool = True):
    """The one model loader: (network, description) for a model file pair (NAME.json + NAME.safetensors), a
    bundled name, or a PyTorch checkpoint of a supported architecture (``checkpoint.py``). No pickle anywhere."""
    import torch
    from safetensors.torch import load as load_bytes

    from ..method import models
    from .checkpoint import import_checkpoint, is_checkpoint
    if is_checkpoint(path):
        return import_checkpoint(path)
    desc, wpath, blob = _read_pair(path, verify_checksum)
    model = models.build(desc.kind, desc.arch)  # validated by read_description
    try:
        state = load_bytes(blob)
    except (SafetensorsError, OSError, ValueError) as e:
        raise MemsrError(f"unreadable safetensors file ({e})", wpath) from None
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise MemsrError(f"weights do not fit the architecture (missing {missing[:3]}, unexpected "
                         f"{unexpected[:3]})", wpath)
    for k, v in state.items():
        if tuple(v.shape) != tuple(expected[k].shape):
            raise MemsrError(f"tensor {k} has shape {tuple(v.shape)}, architecture wants "
                             f"{tuple(expected[k].shape)}", wpath)
        if not v.is_floating_point():
            raise MemsrError(f"tensor {k} is {v.dtype}, not floating point", wpath)
        if not bool(torch.isfinite(v).all()):
            raise MemsrError(f"tensor {k} holds NaN or infinite values", wpath)
    model.load_state_dict(state)
    model.eval()
    return model, desc


def load_plain_arrays(path, precision: str = "fp32") -> tuple[ModelDescription, list[tuple]]:
    """A plain net's description and its convs as float32 numpy (weight OIHW, bias), tail last, without torch.
    The weights are checked against the checksum and against the shapes the description implies.
    ``precision="int8"``: the int8 sibling's, when the description names one (``int8_model``)."""
    import numpy as np
    from safetensors.numpy import load as np_load
    from .checkpoint import is_checkpoint
    if is_checkpoint(path):
        raise MemsrError("a checkpoint's network is a teacher, not a plain chain of convs (memsr-convert makes one)",
                         path)
    desc, wpath, blob = _read_pair(model_for(path, precision))
    if not desc.is_plain:
        raise MemsrError(f"a {desc.kind} is not a plain chain of convs", desc.path)
    try:
        state = np_load(blob)
    except (SafetensorsError, ValueError) as e:
        raise MemsrError(f"unreadable safetensors file ({e})", wpath) from None
    n = len(desc.arch.get("widths", []))
    try:
        shapes = plain_layout.conv_shapes(desc.arch.get("widths", []), desc.scale, desc.arch.get("tail", "shuffle"))
    except (ValueError, IndexError):
        shapes = []
    if not n or list(desc.layer_widths) != [o for _, o in shapes]:
        raise MemsrError("layer_widths do not describe this plain net (body widths, then its tail's)", desc.path)
    names = [f"layers.{i}" for i in range(n)] + [f"upsample.{i}" for i in range(len(shapes) - n - 1)] + ["tail"]
    convs = []
    for i, name in enumerate(names):
        cin, cout = shapes[i]
        want = {f"{name}.weight": (cout, cin, 3, 3), f"{name}.bias": (cout,)}
        for k, shape in want.items():
            if k not in state or tuple(state[k].shape) != shape:
                got = tuple(state[k].shape) if k in state else "missing"
                raise MemsrError(f"tensor {k} is {got}, the description wants {shape}", wpath)
            if not np.issubdtype(state[k].dtype, np.floating) or not np.isfinite(state[k]).all():
                raise MemsrError(f"tensor {k} holds NaN or infinite values, or is not floating point", wpath)
        convs.append((state[f"{name}.weight"].astype("float32"), state[f"{name}.bias"].astype("float32")))
    return desc, convs


def _registry_names() -> set[str]:
    from .registry import names
    return set(names())
