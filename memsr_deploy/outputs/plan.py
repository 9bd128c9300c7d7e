"""The output plan of a run: every file a CLI will write, checked against its inputs before any work starts.

Rules (the same for every writer):
  * an output is never one of the run's inputs (not even with --overwrite);
  * two jobs never write the same output (a.png and a.jpg with --ext png): the run is refused;
  * an existing file is replaced only with --overwrite, or when the run itself made it (``own``: a resumed
    training run's checkpoint); otherwise the run is refused, or, for folder runs (``skip_existing``), that
    job is skipped with a message;
  * an output whose folder is, or lies under, a regular file, or an output that is a folder, is refused.
Refusals are MemsrError (one line, exit 2 through ``errors.cli_errors``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Hashable, Iterable

from ..errors import MemsrError


def _key(path) -> str:
    """One spelling per file: an existing file by its identity (symlinks, '..', relative paths and hard links
    all meet), a file still to be made by its resolved path."""
    try:
        st = os.stat(path)
    except OSError:
        return os.path.normcase(os.path.realpath(path))
    return f"inode {st.st_dev}:{st.st_ino}"


def check_folder(folder, what: str = "output folder") -> Path:
    """``folder`` can be created or is a folder: neither it nor any folder above it is a regular file."""
    folder = Path(folder)
    p = folder
    while True:
        if p.exists() and not p.is_dir():
            if p == folder:
                raise MemsrError(f"{what} is a regular file, not a folder", folder)
            raise MemsrError(f"{what} lies under {p}, which is a regular file", folder)
        if p.exists() or p == p.parent:
            return folder
        p = p.parent


@dataclass
class OutputPlan:
    """Collects (job, outputs) pairs; ``check`` applies the rules above to all of them at once."""
    inputs: Iterable = ()
    overwrite: bool = False
    skip_existing: bool = False     # folder runs: skip a job whose output exists, instead of refusing the run
    own: Iterable = ()              # files this run made earlier (resume) and may replace
    log: Callable[[str], None] | None = None
    jobs: list = field(default_factory=list)

    def add(self, job: Hashable, *outputs) -> None:
        self.jobs.append((job, [Path(o) for o in outputs]))

    def check(self) -> list:
        """The jobs to run (all of them, or those not skipped); raises MemsrError on a refusal."""
        inputs = {_key(p): Path(p) for p in self.inputs}
        own = {_key(p) for p in self.own}
        planned: dict[str, object] = {}
        keep = []
        for job, outputs in self.jobs:
            skip_why = None
            for out in outputs:
                check_folder(out.parent)
                if out.is_dir():
                    raise MemsrError("output is a folder; give a file name", out)
                k = _key(out)
                if k in planned:
                    raise MemsrError(f"{planned[k]} and {job} would both be written to this output; "
                                     f"rename one or choose another --ext / -o", out)
                planned[k] = job
                if k in inputs:
                    skip_why = skip_why or "is one of this run's inputs"
                elif out.exists() and k not in own and not self.overwrite:
                    skip_why = skip_why or "exists (pass --overwrite to replace it)"
                if skip_why:
                    if not self.skip_existing:
                        if k in inputs:
                            same = os.path.normpath(inputs[k]) == os.path.normpath(out)
                            raise MemsrError("output is one of this run's inputs (refused: it would be overwritten)"
                                             if same else f"output would overwrite the input {inputs[k]}", out)
                        raise MemsrError(f"output {skip_why}", out)
            if skip_why:
                if self.log:
                    self.log(f"skipped {job}: output {outputs[0] if len(outputs) == 1 else outputs} {skip_why}")
                continue
            keep.append(job)
        return keep


def check_outputs(outputs: Iterable, inputs: Iterable = (), overwrite: bool = False, own: Iterable = ()) -> None:
    """A single job's outputs: the common case of a CLI that writes one artefact (a model pair, a report)."""
    plan = OutputPlan(inputs=list(inputs), overwrite=overwrite, own=list(own))
    plan.add("this run", *outputs)
    plan.check()


def model_pair_inputs(*model_paths) -> list[Path]:
    """Both files of each model pair given as NAME, NAME.json or NAME.safetensors, or the file itself for a
    PyTorch checkpoint (for the input list)."""
    from ..formats.checkpoint import is_checkpoint
    from ..formats.model_file import pair_paths
    from ..formats.registry import names, resolve
    out = []
    for m in model_paths:
        if m is not None and is_checkpoint(m):
            out.append(Path(str(m)))
        elif m is not None:
            out += list(pair_paths(resolve(str(m)) if str(m) in names() else m))
    return out
