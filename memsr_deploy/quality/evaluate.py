"""PSNR-Y / SSIM-Y of a super-resolution model on evaluation pairs, with bicubic as the baseline.

A model runs on the whole LR image under ``torch.inference_mode``, or in exact tiles (``tile_plan``: every
output pixel sees the same input as in whole-image inference) when the image is large, to bound memory.
Outputs are clipped to [0, 1] and quantised to 8 bits before scoring, as a saved result would be.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from tqdm import tqdm

from ..data.datasets import EvalPair
from ..imageio import quantise
from ..data.resize import bicubic_upscale
from ..errors import MemsrError
from .metrics import psnr_y, ssim_y
from ..formats.tile_plan import plan

# Above this many LR pixels a model runs in tiles of AUTO_TILE (exact, so the scores do not change).
AUTO_TILE_PIXELS = 512 * 512
AUTO_TILE = 256

Upscaler = Callable[[np.ndarray], np.ndarray]   # LR HxWx3 float [0, 1] -> SR (sH)x(sW)x3 float


@dataclass
class ImageScore:
    name: str
    psnr: float
    ssim: float | None


@dataclass
class EvalResult:
    model: str
    scale: int
    images: list[ImageScore] = field(default_factory=list)

    @property
    def mean_psnr(self) -> float:
        return float(np.mean([r.psnr for r in self.images]))

    @property
    def mean_ssim(self) -> float | None:
        vals = [r.ssim for r in self.images if r.ssim is not None]
        return float(np.mean(vals)) if vals else None

    def to_dict(self) -> dict:
        """JSON-safe: an infinite PSNR (identical images) becomes null, as JSON has no infinity."""
        def num(v):
            return v if v is None or np.isfinite(v) else None
        return {"model": self.model, "scale": self.scale,
                "images": [{k: num(v) if k != "name" else v for k, v in asdict(r).items()} for r in self.images],
                "mean_psnr": num(self.mean_psnr), "mean_ssim": num(self.mean_ssim)}


def _radius(model: torch.nn.Module) -> int:
    r = getattr(model, "receptive_radius", None)
    if r is None:
        raise MemsrError(f"{type(model).__name__} has no receptive_radius; cannot tile it exactly (use tile=0)")
    return int(r)


@torch.inference_mode()
def run_model(model: torch.nn.Module, lr: np.ndarray, scale: int, tile: int | None = None) -> np.ndarray:
    """Upscale an LR float image with a torch SR model; ``tile`` 0 = whole image, None = automatic.
    Returns the raw float output (not clipped)."""
    model.eval()
    cfg = getattr(model, "cfg", None)
    vr = float(cfg.input.value_range) if cfg is not None and hasattr(cfg, "input") else 1.0
    h, w = lr.shape[:2]
    if tile is None:
        tile = AUTO_TILE if h * w > AUTO_TILE_PIXELS else 0
    # a model being trained on a GPU is validated where it is
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    x = torch.from_numpy(np.ascontiguousarray(lr.transpose(2, 0, 1), dtype=np.float32))[None].to(device) * vr
    if tile <= 0 or tile >= max(h, w):
        out = model(x).cpu()
    else:
        out = torch.empty(1, 3, h * scale, w * scale)
        for t in plan(h, w, tile, _radius(model)):
            wy, wx = t.window()
            cy, cx = t.crop(scale)
            dy, dx = t.dest(scale)
            out[:, :, dy, dx] = model(x[:, :, wy, wx])[:, :, cy, cx].cpu()
    if out.shape[-2:] != (h * scale, w * scale):
        raise MemsrError(f"model output {tuple(out.shape[-2:])} is not x{scale} of its input {(h, w)}")
    return (out[0] / vr).permute(1, 2, 0).numpy()


def make_upscaler(model_or_callable, scale: int, tile: int | None = None) -> Upscaler:
    """'bicubic', a torch module or a function LR -> SR, as one LR -> SR function."""
    if isinstance(model_or_callable, str):
        if model_or_callable != "bicubic":
            raise MemsrError(f"unknown upscaler {model_or_callable!r} (load model files with load_upscaler)")
        return lambda lr: bicubic_upscale(lr, scale)
    if isinstance(model_or_callable, torch.nn.Module):
        model_scale = getattr(getattr(model_or_callable, "cfg", None), "scale", scale)
        if model_scale != scale:
            raise MemsrError(f"the model upscales x{model_scale}, evaluation asked for x{scale}")
        return lambda lr: run_model(model_or_callable, lr, scale, tile)
    if callable(model_or_callable):
        if getattr(model_or_callable, "tiled", False):   # takes the tile itself (_foreign_upscaler)
            return lambda lr: model_or_callable(lr, tile)
        return model_or_callable
    raise TypeError(f"cannot evaluate a {type(model_or_callable).__name__}")


def centre_crop_pair(pair: EvalPair, max_size: int, scale: int) -> EvalPair:
    """At most max_size x max_size HR pixels from the centre; the LR is cut from the real LR (same grid)."""
    lh, lw = pair.lr.shape[:2]
    side = max(1, max_size // scale)
    ch, cw = min(lh, side), min(lw, side)
    y, x = (lh - ch) // 2, (lw - cw) // 2
    return EvalPair(pair.name, pair.hr[y * scale:(y + ch) * scale, x * scale:(x + cw) * scale],
                    pair.lr[y:y + ch, x:x + cw])


def evaluate_model(model_or_callable, pairs: Sequence[EvalPair] | Iterable, scale: int, *,
                   tile: int | None = None, max_size: int | None = None, ssim: bool = True,
                   name: str | None = None, progress: bool = False, save=None) -> EvalResult:
    """Score a model ('bicubic', a torch module, or an LR -> SR function) on (name, hr, lr) pairs.

    ``max_size`` centre-crops every pair (fast periodic validation); ``ssim=False`` skips SSIM (None);
    ``save(name, sr)`` is called with each quantised output when given.
    """
    up = make_upscaler(model_or_callable, scale, tile)
    label = name or (model_or_callable if isinstance(model_or_callable, str) else type(model_or_callable).__name__)
    result = EvalResult(str(label), int(scale))
    pairs = list(pairs)
    for pair in tqdm(pairs, desc=f"eval {label}", unit="img", disable=not progress, leave=False):
        pair = EvalPair(*pair)
        if max_size:
            pair = centre_crop_pair(pair, max_size, scale)
        sr = quantise(up(pair.lr))
        if sr.shape != pair.hr.shape:
            raise MemsrError(f"{pair.name}: output {sr.shape} does not match HR {pair.hr.shape}")
        if save is not None:
            save(pair.name, sr)
        result.images.append(ImageScore(pair.name, psnr_y(sr, pair.hr, crop=scale),
                                        ssim_y(sr, pair.hr, crop=scale) if ssim else None))
    if not result.images:
        raise MemsrError("no images to evaluate")
    return result


def _foreign_upscaler(spec: str, scale: int | None):
    """Another project's model (runtime.backends.foreign_backend) as (label, LR -> SR function, scale), or None.
    ``tile``: the runtime's exact tiles; a graph with no finite receptive radius is evaluated whole."""
    from ..runtime import RunOptions, Upscaler
    from ..runtime.backends import open_foreign_model
    backend = open_foreign_model(spec, None, "auto", "fp32")   # an .onnx with a sidecar: the artefact
    if backend is None:
        return None
    if scale is not None and scale != backend.caps.scale:
        raise MemsrError(f"model upscales x{backend.caps.scale}, --scale asked for x{scale}", spec)

    def run(lr: np.ndarray, tile: int | None = None) -> np.ndarray:
        if tile is None and getattr(backend, "approximate", None):
            tile = 0
        return Upscaler(backend, RunOptions(tile=tile)).upscale_array(np.asarray(lr, np.float32))
    run.tiled = True
    return spec, run, backend.caps.scale


def load_upscaler(spec: str | None, scale: int | None):
    """(label, model-or-'bicubic', scale) for a CLI model argument: 'bicubic', a model file or a bundled name;
    None = the bundled default model of the scale. The scale defaults to the model's own."""
    from ..formats.model_file import load_model
    from ..formats.registry import default_model
    if spec == "bicubic":
        return "bicubic", "bicubic", scale or 2
    path = spec if spec is not None else default_model(scale or 2)
    foreign = _foreign_upscaler(spec, scale) if spec is not None else None
    if foreign is not None:
        return foreign
    model, desc = load_model(path)
    if scale is not None and scale != desc.scale:
        raise MemsrError(f"model upscales x{desc.scale}, --scale asked for x{scale}", desc.path)
    return (spec or f"default x{desc.scale}"), model, desc.scale
