"""Write files under a temporary name and rename, so a crash never leaves a half-written output."""
from __future__ import annotations

import contextlib
import glob
import os
import signal
import re
import tempfile
import threading
from pathlib import Path

# Temporary names are hidden and carry a fixed marker, so that folder runs can recognise (and skip) the
# leftovers of a run killed with SIGKILL: ".NAME.memsr-tmp.XXXXXXXX.EXT".
TEMP_MARKER = "memsr-tmp"
_TEMP_NAME = re.compile(rf"^\..*\.{TEMP_MARKER}\.[A-Za-z0-9_]+(\.[^.]*)?$")


def is_temp_name(path) -> bool:
    """Whether ``path`` is named like one of atomic_path's temporary files."""
    return bool(_TEMP_NAME.match(Path(path).name))


def remove_temps(path) -> list[Path]:
    """Remove the temporary files that atomic_path left for ``path`` in a run killed with SIGKILL (names made
    for this destination only); returns them."""
    path = Path(path)
    prefix = f".{path.stem}.{TEMP_MARKER}."
    found = [p for p in path.parent.glob(f"{glob.escape(prefix)}*") if is_temp_name(p)] \
        if path.parent.is_dir() else []
    for p in found:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
    return found


@contextlib.contextmanager
def atomic_path(path, suffix: str | None = None, sync: bool = False):
    """Yield a temporary path in the destination folder; on success rename it onto ``path``.

    The temporary name keeps the destination's extension (writers such as PIL or cv2 pick the format from it).
    It is removed on any exception, including KeyboardInterrupt and the SIGTERM exception that
    ``errors.cli_errors`` installs. ``sync``: flush the file to disk before the rename and the folder after it,
    so that after a power cut the destination holds the old file or the new one (for files a run resumes from).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = None
    try:
        # a SIGTERM between creating the file and knowing its name would leave it behind: held until then
        with _signals_held() as held:
            fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.{TEMP_MARKER}.", suffix=suffix or path.suffix,
                                       dir=path.parent)
            os.close(fd)
        for signum in held:  # delivered here, where the cleanup below knows the name
            signal.raise_signal(signum)
        yield Path(tmp)
        if os.path.isfile(tmp):  # mkstemp makes 0600; give the result the permissions a plain open() would
            os.chmod(tmp, 0o666 & ~_umask())
        if sync:
            _fsync(tmp)
        os.replace(tmp, path)
        if sync:
            _fsync(path.parent)
    except BaseException:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        raise


@contextlib.contextmanager
def _signals_held():
    """Record SIGTERM and SIGINT instead of handling them for the block; yields the list of those that arrived,
    for the caller to deliver again. Python runs signal handlers in the main thread only, whichever thread
    the kernel gave the signal to (a per-thread mask cannot hold them while other threads run), so elsewhere
    there is nothing to hold."""
    held: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield held
        return
    previous = {}
    try:
        for s in (signal.SIGTERM, signal.SIGINT):
            previous[s] = signal.signal(s, lambda signum, frame: held.append(signum))
        yield held
    finally:
        for s, handler in previous.items():
            if handler is not None:  # None: a handler not set from Python, which signal() cannot put back
                signal.signal(s, handler)


def _fsync(path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some file systems cannot sync a folder; the file itself was synced
        if os.path.isfile(path):
            raise
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path, text: str, sync: bool = False) -> None:
    with atomic_path(path, sync=sync) as tmp:
        tmp.write_text(text)


def write_bytes(path, data: bytes, sync: bool = False) -> None:
    with atomic_path(path, sync=sync) as tmp:
        tmp.write_bytes(data)
