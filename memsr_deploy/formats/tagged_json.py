"""Reading the project's own JSON files (model descriptions, artefact sidecars): each names its format and version
so that a file of another kind, or from a newer memsr, is refused in one line instead of half-parsed."""
from __future__ import annotations

import json
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
        d = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise MemsrError(f"{short} is not valid JSON ({e.__class__.__name__}: {e})", path) from None
    if not isinstance(d, dict) or d.get("format") != fmt:
        raise MemsrError(f"not a memsr {what} (format != {fmt!r})", path)
    if d.get("version") != version:
        raise MemsrError(f"unsupported {short} version {d.get('version')!r}", path)
    return d
