"""Write files under a temporary name and rename, so a crash never leaves a half-written output."""
from __future__ import annotations

import contextlib
import os
import signal
import re
import tempfile
import threading
from pathlib import Path
from typing import Callable

# Temporary names are hidden and carry a fixed marker and the writer's pid, so that folder runs can recognise
# (and skip) the leftovers of a run killed with SIGKILL, and remove those whose writer is gone:
# ".NAME.memsr-tmp.PID_XXXXXXXX.EXT" (older versions wrote no PID; such files are left alone).
TEMP_MARKER = "memsr-tmp"
_TEMP_NAME = re.compile(rf"^\..*\.{TEMP_MARKER}\.[A-Za-z0-9_]+(\.[^.]*)?$")
_TEMP_PID = re.compile(rf"\.{TEMP_MARKER}\.(\d+)_[A-Za-z0-9_]+(\.[^.]*)?$")


def is_temp_name(path) -> bool:
    """Whether ``path`` is named like one of atomic_path's temporary files."""
    return bool(_TEMP_NAME.match(Path(path).name))


def process_gone(pid: int, since: float) -> bool:
    """Whether the process ``pid`` that was running at time ``since`` (a file's mtime) has ended. A pid in use
    by a process started after ``since`` is another process (pids are reused); within a second, which clock
    granularity cannot tell apart, the writer is taken to be alive."""
    import psutil
    try:
        proc = psutil.Process(pid)
        return proc.create_time() > since + 1.0 or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:  # exists, but cannot be inspected: alive as far as we know
        return False


def remove_dead_temps(folder, stem: str | None = None) -> list[Path]:
    """Remove the temporary files in ``folder`` (only those made for destinations named ``stem``, if given)
    whose writer has ended (a run killed with SIGKILL, a power cut); a live process's are left alone. Returns
    the removed paths."""
    removed = []
    prefix = f".{stem}.{TEMP_MARKER}." if stem is not None else "."
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        for p in Path(folder).iterdir():
            m = _TEMP_PID.search(p.name)
            if not (p.name.startswith(prefix) and m):
                continue
            with contextlib.suppress(FileNotFoundError):
                if p.is_file() and process_gone(int(m.group(1)), p.stat().st_mtime):
                    p.unlink()
                    removed.append(p)
    return removed


@contextlib.contextmanager
def atomic_path(path, suffix: str | None = None, before_rename: Callable[[Path], None] | None = None,
                sync: bool = False):
    """Yield a temporary path in the destination folder; on success rename it onto ``path``.

    The temporary name keeps the destination's extension (writers such as PIL or cv2 pick the format from it).
    It is removed on any exception, including KeyboardInterrupt and the SIGTERM exception that
    ``errors.cli_errors`` installs. ``before_rename(tmp)`` runs once the file is complete and before it takes
    its name (a folder job records the file there: outputs/folder_job.py); if it raises, nothing is renamed.
    ``sync``: flush the file to disk before the rename and the folder after it, so that after a power cut the
    destination holds the old file or the new one (for files a run resumes from).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = None
    try:
        # a SIGTERM between creating the file and knowing its name would leave it behind: held until then
        with _signals_held() as held:
            fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.{TEMP_MARKER}.{os.getpid()}_",
                                       suffix=suffix or path.suffix,
                                       dir=path.parent)
            os.close(fd)
        for signum in held:  # delivered here, where the cleanup below knows the name
            signal.raise_signal(signum)
        yield Path(tmp)
        if os.path.isfile(tmp):  # mkstemp makes 0600; give the result the permissions a plain open() would
            os.chmod(tmp, 0o666 & ~_umask())
        if sync:
            _fsync(tmp)
        if before_rename is not None:
            before_rename(Path(tmp))
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
