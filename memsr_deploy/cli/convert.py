"""memsr-convert TEACHER -o PLAIN: rewrite a residual teacher as an equivalent plain conv net, verified exact."""
from __future__ import annotations

import sys

import numpy as np
import torch

from ..method.convert import DEFAULT_BETA, default_beta, teacher_to_plain
from ..errors import MemsrError, cli_errors
from ..formats.model_file import load_model, save_model
from ..formats.tagged_json import dumps_strict
from ..formats.model_file import pair_paths
from ..outputs.plan import check_outputs, model_pair_inputs
from . import args as types

TOLERANCE = 1e-4


def test_inputs(value_range: float, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random images of odd sizes (batch > 1) and real photo crops, in the model's value range."""
    g = torch.Generator().manual_seed(seed)
    inputs = {"random 2x3x17x23": torch.rand(2, 3, 17, 23, generator=g),
              "random 1x3x31x9": torch.rand(1, 3, 31, 9, generator=g)}
    from skimage import data as skdata  # photos that ship with scikit-image
    for name in ("astronaut", "coffee"):
        img = getattr(skdata, name)()[100:165, 150:227].astype(np.float32) / 255.0
        inputs[f"{name} crop 65x77"] = torch.from_numpy(img.transpose(2, 0, 1).copy())[None]
    return {k: v * value_range for k, v in inputs.items()}


@torch.inference_mode()
def verify(teacher, plain, value_range: float) -> dict[str, float]:
    return {name: float((teacher(x) - plain(x)).abs().max()) for name, x in test_inputs(value_range).items()}


@cli_errors
def main(argv=None) -> int:
    ap = types.Parser(prog="memsr-convert", description=__doc__)
    ap.add_argument("teacher", help="teacher model file (NAME, NAME.json or NAME.safetensors), bundled name, or "
                                    "EDSR checkpoint (.pt/.pth/.ckpt/.safetensors)")
    ap.add_argument("-o", "--output", required=True, help="path stem of the plain model to write")
    ap.add_argument("--beta", type=types.finite_float, default=None,
                    help=f"offset that carries signed features (default {DEFAULT_BETA:g} in the units of the "
                         "teacher's normalised input: x255 for EDSR checkpoints)")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing output model (never the input)")
    args = ap.parse_args(argv)
    check_outputs(pair_paths(args.output), inputs=model_pair_inputs(args.teacher), overwrite=args.overwrite)
    teacher, desc = load_model(args.teacher)
    if desc.kind != "teacher":
        raise MemsrError(f"is a {desc.kind} model; only teachers need converting", desc.path)
    if args.beta is None:
        args.beta = default_beta(desc.input)
    plain = teacher_to_plain(teacher, beta=args.beta)
    diffs = verify(teacher, plain, desc.input.value_range)
    worst = max(diffs.values())
    ok = worst <= TOLERANCE
    figures = {"teacher": desc.path, "output": args.output, "max_abs_diff": worst, "per_input": diffs,
               "tolerance": TOLERANCE, "passed": ok, "plain_layers": len(plain.convs()),
               "plain_widths": plain.cfg.widths, "params": sum(p.numel() for p in plain.parameters())}
    if ok:
        out = save_model(plain, args.output, kind="plain",
                         provenance={"converted_from": desc.path, "teacher_sha256": desc.weights_sha256,
                                     "beta": args.beta, "max_abs_diff": worst})
        figures["output"] = out.path
    if args.json:
        print(dumps_strict(figures, indent=2))
    else:
        for name, d in diffs.items():
            print(f"  {name:<24} max |teacher - plain| = {d:.3g}")
        print(f"{'exact' if ok else 'NOT exact'}: max abs diff {worst:.3g} (tolerance {TOLERANCE:g}); "
              f"{figures['plain_layers']} plain layers, {figures['params']:,} params")
    if not ok:
        raise MemsrError(f"conversion is not exact (max abs diff {worst:.3g} > {TOLERANCE:g}); nothing written",
                         args.teacher)
    return 0


if __name__ == "__main__":
    sys.exit(main())
