"""Flat colours in, flat colours out: a check no photo benchmark makes.

An SR network must map a flat area to the same flat area. Photos cover the middle of the RGB cube well and its
saturated corners hardly at all, so a student can print a regular dot grid (one value per pixel-shuffle phase) or
shift the colour of a flat saturated area while scoring well on every benchmark set. The check feeds flat images
of colours on a grid over the whole cube (``LEVELS`` per channel, corners included) and measures, away from the
borders, in 8-bit levels:

- ``pattern``: max - min of the output inside the flat area, worst channel (0 for a flat output);
- ``colour_error``: the largest distance of any output value from the input colour.

Measured (2026-12-05): teacher-x2 pattern <= 0.8, colour error <= 0.5; the 2026-11 bundled memsr-x2 pattern up
to 5.9 and colour error up to 62 (cyan-green corner); a width-32 candidate up to 22 / 78 (magenta corner).
`--flat-colours` in training fixes it (docs/method.md section 9).

    python -m memsr_deploy.quality.flat_colours teacher-x2 memsr-x2 path/to/model
"""
from __future__ import annotations

import argparse
import itertools
import sys

import numpy as np

from ..errors import cli_errors

LEVELS = 9          # per channel: 0, 32, ..., 255 -> 729 colours
BATCH = 81


def cube_colours(levels: int = LEVELS) -> np.ndarray:
    """(levels**3, 3) float32 colours in [0, 1], corners included."""
    return np.array(list(itertools.product(range(levels), repeat=3)), np.float32) / (levels - 1)


def flat_colour_check(upscale, scale: int, radius: int, levels: int = LEVELS) -> dict:
    """``upscale``: (N, 3, h, w) float32 in [0, 1] -> (N, 3, scale*h, scale*w). ``radius``: the network's
    receptive radius in LR pixels (the border that zero padding reaches)."""
    colours = cube_colours(levels)
    side = 2 * radius + 4
    pattern, error = [], []
    for chunk in np.array_split(colours, max(1, len(colours) // BATCH)):
        x = np.ascontiguousarray(np.broadcast_to(chunk[:, :, None, None], (len(chunk), 3, side, side)))
        y = np.asarray(upscale(x), np.float64)[:, :, scale * radius:-scale * radius, scale * radius:-scale * radius]
        y *= 255.0
        pattern.append((y.max(axis=(2, 3)) - y.min(axis=(2, 3))).max(axis=1))
        error.append(np.abs(y - chunk[:, :, None, None] * 255.0).max(axis=(1, 2, 3)))
    pattern, error = np.concatenate(pattern), np.concatenate(error)

    def rgb(i):
        return [int(round(v)) for v in colours[i] * 255]
    return {"colours": len(colours), "pattern_mean": round(float(pattern.mean()), 3),
            "pattern_max": round(float(pattern.max()), 2), "pattern_worst_colour": rgb(int(pattern.argmax())),
            "colour_error_mean": round(float(error.mean()), 3), "colour_error_max": round(float(error.max()), 2),
            "colour_error_worst_colour": rgb(int(error.argmax()))}


def check_torch(model, scale: int, levels: int = LEVELS) -> dict:
    """The check on a loaded PyTorch network, in float32."""
    import torch

    def upscale(x):
        with torch.no_grad():
            return model(torch.from_numpy(x)).numpy()
    return flat_colour_check(upscale, scale, model.receptive_radius, levels)


def check_model(path, levels: int = LEVELS) -> dict:
    """The check on a model file or bundled name."""
    from ..formats.model_file import load_model
    model, desc = load_model(path)
    return check_torch(model, desc.scale, levels)


@cli_errors
def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m memsr_deploy.quality.flat_colours",
                                description="flat colours over the whole RGB cube in, flat colours out?")
    p.add_argument("models", nargs="+", help="model files or bundled names")
    args = p.parse_args(argv)
    print("| model | pattern mean / max (levels) | worst colour | colour error mean / max | worst colour |")
    print("|---|---|---|---|---|")
    for m in args.models:
        r = check_model(m)
        print(f"| {m} | {r['pattern_mean']:.2f} / {r['pattern_max']:.1f} | {tuple(r['pattern_worst_colour'])} | "
              f"{r['colour_error_mean']:.2f} / {r['colour_error_max']:.1f} | {tuple(r['colour_error_worst_colour'])} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
