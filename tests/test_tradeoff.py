"""The memory-quality table's width list: which uniform students it trains."""
import pytest

from memsr_bench.tradeoff import parse_widths


@pytest.mark.parametrize("text, teacher, expected", [
    ("16,24,32,teacher", 48, [16, 24, 32, 48]),   # a wider teacher adds its own width
    ("16,24,32,teacher", 32, [16, 24, 32]),       # not wider: nothing added, no duplicate
    ("16,24,32,teacher", 20, [16, 24, 32]),
    ("16,24,32", 48, [16, 24, 32]),               # no token: only what was asked
    ("teacher", 48, [48]),
    (" 32 , 16 ", 48, [16, 32]),
])
def test_parse_widths(text, teacher, expected):
    assert parse_widths(text, teacher) == expected


def test_bundled_table_merges_rows_measured_later_on_the_same_machine():
    from memsr_bench.bundled_table import _merged, markdown
    row = {"params": 1, "macs_per_lr_pixel": 2, "quality": {}, "peaks": {"12MP whole": 2 ** 31, "12MP tiled": 2 ** 20}}
    old = {"commands": ["cmd a"], "machine": "m", "photo": "p", "rows": [{"name": "x", **row, "seconds_12mp": 1.0},
                                                                      {"name": "y", **row}]}
    new = {"commands": ["cmd b"], "machine": "m", "photo": "p", "rows": [{"name": "x", **row, "seconds_12mp": 2.0},
                                                                         {"name": "z", **row}]}
    doc = _merged(old, new, order=["z", "y", "x"])
    assert [r["name"] for r in doc["rows"]] == ["z", "y", "x"] and doc["rows"][2]["seconds_12mp"] == 2.0
    assert doc["commands"] == ["cmd a", "cmd b"] and "`cmd a` and `cmd b`" in markdown(doc)[0]
    assert _merged({**old, "machine": "other"}, new, order=[]) is new     # two machines' seconds: not one table
