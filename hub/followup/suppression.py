"""Small-count suppression for open data: primary (a count below the threshold is published as '<5') and
complementary (enough further cells hidden, shown as '..', that no hidden cell can be worked out from the totals).

A table is a set of cells and *lines*: each line says that its cells add up to its total (a unit's categories to
the unit's total, the units' values to the site's). The attacker knows every published cell, that a '<5' cell is
0–4 and that a '..' cell is at least 5 (it was hidden only to protect another). After suppression, linear
programming over exactly that knowledge finds at least two possible values for every hidden cell.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

import numpy as np
from scipy.optimize import linprog

Hidden = Literal["primary", "secondary"]
K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True, slots=True)
class Line(Generic[K]):
    """`cells` add up to `total`."""

    cells: tuple[K, ...]
    total: K


def suppress(values: dict[K, int], lines: Sequence[Line[K]], threshold: int = 5) -> dict[K, Hidden]:
    """Which cells to hide, and why; every count below `threshold` at least."""
    hidden: dict[K, Hidden] = {k: "primary" for k, v in values.items() if v < threshold}
    while True:
        line = next((ln for ln in lines if _hidden_in(ln, hidden) == 1 and _visible(ln, hidden)), None)
        if line is None:
            published: dict[K, int | None] = {k: (None if k in hidden else v) for k, v in values.items()}
            known = bounds(published, hidden, lines, threshold)
            leaked = next((k for k in sorted(hidden, key=repr) if known[k][1] - known[k][0] < 1), None)
            if leaked is None:
                return hidden
            # hide more around the leaked cell: in one of its own lines, else in any line touching a hidden cell
            candidates = [ln for ln in lines if leaked in _members(ln) and _visible(ln, hidden)] or [
                ln for ln in lines if _hidden_in(ln, hidden) and _visible(ln, hidden)
            ]
            if not candidates:
                return hidden  # nothing left to hide
            line = candidates[0]
        hidden[min(_visible(line, hidden), key=lambda k: (values[k], repr(k)))] = "secondary"


def _members(line: Line[K]) -> tuple[K, ...]:
    return (*line.cells, line.total)


def _hidden_in(line: Line[K], hidden: dict[K, Hidden]) -> int:
    return sum(1 for k in _members(line) if k in hidden)


def _visible(line: Line[K], hidden: dict[K, Hidden]) -> list[K]:
    return [k for k in _members(line) if k not in hidden]


def bounds(
    published: dict[K, int | None], hidden: dict[K, Hidden], lines: Sequence[Line[K]], threshold: int = 5
) -> dict[K, tuple[float, float]]:
    """What an attacker can work out: the (min, max) of every hidden cell given the published table."""
    unknown = sorted(hidden, key=repr)
    index = {k: i for i, k in enumerate(unknown)}
    a_eq, b_eq = [], []
    for line in lines:
        if not any(k in index for k in _members(line)):
            continue
        row = np.zeros(len(unknown))
        rhs = 0.0
        for k, coef in [(c, 1.0) for c in line.cells] + [(line.total, -1.0)]:
            if k in index:
                row[index[k]] += coef
            else:
                value = published[k]
                assert value is not None
                rhs -= coef * value
        a_eq.append(row)
        b_eq.append(rhs)
    var_bounds = [(0, threshold - 1) if hidden[k] == "primary" else (threshold, None) for k in unknown]
    out: dict[K, tuple[float, float]] = {}
    for k in unknown:
        c = np.zeros(len(unknown))
        c[index[k]] = 1.0
        lo = linprog(c, A_eq=np.array(a_eq) if a_eq else None, b_eq=b_eq or None, bounds=var_bounds, method="highs")
        hi = linprog(-c, A_eq=np.array(a_eq) if a_eq else None, b_eq=b_eq or None, bounds=var_bounds, method="highs")
        low = lo.fun if lo.status == 0 else float("-inf")
        high = -hi.fun if hi.status == 0 else float("inf")
        if hi.status == 3:  # unbounded above
            high = float("inf")
        out[k] = (low, high)
    return out
