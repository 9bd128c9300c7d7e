"""Open another project's SR checkpoint (.pth / .pt / .ckpt / .safetensors) as a loaded network, never unpickling
anything: safetensors, or torch.load(weights_only=True). Each family in FAMILIES recognises its own key layout;
with spandrel installed (an optional extra), every other architecture it detects is taken from it."""
from __future__ import annotations

from pathlib import Path

import torch

from ..errors import MemsrError
from . import compact, rrdb, span
from .spec import Foreign

FAMILIES = {"Compact": compact, "ESRGAN (RRDBNet)": rrdb, "SPAN": span}
SUFFIXES = (".pth", ".pt", ".ckpt", ".safetensors")
_WRAPPERS = ("params_ema", "params", "state_dict", "model", "net_g")


def open_state(path) -> dict:
    """The checkpoint's tensors by name, unwrapped from the usual containers (BasicSR's ``params_ema`` first)."""
    path = Path(path)
    if not path.is_file():
        raise MemsrError("no such file" if not path.exists() else "is not a file", path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file
            state = load_file(str(path))
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # pickle's, zipfile's and safetensors' errors alike: one line
        msg = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
        raise MemsrError(f"unreadable, truncated or unsafe checkpoint ({msg[:200]})", path) from None
    while isinstance(state, dict) and not any(isinstance(v, torch.Tensor) for v in state.values()):
        inner = next((state[k] for k in _WRAPPERS if isinstance(state.get(k), dict)), None)
        if inner is None:
            break
        state = inner
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise MemsrError("not a state dict of tensors", path)
    if all(k.startswith("module.") for k in state):   # saved from DataParallel / DDP
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def _load_strictly(found: Foreign, state: dict, path) -> Foreign:
    want = found.module.state_dict()
    for k, v in want.items():
        if k not in state:
            raise MemsrError(f"{k}: missing from the state dict of this {found.arch}", path)
        if tuple(state[k].shape) != tuple(v.shape):
            raise MemsrError(f"{k}: shape {tuple(state[k].shape)}, the {found.arch} it describes wants "
                             f"{tuple(v.shape)}", path)
        if not state[k].is_floating_point() or not bool(torch.isfinite(state[k]).all()):
            raise MemsrError(f"{k}: not floating point, or holds NaN or infinite values", path)
    extra = sorted(set(state) - set(want))
    if extra:
        raise MemsrError(f"{extra[0]}: not a key of {found.arch}", path)
    found.module.load_state_dict({k: state[k].float() for k in want})
    found.module.eval()
    return found


def _from_spandrel(state: dict, path) -> Foreign | None:
    try:
        from spandrel import ModelLoader, UnsupportedModelError
    except ImportError:
        return None
    try:
        d = ModelLoader().load_from_state_dict(state)
    except UnsupportedModelError:
        return None
    except Exception as e:  # a detected architecture whose keys or shapes do not fit
        raise MemsrError(f"spandrel could not load it ({str(e).splitlines()[0][:200]})", path) from None
    if getattr(d, "purpose", "SR") != "SR" or int(d.scale) < 2:
        raise MemsrError(f"a {d.architecture.name} model for {getattr(d, 'purpose', '?')} at x{d.scale}, not "
                         "single-image super-resolution", path)
    return Foreign(d.architecture.name, d.model.eval(), int(d.scale), int(d.input_channels),
                   int(d.output_channels), {"spandrel": True})


def read_checkpoint(path) -> Foreign:
    """The network a checkpoint holds, loaded and checked key by key; refused with one line otherwise."""
    state = open_state(path)
    for family in FAMILIES.values():
        if family.matches(state):
            found = family.read(state, path)
            return _load_strictly(found, found.state if found.state is not None else state, path)
    found = _from_spandrel(state, path)
    if found is not None:
        return found
    raise MemsrError(f"not a checkpoint of a supported SR architecture (supported: {', '.join(FAMILIES)}; "
                     "install spandrel for the others it detects)", path)
