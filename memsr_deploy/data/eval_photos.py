"""The evaluation photos: what ``memsr-fetch-photos`` wrote to OUT/eval, or scikit-image's bundled photos."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import MemsrError
from .datasets import list_images
from ..imageio import from_uint8, read_image

DEFAULT_ROOTS = (Path("data/photos"), Path(__file__).resolve().parents[2] / "data" / "photos")


def eval_dir(root=None) -> Path | None:
    """The folder holding the fetched eval photos: ROOT/eval or ROOT itself; without ROOT, $MEMSR_PHOTOS or
    data/photos (current folder, then the source checkout). None when nothing was fetched."""
    candidates = [Path(root)] if root is not None else (
        [Path(os.environ["MEMSR_PHOTOS"])] if os.environ.get("MEMSR_PHOTOS") else []) + list(DEFAULT_ROOTS)
    for c in candidates:
        for d in (c / "eval", c):
            if d.is_dir() and list_images(d):
                return d
    if root is not None:
        raise MemsrError("no evaluation photos here (run memsr-fetch-photos -o DIR first)", root)
    return None


def load_eval_photos(root=None) -> list[tuple[str, np.ndarray]]:
    """[(name, HR float32 HxWx3 in [0, 1])]: the fetched eval photos when available, else the colour photos
    that ship with scikit-image (no butterfly/baboon then)."""
    d = eval_dir(root)
    if d is not None:
        return [(p.stem, read_image(p)) for p in list_images(d)]
    from .fetch_photos import skimage_photos
    return [(name, from_uint8(img)) for name, img in skimage_photos().items()]
