"""argparse types shared by every CLI: a bad number is refused at parse time, naming the flag and the reason.

argparse turns ``ArgumentTypeError`` into ``PROG: error: argument --FLAG: REASON`` and exit 2; ``Parser``
prints only that line (no usage block), so each bad flag is one line like every other error of the tools.
"""
from __future__ import annotations

import argparse
import math


def summary(doc: str) -> str:
    """A module docstring's first paragraph: the --help description. Its first line alone would cut a wrapped
    sentence in two; argparse rewraps the paragraph, and a RawDescriptionHelpFormatter shows it as written."""
    return doc.split("\n\n")[0].strip()


class Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line (the usage stays in --help)."""

    def error(self, message):
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def _number(text: str, kind, what: str):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _at_least(kind, bound, strict: bool, what: str):
    """An argparse type for numbers of ``kind`` above ``bound`` (strictly when ``strict``)."""
    sign = ">" if strict else ">="

    def parse(text: str):
        value = _number(text, kind, what)
        if value < bound or (strict and value == bound):
            raise argparse.ArgumentTypeError(f"must be {sign} {bound}, got {text!r}")
        return value
    parse.__name__ = what  # argparse names the type in its messages
    return parse


positive_int = _at_least(int, 1, False, "an integer >= 1")
non_negative_int = _at_least(int, 0, False, "an integer >= 0")
positive_float = _at_least(float, 0, True, "a number > 0")
non_negative_float = _at_least(float, 0, False, "a number >= 0")


def finite_float(text: str) -> float:
    return _number(text, float, "a number")


def fraction(text: str) -> float:
    value = _number(text, float, "a share in 0..1")
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in 0..1, got {text!r}")
    return value


def int_in(lo: int, hi: int):
    def parse(text: str) -> int:
        value = _number(text, int, f"an integer in {lo}..{hi}")
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be in {lo}..{hi}, got {text!r}")
        return value
    parse.__name__ = f"int_in_{lo}_{hi}"
    return parse


def memory_size(text: str) -> int:
    """Bytes from 512M, 2G, 1.5GiB, 1000000: positive and finite."""
    from ..errors import MemsrError
    from ..runtime.memory import parse_size
    try:
        return parse_size(text)
    except MemsrError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def pixel_count(text: str) -> int:
    """A pixel count such as 250e6 or 40000000: positive, finite, whole."""
    value = _number(text, float, "a pixel count")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text!r}")
    return int(value)
