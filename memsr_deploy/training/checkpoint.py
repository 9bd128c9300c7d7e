"""Atomic training checkpoints that load without unpickling arbitrary objects (torch.load weights_only=True)."""
from __future__ import annotations

from pathlib import Path

import torch

from ..outputs.atomic import atomic_path
from ..errors import MemsrError


def save_checkpoint(path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path) -> dict:
    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for truncated / foreign files
        raise MemsrError(f"unreadable checkpoint ({e.__class__.__name__}: {str(e).splitlines()[0][:120]})",
                         path) from None
