"""After any gap, everything the broker queued for the hub's session is stored, once (issue 22.1).

`vaka serve` as a process, a private Mosquitto with the shipped durability settings, a private PostgreSQL, and a ledger
of every PUBACK. 50,000 telemetry messages wait in the broker for the hub's telemetry session, far more than the
connection's own limit of unacknowledged messages (4,096): the hub killed, the broker down while devices buffer, the
hub frozen. On the old main the restarted hub took 4,096, stopped reading, never saw its SUBACK, reconnected every
10 s and was sent the same 4,096 again, forever.
"""

from __future__ import annotations

import pytest

from tests.hub.test_durability import HubProcess, Ledger, assert_ledger_stored_once
from tests.services import PrivateMosquitto, PrivatePostgres

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

QUEUED = 50_000
RATE_PER_S = 8000.0


def _rig(tmp_path_factory: pytest.TempPathFactory, site: str) -> tuple[PrivatePostgres, PrivateMosquitto, HubProcess]:
    pg, broker = PrivatePostgres(), PrivateMosquitto()
    pg.start()
    broker.start()
    hub = HubProcess(pg, broker, tmp_path_factory.mktemp(site), site)
    hub.start()
    hub.wait_status("ready")
    return pg, broker, hub


def _assert_drained(pg: PrivatePostgres, hub: HubProcess, ledger: Ledger) -> None:
    ledger.settle(timeout_s=60)
    assert len(ledger.acked) == QUEUED
    assert_ledger_stored_once(pg, ledger, timeout_s=180)
    hub.wait_status("ready", timeout_s=30)
    assert "cannot connect" not in hub.log, "the telemetry connection was dropped while it drained the backlog"


@pytest.mark.parametrize("gap", ["hub killed", "hub frozen", "broker down"])
def test_a_backlog_of_fifty_thousand_is_stored_after_the_gap(
    gap: str, tmp_path_factory: pytest.TempPathFactory, unique: str
) -> None:
    site = f"s{unique}"
    pg, broker, hub = _rig(tmp_path_factory, site)
    ledger = Ledger(broker, site, channel="telemetry")
    try:
        ledger.publish(0, 100, RATE_PER_S)  # the session is live and subscribed
        if gap == "hub killed":
            hub.kill()
            ledger.publish(100, QUEUED, RATE_PER_S)
            ledger.settle(timeout_s=60)
            hub.start()
        elif gap == "hub frozen":
            hub.pause()
            ledger.publish(100, QUEUED, RATE_PER_S)
            ledger.settle(timeout_s=60)
            hub.resume()
        else:
            # the hub is away, the devices' messages queue for its session, and then the broker restarts: the queue
            # must survive in the broker's persistence and reach the hub when it is back
            hub.kill()
            ledger.publish(100, QUEUED, RATE_PER_S)
            ledger.settle(timeout_s=60)
            broker.stop()
            broker.start()
            hub.start()
        _assert_drained(pg, hub, ledger)
    finally:
        ledger.close()
        hub.stop()
        broker.cleanup()
        pg.cleanup()
