"""memsr-import CKPT -o NAME: a PyTorch checkpoint of another project's SR network as a memsr model description
(NAME.json + NAME.safetensors), e.g. an EDSR teacher to distil, convert, export or profile like memsr's own.

Every command that takes a model also takes the checkpoint itself (model_file.load_model); the description
pair records what was inferred (layout, width, blocks, scale, res_scale, mean) and the checkpoint's SHA-256.
"""
from __future__ import annotations

import sys

from ..errors import cli_errors
from ..formats.checkpoint import SUPPORTED, import_checkpoint, is_checkpoint
from ..formats.model_file import pair_paths, save_model
from ..formats.tagged_json import dumps_strict
from ..outputs.plan import check_outputs
from ..errors import MemsrError
from . import args as types


def parser() -> types.Parser:
    ap = types.Parser(prog="memsr-import", description=types.summary(__doc__) + f" Supported: {SUPPORTED}.")
    ap.add_argument("checkpoint", help="PyTorch checkpoint (.pth/.pt/.ckpt, or .safetensors)")
    ap.add_argument("-o", "--output", required=True, help="path stem of the model description pair to write")
    ap.add_argument("--scale", type=int, choices=(2, 3, 4), default=None,
                    help="refuse a checkpoint of another scale (default: the checkpoint's own)")
    ap.add_argument("--res-scale", type=types.positive_float, default=None,
                    help="EDSR's residual scaling, which checkpoints do not store (default: 0.1 for the 256-wide "
                         "full EDSR, else 1)")
    ap.add_argument("--json", action="store_true", help="print what was imported as JSON")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing output model (never the input)")
    return ap


@cli_errors
def main(argv=None) -> int:
    args = parser().parse_args(argv)
    if not is_checkpoint(args.checkpoint):
        raise MemsrError("not a PyTorch checkpoint (.pth/.pt/.ckpt, or a .safetensors without a memsr .json "
                         "beside it)", args.checkpoint)
    check_outputs(pair_paths(args.output), inputs=[args.checkpoint], overwrite=args.overwrite)
    model, desc = import_checkpoint(args.checkpoint, scale=args.scale, res_scale=args.res_scale)
    out = save_model(model, args.output, kind="teacher", provenance=desc.provenance)
    info = desc.provenance["imported_from"]
    if args.json:
        print(dumps_strict({"output": out.path, **info, "params": out.params,
                            "receptive_radius": out.receptive_radius}, indent=2))
    else:
        print(f"{info['layout']} EDSR x{info['scale']}, {info['width']} wide, {info['blocks']} blocks, res_scale "
              f"{info['res_scale']:g}: {out.params:,} params, receptive radius {out.receptive_radius} -> {out.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
