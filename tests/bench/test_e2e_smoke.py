"""bench/e2e.py at toy size: it runs against the real services and prints one JSON object with every figure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PG_DSN

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "e2e.py"
TINY = [
    "--quick", "--backlog", "2000", "--load-residents", "300", "--level-s", "1.5",
    "--residents", "3", "--hours", "2", "--speed", "1200", "--incident-scale", "20",
]  # fmt: skip


@pytest.mark.timeout(180)
def test_a_tiny_run_prints_one_json_object_with_every_figure() -> None:
    env = {**os.environ, "VAKA_BENCH_DSN": PG_DSN}
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), *TINY], capture_output=True, text=True, timeout=170, env=env, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, "stdout must hold exactly one JSON object; progress belongs on stderr"
    result = json.loads(lines[0])

    assert result["raw_receive_per_s"] > 0
    assert result["sustained_events_per_s"] > 0
    assert result["ratio"] == pytest.approx(result["sustained_events_per_s"] / result["raw_receive_per_s"], abs=0.01)
    for level in ("at_50pct", "at_90pct"):
        figures = result["alarm_latency_ms"][level]
        assert figures["probes"] > 0
        assert figures["unanswered"] == 0, "every alarm-button probe must come back as an alarm"
        assert 0 < figures["p50"] <= figures["p99"] <= figures["max"]
    assert result["load_alarms_unexpected"] == {"sustained": {}, "latency": {}}, "ordinary days raise no alarm"
    assert result["recall_detail"]["incidents"] > 0
    assert 0.0 <= result["recall"] <= 1.0
    assert isinstance(result["missed"], list)
    assert len(result["missed"]) == round((1 - result["recall"]) * result["recall_detail"]["incidents"])
    assert result["false_alarms_per_resident_night"] >= 0
    assert result["run"] | {"residents": 3, "hours": 2.0, "speed": 1200.0, "seed": 1} == result["run"]
    assert result["machine"]["cores"] >= 1
    assert result["machine"]["python"].count(".") == 2
    assert "[bench/e2e" in proc.stderr
