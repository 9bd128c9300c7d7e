"""Run a model's recipe stage by stage in a folder outside the checkout, and log each stage's wall time, its
attempts and whether anything else was running on the machine.

  python -m memsr_bench.run_recipe benchmarks/recipes/memsr_x2_lite.txt --root /root/memsr_runs/x2_lite

A recipe is a text file of commands, one per line (``#`` starts a comment); ``runs/NAME`` in a command means
ROOT/NAME. Running the same command again after an interruption skips the finished stages and reruns the
interrupted one (memsr-train resumes from its checkpoints). ROOT/stages.json is the log;
``package_bundled --recipe-log ROOT/stages.json`` turns it into the model's recipe, with each stage's minutes.
Why the "alone" column: a stage's minutes are a timing only when nothing else was busy, and a busy machine is
recorded (others' CPU, in cores) rather than assumed away.
"""
from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import psutil

from memsr_deploy.cli.args import summary
from memsr_deploy.errors import MemsrError, cli_errors
from memsr_deploy.outputs.atomic import atomic_path
from memsr_deploy.training.checkpoint import CHECKPOINT

LOG = "stages.json"
RUNS = "runs/"
ALONE_CORES = 0.25      # mean CPU of other processes (cores) below which a stage counts as run alone
SAMPLE_S = 5.0


def read_recipe(path) -> list[str]:
    """The commands of a recipe file, comments and blank lines dropped, each as written."""
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise MemsrError(f"cannot read the recipe ({e.strerror or e})", path) from None
    commands = []
    for n, line in enumerate(text.splitlines(), 1):
        try:
            tokens = shlex.split(line, comments=True)
        except ValueError as e:
            raise MemsrError(f"line {n}: {e}", path) from None
        if tokens:
            commands.append(shlex.join(tokens))
    if not commands:
        raise MemsrError("no commands in the recipe", path)
    return commands


def resolve(command: str, root: Path) -> list[str]:
    """The argv that runs ``command``: runs/NAME under ``root``, memsr's console scripts and ``python`` from this
    interpreter's environment (so a recipe runs the checkout it was started from)."""
    argv = [str(root / t[len(RUNS):]) if t.startswith(RUNS) else t for t in shlex.split(command)]
    if argv[0] in ("python", "python3"):
        argv[0] = sys.executable
    else:
        local = Path(sys.executable).parent / argv[0]
        found = str(local) if local.exists() else shutil.which(argv[0])
        if found is None:
            raise MemsrError(f"command not found: {argv[0]}")
        argv[0] = found
    return argv


def flag_value(argv: list[str], *names: str) -> str | None:
    """The value after the first of ``names`` in ``argv`` (None when absent)."""
    for i, t in enumerate(argv[:-1]):
        if t in names:
            return argv[i + 1]
    return None


class OthersCpu:
    """Mean CPU (in cores) used by every process outside one process tree, sampled while it runs."""

    def __init__(self, pid: int):
        self.root = psutil.Process(pid)
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _tree_seconds(self) -> float:
        total = 0.0
        try:
            procs = [self.root, *self.root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return 0.0
        for p in procs:
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                pass
        return total

    @staticmethod
    def _machine_seconds() -> float:
        t = psutil.cpu_times()
        return t.user + t.system + getattr(t, "nice", 0.0) + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)

    def _run(self) -> None:
        machine, tree, wall = self._machine_seconds(), self._tree_seconds(), time.monotonic()
        while not self._stop.wait(SAMPLE_S):
            m, t, w = self._machine_seconds(), self._tree_seconds(), time.monotonic()
            if t >= tree:  # a child that exited takes its seconds with it: skip that interval
                self.samples.append(max(0.0, (m - machine) - (t - tree)) / (w - wall))
            machine, tree, wall = m, t, w

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def mean(self) -> float | None:
        return sum(self.samples) / len(self.samples) if self.samples else None


def read_log(path) -> dict:
    try:
        log = json.loads(Path(path).read_text())
        missing = [sorted({"command", "status", "attempts"} - set(s)) for s in log["stages"]]
    except OSError as e:
        raise MemsrError(f"cannot read the recipe log ({e.strerror or e})", path) from None
    except (ValueError, KeyError, TypeError) as e:
        raise MemsrError(f"not a recipe log ({e.__class__.__name__}: {e})", path) from None
    for n, m in enumerate(missing, 1):
        if m:
            raise MemsrError(f"not a recipe log (stage {n} has no {', '.join(m)})", path)
    return log


def load_log(path: Path, commands: list[str]) -> dict:
    """The log of an earlier run of the same recipe, or a fresh one; a recipe changed since is refused."""
    if not path.exists():
        return {"stages": [{"command": c, "status": "pending", "seconds": 0.0, "attempts": []} for c in commands]}
    log = read_log(path)
    logged = [s["command"] for s in log["stages"]]
    for i, (a, b) in enumerate(zip(logged, commands), 1):
        if a != b:
            raise MemsrError(f"stage {i} differs from the recipe this log was made with (logged: {a!r}); use "
                             "another --root", path)
    if len(logged) != len(commands):
        raise MemsrError(f"the log has {len(logged)} stages, the recipe {len(commands)}; use another --root", path)
    return log


def save_log(path: Path, log: dict) -> None:
    with atomic_path(path, sync=True) as tmp:
        tmp.write_text(json.dumps(log, indent=1) + "\n")


def with_threads(argv: list[str], threads: int | None) -> list[str]:
    """``argv`` with its --threads value replaced by ``threads`` (unchanged when None or when it has none):
    a stage may resume on whatever cores are free (the thread count changes float sums' last bits, not the recipe)."""
    if threads is None or "--threads" not in argv[:-1]:
        return argv
    i = argv.index("--threads")
    return argv[:i + 1] + [str(threads)] + argv[i + 2:]


def run_stage(stage: dict, argv: list[str], log_path: Path, log: dict) -> int:
    """Run one stage to its end, adding this attempt to the log whatever happens (an interrupt included)."""
    attempt = {"started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "seconds": None,
               "others_cpu_cores": None, "returncode": None}
    threads = flag_value(argv, "--threads")
    if threads is not None:
        attempt["threads"] = int(threads)
    stage["attempts"].append(attempt)
    stage["status"] = "running"
    save_log(log_path, log)
    t0 = time.monotonic()
    proc = subprocess.Popen(argv)
    try:
        with OthersCpu(proc.pid) as others:
            try:
                rc = proc.wait()
            except BaseException:
                proc.terminate()  # memsr-train saves a checkpoint on SIGTERM before it exits
                proc.wait()
                raise
    finally:
        attempt["seconds"] = round(time.monotonic() - t0, 1)
        attempt["others_cpu_cores"] = None if others.mean() is None else round(others.mean(), 2)
        attempt["returncode"] = proc.returncode
        stage["seconds"] = round(sum(a["seconds"] or 0 for a in stage["attempts"]), 1)
        stage["status"] = "done" if proc.returncode == 0 else "interrupted"
        save_log(log_path, log)
    return rc


def describe(stage: dict) -> str:
    """'38 min, 1 thread, alone' style summary of a logged stage, for the recipe line's comment."""
    attempts = stage["attempts"]
    written = flag_value(shlex.split(stage["command"]), "--threads")
    threads = sorted({a.get("threads", int(written)) for a in attempts} if written else set())
    others = [a["others_cpu_cores"] for a in attempts if a["others_cpu_cores"] is not None]
    busiest = max(others) if others else None
    parts = [f"{stage['seconds'] / 60:.0f} min"]
    if threads:
        counts = " or ".join(str(t) for t in threads)
        parts.append(f"{counts} thread{'s' if threads != [1] else ''}")
    if busiest is None:
        parts.append("machine load not sampled")
    elif busiest < ALONE_CORES:
        parts.append("alone" if len(others) == len(attempts) else "alone while timed")
    else:
        parts.append(f"machine shared (others used up to {busiest:.1f} cores)")
    if len(attempts) > 1:
        parts.append(f"{len(attempts)} attempts, resumed from checkpoints")
    lost = sum(a.get("seconds", 0) is None for a in attempts)
    if lost:
        parts.append(f"{lost} attempt{'s' if lost > 1 else ''} stopped with the machine, minutes not counted")
    if stage.get("existing_checkpoint"):
        parts.append("continued a checkpoint made before this log, whose minutes are not counted")
    return ", ".join(parts)


def recipe_lines(path) -> list[str]:
    """The commands of a finished recipe log, each with its ``describe`` comment."""
    log = read_log(path)
    for n, s in enumerate(log["stages"], 1):
        if s["status"] != "done":
            raise MemsrError(f"stage {n} is {s['status']}, not done: finish the recipe first", path)
    return [f"{s['command']}  # {describe(s)}" for s in log["stages"]]


@cli_errors
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=summary(__doc__))
    ap.add_argument("recipe", help="text file of commands, one per line")
    ap.add_argument("--root", required=True, help="folder for runs/ (outside the checkout, so it survives)")
    ap.add_argument("--dry-run", action="store_true", help="print what would run and stop")
    ap.add_argument("--threads", type=int, help="run each stage with this many threads instead of the recipe's "
                    "(logged per attempt; the recipe's commands stay as written)")
    args = ap.parse_args(argv)

    root = Path(args.root).resolve()
    commands = read_recipe(args.recipe)
    log_path = root / LOG
    log = load_log(log_path, commands)
    # every command checked before the first runs
    argvs = [with_threads(resolve(c, root), args.threads) for c in commands]
    for n, (stage, av) in enumerate(zip(log["stages"], argvs), 1):
        head = f"stage {n}/{len(commands)}"
        if stage["status"] == "done":
            print(f"{head}: done ({describe(stage)})", file=sys.stderr)
            continue
        if args.dry_run:
            print(f"{head}: would run {shlex.join(av)}", file=sys.stderr)
            continue
        out = flag_value(av, "--out", "-o")
        if not stage["attempts"] and out is not None and (Path(out) / CHECKPOINT).exists():
            stage["existing_checkpoint"] = True
        print(f"{head}: {stage['command']}", file=sys.stderr)
        rc = run_stage(stage, av, log_path, log)
        if rc != 0:
            raise MemsrError(f"{head} exited with {rc}; run the same command again to resume it", args.recipe)
        print(f"{head}: done ({describe(stage)})", file=sys.stderr)
    if not args.dry_run:
        print(f"all {len(commands)} stages done; log: {log_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
