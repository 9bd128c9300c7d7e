"""EDSR checkpoints for the paper's setting (docs/method.md, "The paper's setting"; benchmarks/results/edsr_paper.md).

  # a random-weight EDSR-baseline (64 wide, 16 blocks) in EDSR-PyTorch layout: memory and speed do not depend
  # on the weights
  python -m memsr_bench.edsr_checkpoints random --scale 2 -o runs/edsr/edsr_baseline_x2.pt
  # a teacher trained here (memsr-train teacher --tail upsampler ...) saved in EDSR-PyTorch (or BasicSR) layout
  python -m memsr_bench.edsr_checkpoints save runs/edsr/teacher/model -o runs/edsr/edsr_trained_x2.pt

Both files are what EDSR-PyTorch's model zoo / trainer writes (a bare state dict, sub_mean ... add_mean) and
load back through memsr's model loader like any downloaded EDSR checkpoint.
"""
from __future__ import annotations

import argparse
import sys

from memsr_deploy.cli.args import summary


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=summary(__doc__))
    sub = ap.add_subparsers(dest="what", required=True)
    r = sub.add_parser("random", help="a random-weight EDSR in EDSR-PyTorch layout")
    r.add_argument("--scale", type=int, choices=(2, 3, 4), default=2)
    r.add_argument("--width", type=int, default=64)
    r.add_argument("--blocks", type=int, default=16)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("-o", "--output", required=True)
    s = sub.add_parser("save", help="a memsr teacher with EDSR's upsampler, saved in an EDSR layout")
    s.add_argument("model")
    s.add_argument("--layout", default="EDSR-PyTorch", choices=("EDSR-PyTorch", "BasicSR"))
    s.add_argument("-o", "--output", required=True)
    s.add_argument("--overwrite", action="store_true")
    args = ap.parse_args(argv)

    import io

    import torch

    from memsr_deploy.errors import cli_errors
    from memsr_deploy.formats.edsr_checkpoint import default_res_scale, edsr_input, state_from_teacher
    from memsr_deploy.formats.model_file import load_model
    from memsr_deploy.method import models
    from memsr_deploy.outputs.atomic import write_bytes
    from memsr_deploy.outputs.plan import check_outputs, model_pair_inputs

    @cli_errors
    def run(_argv=None) -> int:
        check_outputs([args.output], inputs=model_pair_inputs(getattr(args, "model", None)),
                      overwrite=getattr(args, "overwrite", False))
        if args.what == "random":
            torch.manual_seed(args.seed)
            teacher = models.ResidualSR(models.TeacherConfig(
                scale=args.scale, width=args.width, blocks=args.blocks, res_scale=default_res_scale(args.width),
                input=edsr_input(), tail="upsampler"))
            state, layout = state_from_teacher(teacher), "EDSR-PyTorch"
        else:
            teacher, _ = load_model(args.model)
            state, layout = state_from_teacher(teacher, args.layout), args.layout
        if layout == "BasicSR":
            state = {"params": state}
        buf = io.BytesIO()
        torch.save(state, buf)
        write_bytes(args.output, buf.getvalue())
        print(f"wrote {args.output} ({layout} layout, x{teacher.cfg.scale}, {teacher.cfg.width} wide, "
              f"{teacher.cfg.blocks} blocks)")
        return 0

    return run()


if __name__ == "__main__":
    sys.exit(main())
