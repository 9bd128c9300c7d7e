"""Reading the project's own JSON files (model descriptions, artefact sidecars): each names its format and version
so that a file of another kind, or from a newer memsr, is refused in one line instead of half-parsed.

Writing: every JSON the project writes (these files, results, ``--json`` output) is strict RFC 8259 JSON, so any
reader takes it (Android's org.json refuses the NaN / Infinity that Python's json module writes by default).
See ``dumps_strict`` for what happens to a non-finite number.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from ..errors import MemsrError


def read_tagged_json(path: Path, fmt: str, version: int, what: str, missing: str, short: str | None = None) -> dict:
    """The JSON object at ``path`` whose "format" is ``fmt`` and "version" is ``version``; ``what`` names the
    kind of file in errors ("artefact sidecar"), ``short`` where the name stands alone ("sidecar"; the Android
    core words its errors the same way), ``missing`` is the error when the file does not exist."""
    short = short or what
    if not path.exists():
        raise MemsrError(missing, path)
    try:
        d = json.loads(path.read_text(), parse_constant=_NotJson.constant, parse_float=_float, parse_int=_int)
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as e:
        raise MemsrError(f"{short} is not valid JSON ({e.__class__.__name__}: {e})", path) from None
    bad = _first_not_json(d, ())
    if bad is not None:  # named by the field it is in, as the Android core's reader does
        raise MemsrError(f"{short} is not valid JSON (ValueError: {bad[1].why} in field '{bad[0]}')", path)
    if not isinstance(d, dict) or d.get("format") != fmt:
        raise MemsrError(f"not a memsr {what} (format != {fmt!r})", path)
    v = d.get("version")
    if v != version or isinstance(v, bool):  # True == 1 in Python; not a version number
        raise MemsrError(f"unsupported {short} version {v!r}", path)
    return d


class _NotJson:
    """A value Python's json module reads and strict JSON has no such number for: NaN, Infinity, a number out of
    the range of a double (1e400) or of a 64-bit integer (the readers on the phone hold no larger)."""
    def __init__(self, why: str):
        self.why = why

    @classmethod
    def constant(cls, name: str):
        return cls(f"{name} is not a JSON number")


def _float(s: str):
    v = float(s)
    return v if math.isfinite(v) else _NotJson(f"{s} is out of range")


def _int(s: str):
    v = int(s)
    return v if -2 ** 63 <= v < 2 ** 63 else _NotJson(f"integer {s} is out of range")


def _first_not_json(v, keys: tuple):
    """(dotted path, _NotJson) of the first such value in document order, or None."""
    if isinstance(v, _NotJson):
        return ".".join(map(str, keys)), v
    items = v.items() if isinstance(v, dict) else enumerate(v) if isinstance(v, list) else ()
    for k, x in items:
        found = _first_not_json(x, (*keys, k))
        if found is not None:
            return found
    return None


def dumps_strict(doc, what=None, **kw) -> str:
    """``json.dumps(doc, **kw)`` with no NaN / Infinity in the text.

    A PSNR of two identical images is infinite: a +inf under a key naming a PSNR (``psnr`` in the key, or in an
    enclosing key) is written as null, which means "identical" wherever the project writes a PSNR. Any other
    non-finite number is a fault upstream, so it is refused (MemsrError naming ``what`` and the field) rather
    than hidden behind a null.
    """
    return json.dumps(_finite(doc, (), what), allow_nan=False, **kw)


def _finite(v, keys: tuple, what: str):
    if isinstance(v, float) and not math.isfinite(v):
        if v > 0 and any("psnr" in str(k).lower() for k in keys):
            return None
        raise MemsrError(f"{'.'.join(map(str, keys)) or 'value'} is {v}, which JSON cannot hold", what)
    if isinstance(v, dict):
        return {k: _finite(x, (*keys, k), what) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite(x, (*keys, i), what) for i, x in enumerate(v)]
    return v
