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
