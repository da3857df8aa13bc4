"""One bad setting must stop the hub at start, not break escalation later (issue 10, finding 6).

On main `desk.night_end = "24:00"` passed the settings pattern; the hub started, and the first technical alarm then
raised an exception on every escalation tick, so a fall got its first tier and never its second.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.services import free_port

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize(("name", "value"), [("VAKA_DESK__NIGHT_END", "24:00"), ("VAKA_DESK__NIGHT_START", "7:60")])
def test_a_time_of_day_that_is_none_stops_the_hub_at_start_naming_the_setting(
    tmp_path: Path, name: str, value: str
) -> None:
    env = {
        **os.environ,
        name: value,
        "VAKA_HTTP__PORT": str(free_port()),
        "VAKA_SPOOL__DIRECTORY": str(tmp_path / "spool"),
    }
    try:
        result = subprocess.run(
            [sys.executable, "-m", "hub.cli", "serve"], env=env, capture_output=True, text=True, timeout=30
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the hub started with {name}={value}: {exc.stderr!r}"[:2000])
    assert result.returncode != 0
    setting = name.removeprefix("VAKA_").lower().replace("__", ".")
    assert setting in result.stdout + result.stderr
