"""Read what LiteRT's ``benchmark_model`` prints (and what our host worker prints in the same words).

The lines that matter, as the tool writes them (optionally behind an ``INFO: `` or logcat prefix):

  count=1 curr=3512391                                        warm-up statistics (first ``count=`` line)
  count=50 first=2990275 curr=2913402 min=2727568 max=3189954 avg=2.95034e+06 std=109798 [p5=.. median=.. p95=..]
  Inference timings in us: Init: 17187, First inference: 3512391, Warmup (avg): 3.51239e+06, Inference (avg): 2.95034e+06
  Memory footprint delta from the start of the tool (MB): init=4.21094 overall=46.0859
      (older builds: "Peak memory footprint (MB): init=... overall=...")
  Overall peak memory footprint (MB) via periodic monitoring: 52.1

Averages are C++ doubles streamed with the default precision, hence ``2.95034e+06``; a statistic whose
samples are all equal prints ``curr=N(all same)`` and no min/max/avg.

Delegation is judged from the tool's own statements, never from timings:
  Failed to apply GPU delegate.                                                     -> the run failed
  Explicitly applied GPU delegate, and the model graph will be completely executed by the delegate.
  Explicitly applied GPU delegate, and the model graph will be partially executed by the delegate w/ 2 ...
  Though NNAPI delegate is explicitly applied, the model graph will not be executed by the delegate.
  Replacing 12 out of 14 node(s) with delegate (TfLiteGpuDelegateV2) node, yielding 2 partitions ...
  Replacing 12 node(s) with delegate (TfLiteGpuDelegateV2) node, yielding 2 partitions.   (older builds)
  TfLiteNnapiDelegate delegate: 3 nodes delegated out of 7 nodes with 2 partitions.
  GPU acceleration is unsupported on this platform.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|inf)"

# What each delegate choice is called in the tool's messages: provider name, delegate-kernel name fragment.
DELEGATE_NAMES = {"cpu": ("XNNPACK", "xnnpack"), "gpu": ("GPU", "gpu"), "nnapi": ("NNAPI", "nnapi")}

_TIMINGS = re.compile(rf"Inference timings in us: Init: ({NUM}), First inference: ({NUM}), "
                      rf"Warmup \(avg\): ({NUM}), Inference \(avg\): ({NUM})")
_STAT_LINE = re.compile(r"(?:^|\s)count=\d+")
_KEYVAL = re.compile(rf"(\w+)=({NUM})")
_MEM_DELTA = re.compile(rf"(?:Memory footprint delta from the start of the tool|Peak memory footprint) \(MB\): "
                        rf"init=({NUM}) overall=({NUM})")
_MEM_PEAK = re.compile(rf"Overall peak memory footprint \(MB\) via periodic monitoring: ({NUM})")
_FAILED = re.compile(r"Failed to apply (\S+) delegate")
_APPLIED_FULL = re.compile(r"Explicitly applied (\S+) delegate, and the model graph will be completely executed")
_APPLIED_PART = re.compile(r"Explicitly applied (\S+) delegate, and the model graph will be partially executed "
                           r"by the delegate w/ (\d+) delegate kernels")
_APPLIED_NONE = re.compile(r"Though (\S+) delegate is explicitly applied, the model graph will not be executed")
_REPLACING = re.compile(r"Replacing (\d+) out of (\d+) node\(s\) with delegate \(([^)]*)\) node, yielding (\d+) "
                        r"partitions")
_REPLACING_OLD = re.compile(r"Replacing (\d+) node\(s\) with delegate \(([^)]*)\) node, yielding (\d+) partitions")
_NODES_OUT_OF = re.compile(r"(\S+)(?: delegate)?:? (\d+) nodes delegated out of (\d+) nodes(?: with (\d+) partitions)?")
_GPU_SPLIT = re.compile(r"(\d+) operations will run on the GPU, and the remaining (\d+) operations will run on the CPU")
_UNSUPPORTED = re.compile(r"(\S+) acceleration is unsupported on this platform")


def _num(s: str) -> float | None:
    v = float(s)
    return None if math.isnan(v) or math.isinf(v) else v


@dataclass
class Delegation:
    """What the tool said about one delegate; ``nodes`` = (delegated, total) when it said that."""
    failed: bool = False
    unsupported: bool = False
    applied: str | None = None          # "complete" | "partial" | "none"
    kernels: int | None = None          # delegate kernels of a partial application
    nodes: tuple[int, int] | None = None
    partitions: int | None = None


@dataclass
class BenchOutput:
    init_us: float | None = None
    first_us: float | None = None
    warmup_avg_us: float | None = None
    avg_us: float | None = None
    stats: dict = field(default_factory=dict)          # the regular-run statistics line (min/max/std/count...)
    warmup_stats: dict = field(default_factory=dict)
    mem_init_mb: float | None = None
    mem_overall_mb: float | None = None
    peak_mem_mb: float | None = None
    delegations: dict = field(default_factory=dict)    # delegate choice -> Delegation
    error_line: str = ""                               # the last ERROR line, to explain a failure

    @property
    def has_timings(self) -> bool:
        return self.avg_us is not None


def _stat_dict(line: str) -> dict:
    d = {}
    for k, v in _KEYVAL.findall(line[line.index("count="):]):
        d[k] = _num(v)
    if "avg" not in d and d.get("curr") is not None:  # "count=N curr=X(all same)": every sample was X
        d.update(first=d["curr"], min=d["curr"], max=d["curr"], avg=d["curr"], std=0.0)
    return d


def _delegation_for(text: str, choice: str) -> Delegation:
    provider, kernel = DELEGATE_NAMES[choice]
    d = Delegation()
    for m in _FAILED.finditer(text):
        d.failed |= m.group(1).upper() == provider
    for m in _UNSUPPORTED.finditer(text):
        d.unsupported |= m.group(1).upper() == provider
    for m in _APPLIED_FULL.finditer(text):
        if m.group(1).upper() == provider:
            d.applied = "complete"
    for m in _APPLIED_PART.finditer(text):
        if m.group(1).upper() == provider:
            d.applied, d.kernels = "partial", int(m.group(2))
    for m in _APPLIED_NONE.finditer(text):
        if m.group(1).upper() == provider:
            d.applied = "none"
    for m in _REPLACING.finditer(text):
        if kernel in m.group(3).lower():
            d.nodes, d.partitions = (int(m.group(1)), int(m.group(2))), int(m.group(4))
    for m in _REPLACING_OLD.finditer(text):
        if kernel in m.group(2).lower() and d.nodes is None:
            d.partitions = int(m.group(3))
    for m in _NODES_OUT_OF.finditer(text):
        if kernel in m.group(1).lower():
            d.nodes = (int(m.group(2)), int(m.group(3)))
            d.partitions = int(m.group(4)) if m.group(4) else d.partitions
    if choice == "gpu":
        for m in _GPU_SPLIT.finditer(text):
            on_gpu, on_cpu = int(m.group(1)), int(m.group(2))
            d.nodes = (on_gpu, on_gpu + on_cpu)
    return d


def parse_output(text: str) -> BenchOutput:
    out = BenchOutput()
    stat_lines = []
    for line in text.splitlines():
        if _STAT_LINE.search(line):
            stat_lines.append(_stat_dict(line))
        elif "ERROR" in line or "Failed" in line or "failed" in line:
            out.error_line = line.strip()
    # The tool prints the warm-up statistics first, then the regular runs'.
    if stat_lines:
        out.warmup_stats = stat_lines[0]
    if len(stat_lines) > 1:
        out.stats = stat_lines[1]
    m = _TIMINGS.search(text)
    if m:
        out.init_us, out.first_us, out.warmup_avg_us, out.avg_us = (_num(g) for g in m.groups())
    m = _MEM_DELTA.search(text)
    if m:
        out.mem_init_mb, out.mem_overall_mb = _num(m.group(1)), _num(m.group(2))
    m = _MEM_PEAK.search(text)
    if m:
        out.peak_mem_mb = _num(m.group(1))
    out.delegations = {c: _delegation_for(text, c) for c in DELEGATE_NAMES}
    return out


def judge(out: BenchOutput, choice: str, exit_code: int | None) -> str:
    """Status of a run for the delegate asked: "ok" only when the figures mean what the row says."""
    d = out.delegations.get(choice, Delegation())
    if d.failed:
        return "delegate failed"
    if d.unsupported:
        return "delegate unavailable"
    if exit_code not in (0, None) or not out.has_timings:
        why = f" ({out.error_line[:120]})" if out.error_line else ""
        return f"error (exit {exit_code}){why}" if exit_code not in (0, None) else f"error: no timings{why}"
    if d.applied == "none":
        return "not delegated"
    if d.nodes is not None and d.nodes[0] < d.nodes[1]:
        return f"partial ({d.nodes[0]}/{d.nodes[1]} nodes)"
    if d.applied == "partial":
        return f"partial ({d.kernels} delegate kernels)"
    if d.partitions is not None and d.partitions > 1 and d.nodes is None:
        return f"partial ({d.partitions} partitions)"
    if choice != "cpu" and d.applied is None and d.nodes is None:
        # The tool ran, but never said it applied the delegate: the figures are CPU figures.
        return "delegate not applied"
    return "ok"
