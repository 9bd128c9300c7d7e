"""Rows, projections and the three outputs (CSV, JSON, Markdown) of a benchmark run.

Projection: a photo of H x W LR pixels is cut by the exact tile plan (``memsr_deploy.formats.tile_plan``) into tiles
whose core is the measured window minus the halo on each side; the photo's time is the number of tiles times
the measured per-window latency. The halo's cost is therefore in the tile count (more, smaller cores) and in
the window size that was measured. Figures only exist for cells whose status is "ok".
"""
from __future__ import annotations

import csv
import io
import json
import math
from datetime import datetime, timezone
from pathlib import Path

from memsr_deploy.outputs.atomic import write_text
from memsr_deploy.formats.tile_plan import plan, plan_axis

from .matrix import Config
from .runners import CellResult

FORMAT = "memsr-device-bench"
VERSION = 1
DEFAULT_PHOTOS = "3000x4000,8672x11552"   # H x W: a 12 MP and a 100 MP photo (4:3, landscape)


def photo_label(hw: tuple[int, int]) -> str:
    return f"{round(hw[0] * hw[1] / 1e6)}MP"


def photo_labels(photos: list[tuple[int, int]]) -> list[str]:
    """Column labels: "12MP", or "12MP_3000x4000" when two photos round to the same megapixels."""
    labs = [photo_label(p) for p in photos]
    return [f"{lab}_{p[0]}x{p[1]}" if labs.count(lab) > 1 else lab for lab, p in zip(labs, photos)]


def tiles_for(photo: tuple[int, int], tile: tuple[int, int], halo: int) -> int:
    th, tw = tile
    if th == tw:
        return len(plan(photo[0], photo[1], th, halo))
    return len(plan_axis(photo[0], th, halo)) * len(plan_axis(photo[1], tw, halo))


def tool_label(tool: dict) -> str:
    if tool.get("benchmark_model_sha256"):
        return f"benchmark_model sha256:{tool['benchmark_model_sha256'][:12]}"
    return f"ai-edge-litert {tool.get('ai_edge_litert', '?')}"


def _ms(us):
    return None if us is None else round(us / 1000.0, 4)


def make_row(cfg: Config, res: CellResult, device: dict, tool: dict, mode: str, taskset: str | None,
             photos: list[tuple[int, int]]) -> dict:
    m, o = cfg.model, res.out
    ok = res.status == "ok"
    status = cfg.problem or res.status
    d = o.delegations.get(cfg.delegate)
    row = {
        "mode": mode, "device_model": device.get("model", ""), "device_soc": device.get("soc", ""),
        "android": device.get("android", ""), "abi": device.get("abi", ""), "cores": device.get("cores"),
        "tool": tool_label(tool),
        "model": m.name, "role": m.role, "precision": m.precision, "artefact": m.path.name, "scale": int(m.sc.scale),
        "halo": m.halo, "delegate": cfg.delegate, "threads": cfg.threads, "taskset": taskset or "",
        "size_h": cfg.size[0], "size_w": cfg.size[1], "tile_h": cfg.tile[0], "tile_w": cfg.tile[1],
        "status": status,
        "delegated_nodes": f"{d.nodes[0]}/{d.nodes[1]}" if d is not None and d.nodes else "",
        "latency_ms": _ms(o.avg_us) if ok else None,
        "latency_min_ms": _ms(o.stats.get("min")) if ok else None,
        "latency_max_ms": _ms(o.stats.get("max")) if ok else None,
        "latency_std_ms": _ms(o.stats.get("std")) if ok else None,
        "runs": int(o.stats["count"]) if ok and o.stats.get("count") is not None else None,
        "init_ms": _ms(o.init_us) if ok else None,
        "first_ms": _ms(o.first_us) if ok else None,
        "warmup_avg_ms": _ms(o.warmup_avg_us) if ok else None,
        "mem_init_mb": o.mem_init_mb if ok else None,
        "mem_overall_mb": o.mem_overall_mb if ok else None,
        "peak_mem_mb": o.peak_mem_mb if ok else None,
    }
    for p, lab in zip(photos, photo_labels(photos)):
        n = tiles_for(p, cfg.tile, m.halo) if min(cfg.tile) >= 1 else None
        row[f"tiles_{lab}"] = n
        row[f"time_{lab}_s"] = round(n * o.avg_us / 1e6, 3) if ok and n and o.avg_us is not None else None
    return row


def to_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    if rows:
        w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: "" if v is None else v for k, v in r.items()})
    return buf.getvalue()


def to_json(rows: list[dict], meta: dict) -> str:
    doc = {"format": FORMAT, "version": VERSION, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           **meta, "rows": rows}
    return json.dumps(doc, indent=2, allow_nan=False) + "\n"


def _fmt(v, digits=1) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    return f"{v:,.{digits}f}" if isinstance(v, float) else str(v)


def to_markdown(rows: list[dict], meta: dict, photos: list[tuple[int, int]]) -> str:
    dev = meta.get("device", {})
    head = (f"**{meta.get('mode', '')}**: {dev.get('model', '')} · {dev.get('soc', '')} · "
            + (f"Android {dev.get('android')} · " if dev.get("android") else "")
            + f"{dev.get('abi', '')} · {dev.get('cores')} cores")
    labels = photo_labels(photos)
    cols = ["model", "precision", "delegate", "threads", "size (tile)", "latency/tile (ms)",
            *[f"{lab} {p[0]}x{p[1]} (s)" for lab, p in zip(labels, photos)], "peak mem (MB)", "status"]
    lines = [head, "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = [f"{r['model']} ({r['role']})", r["precision"], r["delegate"], str(r["threads"]),
                 f"{r['size_h']}x{r['size_w']} ({r['tile_h']}x{r['tile_w']})", _fmt(r["latency_ms"], 2),
                 *[_fmt(r[f"time_{lab}_s"], 2) for lab in labels], _fmt(r["peak_mem_mb"], 1), r["status"]]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    lines.append("")
    lines.append("Photo times = tiles from the exact tile plan (core = size - 2*halo) x latency per tile; "
                 "H x W in LR pixels.")
    return "\n".join(lines) + "\n"


def output_paths(prefix) -> dict:
    prefix = Path(prefix)
    return {"csv": prefix.with_name(prefix.name + ".csv"), "json": prefix.with_name(prefix.name + ".json"),
            "md": prefix.with_name(prefix.name + ".md")}


def write_outputs(prefix, rows: list[dict], meta: dict, photos) -> dict:
    paths = output_paths(prefix)
    write_text(paths["csv"], to_csv(rows))
    write_text(paths["json"], to_json(rows, meta))
    write_text(paths["md"], to_markdown(rows, meta, photos))
    return paths
