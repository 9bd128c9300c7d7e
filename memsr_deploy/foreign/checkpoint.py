"""Another project's SR checkpoint (.pth / .pt / .ckpt / .safetensors) as a loaded network. The file is opened by
the model loader's one reader (formats/checkpoint.read_state_dict: never unpickling anything); each family in
FAMILIES recognises its own key layout; with spandrel installed (an optional extra), every other architecture
it detects is taken from it."""
from __future__ import annotations

import torch

from ..errors import MemsrError
from . import compact, rrdb, span
from .spec import Foreign

FAMILIES = {"Compact": compact, "ESRGAN (RRDBNet)": rrdb, "SPAN": span}


def family_of(state: dict) -> str | None:
    """The family whose key layout ``state`` has, among those read here (None: none of them)."""
    return next((name for name, family in FAMILIES.items() if family.matches(state)), None)


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


def _spandrel():
    """spandrel, or None where it is not installed or does not import (a torchvision built for another torch
    fails with RuntimeError)."""
    try:
        import spandrel
    except (ImportError, RuntimeError, OSError):
        return None
    return spandrel


def spandrel_detects(state: dict) -> bool:
    """Whether spandrel (where it imports) recognises an architecture in ``state``, without building it."""
    spandrel = _spandrel()
    if spandrel is None:
        return False
    canonical = spandrel.canonicalize_state_dict(state)
    return any(arch.detect(canonical) for arch in spandrel.MAIN_REGISTRY)


def _from_spandrel(state: dict, path) -> Foreign | None:
    spandrel = _spandrel()
    if spandrel is None:
        return None
    try:
        d = spandrel.ModelLoader().load_from_state_dict(state)
    except spandrel.UnsupportedModelError:
        return None
    except Exception as e:  # a detected architecture whose keys or shapes do not fit
        raise MemsrError(f"spandrel could not load it ({str(e).splitlines()[0][:200]})", path) from None
    if getattr(d, "purpose", "SR") != "SR" or int(d.scale) < 2:
        raise MemsrError(f"a {d.architecture.name} model for {getattr(d, 'purpose', '?')} at x{d.scale}, not "
                         "single-image super-resolution", path)
    return Foreign(d.architecture.name, d.model.eval(), int(d.scale), int(d.input_channels),
                   int(d.output_channels), {"spandrel": True})


def read_checkpoint(path, state: dict | None = None) -> Foreign:
    """The network a checkpoint holds, loaded and checked key by key; refused with one line otherwise.
    ``state``: its state dict, when the caller has read it already."""
    from ..formats.checkpoint import read_state_dict
    if state is None:
        state = read_state_dict(path)[0]
    name = family_of(state)
    if name is not None:
        found = FAMILIES[name].read(state, path)
        return _load_strictly(found, found.state if found.state is not None else state, path)
    found = _from_spandrel(state, path)
    if found is not None:
        return found
    more = ("nor one spandrel detects" if _spandrel() is not None
            else "install spandrel for the others it detects")
    raise MemsrError(f"not a checkpoint of a supported SR architecture (supported: {', '.join(FAMILIES)}; {more})",
                     path)
