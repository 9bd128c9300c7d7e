"""memsr-bench-device end to end: through a fake adb (tests/fake_adb: a fake phone whose disk is a folder and
whose shell is the real /bin/sh) and on this computer with --host."""
from __future__ import annotations

import csv
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from memsr_bench.device_bench import main
from memsr_export import export_model
from conftest import make_plain
from memsr_deploy.formats.model_file import save_model
from memsr_deploy.formats.sidecar import read_sidecar

FAKE = Path(__file__).parent / "fake_adb"
FAKE_BM = FAKE / "benchmark_model"


def _export(out_dir: Path, fixed: tuple[int, int] | None) -> Path:
    stem = out_dir / "tiny_x2"
    if not stem.with_suffix(".json").exists():
        save_model(make_plain(), stem, kind="student")
    return Path(export_model(stem, "tflite", "fp32", out_dir=out_dir, input_size=fixed,
                             name="tiny_fixed" if fixed else "tiny", verify=False))


@pytest.fixture(scope="session")
def artefacts(tmp_path_factory):
    """Sidecars of a dynamic-shape and a fixed-shape (40x40) tiny x2 student, and a copy labelled teacher."""
    d = tmp_path_factory.mktemp("artefacts")
    dyn, fixed = _export(d, None), _export(d, (40, 40))
    teacher = _relabel(dyn, d / "teacher_fp32", kind="teacher", name="tiny-teacher")
    return {"dynamic": dyn, "fixed": fixed, "teacher": teacher}


def _relabel(sidecar: Path, stem: Path, kind: str | None = None, name: str | None = None) -> Path:
    """A copy of an artefact under another file name (any characters), optionally with another source label."""
    sc = read_sidecar(sidecar)
    art = stem.with_name(stem.name + ".tflite")
    shutil.copyfile(sc.artefact_path(), art)
    d = json.loads(Path(sidecar).read_text())
    d["file"] = art.name
    if kind:
        d["source_model"] = dict(d.get("source_model") or {}, kind=kind, name=name)
    out = stem.with_name(stem.name + ".json")
    out.write_text(json.dumps(d))
    assert read_sidecar(out).file == art.name
    return out


@pytest.fixture
def phone(tmp_path, monkeypatch):
    """The fake phone: its disk, a sandbox working folder, logs, and adb first on PATH."""
    root, cwd = tmp_path / "device", tmp_path / "device_cwd"
    (root / "data/local/tmp").mkdir(parents=True)
    cwd.mkdir()
    logs = {k: tmp_path / f"{k}.log" for k in ("adb", "bm", "taskset")}
    monkeypatch.setenv("PATH", os.pathsep.join([str(FAKE), str(Path(sys.executable).parent), os.environ["PATH"]]))
    monkeypatch.setenv("FAKE_ADB_ROOT", str(root))
    monkeypatch.setenv("FAKE_ADB_CWD", str(cwd))
    monkeypatch.setenv("FAKE_ADB_LOG", str(logs["adb"]))
    monkeypatch.setenv("FAKE_BM_LOG", str(logs["bm"]))
    monkeypatch.setenv("FAKE_TASKSET_LOG", str(logs["taskset"]))
    for k in ("FAKE_ADB_SCENARIO", "FAKE_BM_GPU", "FAKE_BM_NNAPI", "ANDROID_SERIAL", "MEMSR_BENCHMARK_MODEL"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.chdir(tmp_path)

    class Phone:
        remote = str(root / "data/local/tmp/memsr_bench")

        def __init__(self):
            self.root, self.cwd, self.logs, self.out = root, cwd, logs, tmp_path / "res"

        def args(self, *extra):
            return ["--benchmark-binary", str(FAKE_BM), "--remote-dir", self.remote, "--out", str(self.out),
                    "--overwrite", "--warmup-runs", "2", "--num-runs", "20", *map(str, extra)]

        def calls(self, name):
            p = self.logs[name]
            return [json.loads(line) for line in p.read_text().splitlines()] if p.exists() else []

        def result(self):
            return json.loads(self.out.with_suffix(".json").read_text())

        def leftovers(self):
            return sorted(str(p.relative_to(root)) for p in root.rglob("*") if "memsr_bench" in str(p))

    return Phone()


def _row(rows, **want):
    hits = [r for r in rows if all(r[k] == v for k, v in want.items())]
    assert len(hits) == 1, (want, [(r["delegate"], r["threads"], r["size_h"]) for r in rows])
    return hits[0]


def test_device_matrix_figures_statuses_and_outputs(artefacts, phone, capsys):
    rc = main([str(artefacts["dynamic"]), *phone.args("--delegates", "cpu,gpu,nnapi", "--threads", "1,4",
                                                      "--sizes", "64x64,1024x1024", "--taskset", "f0")])
    printed = capsys.readouterr().out
    assert rc == 0
    doc = phone.result()
    rows = doc["rows"]
    assert len(rows) == 2 * 3 * 2
    halo = read_sidecar(artefacts["dynamic"]).halo
    core = 1024 - 2 * halo
    # The fake prints 3*H*W/threads us: 1024x1024 on one thread is "Inference (avg): 3.14573e+06".
    big = _row(rows, delegate="cpu", threads=1, size_h=1024)
    assert big["status"] == "ok" and big["latency_ms"] == pytest.approx(3145.73)
    assert big["latency_min_ms"] == pytest.approx(int(3145728 * 0.97) / 1000)
    assert big["latency_max_ms"] == pytest.approx(int(3145728 * 1.05) / 1000)
    assert big["runs"] == 20 and big["init_ms"] == pytest.approx((15000 + 1024 * 1024 // 100) / 1000)
    assert big["peak_mem_mb"] == pytest.approx(10.5 + 96.0)
    assert big["mem_overall_mb"] - big["mem_init_mb"] == pytest.approx(96.0, abs=1e-3)
    assert big["delegated_nodes"] == "7/7"
    # ~1020 px cores on a 3000x4000 photo: 3 x 4 tiles; on 8672x11552: 9 x 12.
    assert big["tile_h"] == big["tile_w"] == core
    assert (big["tiles_12MP"], big["tiles_100MP"]) == (-(-3000 // core) * -(-4000 // core),
                                                        -(-8672 // core) * -(-11552 // core)) == (12, 108)
    assert big["time_12MP_s"] == pytest.approx(12 * 3.14573, abs=1e-3)
    small = _row(rows, delegate="cpu", threads=4, size_h=64)
    assert small["latency_ms"] == pytest.approx(3 * 64 * 64 / 4 / 1000) and small["tile_h"] == 64 - 2 * halo
    assert small["time_100MP_s"] == pytest.approx(small["tiles_100MP"] * 3.072 / 1000, rel=1e-3)
    for r in rows:
        if r["delegate"] == "gpu":
            assert r["status"] == "delegate failed" and r["latency_ms"] is None and r["time_12MP_s"] is None
        if r["delegate"] == "nnapi":
            assert r["status"] == "partial (3/7 nodes)" and r["latency_ms"] is None and r["peak_mem_mb"] is None
    # Device facts and tool version, in the JSON header and in every row.
    dev = doc["device"]
    assert (dev["model"], dev["soc"], dev["android"], dev["abi"], dev["serial"]) == (
        "Pixel 7", "Google GS201", "14", "arm64-v8a", "FAKE123")
    assert dev["cores"] == len(os.sched_getaffinity(0))
    sha = hashlib.sha256(FAKE_BM.read_bytes()).hexdigest()
    assert doc["tool"]["benchmark_model_sha256"] == sha and "35.0.2-fake" in doc["tool"]["adb"]
    assert all(r["device_model"] == "Pixel 7" and r["tool"] == f"benchmark_model sha256:{sha[:12]}" for r in rows)
    # CSV: the same rows; empty cells where there is no figure.
    with open(phone.out.with_suffix(".csv")) as fh:
        table = list(csv.DictReader(fh))
    assert [t["status"] for t in table] == [r["status"] for r in rows]
    assert float(_row(table, delegate="cpu", threads="1", size_h="1024")["latency_ms"]) == pytest.approx(3145.73)
    assert _row(table, delegate="gpu", threads="1", size_h="1024")["latency_ms"] == ""
    # The printed Markdown table (also written as .md).
    name = read_sidecar(artefacts["dynamic"]).source_model["name"]
    assert f"| {name} (student) | fp32 | cpu | 1 | 1024x1024 ({core}x{core}) | 3,145.73 | 37.75 |" in printed
    assert "| delegate failed |" in printed and printed == phone.out.with_suffix(".md").read_text()
    # What reached benchmark_model: the tool's own flags, pinned with taskset, one call per cell.
    bm = [a for a in phone.calls("bm") if "--help" not in a]
    assert len(bm) == 12 and phone.logs["taskset"].read_text().split() == ["f0"] * 12
    from ai_edge_litert.interpreter import Interpreter
    tensor = Interpreter(model_path=str(read_sidecar(artefacts["dynamic"]).artefact_path())).get_input_details()[0]
    assert all({"--warmup_runs=2", "--num_runs=20", "--report_peak_memory_footprint=true",
                f"--input_layer={tensor['name']}"} <= set(a) for a in bm)
    assert sum("--input_layer_shape=1,1024,1024,3" in a for a in bm) == 6
    assert sum({"--use_gpu=true", "--use_xnnpack=false"} <= set(a) for a in bm) == 4
    assert sum("--use_nnapi=true" in a for a in bm) == 4 and sum("--use_xnnpack=true" in a for a in bm) == 4
    # Cleaned up: the run folder and the (then empty) base folder are gone.
    assert phone.leftovers() == []
    assert phone.calls("adb")[-2][-1].startswith(f"rm -rf {phone.remote}/run_")


def test_gpu_partial_and_ok_and_nnapi_crash(artefacts, phone, monkeypatch):
    monkeypatch.setenv("FAKE_BM_GPU", "partial")
    monkeypatch.setenv("FAKE_BM_NNAPI", "crash")
    assert main([str(artefacts["dynamic"]), *phone.args("--delegates", "cpu,gpu,nnapi", "--threads", "2")]) == 0
    rows = phone.result()["rows"]
    assert [r["status"] for r in rows] == [
        "ok", "partial (12/14 nodes)",
        "error (exit 1) (ERROR: Node number 1 (TfLiteNnapiDelegate) failed to invoke.)"]
    assert rows[1]["delegated_nodes"] == "12/14" and rows[1]["latency_ms"] is None
    # No --sizes: the sidecar's default tile plus the halo on both sides.
    sc = read_sidecar(artefacts["dynamic"])
    assert rows[0]["size_h"] == sc.tile + 2 * sc.halo and rows[0]["tile_h"] == sc.tile
    monkeypatch.setenv("FAKE_BM_GPU", "ok")
    assert main([str(artefacts["dynamic"]), *phone.args("--delegates", "gpu", "--threads", "1")]) == 0
    (row,) = phone.result()["rows"]
    assert row["status"] == "ok" and row["latency_ms"] > 0 and row["delegated_nodes"] == "7/7"


def test_fixed_shape_model_runs_at_its_own_shape(artefacts, phone):
    assert main([str(artefacts["fixed"]), *phone.args("--threads", "1", "--sizes", "128x128,256x256")]) == 0
    (row,) = phone.result()["rows"]
    assert (row["size_h"], row["size_w"], row["status"]) == (40, 40, "ok")
    # The fake's default fixed shape is 64x64: 3*64*64 us.
    assert row["latency_ms"] == pytest.approx(12.288)
    (bm,) = [a for a in phone.calls("bm") if "--help" not in a]
    assert not any(a.startswith("--input_layer") for a in bm)


def test_teacher_and_student_are_labelled(artefacts, phone, capsys):
    assert main([str(artefacts["teacher"]), str(artefacts["dynamic"]),
                 *phone.args("--threads", "1", "--sizes", "64x64")]) == 0
    rows = phone.result()["rows"]
    name = read_sidecar(artefacts["dynamic"]).source_model["name"]
    assert [(r["model"], r["role"]) for r in rows] == [("tiny-teacher", "teacher"), (name, "student")]
    out = capsys.readouterr().out
    assert "| tiny-teacher (teacher) |" in out and f"| {name} (student) |" in out


def test_file_names_with_shell_characters_arrive_whole(artefacts, phone, tmp_path):
    evil = _relabel(artefacts["dynamic"], tmp_path / "my model; $(touch x) `touch y` 'q'")
    assert main([str(evil), *phone.args("--threads", "1", "--sizes", "64x64")]) == 0
    (row,) = phone.result()["rows"]
    assert row["status"] == "ok" and row["artefact"] == "my model; $(touch x) `touch y` 'q'.tflite"
    (bm,) = [a for a in phone.calls("bm") if "--help" not in a]
    graphs = [a for a in bm if a.startswith("--graph=")]
    assert len(graphs) == 1 and graphs[0].endswith("/m0_my model; $(touch x) `touch y` 'q'.tflite")
    # The shell command adb carried splits back into exactly the tool's argv, and nothing was injected.
    run_cmd = next(c[-1] for c in phone.calls("adb") if c[:3] == ["-s", "FAKE123", "shell"] and "--graph=" in c[-1])
    assert shlex.split(run_cmd)[1:-3] == bm
    for where in (phone.cwd, tmp_path, Path.cwd()):
        assert not (where / "x").exists() and not (where / "y").exists()
    assert phone.leftovers() == []


@pytest.mark.parametrize("scenario, extra, message", [
    ("no_device", [], "no Android device attached"),
    ("unauthorized", [], "device FAKE123 is unauthorized"),
    ("offline", [], "device FAKE123 is offline"),
    ("two_devices", [], "2 devices attached (FAKE123 (device), FAKE456 (device)): choose one with --serial"),
    ("two_devices", ["--serial", "NOPE"], "device 'NOPE' is not attached"),
])
def test_device_selection_errors(artefacts, phone, monkeypatch, capsys, scenario, extra, message):
    monkeypatch.setenv("FAKE_ADB_SCENARIO", scenario)
    assert main([str(artefacts["dynamic"]), *phone.args(*extra)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
    assert not [c for c in phone.calls("adb") if "push" in c]


def test_serial_picks_one_of_several(artefacts, phone, monkeypatch):
    monkeypatch.setenv("FAKE_ADB_SCENARIO", "two_devices")
    assert main([str(artefacts["dynamic"]), *phone.args("--serial", "FAKE456", "--threads", "1")]) == 0
    assert phone.result()["device"]["serial"] == "FAKE456"
    assert all(c[:2] == ["-s", "FAKE456"] for c in phone.calls("adb") if c[0] not in ("devices", "version"))


@pytest.mark.parametrize("scenario, message", [
    ("push_fail", "push to {remote}/run_"),
    ("noexec", "benchmark_model is missing or not executable on the device"),
])
def test_push_failure_and_noexec_clean_up(artefacts, phone, monkeypatch, capsys, scenario, message):
    monkeypatch.setenv("FAKE_ADB_SCENARIO", scenario)
    assert main([str(artefacts["dynamic"]), *phone.args()]) == 2
    err = capsys.readouterr().err.strip()
    assert message.format(remote=phone.remote) in err and "\n" not in err
    if scenario == "push_fail":
        assert "No space left on device" in err
    # The working folder was made before the failure and removed after it.
    shells = [c[-1] for c in phone.calls("adb") if "shell" in c]
    assert shells[1].startswith("mkdir -p ") and shells[-2].startswith(f"rm -rf {phone.remote}/run_")
    assert phone.leftovers() == []
    assert not phone.calls("bm") or all("--help" in a for a in phone.calls("bm"))


def test_local_errors_before_touching_the_device(artefacts, phone, capsys, tmp_path, monkeypatch):
    art = str(artefacts["dynamic"])
    cases = [
        ([art, "--adb", str(tmp_path / "no-adb-here"), "--benchmark-binary", str(FAKE_BM)], "adb not found"),
        ([art, "--remote-dir", phone.remote], "no benchmark_model binary"),
        ([art, "--benchmark-binary", str(tmp_path / "missing_bm")], "benchmark_model binary not found"),
        ([art, "--benchmark-binary", str(FAKE_BM), "--delegates", "cpu,tpu"], "unknown delegate(s) tpu"),
        ([art, "--benchmark-binary", str(FAKE_BM), "--sizes", "64x"], "bad size list"),
        ([art, "--benchmark-binary", str(FAKE_BM), "--taskset", "zz"], "hexadecimal CPU mask"),
        ([art, "--benchmark-binary", str(FAKE_BM), "--remote-dir", "relative/dir"], "absolute folder"),
        ([str(tmp_path / "nothing.tflite"), "--benchmark-binary", str(FAKE_BM)], "sidecar JSON not found"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, message
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and message in err and "\n" not in err, (message, err)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main([art, "--benchmark-binary", str(FAKE_BM)]) == 2
    assert "adb not found on PATH" in capsys.readouterr().err
    assert phone.calls("adb") == []


def test_size_that_leaves_no_tile_is_reported_not_run(artefacts, phone):
    assert main([str(artefacts["dynamic"]), *phone.args("--threads", "1", "--sizes", "4x4,64x64")]) == 0
    rows = phone.result()["rows"]
    halo = read_sidecar(artefacts["dynamic"]).halo
    assert rows[0]["status"] == f"size 4x4 leaves no core tile (halo {halo})" and rows[0]["latency_ms"] is None
    assert rows[1]["status"] == "ok"
    assert len([a for a in phone.calls("bm") if "--help" not in a]) == 1


def test_host_mode_same_format(artefacts, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("MEMSR_BENCHMARK_MODEL", raising=False)
    out = tmp_path / "host"
    rc = main([str(artefacts["dynamic"]), str(artefacts["fixed"]), "--host", "--delegates", "cpu,gpu",
               "--threads", "1,2", "--sizes", "48x48", "--warmup-runs", "1", "--num-runs", "5", "--taskset", "1",
               "--out", str(out)])
    assert rc == 0
    doc = json.loads(out.with_suffix(".json").read_text())
    assert doc["mode"] == "host" and doc["device"]["cores"] == os.cpu_count() and doc["tool"]["ai_edge_litert"]
    rows = doc["rows"]
    assert len(rows) == 2 * 2 * 2
    for r in rows:
        if r["delegate"] == "gpu":
            assert r["status"] == "unavailable on host" and r["latency_ms"] is None
        else:
            assert r["status"] == "ok", r
            assert r["latency_ms"] > 0 and r["runs"] == 5 and r["peak_mem_mb"] is not None
            assert r["latency_min_ms"] <= r["latency_ms"] <= r["latency_max_ms"]
            assert r["time_12MP_s"] == pytest.approx(r["tiles_12MP"] * r["latency_ms"] / 1000, rel=1e-3)
    fixed = read_sidecar(artefacts["fixed"]).input_shape
    assert {(r["artefact"], r["size_h"], r["size_w"]) for r in rows} == {
        (read_sidecar(artefacts["dynamic"]).file, 48, 48), (read_sidecar(artefacts["fixed"]).file, *fixed)}
    # Same columns as a device run, so the two can be put side by side.
    device_cols = {"mode", "device_model", "device_soc", "android", "abi", "cores", "tool", "model", "role",
                   "precision", "delegate", "threads", "size_h", "size_w", "status", "latency_ms", "peak_mem_mb",
                   "tiles_12MP", "time_12MP_s", "tiles_100MP", "time_100MP_s"}
    assert device_cols <= set(rows[0])
    core = 48 - 2 * read_sidecar(artefacts["dynamic"]).halo
    assert f"| cpu | 2 | 48x48 ({core}x{core}) |" in capsys.readouterr().out


def test_console_script_reports_one_line(tmp_path, artefacts):
    exe = Path(sys.executable).parent / "memsr-bench-device"
    if not exe.exists():
        pytest.skip("console script not installed in this environment")
    p = subprocess.run([str(exe), str(artefacts["dynamic"]), "--adb", str(tmp_path / "none"),
                        "--benchmark-binary", str(FAKE_BM)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.strip().startswith("error: ") and "adb not found" in p.stderr and p.stderr.count("\n") == 1


def test_unplugged_mid_run_keeps_the_measured_cells(artefacts, phone, monkeypatch, capsys):
    monkeypatch.setenv("FAKE_ADB_SCENARIO", "vanish")
    monkeypatch.setenv("FAKE_ADB_VANISH_AFTER", "2")
    assert main([str(artefacts["dynamic"]), *phone.args("--threads", "1,2,4", "--sizes", "64x64")]) == 2
    err = capsys.readouterr().err
    assert "error: " in err and "not found" in err
    doc = phone.result()
    assert [r["threads"] for r in doc["rows"]] == [1, 2] and all(r["status"] == "ok" for r in doc["rows"])
    assert "not found" in doc["incomplete"]


def test_nothing_measured_exits_non_zero(artefacts, tmp_path, capsys):
    assert main([str(artefacts["dynamic"]), "--host", "--delegates", "gpu,nnapi", "--threads", "1",
                 "--out", str(tmp_path / "none")]) == 1
    assert "no benchmark cell produced figures" in capsys.readouterr().err
    rows = json.loads((tmp_path / "none.json").read_text())["rows"]
    assert [r["status"] for r in rows] == ["unavailable on host"] * 2
