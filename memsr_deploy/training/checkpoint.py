"""Training checkpoints that survive the faults of a long run.

- Written atomically and durably (temporary name, fsync, rename: outputs.atomic), so a kill or a full disk while
  saving leaves the previous checkpoint as it was.
- Never written with non-finite tensors (a diverged run keeps its last good checkpoint).
- Checked when read: torch.load (weights_only=True: nothing arbitrary is unpickled) refuses a truncated file, and
  a digest of the contents stored inside catches flipped bytes, which torch.load alone accepts silently.
- Kept with the one before them: ``checkpoint.prev.pt`` is the previous save (a hard link, so it costs no space).
  A resumed run whose ``checkpoint.pt`` is damaged goes on from ``checkpoint.prev.pt`` and says so on stderr;
  when neither is usable it stops with one line.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import sys
from pathlib import Path

import torch

from ..errors import MemsrError
from ..outputs.atomic import atomic_path, remove_dead_temps

CHECKPOINT = "checkpoint.pt"
PREVIOUS = "checkpoint.prev.pt"
DIGEST_KEY = "content_sha256"
REQUIRED = ("model", "optimizer", "step")


def nonfinite_tensors(obj, name: str = "") -> list[str]:
    """Names (dotted paths) of the floating-point tensors in a nested dict/list that hold a NaN or an inf."""
    if isinstance(obj, torch.Tensor):
        bad = obj.is_floating_point() and not bool(torch.isfinite(obj).all())
        return [name] if bad else []
    if isinstance(obj, dict):
        items = obj.items()
    elif isinstance(obj, (list, tuple)):
        items = enumerate(obj)
    else:
        return []
    return [n for k, v in items for n in nonfinite_tensors(v, f"{name}.{k}" if name else str(k))]


def content_digest(state) -> str:
    """SHA-256 of a nested dict/list of tensors and plain values, independent of how torch.save lays them out."""
    h = hashlib.sha256()

    def feed(obj) -> None:
        if isinstance(obj, torch.Tensor):
            t = obj.detach().cpu().contiguous().reshape(-1)
            h.update(f"T{t.dtype}{tuple(obj.shape)}".encode())
            h.update(t.view(torch.uint8).numpy().tobytes())
        elif isinstance(obj, dict):
            h.update(f"D{len(obj)}".encode())
            for k in sorted(obj, key=repr):
                h.update(repr(k).encode())
                feed(obj[k])
        elif isinstance(obj, (list, tuple)):
            h.update(f"L{len(obj)}".encode())
            for v in obj:
                feed(v)
        else:
            h.update(f"V{obj!r}".encode())

    feed(state)
    return h.hexdigest()


def save_checkpoint(path, state: dict, previous=None) -> None:
    """Write ``state`` to ``path`` (atomic, synced, with its digest). ``previous``: first keep the checkpoint now
    at ``path`` under this name. Refuses non-finite tensors; a write that fails (full disk) leaves ``path`` and
    ``previous`` as they were and raises MemsrError."""
    path = Path(path)
    bad = nonfinite_tensors(state)
    if bad:
        raise MemsrError(f"refused to write a checkpoint with {len(bad)} non-finite tensors (first: {bad[0]})", path)
    buf = io.BytesIO()  # serialised in memory, so that a failing disk write surfaces as the OSError it is
    torch.save({**state, DIGEST_KEY: content_digest(state)}, buf)
    try:
        with atomic_path(path, sync=True) as tmp:
            with open(tmp, "wb") as f:
                f.write(buf.getbuffer())
                f.flush()
                os.fsync(f.fileno())
            # only once the new one is safely on disk: a full disk leaves both checkpoints as they were
            if previous is not None and path.exists():
                _keep_as(path, Path(previous))
    except OSError as e:
        raise MemsrError(f"could not write the checkpoint ({e.strerror or e}); the previous one is kept", path) \
            from None


def _keep_as(path: Path, previous: Path) -> None:
    """``previous`` becomes the file now at ``path`` (replaced atomically; ``path`` itself is untouched)."""
    # A run killed between keeping the previous checkpoint and renaming the new one leaves both names on one
    # inode; rename() onto a hard link of the same file does nothing and would leave the temporary name behind.
    with contextlib.suppress(FileNotFoundError):
        if os.path.samefile(path, previous):
            return
    with atomic_path(previous, sync=True) as tmp:
        tmp.unlink()
        try:
            os.link(path, tmp)
        except OSError:  # a file system without hard links
            shutil.copyfile(path, tmp)


def load_checkpoint(path) -> dict:
    """Read and check a checkpoint: readable, of the expected layout, matching its digest, finite."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for truncated / foreign files
        raise MemsrError(f"unreadable checkpoint ({e.__class__.__name__}: {str(e).splitlines()[0][:120]})",
                         path) from None
    if not isinstance(state, dict) or any(k not in state for k in REQUIRED):
        raise MemsrError("not a training checkpoint (no model, optimizer and step)", path)
    digest = state.pop(DIGEST_KEY, None)  # absent in checkpoints written before it was added: not checked
    if digest is not None and digest != content_digest(state):
        raise MemsrError("damaged checkpoint (its contents do not match the digest saved with them)", path)
    bad = nonfinite_tensors(state)
    if bad:
        raise MemsrError(f"checkpoint of a diverged run ({len(bad)} non-finite tensors, first: {bad[0]})", path)
    return state


class RunCheckpoints:
    """The checkpoints of one run folder: which one a resumed run starts from, and the previous one kept."""

    def __init__(self, folder):
        self.folder = Path(folder)
        self.path = self.folder / CHECKPOINT
        self.previous = self.folder / PREVIOUS
        self.good: Path | None = None       # the newest good checkpoint on disk (None: none yet)
        self.step: int | None = None        # and its step
        self._rotate = False                # whether checkpoint.pt is good and becomes the previous one at a save
        self._keep_previous = False         # whether checkpoint.prev.pt belongs to this run

    def remove_temps(self) -> None:
        """Temporary files of a run killed with SIGKILL while saving."""
        for name in (CHECKPOINT, PREVIOUS):
            remove_dead_temps(self.folder, Path(name).stem)

    def resume(self, warn: bool = True) -> tuple[dict, Path] | None:
        """The newest usable checkpoint and its path, None when there is none. A damaged checkpoint.pt falls back
        to checkpoint.prev.pt with a warning on stderr (``warn``); none usable: MemsrError (one line)."""
        if not self.path.exists() and not self.previous.exists():
            return None
        problem = None
        if self.path.exists():
            try:
                state = load_checkpoint(self.path)
                self._rotate, self._keep_previous = True, True
                self.good, self.step = self.path, int(state["step"])
                return state, self.path
            except MemsrError as e:
                problem = str(e)
        else:
            problem = f"{self.path}: missing"
        hint = "use --no-resume --overwrite to start over"
        if not self.previous.exists():
            raise MemsrError(f"{problem}; no previous checkpoint ({PREVIOUS}) to fall back on; {hint}")
        try:
            state = load_checkpoint(self.previous)
        except MemsrError as e:
            raise MemsrError(f"{problem}; the previous one is not usable either ({e}); {hint}") from None
        self._rotate, self._keep_previous = False, True
        self.good, self.step = self.previous, int(state["step"])
        if warn:
            print(f"warning: {problem}; resuming from the previous checkpoint, {self.previous} (step {self.step})",
                  file=sys.stderr)
        return state, self.previous

    def save(self, state: dict) -> None:
        save_checkpoint(self.path, state, previous=self.previous if self._rotate else None)
        if not self._keep_previous:  # another run's (a fresh start over it): never to be resumed from
            with contextlib.suppress(FileNotFoundError):
                self.previous.unlink()
        self._rotate, self._keep_previous = True, True
        self.good, self.step = self.path, int(state["step"])

    def describe(self) -> str:
        """Where the last good checkpoint is, for messages."""
        if self.step is None:
            return "no checkpoint had been written"
        return f"the last good checkpoint, {self.good} (step {self.step}), is kept"
