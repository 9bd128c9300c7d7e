"""Input sizes and default tiles of artefacts."""
from __future__ import annotations

import re

from memsr_deploy.errors import MemsrError

DEFAULT_TILE = 192   # core tile for dynamic artefacts: large enough to amortise the halo, small enough for phones
MAX_SIDE = 4096      # declared upper bound of a dynamic side (Core ML needs one; the others record it)


def parse_input_size(text) -> tuple[int, int] | None:
    """"1x3x256x256", "256x256" or "256" -> (H, W); None/"" -> None (dynamic). Tuples pass through checked."""
    if text is None or text == "":
        return None
    if isinstance(text, (tuple, list)):
        dims = [int(d) for d in text]
    else:
        parts = re.split(r"[x,]", str(text).strip().lower())
        try:
            dims = [int(p) for p in parts]
        except ValueError:
            raise MemsrError(f"bad input size {text!r}: expected 1x3xHxW, HxW or a single side") from None
    if len(dims) == 4:
        if dims[:2] != [1, 3]:
            raise MemsrError(f"bad input size {text!r}: batch must be 1 and channels 3 (1x3xHxW)")
        dims = dims[2:]
    elif len(dims) == 1:
        dims = dims * 2
    if len(dims) != 2 or min(dims) < 1 or max(dims) > MAX_SIDE:
        raise MemsrError(f"bad input size {text!r}: expected 1x3xHxW, HxW or a single side, each 1..{MAX_SIDE}")
    return dims[0], dims[1]


def default_tile(halo: int, input_size: tuple[int, int] | None, tiles: list[int] | None = None) -> int:
    """Core tile the runtime should use: what a fixed window leaves inside its halo, else DEFAULT_TILE."""
    if input_size is not None:
        tile = min(input_size) - 2 * halo
        if tile < 1:
            raise MemsrError(f"input size {input_size[0]}x{input_size[1]} leaves no core tile: each side must "
                             f"exceed 2 x halo = {2 * halo} px")
        return tile
    if tiles:
        return DEFAULT_TILE if DEFAULT_TILE in tiles else max(tiles)
    return DEFAULT_TILE


def parse_tiles(text) -> list[int] | None:
    if text is None or text == "" or text == []:
        return None
    items = text if isinstance(text, (list, tuple)) else str(text).split(",")
    try:
        tiles = sorted({int(t) for t in items})
    except ValueError:
        raise MemsrError(f"bad tile list {text!r}: expected comma-separated integers (128,192,256)") from None
    if tiles[0] < 1:
        raise MemsrError(f"bad tile list {text!r}: tiles must be positive")
    return tiles
