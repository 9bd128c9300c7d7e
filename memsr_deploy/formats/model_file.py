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
from dataclasses import dataclass, field
from pathlib import Path

from safetensors import SafetensorError as SafetensorsError

from ..method.input_spec import InputSpec
from ..outputs.atomic import write_bytes, write_text
from ..errors import MemsrError
from .tagged_json import dumps_strict, read_tagged_json

FORMAT = "memsr-model"
VERSION = 1


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
        widths = [cfg.width] * (2 * cfg.blocks + 2) + [3 * cfg.scale ** 2]
        acts = ["none"] + ["relu", "none"] * cfg.blocks + ["none", "none"]
    else:
        kind = kind or "plain"
        widths = [*cfg.widths, 3 * cfg.scale ** 2]
        acts = [*cfg.acts, "none"]
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
    write_bytes(wpath, blob)
    write_text(jpath, text)
    desc.path = str(jpath)
    return desc


_KNOWN = {"format", "version", "kind", "scale", "arch", "input", "receptive_radius", "layer_widths",
          "layer_acts", "params", "weights_sha256", "provenance", "weights"}


def read_description(path) -> ModelDescription:
    """Parse and validate NAME.json without touching the weights."""
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
    except (KeyError, TypeError, ValueError) as e:
        raise MemsrError(f"malformed model description ({e.__class__.__name__}: {e})", jpath) from None
    if desc.kind not in ("teacher", "plain", "student"):
        raise MemsrError(f"unknown model kind {desc.kind!r}", jpath)
    return desc


def _read_pair(path) -> tuple[ModelDescription, Path, bytes]:
    """Description and checked weight bytes of a model given as a path or a bundled name."""
    if str(path) in _registry_names():
        from .registry import resolve
        path = resolve(str(path))
    wpath, jpath = pair_paths(path)
    desc = read_description(jpath)
    if not wpath.exists():
        raise MemsrError("model weights not found", wpath)
    blob = wpath.read_bytes()
    if desc.weights_sha256 and hashlib.sha256(blob).hexdigest() != desc.weights_sha256:
        raise MemsrError("weights do not match the checksum in their .json (corrupt or from another model)",
                         wpath)
    return desc, wpath, blob


def load_model(path, verify_checksum: bool = True):
    """Build the network from NAME.json and fill it from NAME.safetensors (no pickle anywhere)."""
    from safetensors.torch import load_file

    from ..method import models
    if verify_checksum:
        desc, wpath, _ = _read_pair(path)
    else:
        if str(path) in _registry_names():
            from .registry import resolve
            path = resolve(str(path))
        wpath, jpath = pair_paths(path)
        desc = read_description(jpath)
    jpath = desc.path
    try:
        model = models.build(desc.kind, desc.arch)
    except (TypeError, ValueError, KeyError) as e:
        raise MemsrError(f"architecture in description is invalid: {e}", jpath) from None
    try:
        state = load_file(str(wpath))
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
    model.load_state_dict(state)
    model.eval()
    return model, desc


def load_plain_arrays(path) -> tuple[ModelDescription, list[tuple]]:
    """A plain net's description and its convs as float32 numpy (weight OIHW, bias), tail last, without torch.
    The weights are checked against the checksum and against the shapes the description implies."""
    from safetensors.numpy import load as np_load
    desc, wpath, blob = _read_pair(path)
    if not desc.is_plain:
        raise MemsrError(f"a {desc.kind} is not a plain chain of convs", desc.path)
    try:
        state = np_load(blob)
    except (SafetensorsError, ValueError) as e:
        raise MemsrError(f"unreadable safetensors file ({e})", wpath) from None
    n = len(desc.arch.get("widths", []))
    names = [f"layers.{i}" for i in range(n)] + ["tail"]
    chans = [3, *desc.layer_widths]
    if len(chans) != n + 2 or desc.layer_widths[-1] != 3 * desc.scale ** 2:
        raise MemsrError("layer_widths do not describe this plain net (body widths, then 3*s*s)", desc.path)
    convs = []
    for i, name in enumerate(names):
        want = {f"{name}.weight": (chans[i + 1], chans[i], 3, 3), f"{name}.bias": (chans[i + 1],)}
        for k, shape in want.items():
            if k not in state or tuple(state[k].shape) != shape:
                got = tuple(state[k].shape) if k in state else "missing"
                raise MemsrError(f"tensor {k} is {got}, the description wants {shape}", wpath)
        convs.append((state[f"{name}.weight"].astype("float32"), state[f"{name}.bias"].astype("float32")))
    return desc, convs


def _registry_names() -> set[str]:
    from .registry import names
    return set(names())
