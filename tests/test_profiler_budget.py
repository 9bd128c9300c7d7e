"""The memory-budget rule shared with the runtime and the Java core (memsr_deploy.formats.memory_budget)."""
from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from memsr_deploy.errors import MemsrError
from memsr_deploy.formats.model_file import ModelDescription
from memsr_deploy.formats import memory_budget as budget


def desc(widths, scale=2, kind="student"):
    layer_widths = [*widths, 3 * scale * scale]
    return ModelDescription(kind=kind, scale=scale, arch={}, receptive_radius=len(widths) + 1,
                            layer_widths=layer_widths, layer_acts=["relu"] * len(widths) + ["none"], params=0)


def test_per_pixel_channels_examples():
    assert budget.per_pixel_channels(desc([64] * 34)) == 128           # MemSR student of EDSR-baseline
    assert budget.per_pixel_channels(desc([8, 20, 4])) == 28          # 8 + 20
    assert budget.per_pixel_channels(desc([4, 4], scale=4)) == 96     # shuffle: 2 * 48 beats 4 + 48
    assert budget.per_pixel_channels(desc([5], scale=3)) == 54        # 2 * 27


def test_tiled_rule_examples():
    d = desc([64] * 34)  # halo 35, P = 128
    assert budget.peak_bytes_tiled(d, 256) == (256 + 70) ** 2 * 128 * 4
    assert budget.peak_bytes_tiled(d, 256, dtype_bytes=2, batch=3) == 3 * (256 + 70) ** 2 * 128 * 2
    assert budget.tile_for_budget(d, 256 * 2 ** 20) == 724 - 70     # isqrt(268435456 // 512) = 724
    with pytest.raises(MemsrError, match="budget too small"):
        budget.tile_for_budget(d, 70 * 70 * 128 * 4)


def test_stream_rule_examples():
    d = desc([8, 12, 8])  # C = [3, 8, 12, 8, 12]: carries 2*31 = 62
    # steps (A, K): (11, 6), (20, 16), (20, 24), (20, 16), shuffle (24, 0)
    assert budget.peak_bytes_stream(d, 100, 1) == 100 * 4 * (62 + 44)
    assert budget.peak_bytes_stream(d, 100, 10) == 100 * 4 * (62 + 240)
    assert budget.strip_rows_for_budget(d, 100, 100 * 4 * (62 + 240)) == 10
    assert budget.strip_rows_for_budget(d, 100, 100 * 4 * (62 + 240) - 1) == 9
    with pytest.raises(MemsrError, match="budget too small"):
        budget.strip_rows_for_budget(d, 100, 100 * 4 * (62 + 43))
    with pytest.raises(MemsrError, match="plain"):
        budget.strip_rows_for_budget(desc([8], kind="teacher"), 100, 10 ** 9)


@settings(max_examples=60, deadline=None)
@given(widths=st.lists(st.integers(1, 96), min_size=1, max_size=12), scale=st.sampled_from([2, 3, 4]),
       budget_bytes=st.integers(10 ** 4, 10 ** 10), dtype=st.sampled_from([1, 2, 4]),
       batch=st.integers(1, 4), width=st.integers(1, 20000))
def test_budget_answers_are_the_largest_that_fit(widths, scale, budget_bytes, dtype, batch, width):
    d = desc(widths, scale)
    try:
        tile = budget.tile_for_budget(d, budget_bytes, dtype, batch)
    except MemsrError:
        assert budget.peak_bytes_tiled(d, 1, dtype, batch) > budget_bytes
    else:
        assert budget.peak_bytes_tiled(d, tile, dtype, batch) <= budget_bytes < \
            budget.peak_bytes_tiled(d, tile + 1, dtype, batch)
    try:
        rows = budget.strip_rows_for_budget(d, width, budget_bytes, dtype)
    except MemsrError:
        assert budget.peak_bytes_stream(d, width, 1, dtype) > budget_bytes
    else:
        assert budget.peak_bytes_stream(d, width, rows, dtype) <= budget_bytes < \
            budget.peak_bytes_stream(d, width, rows + 1, dtype)


def test_dtype_names():
    assert [budget.dtype_bytes(x) for x in ("fp32", "FP16", "int8", 2)] == [4, 2, 1, 2]
    with pytest.raises(MemsrError):
        budget.dtype_bytes("fp64")


def test_teacher_without_architecture_is_a_clean_error():
    with pytest.raises(MemsrError, match="architecture"):
        budget.per_pixel_channels(desc([8, 8], kind="teacher"))
