"""memsr-fetch-photos on fake Debian packages (built here with dpkg-deb, so no network is needed)."""
from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from memsr_deploy.data import fetch_photos
from memsr_deploy.data.eval_photos import load_eval_photos
from memsr_deploy.imageio import read_image

pytestmark = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb (Debian/Ubuntu)")

LAYOUT = {
    "lomiri-wallpapers-16.04": {"usr/share/backgrounds/Sea_by_X.jpg": (40, 60)},
    "lomiri-wallpapers-20.04": {"usr/share/backgrounds/Fossa_by_Y.jpg": (30, 50)},
    "mate-backgrounds": {"usr/share/backgrounds/mate/nature/Dune.jpg": (32, 48),
                         "usr/share/backgrounds/mate/abstract/Spiral.jpg": (32, 48)},
    "plasma-workspace-wallpapers": {"usr/share/wallpapers/Kite/contents/images/1280x800.jpg": (40, 64),
                                    "usr/share/wallpapers/Kite/contents/images/2560x1600.jpg": (80, 128),
                                    "usr/share/wallpapers/Opal/contents/images/3840x2160.png": (36, 64)},
    "opencv-doc": {"usr/share/doc/opencv-doc/examples/dnn_superres/butterfly.png": (24, 24),
                   "usr/share/doc/opencv-doc/examples/data/baboon.jpg": (32, 32)},
}


def _build_debs(tmp_path):
    debs = tmp_path / "cache" / "debs"
    debs.mkdir(parents=True)
    for k, (pkg, files) in enumerate(LAYOUT.items()):
        root = tmp_path / "src" / pkg
        (root / "DEBIAN").mkdir(parents=True)
        (root / "DEBIAN" / "control").write_text(
            f"Package: {pkg}\nVersion: 1.0\nArchitecture: all\nMaintainer: t <t@t>\nDescription: test\n")
        for i, (rel, (h, w)) in enumerate(files.items()):
            p = root / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((h, w, 3), 10 * k + i, np.uint8)).save(p)
        subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(root), str(debs / f"{pkg}_1.0_all.deb")],
                       check=True, capture_output=True)
    return tmp_path / "cache"


def test_fetch_selects_halves_and_is_idempotent(tmp_path, monkeypatch):
    cache = _build_debs(tmp_path)
    calls = []
    real_run = fetch_photos._run
    monkeypatch.setattr(fetch_photos, "_run", lambda cmd, cwd: (calls.append(cmd[0]), real_run(cmd, cwd)))
    out = tmp_path / "photos"
    assert fetch_photos.main(["-o", str(out), "--cache", str(cache), "-q"]) == 0
    assert "apt-get" not in calls                   # the cached .debs were used
    train = sorted(p.name for p in (out / "train").glob("*.png"))
    assert train == ["lomiri_16.04_Sea_by_X.png", "lomiri_20.04_Fossa_by_Y.png", "mate_Dune.png",
                     "plasma_Kite.png"]
    assert read_image(out / "train" / "plasma_Kite.png").shape == (40, 64, 3)     # largest JPEG, halved
    assert read_image(out / "train" / "mate_Dune.png").shape == (16, 24, 3)
    evals = sorted(p.stem for p in (out / "eval").iterdir())
    assert evals == sorted(["astronaut", "chelsea", "coffee", "motorcycle_left", "rocket", "hubble_deep_field",
                            "butterfly", "baboon"])
    assert [n for n, _ in load_eval_photos(out)] == evals

    mtime = (out / "train" / "mate_Dune.png").stat().st_mtime_ns
    calls.clear()
    assert fetch_photos.main(["-o", str(out), "--cache", str(cache), "-q"]) == 0
    assert calls == [] and (out / "train" / "mate_Dune.png").stat().st_mtime_ns == mtime
    (out / "train" / "mate_Dune.png").unlink()
    (out / "train" / ".done-mate-backgrounds").unlink()      # only this package is redone
    assert fetch_photos.main(["-o", str(out), "--cache", str(cache), "-q", "--prune"]) == 0
    # The unpacked package is still cached, so nothing is run; --prune then removes the cache.
    assert calls == [] and (out / "train" / "mate_Dune.png").exists() and not cache.exists()


def test_eval_only_downloads_missing_package(tmp_path, monkeypatch, capsys):
    cache = _build_debs(tmp_path)
    stash = tmp_path / "stash"
    stash.mkdir()
    deb = next((cache / "debs").glob("opencv-doc_*.deb"))
    shutil.move(deb, stash / deb.name)
    real_run = fetch_photos._run

    def fake_run(cmd, cwd):
        if cmd[:2] == ["apt-get", "download"]:
            assert cmd[2] == "opencv-doc"
            shutil.copy(stash / deb.name, cwd / deb.name)
            return
        real_run(cmd, cwd)
    monkeypatch.setattr(fetch_photos, "_run", fake_run)
    assert fetch_photos.main(["-o", str(tmp_path / "p"), "--cache", str(cache), "--eval-only", "-q"]) == 0
    assert not (tmp_path / "p" / "train").exists()
    assert len(list((tmp_path / "p" / "eval").iterdir())) == 8


def test_failed_download_is_one_line_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(fetch_photos.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(
        a[0], 100, "", "E: Unable to locate package opencv-doc\n"))
    assert fetch_photos.main(["-o", str(tmp_path / "p"), "--eval-only", "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: apt-get download opencv-doc failed: E: Unable to locate package")
