"""The structural check every graph artefact shares: only the ops its writer emits, and one convolution per
layer of the description. Read from the file written, so a writer defect cannot hide behind its own lists."""
from __future__ import annotations

from .source import Source


def census_failures(ops: dict[str, int], allowed: set[str], conv_op: str, source: Source, what: str) -> list[str]:
    failures = []
    extra = sorted(set(ops) - allowed)
    if extra:
        failures.append(f"unexpected {what} {extra}")
    convs, layers = ops.get(conv_op, 0), len(source.desc.layer_widths)
    if convs != layers:
        failures.append(f"{convs} {conv_op} {what} for {layers} convs")
    return failures
