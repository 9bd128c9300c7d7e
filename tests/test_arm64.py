"""ARM64: one artefact per runtime (ONNX Runtime, LiteRT int8, ncnn) of a small random model, run by the aarch64
builds under qemu-user in the arm64 Debian root (benchmarks/arm64_check.py) on one 16x16 crop, against the x86-64
run and PyTorch. The root is built on first use (minutes; cached in MEMSR_ARM64_CACHE, default
/var/cache/memsr-arm64). Skipped without debootstrap / qemu-user-static / binfmt-support or root, except in CI
(.ci/run installs them and sets CI), where that fails."""
import os
from dataclasses import asdict

import numpy as np
import pytest

from conftest import make_plain
from memsr_bench import arm64_check as A
from memsr_deploy.formats.model_file import save_model
from memsr_deploy.formats.sidecar import read_sidecar
from memsr_export import export_model
from memsr_export.verify import LIMITS, NCNN_FP16_LIMITS

WHY = A.missing_tools()
if WHY:
    if os.environ.get("CI"):
        pytest.fail(WHY, pytrace=False)
    pytest.skip(WHY, allow_module_level=True)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    d = tmp_path_factory.mktemp("arm64")
    save_model(make_plain(widths=(16, 16, 16), seed=7), d / "tiny_x2", kind="student")
    # unverified on x86 (export verification has its own tests); the arm64 run compares with x86 and PyTorch itself
    sidecars = [export_model(d / "tiny_x2", t, p, out_dir=d / "out", verify=False, progress=False)
                for t, p in (("onnx", "fp32"), ("tflite", "int8"), ("ncnn", "fp32"))]
    root = A.ensure_root()
    return A.check(sidecars, root, crops_per_model=1, size=16), sidecars


def test_every_runtime_runs_on_arm64_and_matches_x86_and_torch(report):
    rep, sidecars = report
    g = rep["guest"]
    assert g["machine"] == "aarch64"
    for pkg in A.RUNTIMES:
        assert g["versions"][pkg] == A.version(pkg)  # the aarch64 wheel of the x86 environment's version
    runs = {(r["target"], r["precision"], r["ncnn_fp16"]): r for r in rep["results"]}
    assert set(runs) == {("onnx", "fp32", False), ("tflite", "int8", False), ("ncnn", "fp32", False),
                         ("ncnn", "fp32", True)}
    for (target, precision, fp16), r in runs.items():
        assert r["passed"], (target, precision, fp16, r["failures"])
        assert r["limits"] == asdict((NCNN_FP16_LIMITS if fp16 else LIMITS)[precision])
        assert r["seconds_emulated"] > 0
    # fp32 kernels of another ISA: float round-off only; XNNPACK's int8 kernels agree to the bit
    assert runs[("onnx", "fp32", False)]["max_abs_diff_vs_x86"] < 1e-5
    assert runs[("ncnn", "fp32", False)]["max_abs_diff_vs_x86"] < 1e-5
    assert runs[("tflite", "int8", False)]["max_abs_diff_vs_x86"] < 1e-5


def test_ncnn_fp16_is_what_a_stock_ncnn_runs_on_cpus_with_fp16(report):
    rep, _ = report
    assert rep["guest"]["ncnn_fp16_effective"] is True  # qemu's default CPU reports fp16, as ARMv8.2+ phones do
    runs = {r["ncnn_fp16"]: r for r in rep["results"] if r["target"] == "ncnn"}
    # fp16 activations: clearly off the fp32 run, yet within its own limits
    assert runs[True]["max_abs_diff_vs_x86"] > 10 * max(runs[False]["max_abs_diff_vs_x86"], 1e-7)
    assert runs[True]["psnr_y_vs_torch"] >= NCNN_FP16_LIMITS["fp32"].min_psnr_vs_torch


def test_results_land_in_the_sidecar(report):
    rep, sidecars = report
    A.record_in_sidecars(rep, {"release": A.RELEASE, "python": "3.11", "qemu": "7.2"})
    onnx, ncnn = (read_sidecar(sidecars[k]).verification["arm64"] for k in (0, 2))
    assert [r["ncnn_fp16"] for r in onnx["runs"]] == [False]
    assert [r["ncnn_fp16"] for r in ncnn["runs"]] == [False, True]
    assert ncnn["runtime"]["ncnn"] == A.version("ncnn") and ncnn["root"] == "Debian bookworm arm64, python 3.11"
    assert all(r["passed"] and np.isfinite(r["psnr_y_drop"]) for r in ncnn["runs"])


def test_a_machine_without_the_tools_gets_one_line_naming_the_package(monkeypatch):
    monkeypatch.setattr(A.shutil, "which", lambda tool: None if tool == "debootstrap" else "/usr/bin/" + tool)
    assert A.missing_tools() == ("the arm64 check needs Debian's debootstrap (apt-get install debootstrap)")


def test_the_script_says_it_in_one_line_and_exits_2(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(A.shutil, "which", lambda tool: None if tool == "qemu-aarch64-static" else "/bin/" + tool)
    assert A.main(["-o", str(tmp_path), "--cache", str(tmp_path / "cache")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "qemu-user-static" in err[0] and "Traceback" not in err[0]
    assert not list(tmp_path.iterdir())  # nothing written, no root started
