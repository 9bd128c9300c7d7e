"""The sidecar contract shared with the Android core: every sidecar in
android_demo/core/src/test/resources/sidecar_contract/ is refused by read_sidecar with the error its index.json
gives, which names the field listed there; SidecarContractTest (JUnit, run by run_core_tests.sh) holds the Java
core's Sidecar.parse to the same files. The files are what android_demo/make_sidecar_contract.py writes."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from memsr_deploy.errors import MemsrError
from memsr_deploy.formats.sidecar import read_sidecar

ROOT = Path(__file__).resolve().parents[1]
VECTORS = ROOT / "android_demo" / "core" / "src" / "test" / "resources" / "sidecar_contract"
INDEX = json.loads((VECTORS / "index.json").read_text())


def named_field(reason: str) -> str:
    """The field an error names; SidecarContractTest.namedField reads messages the same way."""
    m = re.search(r"field '([^']*)'", reason)
    if m:
        return re.sub(r"(\.\d+)+$", "", m.group(1))
    for pattern in (r"^sidecar is missing fields \(([^,)]+)", r"^unknown (target|precision) ",
                    r"^(\w+) must be an integer"):
        m = re.match(pattern, reason)
        if m:
            return m.group(1)
    if reason.startswith("unsupported sidecar version"):
        return "version"
    if reason.startswith("not a memsr artefact sidecar"):
        return "format"
    return ""


def test_the_good_sidecar_loads():
    sc = read_sidecar(VECTORS / "good.json", check_file=False)
    assert (sc.scale, sc.halo, sc.tile, sc.precision) == (2, 11, 192, "fp32")


@pytest.mark.parametrize("case", INDEX, ids=[c["file"][:-5] for c in INDEX])
def test_python_refuses_naming_the_field(case):
    path = VECTORS / case["file"]
    with pytest.raises(MemsrError) as e:
        read_sidecar(path, check_file=False)
    reason = str(e.value)[len(f"{path}: "):]
    assert str(e.value).startswith(f"{path}: ") and "\n" not in reason
    assert reason == case["error"] or (not case["field"] and reason.startswith(case["error"]))
    assert named_field(reason) == case["field"]


def test_the_contract_covers_each_kind_of_fault():
    fields = {c["field"] for c in INDEX}
    required = {"target", "file", "precision", "scale", "halo", "tile", "layout", "input", "output",
                "source_model", "file_sha256"}
    assert required | {"format", "version"} <= {c["field"] for c in INDEX if c["file"].startswith("missing_")}
    assert {"input.range", "input.quant", "output.quant", "input_shape", "shape_range", "receptive_radius",
            "source_model.receptive_radius", "data_file", "input.dtype"} <= fields
    assert any("NaN" in c["error"] for c in INDEX) and any("unknown precision" in c["error"] for c in INDEX)
    assert sum(not c["field"] for c in INDEX) >= 5  # JSON text org.json's own reader would have taken
    assert len(INDEX) >= 80


def test_the_files_are_what_the_generator_writes(tmp_path):
    code = ("import sys, pathlib; sys.path.insert(0, 'android_demo'); import make_sidecar_contract as m; "
            f"m.build(pathlib.Path({str(tmp_path)!r}))")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)
    made = sorted(p.name for p in tmp_path.iterdir())
    assert made == sorted(p.name for p in VECTORS.iterdir())
    for name in made:
        assert (tmp_path / name).read_text() == (VECTORS / name).read_text(), name
