"""100%-scale crops for judging SR by eye: the same places of a photo for every model, and a grid of them.

The places come from the HR photo alone (the most detailed squares by Y gradient energy), so bicubic, every
student, the teacher and the original are cut at the same pixels and line up in a comparison picture.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .metrics import rgb_to_y


@dataclass(frozen=True)
class Box:
    y: int
    x: int
    size: int

    def cut(self, img: np.ndarray) -> np.ndarray:
        return img[self.y:self.y + self.size, self.x:self.x + self.size]


def file_tag(label: str) -> str:
    """A model's label as it names its crop files (PHOTO_cropK_TAG.png): a path's stem, other characters kept to
    [A-Za-z0-9._-]."""
    stem = Path(label).stem if ("/" in label or label.endswith((".json", ".onnx", ".pth", ".safetensors"))) else label
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem)


def detail_boxes(hr: np.ndarray, size: int, count: int = 1) -> list[Box]:
    """The ``count`` most detailed non-overlapping ``size`` squares of an HR photo (uint8 or [0, 1] floats),
    best first; a photo smaller than ``size`` gives one box of its own shorter side."""
    h, w = hr.shape[:2]
    size = min(size, h, w)
    y = rgb_to_y(hr.astype(np.float32) / (255.0 if hr.dtype == np.uint8 else 1.0))
    energy = np.abs(np.diff(y, axis=0, append=y[-1:])) + np.abs(np.diff(y, axis=1, append=y[:, -1:]))
    # a half-size grid of candidate squares; the integral image scores each in O(1)
    step = max(1, size // 2)
    ii = np.pad(energy.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    cands = []
    for top in range(0, h - size + 1, step):
        for left in range(0, w - size + 1, step):
            s = ii[top + size, left + size] - ii[top, left + size] - ii[top + size, left] + ii[top, left]
            cands.append((float(s), top, left))
    boxes: list[Box] = []
    for _, top, left in sorted(cands, key=lambda c: (-c[0], c[1], c[2])):
        if all(abs(top - b.y) >= size or abs(left - b.x) >= size for b in boxes):
            boxes.append(Box(top, left, size))
            if len(boxes) == count:
                break
    return boxes


def grid(rows: list[list[np.ndarray]], row_labels: list[str], col_labels: list[str], gap: int = 4) -> np.ndarray:
    """uint8 crops as one labelled picture: a row per photo place, a column per model."""
    from PIL import Image, ImageDraw
    side = max(c.shape[0] for r in rows for c in r)
    head, margin = 18, 8 + 7 * max(len(s) for s in row_labels)
    H = head + len(rows) * (side + gap)
    W = margin + len(col_labels) * (side + gap)
    canvas = Image.new("RGB", (W, H), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for j, label in enumerate(col_labels):
        draw.text((margin + j * (side + gap) + 2, 3), label[: side // 6], fill=(0, 0, 0))
    for i, (row, label) in enumerate(zip(rows, row_labels)):
        top = head + i * (side + gap)
        draw.text((4, top + side // 2 - 5), label, fill=(0, 0, 0))
        for j, crop in enumerate(row):
            canvas.paste(Image.fromarray(np.ascontiguousarray(crop)), (margin + j * (side + gap), top))
    return np.asarray(canvas)
