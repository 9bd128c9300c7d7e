"""The flat-colour check: a flat output passes, a phase pattern or a colour shift is measured in 8-bit levels."""
import numpy as np

from conftest import make_plain
from memsr_deploy.formats.model_file import save_model
from memsr_deploy.quality.flat_colours import check_model, cube_colours, flat_colour_check


def nearest(x, scale=2):
    return x.repeat(scale, axis=2).repeat(scale, axis=3)


def test_a_flat_output_of_the_input_colour_scores_zero():
    r = flat_colour_check(nearest, 2, 3, levels=3)
    assert r["colours"] == 27 and r["pattern_max"] == 0 and r["colour_error_max"] == 0


def test_a_phase_pattern_and_a_colour_shift_are_measured_where_they_happen():
    def dotted(x):
        y = nearest(x)
        magenta = (x[:, 0, 0, 0] > 0.9) & (x[:, 1, 0, 0] < 0.1) & (x[:, 2, 0, 0] > 0.9)
        y[magenta, 1, ::2, ::2] += 10 / 255   # one phase of one channel, on flat magenta only
        return y
    r = flat_colour_check(dotted, 2, 3, levels=5)
    assert abs(r["pattern_max"] - 10) < 1e-3 and r["pattern_worst_colour"] == [255, 0, 255]
    assert abs(r["colour_error_max"] - 10) < 1e-3 and r["pattern_mean"] < 1
    assert len(cube_colours(5)) == 125 and cube_colours(5).max() == 1.0


def test_runs_on_a_model_file(tmp_path):
    save_model(make_plain(), tmp_path / "m", kind="student")
    r = check_model(tmp_path / "m", levels=2)
    assert r["colours"] == 8 and np.isfinite(r["pattern_max"]) and r["pattern_max"] >= 0
