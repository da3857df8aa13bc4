"""Open data suppression: no hidden cell can be worked out from what is published (linear programming attack)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hub.followup.suppression import Line, bounds, suppress

TOTAL = "all"


def _table(cells: dict[tuple[str, str], int], rows: list[str], cols: list[str]) -> tuple[dict, list[Line]]:
    values = dict(cells)
    for r in rows:
        values[(r, TOTAL)] = sum(cells[(r, c)] for c in cols)
    for c in [*cols, TOTAL]:
        values[(TOTAL, c)] = sum(values[(r, c)] for r in rows)
    lines = [Line(tuple((r, c) for c in cols), (r, TOTAL)) for r in [*rows, TOTAL]]
    lines += [Line(tuple((r, c) for r in rows), (TOTAL, c)) for c in [*cols, TOTAL]]
    return values, lines


def _attack(values: dict, lines: list[Line], hidden: dict) -> list:
    published = {k: (None if k in hidden else v) for k, v in values.items()}
    return [k for k, (lo, hi) in bounds(published, hidden, lines).items() if hi - lo < 1]


def test_one_small_cell_in_a_row_takes_a_second_one_with_it() -> None:
    rows, cols = ["A", "B"], ["assisted", "false_alarm", "open"]
    cells = {("A", "assisted"): 12, ("A", "false_alarm"): 3, ("A", "open"): 9,
             ("B", "assisted"): 20, ("B", "false_alarm"): 8, ("B", "open"): 11}  # fmt: skip
    values, lines = _table(cells, rows, cols)
    # primary suppression alone leaks: 3 = 24 - 12 - 9
    primary_only = {("A", "false_alarm"): "primary"}
    assert _attack(values, lines, primary_only) == [("A", "false_alarm")]
    hidden = suppress(values, lines)
    assert hidden[("A", "false_alarm")] == "primary"
    assert sum(1 for h in hidden.values() if h == "secondary") >= 3  # its row, its column and the crossing
    assert _attack(values, lines, hidden) == []


def test_a_suppressed_cell_beside_a_secondary_of_exactly_five_is_not_pinned() -> None:
    # p + s = 5 with p < 5 and s >= 5 would pin p = 0, s = 5: the attack must fail on the result
    rows, cols = ["A", "B", "C"], ["x", "y"]
    cells = {("A", "x"): 0, ("A", "y"): 5, ("B", "x"): 7, ("B", "y"): 9, ("C", "x"): 6, ("C", "y"): 30}
    values, lines = _table(cells, rows, cols)
    hidden = suppress(values, lines)
    assert _attack(values, lines, hidden) == []


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.integers(0, 40), min_size=2, max_size=4), min_size=2, max_size=4).filter(
    lambda rows: len({len(r) for r in rows}) == 1))  # fmt: skip
def test_no_hidden_cell_is_ever_recoverable(grid: list[list[int]]) -> None:
    rows = [f"u{i}" for i in range(len(grid))]
    cols = [f"c{j}" for j in range(len(grid[0]))]
    cells = {(r, c): grid[i][j] for i, r in enumerate(rows) for j, c in enumerate(cols)}
    values, lines = _table(cells, rows, cols)
    hidden = suppress(values, lines)
    assert all(k in hidden for k, v in values.items() if v < 5)
    assert _attack(values, lines, hidden) == []
