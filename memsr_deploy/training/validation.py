"""Fast periodic validation: PSNR-Y on centre crops of the evaluation photos (full photos are for memsr-eval)."""
from __future__ import annotations

import torch

from ..data.datasets import pair_from_hr
from ..data.eval_photos import load_eval_photos
from ..quality.evaluate import evaluate_model


def make_validator(scale: int, crop: int = 256, root=None):
    """A function model -> mean PSNR-Y over HR centre crops of at most crop x crop pixels."""
    pairs = [pair_from_hr(name, hr, scale) for name, hr in load_eval_photos(root)]

    def validate(model: torch.nn.Module) -> float:
        return evaluate_model(model, pairs, scale, max_size=crop, ssim=False, tile=0).mean_psnr

    return validate
