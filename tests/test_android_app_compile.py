"""The Android app compiles (android_demo/run_app_compile_check.sh: javac against generated Android / AndroidX /
LiteRT stubs, R.java from aapt), and the check catches the mistakes it is there for, seeded in a copy of the app.

Needs what `.ci/run` installs (aapt, android-framework-res, ecj, a JDK, libandroid-json-java, and the stub
sources that `run_app_compile_check.sh --fetch` puts in its cache). Without them the test is skipped on a
developer's machine and fails in CI (CI=true). The first run compiles the stubs (about two minutes); later runs
reuse them.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "android_demo"
SCRIPT = DEMO / "run_app_compile_check.sh"
JAVA = Path("src/main/java/org/memsr/demo")

# (what, file under JAVA, text to replace, replacement, what javac must say at the replaced line
#  [, a text on the line where the error is due, if not the replacement's])
SEEDED = [
    ("missing import", "ModelAssets.java", "import android.content.res.AssetFileDescriptor;", "",
     r"cannot find symbol[\s\S]*symbol:\s+class AssetFileDescriptor", "try (AssetFileDescriptor fd"),
    ("misspelt LiteRT method", "TfliteModel.java", "interpreter.allocateTensors();",
     "interpreter.allocateTensor();", r"cannot find symbol"),
    ("misspelt Android method", "RegionSource.java", "ColorSpace.get(ColorSpace.Named.SRGB)",
     "ColorSpace.gett(ColorSpace.Named.SRGB)", r"cannot find symbol"),
    ("misspelt constant", "Gallery.java", "MediaStore.MediaColumns.IS_PENDING, 1)",
     "MediaStore.MediaColumns.IS_PENDNG, 1)", r"cannot find symbol"),
    ("wrong argument type", "Gallery.java", "MediaStore.MediaColumns.IS_PENDING, 0)",
     "MediaStore.MediaColumns.IS_PENDING, new int[0])", r"no suitable method|cannot be applied|incompatible types"),
    ("narrowed override", "SplitView.java", "    protected void onDraw(Canvas canvas) {",
     "    void onDraw(Canvas canvas) {", r"weaker access privileges; was protected"),
    ("wrong lambda arity", "MainActivity.java", "new ActivityResultContracts.PickVisualMedia(), uri -> {",
     "new ActivityResultContracts.PickVisualMedia(), (uri, extra) -> {",
     r"incompatible parameter types in lambda"),
    ("setNumThreads(\"4\")", "TfliteModel.java", "o.setNumThreads(threads);", 'o.setNumThreads("4");',
     r"incompatible types: String cannot be converted to int"),
    ("int from a long-returning call", "MemoryMonitor.java",
     "peakNative = Math.max(peakNative, Debug.getNativeHeapAllocatedSize());",
     "int seededNative = Debug.getNativeHeapAllocatedSize(); peakNative = Math.max(peakNative, seededNative);",
     r"possible lossy conversion from long to int"),
    ("float from a double-returning call", "UpscaleJob.java",
     "long free = Math.max(0, mi.availMem - mi.threshold);",
     "float seededLat = (new android.location.Location(\"seed\")).getLatitude(); "
     "long free = Math.max(0, mi.availMem - mi.threshold);",
     r"possible lossy conversion from double to float"),
    ("removed throws (uncaught IOException)", "RegionSource.java",
     "private static BitmapRegionDecoder newInstanceLegacy(InputStream in) throws IOException {",
     "private static BitmapRegionDecoder newInstanceLegacy(InputStream in) {",
     None),  # javac reports it at the call inside, the next line
    ("misspelt resource id", "MainActivity.java", "R.id.gpu", "R.id.gpuu", r"cannot find symbol"),
]


def _run(app: Path | None = None) -> subprocess.CompletedProcess:
    args = ["bash", str(SCRIPT)] + ([str(app)] if app else [])
    return subprocess.run(args, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def checked():
    """The real app's check: compiled, or the test skips (developer machine) / fails (CI) on missing tools."""
    if shutil.which("bash") is None:
        pytest.skip("needs bash")
    r = _run()
    if r.returncode == 3:
        line = r.stderr.strip().splitlines()[-1]
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI lacks what the app compile check needs: {line}")
        pytest.skip(line)
    return r


def test_the_app_compiles(checked):
    assert checked.returncode == 0, (checked.stdout + checked.stderr)[-6000:]
    assert "OK: app + core compiled" in checked.stdout


def _copy_app(tmp_path: Path) -> Path:
    app = tmp_path / "app"
    shutil.copytree(DEMO / "app" / "src", app / "src")
    return app


def test_seeded_java_mistakes_are_caught(checked, tmp_path):
    app = _copy_app(tmp_path)
    where = []
    for what, name, old, new, want, *at in SEEDED:
        f = app / JAVA / name
        text = f.read_text()
        assert text.count(old) >= 1, f"{what}: {old!r} is no longer in {name}; update the seeded mistake"
        text = text.replace(old, new, 1)
        f.write_text(text)
        mark = at[0] if at else new
        line = text[:text.index(mark)].count("\n") + 1
        where.append((what, name, line, want))
    r = _run(app)
    out = r.stderr
    assert r.returncode == 1, (r.stdout + r.stderr)[-6000:]
    # each error with the lines javac prints under it (the reason of an overload failure is there)
    errors = re.findall(r"^(.*?\.java):(\d+): error: (.*\n(?:(?!.*?\.java:\d+: error: ).*\n)*)", out, re.M)
    missed = []
    for what, name, line, want in where:
        # javac names the line of the statement: a lambda's is its call's, one above
        here = [msg for path, ln, msg in errors if path.endswith("/" + name) and line - 1 <= int(ln) <= line + 1]
        if not here or (want and not any(re.search(want, m) for m in here)):
            missed.append(f"{what} ({name}:{line}): {here}")
    unreported = [m for m in re.findall(r"unreported exception ([\w.]+)", out)]
    assert "IOException" in unreported, out[-4000:]
    assert not missed, "not caught:\n" + "\n".join(missed) + "\n" + out[-4000:]


def test_seeded_resource_and_manifest_mistakes_are_caught(checked, tmp_path):
    app = _copy_app(tmp_path)
    layout = app / "src/main/res/layout/activity_main.xml"
    text = layout.read_text()
    assert 'android:id="@+id/' in text
    layout.write_text(text.replace('android:id="@+id/', 'android:text="@string/no_such_string" android:id="@+id/',
                                   1))
    r = _run(app)
    assert r.returncode == 1 and "aapt refused" in r.stderr, (r.stdout + r.stderr)[-3000:]
    assert "no_such_string" in r.stderr, r.stderr[-3000:]

    app = _copy_app(tmp_path / "manifest")  # aapt stops at the first bad file: the manifest on its own
    manifest = app / "src/main/AndroidManifest.xml"
    text = manifest.read_text()
    assert "@xml/file_paths" in text
    manifest.write_text(text.replace("@xml/file_paths", "@xml/no_such_paths"))
    r = _run(app)
    assert r.returncode == 1 and "aapt refused" in r.stderr, (r.stdout + r.stderr)[-3000:]
    assert "no_such_paths" in r.stderr, r.stderr[-3000:]
