"""Tile plans as the runtime needs them, built on ``tile_plan``'s rule.

Two additions, both keeping tile_plan's exactness argument (a window edge is an image border or at least
``halo`` pixels from its core):
* a plan that covers only the rows from ``start`` on (after an out-of-memory retry with a smaller tile the
  finished rows are kept; windows may still reach above ``start`` for context);
* windows widened to a fixed size ``fixed`` for fixed-shape artefacts. Widening only moves window edges away
  from the core or onto the image border, so the cores stay exact.
"""
from __future__ import annotations

from ..errors import MemsrError
from ..formats.tile_plan import AxisTile, plan_axis


def plan_span(length: int, tile: int, halo: int, start: int = 0, fixed: int | None = None) -> list[AxisTile]:
    """Tiles whose cores cover [start, length); ``tile <= 0`` means one core over the whole span."""
    if not 0 <= start < length:
        raise ValueError(f"start {start} outside [0, {length})")
    span = length - start
    cores = plan_axis(span, tile if tile > 0 else span, 0)
    core = cores[0].core
    win = min(length, core + 2 * halo)
    if fixed is not None:
        if fixed > length:
            raise ValueError(f"fixed window {fixed} longer than the image side {length}")
        if fixed < win:
            raise ValueError(f"fixed window {fixed} cannot hold core {core} with halo {halo}")
    out = []
    for t in cores:
        cs = t.core_start + start
        if fixed is None:
            ins = min(max(cs - halo, 0), length - win)
            out.append(AxisTile(ins, cs, core, win))
        else:
            ins = min(max(cs - halo - (fixed - win) // 2, 0), length - fixed)
            out.append(AxisTile(ins, cs, core, fixed))
    return out


def check_fixed(fixed: tuple[int, int], halo: int, height: int, width: int, path=None) -> tuple[int, int]:
    """Largest core tile per axis for a fixed-shape artefact; clear errors for images it cannot cover."""
    fh, fw = fixed
    if height < fh or width < fw:
        raise MemsrError(f"image is {width}x{height}, smaller than the artefact's fixed input {fw}x{fh} "
                         "(use a dynamic-shape artefact or the model file)", path)
    th, tw = fh - 2 * halo, fw - 2 * halo
    if min(th, tw) < 1 and (height > fh or width > fw):
        raise MemsrError(f"fixed input {fw}x{fh} leaves no core inside a {halo}-pixel halo", path)
    return max(th, 1), max(tw, 1)
