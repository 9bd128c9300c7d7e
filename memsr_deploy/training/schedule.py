"""Learning-rate schedules as plain functions of the step, so resuming needs no scheduler object state."""
from __future__ import annotations

import math


def lr_at(step: int, total: int, base: float, kind: str = "cosine", warmup: int = 0,
          milestones: tuple[float, ...] = (0.5, 0.75), gamma: float = 0.5, final_ratio: float = 0.01) -> float:
    if warmup and step < warmup:
        return base * (step + 1) / warmup
    if kind == "cosine":
        t = min(max(step - warmup, 0) / max(total - warmup, 1), 1.0)
        return base * (final_ratio + (1 - final_ratio) * 0.5 * (1 + math.cos(math.pi * t)))
    if kind == "onecycle":
        # the reference's schedule (PyTorch OneCycleLR defaults): cosine up from base/25 to base over the first
        # 30% of the steps, then cosine down to base/25/1e4
        peak, start, end = max(round(0.3 * total) - 1, 1), base / 25, base / 25 / 1e4
        if step <= peak:
            return start + (base - start) * 0.5 * (1 - math.cos(math.pi * step / peak))
        t = min((step - peak) / max(total - 1 - peak, 1), 1.0)
        return end + (base - end) * 0.5 * (1 + math.cos(math.pi * t))
    if kind == "step":
        return base * gamma ** sum(step >= m * total for m in milestones)
    if kind == "constant":
        return base
    raise ValueError(f"unknown LR schedule {kind!r} (cosine, onecycle, step, constant)")
