"""Exact tile planning, shared (as a spec) with the Android demo's Java core.

Per axis of length L, with core tile T, halo h (the receptive radius) and scale s:
  n    = ceil(L / T)                 tiles along the axis
  c    = ceil(L / n)                 core size, equal for every tile (<= T; no thin last tile)
  win  = min(L, c + 2h)              input window, equal for every tile (batchable, fixed-shape friendly)
  core_start_i = min(i * c, L - c)   the last core is moved back to end at L (it overlaps, never thins)
  in_start_i   = clamp(core_start_i - h, 0, L - win)
The window sits inside the image, so a window edge is either an image border (where the model's own zero
padding applies, as in whole-image inference) or at least h pixels from the core: every core pixel sees
exactly what it would see in the whole image. Output rows [core_start*s, (core_start+c)*s) are taken from
the window's output at offset (core_start - in_start) * s.
"""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class AxisTile:
    in_start: int      # LR window [in_start, in_start + win)
    core_start: int    # LR core [core_start, core_start + core)
    core: int
    win: int

    @property
    def offset(self) -> int:
        """Core's start inside the window (LR pixels)."""
        return self.core_start - self.in_start


def plan_axis(length: int, tile: int, halo: int) -> list[AxisTile]:
    if length < 1:
        raise ValueError(f"image length must be positive, got {length}")
    if tile < 1:
        raise ValueError(f"tile must be at least 1 pixel, got {tile}")
    if halo < 0:
        raise ValueError(f"halo must be non-negative, got {halo}")
    n = math.ceil(length / tile)
    core = math.ceil(length / n)
    win = min(length, core + 2 * halo)
    out = []
    for i in range(n):
        cs = min(i * core, length - core)
        ins = min(max(cs - halo, 0), length - win)
        out.append(AxisTile(ins, cs, core, win))
    return out


@dataclass(frozen=True)
class Tile:
    y: AxisTile
    x: AxisTile

    def window(self) -> tuple[slice, slice]:
        return slice(self.y.in_start, self.y.in_start + self.y.win), slice(self.x.in_start, self.x.in_start + self.x.win)

    def crop(self, scale: int) -> tuple[slice, slice]:
        """Where the core lies inside the window's (upscaled) output."""
        oy, ox = self.y.offset * scale, self.x.offset * scale
        return slice(oy, oy + self.y.core * scale), slice(ox, ox + self.x.core * scale)

    def dest(self, scale: int) -> tuple[slice, slice]:
        """Where the core goes in the full (upscaled) output."""
        y0, x0 = self.y.core_start * scale, self.x.core_start * scale
        return slice(y0, y0 + self.y.core * scale), slice(x0, x0 + self.x.core * scale)


def plan(height: int, width: int, tile: int, halo: int) -> list[Tile]:
    """Row-major tile list for an image; ``tile <= 0`` means one tile covering the whole image."""
    if tile <= 0:
        tile = max(height, width)
    ys, xs = plan_axis(height, tile, halo), plan_axis(width, tile, halo)
    return [Tile(y, x) for y in ys for x in xs]


def plan_to_json(height: int, width: int, tile: int, halo: int, scale: int) -> dict:
    """The plan in the form the Java core's tests compare against."""
    def axis(a: list[AxisTile]) -> list[dict]:
        return [{"in_start": t.in_start, "win": t.win, "core_start": t.core_start, "core": t.core,
                 "offset": t.offset} for t in a]
    if tile <= 0:
        tile = max(height, width)
    return {"height": height, "width": width, "tile": tile, "halo": halo, "scale": scale,
            "rows": axis(plan_axis(height, tile, halo)), "cols": axis(plan_axis(width, tile, halo))}
