"""Folder jobs under faults (issue 32, items 3, 4 and 7): two processes on one folder, kill -9 at random points
and at the worst ones, and a full disk. After each: every output complete, decodable and equal to a clean
run's, written once, and nothing left behind (no temporary file, no claim) once the job has been run again.

Fault injection prints its trial count and the invariants it checked (pytest -s shows them)."""
from __future__ import annotations

import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import make_plain
from memsr_deploy.cli import upscale as upscale_cli
from memsr_deploy.formats.model_file import save_model
from memsr_deploy.outputs.atomic import is_temp_name, remove_dead_temps
from memsr_deploy.outputs.folder_job import CLAIM, JOURNAL

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
PHOTOS = 8
RANDOM_KILLS = 3


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    """A folder of photos of mixed sizes, a random-weight x2 model and a clean run's outputs (the reference)."""
    root = tmp_path_factory.mktemp("faults")
    save_model(make_plain(widths=(16, 16, 16)), root / "m", kind="student")
    photos = root / "in"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(PHOTOS):
        h, w = (48, 64) if i % 3 == 0 else (120, 160)   # small outputs fit the full-disk limit below, large not
        Image.fromarray((rng.random((h, w, 3)) * 255).astype(np.uint8)).save(photos / f"p{i}.png")
    argv = [str(photos), "--model", str(root / "m"), "--backend", "litert", "--threads", "1", "-q"]
    t = time.perf_counter()
    assert upscale_cli.main(argv + ["-o", str(root / "ref")]) == 0
    (root / "seconds").write_text(str(time.perf_counter() - t))
    ref = {p.name: np.asarray(Image.open(p)) for p in (root / "ref").glob("*.png")}
    assert len(ref) == PHOTOS
    return root, argv, ref


def job_seconds(job) -> float:
    return float((job[0] / "seconds").read_text())


def cli(argv, out, *extra):
    return [sys.executable, "-m", "memsr_deploy.cli.upscale", *argv, "-o", str(out), *extra]


def identities(out: Path) -> dict:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.glob("*.png") if p.name[0] != "."}


def check_complete(out: Path, ref: dict, lines_written: int | None = None) -> None:
    """Every output there, decodable and equal to the clean run's; no temporary file or claim; one journal line
    matching each output (each write adds a line; ``lines_written``: how many there must be in all)."""
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted([*ref, JOURNAL]), names
    for name, pixels in ref.items():
        with Image.open(out / name) as im:
            assert np.array_equal(np.asarray(im), pixels), name
    lines = [json.loads(ln) for ln in (out / JOURNAL).read_text().splitlines() if ln.strip()]
    matching = [e["out"] for e in lines if e["out_id"] == file_id(out / e["out"])]
    assert sorted(matching) == sorted(ref), "an output was written more than once, or not recorded"
    assert lines_written is None or len(lines) == lines_written, f"{len(lines)} outputs written, not {lines_written}"


def file_id(path: Path) -> list | None:
    if not path.exists():
        return None
    st = path.stat()
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns]


def wait_for(cond, timeout=60.0, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.002)
    raise AssertionError(f"timed out waiting for {what}")


def held_claim(out: Path, pid: int) -> Path | None:
    for p in out.glob(f".*{CLAIM}") if out.exists() else ():
        try:
            if p.read_text().strip() == str(pid):
                return p
        except FileNotFoundError:
            pass
    return None


def stop_while_holding_a_claim(proc, out: Path) -> Path:
    """SIGSTOP ``proc`` at a moment it holds the claim of an output (it is writing that photo)."""
    while True:
        wait_for(lambda: held_claim(out, proc.pid) or proc.poll() is not None, what="a claim")
        assert proc.poll() is None, "finished before it could be stopped"
        proc.send_signal(signal.SIGSTOP)
        claim = held_claim(out, proc.pid)
        if claim is not None:
            return claim
        proc.send_signal(signal.SIGCONT)


def by_other(err: str) -> str:
    """The line in which a run names the photos another process upscaled ("" if none)."""
    return next((ln for ln in err.splitlines() if "were upscaled by another memsr-upscale" in ln), "")


def photos_by_other(err: str) -> int:
    line = by_other(err)
    return int(line.split("note: ", 1)[1].split()[0]) if line else 0


# --------------------------------------------------------------------------------------------- item 3
@pytest.mark.parametrize("then", ["continue", "kill -9"])
def test_two_processes_on_one_folder(tmp_path, job, then):
    """A holds a photo's claim (stopped there); B does every other photo and waits for that one. When A goes
    on, each says which photos the other took; when A is killed, B takes its photo over. Every output is
    written once in both cases, and no claim or temporary file is left."""
    root, argv, ref = job
    out = tmp_path / "out"
    extra = []
    if then == "continue":   # both asked to replace outputs there before them: still each written once
        shutil.copytree(root / "ref", out, ignore=shutil.ignore_patterns(".*"))
        extra = ["--overwrite"]
    a = subprocess.Popen(cli(argv, out, *extra), env=ENV, stderr=subprocess.PIPE, text=True)
    b = None
    try:
        claim = stop_while_holding_a_claim(a, out)
        b = subprocess.Popen(cli(argv, out, *extra), env=ENV, stderr=subprocess.PIPE, text=True)
        for line in b.stderr:  # B has done the rest and waits for A's photo
            if "waiting for another memsr-upscale (pid %d)" % a.pid in line:
                break
        else:
            raise AssertionError(f"B never waited for A (exit {b.wait()})")
        held = claim.name[1:-len(CLAIM)]
        held_src = held.replace("_x2.png", ".png")
        visible = sorted(identities(out))   # at this moment: whole outputs only, under their names
        # (A may have been stopped between renaming its photo and letting go of the claim)
        assert set(ref) - {held} <= set(visible) <= set(ref)
        for name in visible:
            with Image.open(out / name) as im:
                assert np.array_equal(np.asarray(im), ref[name]), name
        if then == "continue":
            a.send_signal(signal.SIGCONT)
            err_a = a.communicate(timeout=60)[1]
            assert a.returncode == 0, err_a
        else:
            a.kill()
            a.wait()
        err_b = b.stderr.read()
        assert b.wait(timeout=60) == 0, err_b
    finally:
        for p in (a, b):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
    check_complete(out, ref, PHOTOS if then == "continue" else None)
    if then == "continue":
        # each photo was written by one of them, and each says how many the other did
        assert photos_by_other(err_a) + photos_by_other(err_b) == PHOTOS, (err_a, err_b)
        assert f"by another memsr-upscale (pid {b.pid})" in by_other(err_a)
        assert held_src in by_other(err_b) and held_src not in by_other(err_a)
    elif held not in visible:
        assert held_src not in by_other(err_b)  # B wrote the photo A was killed on


# --------------------------------------------------------------------------------------- items 4 and 7
def kill_at_nth_call(name: str, n: int) -> str:
    """A run that kills itself with SIGKILL at the n-th call of os.NAME: a fault at an exact point."""
    return (f"import os, sys\nfrom memsr_deploy.cli import upscale\nreal, calls = os.{name}, []\n"
            f"def hooked(*a, **k):\n    calls.append(a)\n    if len(calls) == {n}:\n"
            f"        os.kill(os.getpid(), 9)\n    return real(*a, **k)\n"
            f"os.{name} = hooked\nsys.exit(upscale.main(sys.argv[1:]))\n")


def test_kill_9_at_random_points_then_the_same_command_finishes(tmp_path, job, capsys):
    root, argv, ref = job
    rng = random.Random(32)
    window = job_seconds(job)   # how long the photos take: the span random kills sample, from the first claim on
    points = [("before the 2nd output takes its name (journal written)", "replace", 2),
              ("after the 3rd output took its name (claim still held)", "unlink", 3)]
    points += [(f"{f:.2f} of the way through the photos", "random", f)
               for f in (rng.uniform(i / RANDOM_KILLS, (i + 1) / RANDOM_KILLS) for i in range(RANDOM_KILLS))]
    left_by_kill = []
    for i, (where, how, arg) in enumerate(points):
        out = tmp_path / f"t{i}"
        if how == "random":
            p = subprocess.Popen(cli(argv, out), env=ENV, stderr=subprocess.PIPE, text=True)
            wait_for(lambda: held_claim(out, p.pid) or p.poll() is not None, what="a claim")
            time.sleep(arg * window)
            p.kill()
        else:  # in a fresh folder every unlink is a claim's release, after its output took its name
            p = subprocess.Popen([sys.executable, "-c", kill_at_nth_call(how, arg), *argv, "-o", str(out)],
                                 env=ENV, stderr=subprocess.PIPE, text=True)
        p.communicate(timeout=60)
        before = identities(out) if out.exists() else {}
        temps = sum(is_temp_name(q) for q in out.iterdir()) if out.exists() else 0
        claims = len(list(out.glob(f".*{CLAIM}"))) if out.exists() else 0
        left_by_kill.append((len(before), temps, claims))
        if how == "replace":   # the 2nd photo complete under its temporary name, its claim held
            assert left_by_kill[-1] == (1, 1, 1), left_by_kill[-1]
        elif how == "unlink":  # the 3rd photo has its name, its claim is still there
            assert left_by_kill[-1] == (3, 0, 1), left_by_kill[-1]
        capsys.readouterr()
        assert upscale_cli.main(argv + ["-o", str(out)]) == 0   # the same command, no --overwrite
        err = capsys.readouterr().err
        assert "--overwrite to replace" not in err, err
        check_complete(out, ref)
        after = identities(out)
        assert all(after[n] == before[n] for n in before), f"{where}: a finished photo was redone"
        if before:
            assert f"{len(before)} of {PHOTOS} photo(s) already done by an earlier run" in err, (where, err)
        if temps or claims:
            assert f"removed {temps} temporary file(s) and {claims} claim(s) left by a run" in err, (where, err)
    with capsys.disabled():
        print(f"\nfault injection, folder jobs: {len(points)} kill -9 trials ({RANDOM_KILLS} at random points of "
              f"a {window:.2f} s job, {len(points) - RANDOM_KILLS} at exact points); left by each kill (outputs "
              f"done, temporary files, claims): {left_by_kill}; checked after each re-run of the same command: "
              f"every output complete, decodable and equal to a clean run's, finished photos not redone, no "
              f"--overwrite asked, each output written once (one journal line matches it), no temporary file or "
              f"claim left")


def _limit_file_size(limit: int):
    def limit_it():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return limit_it


def test_full_disk_leaves_nothing_partial_and_the_rerun_finishes(tmp_path, job, capsys):
    """Writes beyond RLIMIT_FSIZE fail (EFBIG, like ENOSPC a failed write mid-file): the large photos fail with
    one line each, the small ones are written, nothing partial or stray is left, and the same command run
    again with room finishes the rest without --overwrite."""
    _, argv, ref = job
    out = tmp_path / "out"
    small = {n for n, px in ref.items() if px.nbytes < 40_000}
    assert 0 < len(small) < PHOTOS
    p = subprocess.run(cli(argv, out), env=ENV, stderr=subprocess.PIPE, text=True, timeout=60,
                       preexec_fn=_limit_file_size(60_000))
    assert p.returncode == 2, p.stderr
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == PHOTOS - len(small) + 1 and "Traceback" not in p.stderr, p.stderr
    assert sorted(q.name for q in out.iterdir()) == sorted([*small, JOURNAL])
    for name in small:
        with Image.open(out / name) as im:
            assert np.array_equal(np.asarray(im), ref[name])
    before = identities(out)
    capsys.readouterr()
    assert upscale_cli.main(argv + ["-o", str(out)]) == 0
    assert f"{len(small)} of {PHOTOS} photo(s) already done" in capsys.readouterr().err
    check_complete(out, ref)
    assert all(identities(out)[n] == before[n] for n in before)
    with capsys.disabled():
        print(f"\nfull disk (RLIMIT_FSIZE 60 kB), folder job: {PHOTOS - len(small)} photos failed with one line "
              f"each, {len(small)} written whole, nothing partial left; the re-run finished the rest")


# A process in a private mount namespace (unshare): a 128 kB tmpfs, the folder job on it (the small photos fit,
# the large do not), then the same job again once the tmpfs has room. It reports what it saw on the tmpfs and
# leaves copies of the output folder behind (the tmpfs goes with the namespace).
TMPFS_RUN = r'''
import json, os, shutil, subprocess, sys
mnt, copies, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=128k", "tmpfs", mnt], capture_output=True).returncode:
    print("RESULT " + json.dumps({"skip": "cannot mount a tmpfs here"}))
    sys.exit(0)
from memsr_deploy.cli import upscale
out = os.path.join(mnt, "out")

def ids():
    return {n: [(st := os.stat(os.path.join(out, n))).st_ino, st.st_mtime_ns] for n in os.listdir(out) if n[0] != "."}

rc_full = upscale.main(argv + ["-o", out])
full, ids_full = sorted(os.listdir(out)), ids()
shutil.copytree(out, os.path.join(copies, "full"))
subprocess.run(["mount", "-o", "remount,size=8m", mnt], check=True)
rc_again = upscale.main(argv + ["-o", out])
again, ids_again = sorted(os.listdir(out)), ids()
written = []
for line in open(os.path.join(out, ".memsr-journal.jsonl")):
    if line.strip():
        e = json.loads(line)
        st = os.stat(os.path.join(out, e["out"]))
        if e["out_id"] == [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns]:
            written.append(e["out"])
shutil.copytree(out, os.path.join(copies, "again"))
print("RESULT " + json.dumps({"rc_full": rc_full, "full": full, "ids_full": ids_full, "rc_again": rc_again,
                              "again": again, "ids_again": ids_again, "written": sorted(written)}))
'''


def test_full_tmpfs_leaves_nothing_partial_and_the_rerun_finishes(tmp_path, job, capsys):
    _, argv, ref = job
    unshare = ["unshare", "-m"] if os.geteuid() == 0 else ["unshare", "-rm"]
    (tmp_path / "disk").mkdir()
    try:
        p = subprocess.run([*unshare, sys.executable, "-c", TMPFS_RUN, str(tmp_path / "disk"), str(tmp_path),
                            *argv], env=ENV, capture_output=True, text=True, timeout=120)
    except FileNotFoundError:
        pytest.skip("no unshare command")
    results = [ln[7:] for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
    if not results:
        pytest.skip(f"no private mount namespace here ({p.stderr.strip()[-200:]})")
    r = json.loads(results[0])
    if "skip" in r:
        pytest.skip(r["skip"])
    small = {n for n, px in ref.items() if px.nbytes < 40_000}
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("error: ")]
    assert r["rc_full"] == 2 and "Traceback" not in p.stderr, p.stderr
    assert len(errors) == PHOTOS - len(small) + 1 and all("cannot write output" in e for e in errors[:-1]), errors
    assert r["full"] == sorted([*small, JOURNAL])   # no temporary file, no claim, nothing partial
    assert r["rc_again"] == 0 and r["again"] == sorted([*ref, JOURNAL]) and r["written"] == sorted(ref)
    assert all(r["ids_again"][n] == r["ids_full"][n] for n in small)   # not redone
    for stage, names in (("full", small), ("again", ref)):
        for name in names:
            with Image.open(tmp_path / stage / name) as im:
                assert np.array_equal(np.asarray(im), ref[name]), (stage, name)
    with capsys.disabled():
        print(f"\nfull disk (128 kB tmpfs), folder job: {PHOTOS - len(small)} photos failed with one line each, "
              f"{len(small)} written whole, nothing partial left; the re-run finished the rest")


def test_only_dead_writers_temporary_files_are_removed(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    names = {"dead": f".a_x2.memsr-tmp.{dead.pid}_k2j4h5g6.png",
             "live": f".b_x2.memsr-tmp.{os.getpid()}_k2j4h5g6.png",
             "reused": f".c_x2.memsr-tmp.{os.getpid()}_x7f3kq0z.png",  # written before this process began
             "old format": ".d_x2.memsr-tmp.k2j4h5g6.png",               # no pid: whose it is cannot be told
             "user's": ".e_x2.memsr-tmp.12_notes.txt.bak"}
    for n in names.values():
        (tmp_path / n).write_bytes(b"x")
    hour_ago = time.time() - 3600
    os.utime(tmp_path / names["reused"], (hour_ago, hour_ago))
    removed = {p.name for p in remove_dead_temps(tmp_path)}
    assert removed == {names["dead"], names["reused"]}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(n for k, n in names.items()
                                                                 if k not in ("dead", "reused"))


def test_in_place_rerun_finishes_without_taking_its_outputs_as_inputs(tmp_path, job, capsys):
    """Outputs beside their inputs (no -o): a re-run after a kill knows its finished outputs and does not
    upscale them again as new inputs; a file of the same name that this job did not write is an input as
    before (tests/test_hardening.py)."""
    root, argv, ref = job
    d = tmp_path / "d"
    shutil.copytree(root / "in", d)
    argv = [str(d), *argv[1:]]
    assert upscale_cli.main(argv) == 0
    (d / "p5_x2.png").unlink()                      # as if the run had been killed before that photo
    (d / "p6_x2.png").write_bytes((d / "p6_x2.png").read_bytes())   # rewritten by someone else: not its own
    capsys.readouterr()
    assert upscale_cli.main(argv) == 0
    err = capsys.readouterr().err
    inputs = {f"p{i}.png" for i in range(PHOTOS)}
    made = sorted(p.name for p in d.iterdir() if p.name[0] != "." and p.name not in inputs)
    assert made == sorted([*ref, "p6_x2_x2.png"]), made
    assert "6 of 9 photo(s) already done" in err and "p6_x2.png is one of this run's inputs" in err, err
    with Image.open(d / "p5_x2.png") as im:
        assert np.array_equal(np.asarray(im), ref["p5_x2.png"])
