"""A batch job that several processes and a re-run after a crash can share: each output is written once.

* A **claim** per output, ``.NAME.memsr-claim`` beside it, held with flock while that output is decided and
  written. The kernel drops a lock when its process ends, however it ends (kill -9 included), so a claim left
  behind is free: the next process that wants that output takes it over, and every run removes the free claims
  of its output folders when it starts and when it ends. A claim held by a live process is skipped, and
  waited for once the rest is done.
* A **journal**, ``.memsr-journal.jsonl`` in each output folder: one line per finished output, appended when the
  output is complete and before it takes its name (atomic_path's ``before_rename``). It names the job (model
  and settings), the input (path, size, mtime) and the output file's identity (device, inode, size, mtime; a
  rename keeps them). An existing output counts as this job's finished output only when a line of the same job
  and input matches it; a user's file, or another job's, never does, and stays refused or skipped as before.
  A line whose output never took its name (killed between the two) matches nothing.
* Temporary files of a writer that has ended are removed (atomic.remove_dead_temps).
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import signal
import time
from pathlib import Path
from typing import Callable

from ..errors import MemsrError
from .atomic import _signals_held, process_gone, remove_dead_temps

JOURNAL = ".memsr-journal.jsonl"
CLAIM = ".memsr-claim"
WAIT_POLL_S = 0.05


def job_key(settings: dict) -> str:
    """A short name for everything that decides an output's pixels (model, runtime, settings)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _input_id(src: Path) -> list:
    st = os.stat(src)
    return [os.path.realpath(src), st.st_size, st.st_mtime_ns]


def _file_id(path: Path) -> list | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns]


class Journal:
    """The journal of one output folder, read incrementally (it is only ever appended to)."""

    def __init__(self, folder: Path):
        self.path = Path(folder) / JOURNAL
        self.offset = 0
        self.latest: dict[str, dict] = {}   # output name -> its last line

    def refresh(self) -> None:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return
        end = data.rfind(b"\n") + 1   # a line still being written waits for its newline
        for line in data[:end].splitlines():
            try:
                entry = json.loads(line)
                self.latest[entry["out"]] = entry
            except (ValueError, KeyError, TypeError):
                continue   # blank, or torn by a crash (every line starts on a fresh one, so only it is lost)
        self.offset += end

    def append(self, entry: dict) -> None:
        line = b"\n" + json.dumps(entry).encode() + b"\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)   # one line at a time from concurrent runs
            view = memoryview(line)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)


# ------------------------------------------------------------------------------------------------ claims
def _claim_path(dst: Path) -> Path:
    return dst.with_name(f".{dst.name}{CLAIM}")


def _lock(path: Path, create: bool) -> int | None:
    """An fd holding the exclusive lock of the claim file ``path`` (still under that name), or None when a live
    process holds it (or, without ``create``, when there is none)."""
    while True:
        try:
            fd = os.open(path, os.O_RDWR | (os.O_CREAT if create else 0), 0o666)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            return fd
        # its holder removed it between our open and our lock: the lock is on a file no one else will see
        os.close(fd)
        if not create:
            return None


def _unlock(path: Path, fd: int) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)   # while locked: whoever opened it meanwhile sees it gone once it gets the lock
    os.close(fd)


def _holder(dst: Path) -> int | None:
    try:
        return int(_claim_path(dst).read_text().strip())
    except (OSError, ValueError):
        return None


def remove_free_claims(folder: Path) -> int:
    """Remove the claims in ``folder`` that no live process holds (left by kill -9); returns how many."""
    n = 0
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        for p in Path(folder).glob(f".*{CLAIM}"):
            with _signals_held() as held:
                fd = _lock(p, create=False)
                if fd is not None:
                    _unlock(p, fd)
                    n += 1
            for signum in held:
                signal.raise_signal(signum)
    return n


@contextlib.contextmanager
def claimed(dst: Path, wait: bool = False):
    """Hold the claim of ``dst`` for the block; yields False (and holds nothing) when a live process holds it
    and ``wait`` is False. With ``wait``, polls until the holder lets go or ends."""
    path = _claim_path(dst)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        # a signal between creating the claim and knowing we hold it would leave a claim file behind
        failure = None
        with _signals_held() as held:
            try:
                fd = _lock(path, create=True)
            except OSError as e:   # a folder that cannot be written: the photo fails, named, as in any run
                fd, failure = None, MemsrError(f"cannot write output ({e.strerror or e})", dst)
            if fd is not None:
                with contextlib.suppress(OSError):   # only for the other process's messages (a full disk)
                    os.ftruncate(fd, 0)
                    os.write(fd, f"{os.getpid()}\n".encode())
        for signum in held:
            signal.raise_signal(signum)
        if failure is not None:
            raise failure
        if fd is not None or not wait:
            break
        time.sleep(WAIT_POLL_S)
    if fd is None:
        yield False
        return
    try:
        yield True
    finally:
        with _signals_held() as held:
            _unlock(path, fd)
        for signum in held:
            signal.raise_signal(signum)


# --------------------------------------------------------------------------------------------------- job
class SharedJob:
    """One batch run's side of the protocol above. ``key``: job_key of the run's settings; ``note`` and ``warn``
    print one line to stderr."""

    def __init__(self, key: str, overwrite: bool, note: Callable[[str], None], warn: Callable[[str], None]):
        self.key, self.overwrite, self.log, self.warn = key, overwrite, note, warn
        self.pid = os.getpid()
        self.started = time.time()
        self.journals: dict[Path, Journal] = {}
        self.waiting: dict[Path, int | None] = {}       # input -> the pid that held its output's claim
        self.by_others: dict[int, list[Path]] = {}      # pid -> inputs it upscaled while this run ran

    def _journal(self, folder: Path) -> Journal:
        folder = Path(os.path.abspath(folder))
        if folder not in self.journals:
            self.journals[folder] = Journal(folder)
        j = self.journals[folder]
        j.refresh()
        return j

    def _entry(self, src: Path | None, out: Path) -> dict | None:
        """The journal line that makes ``out`` this job's finished output (of ``src``, when given)."""
        entry = self._journal(out.parent).latest.get(out.name)
        if entry is None or entry.get("job") != self.key or entry.get("out_id") != _file_id(out):
            return None
        if src is not None:
            try:
                if entry.get("in") != _input_id(src):
                    return None
            except OSError:
                return None
        return entry

    # ----------------------------------------------------------------------------------------- planning
    def clean(self, folders) -> None:
        """Remove what killed runs left in ``folders``: free claims and dead writers' temporary files."""
        temps = claims = 0
        for folder in folders:
            temps += len(remove_dead_temps(folder))
            claims += remove_free_claims(folder)
        if temps or claims:
            self.log(f"removed {temps} temporary file(s) and {claims} claim(s) left by a run that was killed")

    def is_own_output(self, path: Path) -> bool:
        """``path`` is an output this job wrote (so not an input of it, when outputs lie beside inputs)."""
        return self._entry(None, path) is not None

    def finished(self, src: Path, dst: Path) -> str | None:
        """Whether ``dst`` is this job's complete output of ``src``, kept: "earlier" (an earlier run's, unless
        --overwrite), "other" (written by a run of this job that is still going, or since this one started: it
        is noted as that run's work), or None (to be written)."""
        entry = self._entry(src, dst)
        if entry is None:
            return None
        pid = entry.get("pid")
        if entry.get("t", 0) >= self.started or (pid != self.pid and isinstance(pid, int)
                                                 and not process_gone(pid, entry.get("t", 0))):
            self.by_others.setdefault(pid, []).append(src)
            return "other"
        return None if self.overwrite else "earlier"

    # ---------------------------------------------------------------------------------------------- run
    def attempt(self, src: Path, dst: Path, work, wait: bool = False) -> None:
        """Run ``work(src, before_rename)`` for ``src`` unless another process holds its output (then it is
        remembered for ``finish``) or has written it meanwhile."""
        with claimed(dst, wait) as mine:
            if not mine:
                self.waiting[src] = _holder(dst)
                return
            if self.finished(src, dst):
                return
            if dst.exists() and not self.overwrite:   # not this job's (finished() said so): never replaced
                self.warn(f"skipped {src}: output {dst} exists (pass --overwrite to replace it)")
                return
            work(src, lambda tmp: self._record(src, dst, tmp))

    def _record(self, src: Path, dst: Path, tmp: Path) -> None:
        self._journal(dst.parent).append({"out": dst.name, "job": self.key, "in": _input_id(src),
                                          "out_id": _file_id(tmp), "pid": self.pid, "t": time.time()})

    def finish(self, outputs: dict, retry: Callable[[Path, bool], None], folders) -> None:
        """Wait for the outputs other processes held and do those they did not write (they may have ended or
        failed): ``retry(src, wait)`` calls ``attempt(..., wait)``. Then clean up and say which photos other
        processes took."""
        for src in list(self.waiting):
            del self.waiting[src]
            retry(src, False)   # mostly done by now
            if src in self.waiting:
                self.log(f"waiting for {_who(self.waiting.pop(src))} to finish {outputs[src].name}")
                retry(src, True)
        self.clean(folders)
        for pid, srcs in self.by_others.items():
            srcs = sorted(srcs)
            names = ", ".join(s.name for s in srcs[:10]) + (f" and {len(srcs) - 10} more" if len(srcs) > 10 else "")
            self.log(f"{len(srcs)} photo(s) were upscaled by {_who(pid)}: {names}")


def _who(pid: int | None) -> str:
    return f"another memsr-upscale (pid {pid})" if pid else "another memsr-upscale"
