"""Packaging a bundled model: its evaluation tables (evaluation photos and held-out training photos) and the
model card rendered from them."""
import json

import numpy as np

from memsr_bench import package_bundled
from conftest import make_plain, make_teacher


def _photos(n=2, seed=0):
    rng = np.random.default_rng(seed)
    return [(f"p{i}", np.kron(rng.random((12, 16, 3)), np.ones((4, 4, 1))).astype(np.float32)) for i in range(n)]


def test_score_reports_gains_against_bicubic_and_teacher():
    pairs = [package_bundled.pair_from_hr(n, hr, 2) for n, hr in _photos()]
    ev = package_bundled.score(make_plain(), make_teacher(), "tiny", pairs, 2)
    assert set(ev) >= {"bicubic", "teacher", "tiny", "gain_over_bicubic_db", "gap_to_teacher_db"}
    # the gains come from unrounded means, the per-model means are rounded: equal to within the rounding
    assert abs(ev["gain_over_bicubic_db"] - (ev["tiny"]["mean_psnr_y"] - ev["bicubic"]["mean_psnr_y"])) < 2e-3
    assert abs(ev["gap_to_teacher_db"] - (ev["teacher"]["mean_psnr_y"] - ev["tiny"]["mean_psnr_y"])) < 2e-3
    assert sorted(ev["tiny"]["images"]) == ["p0", "p1"]


def test_model_card_shows_the_held_out_gains(tmp_path, monkeypatch):
    def table(student, bicubic, teacher):
        row = lambda v, ssim: {"mean_psnr_y": v, "mean_ssim_y": ssim, "images": {"a": v - 1, "b": v + 1}}
        return {"bicubic": row(bicubic, 0.8), "teacher": row(teacher, 0.9), "memsr-x2": row(student, 0.85),
                "gain_over_bicubic_db": round(student - bicubic, 3), "gap_to_teacher_db": round(teacher - student, 3)}
    desc = {"params": 10, "layer_widths": [8, 12], "receptive_radius": 2, "recipe": ["memsr-train student ..."],
            "evaluation": table(32.5, 30.8, 32.9), "evaluation_heldout": table(40.0, 38.5, 40.5),
            "flat_colours": {"model": {"pattern_max": 5.94, "colour_error_max": 61.6},
                             "teacher": {"pattern_max": 0.8, "colour_error_max": 0.5}}}
    (tmp_path / "memsr_x2.json").write_text(json.dumps(desc))
    monkeypatch.setattr(package_bundled, "PRETRAINED_DIR", tmp_path)
    monkeypatch.setattr(package_bundled, "MODELS", {"memsr-x2": ("memsr_x2", None)})
    package_bundled.write_model_card()
    card = (tmp_path / "README.md").read_text()
    assert "| `memsr-x2` | 10 | [8, 12] | 2 | 32.50 | 0.8500 | +1.70 dB | -0.40 dB | 30.80 | +1.50 dB | -0.50 dB " \
           "| 5.9 / 61.6 |" in card
    assert "| +2.10 dB | | | +2.00 dB | | 0.8 / 0.5 |" in card   # the teacher's row
    assert "| `memsr-x2` | student | 39.00 | 41.00 |" in card   # the held-out photos one by one
    assert "memsr-train student ..." in card


def test_packaging_with_an_int8_model_ships_it_beside_and_names_it(tmp_path, monkeypatch):
    import pytest
    pytest.importorskip("ai_edge_litert")
    from PIL import Image
    from memsr_deploy.formats.model_file import int8_model, read_description, save_model
    photos = tmp_path / "photos"
    photos.mkdir()
    for name, img in _photos(5, seed=3):
        Image.fromarray((img * 255).astype(np.uint8)).save(photos / f"{name}.png")
    save_model(make_plain(seed=0), tmp_path / "float", kind="student")
    save_model(make_plain(seed=1), tmp_path / "grid", kind="student")
    out = tmp_path / "pretrained"
    out.mkdir()
    monkeypatch.setattr(package_bundled, "PRETRAINED_DIR", out)
    monkeypatch.setattr(package_bundled, "MODELS", {"memsr-x2": ("memsr_x2", None)})
    assert package_bundled.main([str(tmp_path / "float"), "--name", "memsr-x2", "--int8-model", str(tmp_path / "grid"),
                                 "--eval-data", str(photos), "--int8-photos", str(photos), "--heldout", "0"]) == 0
    desc = read_description(out / "memsr_x2")
    assert int8_model(desc) == out / "memsr_x2_int8"
    assert "int8_activation_ranges" not in desc.extra     # the ranges are the weights int8 runs use
    assert "against the float model" in read_description(out / "memsr_x2_int8").extra["int8_activation_ranges"][
        "validation"]
    assert ("`memsr-x2` ships its float weights (the recipe step before the int8 stage), and beside it "
            "`memsr_x2_int8.json`") in \
        (out / "README.md").read_text()


def test_model_card_says_how_each_teacher_was_validated(tmp_path, monkeypatch):
    """From the teacher's own provenance: held-out validation and a same-schedule resume, or the 2026-11 way."""
    from memsr_deploy.formats.model_file import save_model
    monkeypatch.setattr(package_bundled, "PRETRAINED_DIR", tmp_path)
    monkeypatch.setattr(package_bundled, "MODELS", {"teacher-x2": ("teacher_x2", None),
                                                    "teacher-x4": ("teacher_x4", None)})
    save_model(make_teacher(), tmp_path / "teacher_x2", kind="teacher", provenance={"steps": 10000})
    save_model(make_teacher(scale=4, width=8, blocks=3), tmp_path / "teacher_x4", kind="teacher",
               provenance={"steps": 20000, "resumed_from_step": 11250, "validation": {"held_out": ["a.png", "b.png"]}})
    notes = {n: package_bundled._teacher_note(n, stem) for n, stem in package_bundled._bundled("teacher-")}
    assert notes["teacher-x4"].startswith("`teacher-x4` (8x3, ")
    assert "one 20000-step schedule, resumed at step 11250 on the same schedule, validated on the 2 training " \
           "photos held out" in notes["teacher-x4"]
    assert "validated on the evaluation photos" in notes["teacher-x2"]
    save_model(make_teacher(), tmp_path / "teacher_x2", kind="teacher",
               provenance={"steps": 6000, "resumed_from_step": 4000, "resumed_with_changes":
                           {"steps": {"checkpoint": 4000, "now": 6000}}, "validation": {"held_out": ["a.png"]}})
    assert "a 6000-step schedule, resumed at step 4000 with --steps raised from 4000, validated on the 1 training" \
        in package_bundled._teacher_note("teacher-x2", "teacher_x2")
