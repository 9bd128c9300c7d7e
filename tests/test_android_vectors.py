"""The Android demo's Java core must agree exactly with the Python spec (tile plan, budget rule, sidecar, codec).

Runs android_demo/run_core_tests.sh (vectors from the Python code, javac, JUnit 4). Needs a JDK,
/usr/share/java/junit4.jar and org.json (apt-get install -y junit4 libandroid-json-java); skipped only when
those are absent (CI installs them).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "android_demo"
CORE = DEMO / "core" / "src" / "main" / "java"
JUNIT = Path(os.environ.get("JUNIT_JAR", "/usr/share/java/junit4.jar"))
HAMCREST = Path(os.environ.get("HAMCREST_JAR", "/usr/share/java/hamcrest-core.jar"))
ORG_JSON = Path(os.environ.get("ORG_JSON_JAR", "/usr/share/java/com.android.json.jar"))  # libandroid-json-java

# Java 9+ library calls that Android's runtime lacks at the app's minSdk 29 (javac --release 11 cannot tell).
NOT_ON_ANDROID_29 = [r"\bList\.of\(", r"\bSet\.of\(", r"\bMap\.of\(", r"\bMap\.entry\(", r"\.repeat\(",
                     r"\.isBlank\(", r"\.strip\(", r"\.lines\(\)", r"Files\.readString", r"Files\.writeString",
                     r"\.readAllBytes\(\)", r"\.transferTo\(", r"\.orElseThrow\(\)", r"\.toList\(\)",
                     r"requireNonNullElse", r"\brecord\s+\w+\s*\(", r"\b(List|Set|Map)\.copyOf\("]


@pytest.mark.skipif(shutil.which("javac") is None or not all(p.exists() for p in (JUNIT, HAMCREST, ORG_JSON)),
                    reason="needs javac (JDK 17), JUnit 4 and org.json (apt-get install -y junit4 "
                           "libandroid-json-java)")
def test_java_core_agrees_with_the_python_spec():
    env = {**os.environ, "PYTHON": sys.executable}
    r = subprocess.run(["bash", str(DEMO / "run_core_tests.sh")], env=env, capture_output=True, text=True,
                       timeout=600)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-6000:]
    m = re.search(r"^OK \((\d+) tests\)", r.stdout, re.M)
    assert m, out[-3000:]
    assert int(m.group(1)) >= 27, out[-3000:]
    assert re.search(r"wrote \d+ cases", r.stdout), "the vectors were not regenerated"


def test_core_is_platform_free_and_android_29_safe():
    sources = sorted(CORE.rglob("*.java"))
    assert len(sources) >= 10
    for src in sources:
        text = src.read_text()
        assert not re.search(r"^import\s+android\.", text, re.M), f"{src.name} imports android.*"
        assert not re.search(r"^import\s+(java\.awt|javax\.imageio|javax\.swing)", text, re.M), src.name
        for pat in NOT_ON_ANDROID_29:
            assert not re.search(pat, text), f"{src.name} uses {pat}, missing from Android API 29"


def test_vectors_cover_the_required_cases(tmp_path):
    import json
    out = tmp_path / "v.json"
    r = subprocess.run([sys.executable, str(DEMO / "make_test_vectors.py"), str(out)], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    def not_json(name):
        raise AssertionError(f"{name} in the vectors: org.json would refuse them")

    v = json.loads(out.read_text(), parse_constant=not_json)
    sizes = {(c["height"], c["width"]) for c in v["plans"]}
    assert {(1, 1), (3000, 4000), (8160, 12240), (97, 101)} <= sizes
    assert {c["requested_tile"] for c in v["plans"]} == {1, 7, 64, 256, 0}
    assert {c["scale"] for c in v["plans"]} == {2, 3, 4}
    assert any("error" in c for c in v["budgets"]) and any("tile" in c for c in v["budgets"])
    assert {c["ok"] for c in v["sidecars"]} == {True, False}
    by_name = {c["name"]: c for c in v["sidecars"]}
    assert not any(by_name[k]["ok"] for k in ("infinity", "nan_in_array", "trailing_text"))
    # every field check of validate_sidecar has a fault case, refused by Python (Java must refuse it alike)
    faults = [by_name[n] for n in ("missing_sha", "file_in_folder", "sha_uppercase", "radius_mismatch",
                                 "layout_bad_output", "input_null", "output_dtype_float64", "input_range_reversed",
                                 "quant_whole_float_zero_point", "uint8_without_quant", "input_shape_float",
                                 "shape_range_min_over_max", "source_model_string", "source_model_radius_mismatch",
                                 "data_file_on_tflite", "ncnn_without_data_file", "ncnn_data_file_is_file",
                                 "ncnn_data_sha_missing")]
    assert not any(c["ok"] for c in faults)
    assert by_name["whole_float_radius_ok"]["ok"] and by_name["data_file_null_ok"]["ok"]
    assert by_name["good_x2_ncnn"]["ok"] and by_name["good_x2_ncnn"]["expect"]["data_file"] == "m_ncnn_int8.bin"
    exact = json.loads(by_name["good_x2_fp32"]["text"], parse_constant=not_json)  # an exact verification
    assert by_name["good_x2_fp32"]["ok"] and exact["verification"]["psnr_y_vs_torch"] is None
    # a 12 MP photo at tile 256: equal cores, the last moved back, windows inside the image
    p = next(c for c in v["plans"] if (c["height"], c["width"], c["requested_tile"]) == (3000, 4000, 256))
    assert len(p["rows"]) == 12 and len(p["cols"]) == 16
    assert {a["core"] for a in p["rows"]} == {250} and p["rows"][-1]["core_start"] + 250 == 3000
