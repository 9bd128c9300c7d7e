"""The MemSR claim, side by side: memsr's bundled students and teachers against the lightweight SR networks people
ship (random weights: memory depends on the architecture only). Writes a Markdown table and a plot.

Every network goes through the paths a user's model takes: exported to ONNX (plain students from their
description, the others by torch's exporter), its halo derived from the graph (formats/receptive_field.py), its
peak predicted by the profiler's ONNX Runtime walk, and measured in a fresh ONNX Runtime process (one thread,
arena off) at the paper's 960x540; then the network's seconds for a 12 MP photo on ONNX Runtime with every core.

    python -m memsr_bench.peers --out benchmarks/results/peers.md [--scales 2,4] [--no-measure] [--no-time]

Run it alone on the machine unless --no-time.
"""
from __future__ import annotations

import argparse
import datetime
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn as nn
from tqdm import tqdm

from memsr_deploy.cli.args import summary
from memsr_deploy.errors import MemsrError, cli_errors
from memsr_deploy.formats.onnx_graph import model_to_onnx
from memsr_deploy.formats.receptive_field import radius
from memsr_deploy.formats.tile_plan import plan
from memsr_deploy.outputs.atomic import write_bytes, write_text
from memsr_deploy.profiler.analytic import load_subject, measured_prediction, predict
from memsr_deploy.profiler.measure import explain_ort_gap, measure_peak
from memsr_deploy.profiler.report import human
from memsr_deploy.runtime.host import machine

from . import peer_nets
from .peer_whole_image import timed

PAPER = (540, 960)
SIZES = {"12MP": (3000, 4000), "100MP": (8160, 12240)}
TILE = 512
REPEAT = 3


def timing_plan(halo: int | None, size: tuple[int, int] = SIZES["12MP"]) -> tuple[tuple[int, int], float]:
    """(window shape, how many such windows make the photo) for timing one photo by timing one window.

    Every window of an exact tile plan has one shape (formats/tile_plan.py), so one window's time times their
    count is the tile loop's network time. A network with no finite receptive radius runs whole, which at 12 MP
    needs tens of GiB: it is timed whole at 960x540 and scaled by pixel count (its convs and windowed attention
    cost the same per pixel at any size)."""
    h, w = size
    if halo is None:
        return PAPER, h * w / (PAPER[0] * PAPER[1])
    tiles = plan(h, w, TILE, halo)
    return (tiles[0].y.win, tiles[0].x.win), float(len(tiles))


def seconds_per_photo(onnx_path: Path, channels: int, halo: int | None,
                      size: tuple[int, int] = SIZES["12MP"]) -> float:
    """Network seconds (no decoding or encoding) for an LR photo of ``size`` on ONNX Runtime with every core."""
    from memsr_deploy.runtime.backends.onnx_backend import session
    (wy, wx), count = timing_plan(halo, size)
    sess = session(str(onnx_path), None, onnx_path)
    feed = {sess.get_inputs()[0].name: np.random.default_rng(0).random((1, channels, wy, wx), dtype=np.float32)}
    secs, _ = timed(lambda: sess.run(None, feed), REPEAT)
    return secs * count


def _others(scale: int) -> dict:
    """name -> (module, input channels) of the networks not bundled with memsr."""
    from memsr_deploy.foreign.compact import Compact
    from memsr_deploy.foreign.span import SPAN
    from memsr_deploy.method.models import ResidualSR, TeacherConfig, TEACHER_PRESETS
    nets = {name: peer_nets.build(name, scale) for name in peer_nets.PEERS}
    nets["EDSR-baseline"] = ResidualSR(TeacherConfig(scale=scale, **TEACHER_PRESETS["edsr-baseline"]))
    nets["SRVGGNetCompact"] = Compact(3, 3, 64, 16, scale)     # realesr-animevideov3's size
    nets["SPAN"] = SPAN(3, 3, 48, scale, norm=True)
    return {n: (m.eval(), peer_nets.input_channels(m)) for n, m in nets.items()}


def macs_per_lr_pixel(module: nn.Module, channels: int, side: int = 32) -> float:
    """Multiply-accumulates of the convs and linear layers per LR pixel (attention's matrix products left out)."""
    total = [0]

    def hook(m, inp, out):
        if isinstance(m, nn.Conv2d):
            total[0] += out.numel() * m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
        elif isinstance(m, nn.ConvTranspose2d):
            total[0] += inp[0].numel() * m.out_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
        elif isinstance(m, nn.Linear):
            total[0] += out.numel() // m.out_features * m.in_features * m.out_features
    handles = [m.register_forward_hook(hook) for m in module.modules()
               if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]
    with torch.no_grad():
        module(torch.rand(1, channels, side, side))
    for h in handles:
        h.remove()
    return total[0] / side ** 2


def profile(name: str, onnx_path: Path, params: int, macs: float, channels: int, measure: bool, time_it: bool) -> dict:
    model = onnx.load(str(onnx_path))
    r = radius(model)
    sub = load_subject(onnx_path)
    row = {"name": name, "params": params, "macs": macs, "halo": r.halo if r.finite and r.align == 1 else None,
           "halo_note": "" if r.finite else r.reason}
    h, w = PAPER
    row["pred_paper"] = predict(sub, h, w, "whole", "fp32", "onnxruntime").peak_bytes
    if measure:
        expected = measured_prediction(sub, h, w, "onnxruntime")
        m = measure_peak(onnx_path, "onnxruntime", h, w)
        row["measured_paper"], row["ratio"] = m.peak_bytes, m.peak_bytes / expected
        row["why"] = explain_ort_gap(onnx_path, expected, m.peak_bytes, h, w)
        if sub.halo is not None:   # the whole photo's tile loop through the session, input and output held
            expected = measured_prediction(sub, h, w, "onnxruntime", mode="tiled", tile=TILE)
            m = measure_peak(onnx_path, "onnxruntime", h, w, tile=TILE, halo=sub.halo, scale=sub.scale)
            row["tiled_measured"], row["tiled_ratio"] = m.peak_bytes, m.peak_bytes / expected
            row["tiled_why"] = explain_ort_gap(onnx_path, expected, m.peak_bytes, h, w, tile=TILE, halo=sub.halo,
                                               scale=sub.scale)
    for label, (hh, ww) in SIZES.items():
        row[f"whole_{label}"] = predict(sub, hh, ww, "whole", "fp32", "onnxruntime").peak_bytes
        row[f"tiled_{label}"] = None if row["halo"] is None else \
            predict(sub, hh, ww, "tiled", "fp32", "onnxruntime", tile=TILE).peak_bytes
    if time_it:
        row["seconds_12MP"] = seconds_per_photo(onnx_path, channels, row["halo"])
    return row


def run(scales, measure: bool, time_it: bool, workdir: Path) -> dict:
    from memsr_deploy.formats.model_file import load_model
    from memsr_deploy.formats.registry import available, resolve
    results = {}
    for scale in scales:
        jobs = {}
        for name in available():
            net, desc = load_model(resolve(name))
            if desc.scale == scale:
                jobs[name] = (resolve(name), net, 3)
        for name, (net, channels) in _others(scale).items():
            jobs[name] = (net, net, channels)
        rows = []
        for name, (spec, net, channels) in tqdm(jobs.items(), desc=f"x{scale}", file=sys.stderr):
            path = workdir / f"{name}_x{scale}.onnx"
            onnx.save(model_to_onnx(spec, channels=channels), str(path))
            params = sum(p.numel() for p in net.parameters())
            rows.append(profile(name, path, params, macs_per_lr_pixel(net, channels), channels, measure, time_it))
        results[scale] = rows
    return results


def seconds_note(machine: str | None) -> str:
    if machine is None:
        return "Seconds per photo: not timed in this run (--no-time)."
    return (f"Seconds per 12 MP photo (4000x3000 LR): the network alone on ONNX Runtime (fp32, every graph "
            f"optimisation, {machine}, every core), no decoding or encoding. Exact tiles: all windows of the tile plan "
            f"have one shape, so one window is timed (median of {REPEAT} after a warm-up) and multiplied by their "
            "count. No finite radius: whole 960x540 timed and scaled by pixel count (whole at 12 MP needs the "
            "memory in the 12 MP whole column), marked ~.")


def markdown(results: dict, argv: list[str], measure: bool, timed_on: str | None) -> str:
    lines = ["# memsr against other lightweight SR networks", "",
             f"{datetime.date.today()}, {machine()}. Random weights (memory "
             "depends on the architecture only). Peaks are activation bytes on ONNX Runtime (fp32): predicted by "
             "the profiler's walk of each network's ONNX graph, measured in a fresh process (one thread, arena "
             "off) at 960x540 LR, the paper's setting; there the expected figure is the walk plus what the measured process "
             "also holds (the input; tiled: the full input and output images, the window copy and one band of "
             "output rows, as memsr's tile loop holds them, which the tiled run goes through). Tiled: exact tiles "
             f"of {TILE} LR px with the halo derived from the graph (none where the graph has no finite receptive "
             "radius). FSRCNN, ESPCN, CARN-M, IMDN, RFDN and SwinIR-light are written here from their papers "
             "(benchmarks/peer_nets.py); FSRCNN and ESPCN take the Y channel only, as published.",
             "", seconds_note(timed_on), "",
             f"`python -m memsr_bench.peers {' '.join(argv)}`", "",
             "Real published models (Real-ESRGAN x4plus and animevideov3, RealSR: their trained ncnn pairs) against "
             "memsr-x2 / memsr-x4 on ncnn, peak RSS and seconds per 1 MP and 12 MP photo: "
             "[published_ncnn.md](published_ncnn.md).", ""]
    for scale, rows in results.items():
        ref = next((r for r in rows if r["name"] == f"memsr-x{scale}"), None)
        lines += [f"## x{scale}", "",
                  "| network | params | MACs / LR px | halo | 960x540 predicted | measured (ratio) | tiled measured "
                  f"(ratio) | vs memsr-x{scale} | 12 MP whole | 12 MP tiled | 100 MP whole | 100 MP tiled | s / 12 MP |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            meas = f"{human(r['measured_paper'])} ({r['ratio']:.2f})" if measure else "not measured"
            tmeas = f"{human(r['tiled_measured'])} ({r['tiled_ratio']:.2f})" if r.get("tiled_measured") else \
                "not measured" if not measure else "n/a"
            vs = f"{r['pred_paper'] / ref['pred_paper']:.1f}x" if ref else ""
            halo = str(r["halo"]) if r["halo"] is not None else "none" if "no finite" in r["halo_note"] else "?"
            tiled = lambda k: human(r[k]) if r[k] is not None else "n/a"
            secs = "not timed" if "seconds_12MP" not in r else \
                f"{'~' if r['halo'] is None else ''}{r['seconds_12MP']:.1f}"
            lines.append(f"| {r['name']} | {r['params']:,} | {r['macs'] / 1e3:.1f}k | {halo} | "
                         f"{human(r['pred_paper'])} | {meas} | {tmeas} | {vs} | {human(r['whole_12MP'])} | "
                         f"{tiled('tiled_12MP')} | {human(r['whole_100MP'])} | {tiled('tiled_100MP')} | {secs} |")
        notes = [f"- {r['name']}: {r['halo_note']}" for r in rows if r.get("halo_note")]
        for r in rows:
            for key, what in (("why", "whole"), ("tiled_why", "tiled")):
                if r.get(key):
                    notes.append(f"- {r['name']} ({what}, more than 15% off): {r[key]}.")
        if any(w and not w.endswith(": the cause)") for r in rows for w in (r.get("why"), r.get("tiled_why"))):
            notes.append("- where what is left out is not the whole cause: ONNX Runtime also runs nodes in an "
                         "order of its own (Compact: the input's Resize before the body), which the walk does not "
                         "follow; see memsr_deploy/formats/runtime_memory.py.")
        lines += ["", *notes, ""] if notes else [""]
    return "\n".join(lines) + "\n"


def plot(results: dict, path: Path) -> None:
    import io

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4.5), squeeze=False)
    for ax, (scale, rows) in zip(axes[0], results.items()):
        for r in rows:
            ours = r["name"].startswith(("memsr-", "teacher-"))
            ax.scatter(r["macs"] / 1e3, r["pred_paper"] / 2 ** 20, c="tab:red" if ours else "tab:blue")
            ax.annotate(r["name"], (r["macs"] / 1e3, r["pred_paper"] / 2 ** 20), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")
        ax.set(xscale="log", yscale="log", xlabel="k MACs per LR pixel",
               ylabel="peak activations at 960x540 (MiB, ONNX Runtime)", title=f"x{scale} (red: memsr)")
        ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    write_bytes(path, buf.getvalue())


@cli_errors
def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m memsr_bench.peers", description=summary(__doc__))
    p.add_argument("--out", required=True, help="Markdown file (a PNG plot is written beside it)")
    p.add_argument("--scales", default="2,4")
    p.add_argument("--no-measure", action="store_true", help="predictions only")
    p.add_argument("--no-time", action="store_true", help="no seconds per photo (for a machine that is not idle)")
    args = p.parse_args(argv)
    try:
        scales = [int(s) for s in args.scales.split(",")]
    except ValueError:
        raise MemsrError(f"--scales {args.scales!r}: comma-separated integers") from None
    with tempfile.TemporaryDirectory(prefix="memsr-peers-") as tmp:
        results = run(scales, not args.no_measure, not args.no_time, Path(tmp))
    out = Path(args.out)
    write_text(out, markdown(results, sys.argv[1:] if argv is None else argv, not args.no_measure,
                                 None if args.no_time else machine()))
    plot(results, out.with_suffix(".png"))
    print(f"wrote {out} and {out.with_suffix('.png')}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
