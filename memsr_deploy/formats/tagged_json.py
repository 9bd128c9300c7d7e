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
        d = json.loads(path.read_text(), parse_constant=_refuse_constant)
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as e:  # ValueError: NaN / Infinity
        raise MemsrError(f"{short} is not valid JSON ({e.__class__.__name__}: {e})", path) from None
    if not isinstance(d, dict) or d.get("format") != fmt:
        raise MemsrError(f"not a memsr {what} (format != {fmt!r})", path)
    if d.get("version") != version:
        raise MemsrError(f"unsupported {short} version {d.get('version')!r}", path)
    return d


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


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
