"""Resolutions, the result table and the memory-vs-megapixels plot of memsr-profile."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from ..errors import MemsrError

# Phone camera photos (the LR input that gets upscaled), landscape W x H.
PRESETS = {
    "12MP": (4000, 3000), "48MP": (8000, 6000), "50MP": (8160, 6144), "100MP": (12240, 8160),
    "108MP": (12000, 9000), "200MP": (16320, 12240),
}


def parse_resolution(text: str) -> tuple[str, int, int]:
    """'12MP' (a preset, or any N MP at 4:3), '960x540' (W x H) -> (label, height, width)."""
    t = text.strip()
    key = t.upper().replace(" ", "")
    if key in PRESETS:
        w, h = PRESETS[key]
        return key, h, w
    m = re.fullmatch(r"(\d+)[xX](\d+)", t)
    if m:
        w, h = int(m.group(1)), int(m.group(2))
        if w < 1 or h < 1:
            raise MemsrError(f"resolution {text!r} must be positive")
        return f"{w}x{h}", h, w
    m = re.fullmatch(r"([0-9]*\.?[0-9]+)MP", key)
    if m and float(m.group(1)) > 0:
        px = float(m.group(1)) * 1e6
        w = max(1, round(math.sqrt(px * 4 / 3)))
        h = max(1, round(px / w))
        return f"{m.group(1)}MP", h, w
    raise MemsrError(f"cannot read resolution {text!r}: use a preset ({', '.join(PRESETS)}), N MP or WxH")


def human(n: float | None) -> str:
    if n is None:
        return "-"
    for unit, size in (("GiB", 2 ** 30), ("MiB", 2 ** 20), ("KiB", 2 ** 10)):
        if abs(n) >= size:
            return f"{n / size:.2f} {unit}"
    return f"{int(n)} B"


@dataclass
class Row:
    model: str
    kind: str
    mode: str
    resolution: str
    height: int
    width: int
    scale: int
    dtype: str
    backend: str
    predicted: int | None          # activation peak (None: mode not applicable)
    note: str = ""                 # tile / rows / why not applicable
    vs_teacher: float | None = None
    expected_rss: int | None = None   # measured_prediction for the measuring backend
    measured: int | None = None
    measured_backend: str = ""
    measured_seconds: float | None = None
    settings: dict = field(default_factory=dict)
    process: int | None = None     # whole memsr-upscale process, predicted (runtime.footprint)

    @property
    def ratio(self) -> float | None:
        return self.measured / self.expected_rss if self.measured and self.expected_rss else None

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        d["ratio"] = self.ratio
        return d


def _input_label(r: Row) -> str:
    size = f"{r.width}x{r.height}"
    return size if r.resolution == size else f"{r.resolution} {size}"


def table(rows: list[Row], markdown: bool = False) -> str:
    measuring = any(r.measured is not None or r.measured_backend for r in rows)
    head = ["model", "mode", "input (LR)", "output", "predicted peak", "x teacher whole"]
    process = any(r.process is not None for r in rows)
    if process:
        head.append("process RSS")
    if measuring:
        head += ["measured on", "expected RSS", "measured RSS", "meas/exp"]
    head.append("notes")
    body = []
    for r in rows:
        line = [r.model, r.mode, _input_label(r), f"{r.width * r.scale}x{r.height * r.scale}",
                human(r.predicted), f"x{r.vs_teacher:.3f}" if r.vs_teacher is not None else "-"]
        if process:
            line.append(human(r.process))
        if measuring:
            line += [r.measured_backend or "-", human(r.expected_rss), human(r.measured),
                     f"{r.ratio:.3f}" if r.ratio else "-"]
        line.append(r.note)
        body.append(line)
    if markdown:
        out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
        out += ["| " + " | ".join(line) + " |" for line in body]
        return "\n".join(out)
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    fmt = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([fmt(head), fmt(["-" * w for w in widths]), *map(fmt, body)])


def plot(rows: list[Row], path) -> None:
    """Peak memory vs input megapixels, one line per model and mode, measured points as markers; log-log."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..outputs.atomic import atomic_path

    fig, ax = plt.subplots(figsize=(8, 5.5))
    series: dict[tuple[str, str], list[Row]] = {}
    for r in rows:
        if r.predicted is not None:
            series.setdefault((r.model, r.mode), []).append(r)
    styles = {"whole": "-", "tiled": "--", "stream": ":"}
    for (model, mode), rs in sorted(series.items()):
        rs = sorted(rs, key=lambda r: r.height * r.width)
        mp = [r.height * r.width / 1e6 for r in rs]
        line, = ax.plot(mp, [r.predicted / 2 ** 20 for r in rs], styles.get(mode, "-"), marker="o", ms=3,
                        label=f"{model} {mode} (predicted)")
        meas = [(m, r.measured / 2 ** 20) for m, r in zip(mp, rs) if r.measured]
        if meas:
            ax.plot(*zip(*meas), "x", color=line.get_color(), ms=8, label=f"{model} {mode} (measured RSS)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("input photo (LR) megapixels")
    ax.set_ylabel("peak activation memory (MiB)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("memsr-profile: peak activation memory")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)
