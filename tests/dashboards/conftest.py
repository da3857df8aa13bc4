"""The simulated night behind the slow dashboard test, built once per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.dashboards.stack import NightStack


@pytest.fixture(scope="module")
def night() -> Iterator[NightStack]:
    stack = NightStack()
    try:
        stack.up()
        yield stack
    finally:
        stack.down()
