"""A second receiver address for SCAIP senders (issue 30; docs/ha.md): two hubs listen, one database keeps the truth.

An alarm unit is set up with two receivers (SS 91100: it sends to the next one when no status 0 comes back). Here
both hubs run at once on one database; the unit's alarm reaches the first, whose answer is lost on the way back,
and the unit sends the same alarm (same `ref`, a new transaction) to the second. The second answers status 0 once
the alarm is durable, and the alarm is stored once: the first time it was seen (`scaip_first_seen`) is in the
shared database, not in either hub.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.app import Hub
from hub.settings import Settings
from tests.hub.scaip.test_receiver import SIPP, fetch, inventory, run_sipp, scaip_settings  # noqa: F401

pytestmark = pytest.mark.skipif(SIPP is None, reason="sipp (Debian package sip-tester) is not installed")


def second_hub(settings: Settings, unique: str, tmp_path: Path) -> Settings:
    """Another hub on the same database and broker: a session, a spool and ports of its own."""
    first = scaip_settings(settings, unique)
    return first.model_copy(
        update={
            "mqtt": first.mqtt.model_copy(update={"client_id": f"{first.mqtt.client_id}-second"}),
            "spool": first.spool.model_copy(update={"directory": tmp_path / "second-spool"}),
        }
    )


@pytest.mark.usefixtures("inventory")
async def test_an_alarm_sent_again_to_the_second_receiver_is_acknowledged_and_stored_once(
    settings: Settings, unique: str, tmp_path: Path
) -> None:
    cid, ref = f"u{unique}", f"r{unique}"
    async with (
        Hub(scaip_settings(settings, unique)) as first,
        Hub(second_hub(settings, unique, tmp_path)) as second,
    ):
        await first.wait_connected()
        await second.wait_connected()
        assert first.scaip is not None
        assert second.scaip is not None
        assert first.scaip.udp_port != second.scaip.udp_port  # two addresses
        await run_sipp("alarm.xml", first, "udp", tmp_path, cid=cid, ref=ref)
        # no status 0 reached the unit: it sends the same alarm to its second receiver, which must answer 0
        await run_sipp("alarm.xml", second, "udp", tmp_path, cid=cid, ref=ref)
        rows = await fetch(settings.db.db_schema, "SELECT ts FROM events WHERE device_id = $1", cid)
        assert len(rows) == 1, "the alarm sent to both receivers is stored once"
