"""The comparison picture beside the model card: the same 100%-scale crops of evaluation photos through
bicubic, every bundled student of a scale, its teacher, and the original.

  python -m memsr_bench.compare_crops --scale 2 --out memsr_deploy/pretrained/compare_x2.png

The crops are the ones ``memsr-eval MODEL --save-dir DIR --crops 1`` writes (the most detailed square of each
photo, placed on the HR photo), so any other model can be put beside these with that command.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
from pathlib import Path

from memsr_deploy.cli.args import summary
from memsr_deploy.cli.evaluate import main as evaluate
from memsr_deploy.formats.registry import MODELS, available
from memsr_deploy.imageio import save_png
from memsr_deploy.imageio.decode import read_image_uint8
from memsr_deploy.quality.crops import file_tag, grid

PHOTOS = ["butterfly", "baboon", "astronaut", "coffee"]


def bundled_for(scale: int) -> list[str]:
    """Bundled students of a scale, lightest first, then their teacher."""
    students = sorted((n for n in available() if n.startswith(f"memsr-x{scale}") and not n.endswith("int8")),
                      key=lambda n: (not n.endswith("-lite"), n))
    return [*students, f"teacher-x{scale}"] if f"teacher-x{scale}" in MODELS else students


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=summary(__doc__))
    ap.add_argument("--scale", type=int, choices=(2, 4), required=True)
    ap.add_argument("--out", required=True, help="PNG to write")
    ap.add_argument("--models", default=None, help="comma-separated models (default: the bundled ones of --scale)")
    ap.add_argument("--photos", default=",".join(PHOTOS), help="evaluation photos, one row each")
    ap.add_argument("--size", type=int, default=128, help="HR pixels per crop side")
    ap.add_argument("--data", default=None, help="evaluation folder (default: the evaluation photos)")
    args = ap.parse_args(argv)
    models = args.models.split(",") if args.models else bundled_for(args.scale)
    photos = args.photos.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        for m in models:
            with contextlib.redirect_stdout(io.StringIO()):   # the scores: in the card, not here
                rc = evaluate([m, "--scale", str(args.scale), "--save-dir", tmp, "--crops", "1",
                               "--crop-size", str(args.size), "--no-ssim", "--json",
                               *(["--data", args.data] if args.data else [])])
            if rc:
                return rc
        cols = [f"bicubic-x{args.scale}", *models, "original"]
        tags = [c if c in (cols[0], "original") else file_tag(c) for c in cols]
        missing = [p for p in photos if not (Path(tmp) / f"{p}_crop0_original.png").exists()]
        if missing:
            sys.exit(f"no evaluation photo named {', '.join(missing)} (--photos)")
        rows = [[read_image_uint8(Path(tmp) / f"{p}_crop0_{t}.png") for t in tags] for p in photos]
    save_png(args.out, grid(rows, photos, [c.replace("bicubic-x", "bicubic x") for c in tags]))
    print(f"wrote {args.out}: {len(photos)} photos x {len(cols)} columns, {args.size} px crops at 100%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
