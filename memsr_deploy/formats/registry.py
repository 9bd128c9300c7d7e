"""Pretrained models shipped inside the package, with their metadata (like timm's registry, but offline).

Each entry is a model file pair under ``memsr_deploy/pretrained/``; its JSON carries the recipe, the exact
commands that produced it, training time and its evaluation table. Nothing is ever downloaded.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import MemsrError

PRETRAINED_DIR = Path(__file__).resolve().parents[1] / "pretrained"

# name -> (file stem, when to pick it); memsr-upscale --help prints these lines
MODELS = {
    "memsr-x2": ("memsr_x2", "x2 default: plain student of teacher-x2 (32 wide, 19 convs); the best x2 here"),
    "memsr-x4": ("memsr_x4", "x4 default: plain student of teacher-x4 (48 wide, 19 convs); the best x4 here"),
    "memsr-x2-lite": ("memsr_x2_lite", "x2 for speed: 32 wide, 11 convs, half memsr-x2's seconds for "
                                       "about 0.1 dB less (its 32x4 teacher retrained 2026-12-07)"),
    "memsr-x4-lite": ("memsr_x4_lite", "x4 for speed: 32 wide, 11 convs, under a third of memsr-x4's seconds "
                                       "for 0.6-0.7 dB less (its 32x4 teacher retrained 2026-12-07)"),
    "teacher-x2": ("teacher_x2", "residual teacher (EDSR-style, 48 wide, 8 blocks), x2: memsr-x2's source; "
                                 "skip connections cost memory"),
    "teacher-x4": ("teacher_x4", "residual teacher (EDSR-style, 48 wide, 8 blocks), x4: memsr-x4's source; "
                                 "skip connections cost memory"),
}
DEFAULTS = {2: "memsr-x2", 4: "memsr-x4"}


def names() -> list[str]:
    return list(MODELS)


def available() -> list[str]:
    """Registered names whose files are actually shipped."""
    return [n for n, (stem, _) in MODELS.items() if (PRETRAINED_DIR / f"{stem}.json").exists()]


def resolve(name: str) -> Path:
    """Path stem of a bundled model (give it to model_file.load_model)."""
    if name not in MODELS:
        raise MemsrError(f"unknown bundled model {name!r}; bundled: {', '.join(names())}")
    stem = PRETRAINED_DIR / MODELS[name][0]
    if not stem.with_suffix(".json").exists():
        raise MemsrError(f"bundled model {name!r} is not shipped in this build", stem.with_suffix(".json"))
    return stem


def default_model(scale: int = 2) -> Path:
    """The bundled student used when a command is given no model."""
    if scale not in DEFAULTS:
        raise MemsrError(f"no bundled model for x{scale}; bundled scales: {sorted(DEFAULTS)} (name a model file)")
    return resolve(DEFAULTS[scale])
