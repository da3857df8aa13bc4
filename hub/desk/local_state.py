"""The desk's own copy of what it needs to resume without the database: its open alarms, the staff directory and
who is on duty (issue 22.3).

Written atomically to the spool directory at most once a second while something changed, and at shutdown. At a
start with the database away the desk takes its open alarms back from here (and from its journal, newer versions
winning), so the engine's open alarms find theirs at the desk (none is raised again under a new id), escalation
reaches the people on duty, and once the database answers its rows merge by alarm id. A missing or damaged file
means the database's copy is the only one, as before. Residents are pseudonymous here as in the database; the file
holds no password hashes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec

from hub.desk.alarm import Alarm
from hub.desk.machine import Change, ChangeKind
from hub.desk.persistence import SNAPSHOT_COLUMNS, alarm_from_row
from hub.model import AlarmState
from hub.people.staff import StaffMember
from hub.store.files import write_whole

logger = logging.getLogger(__name__)

FILE = "desk_state.msgpack"
_VERSION = 1

_OPEN = frozenset({AlarmState.RAISED, AlarmState.ACCEPTED, AlarmState.EN_ROUTE, AlarmState.ON_SITE})


@dataclass
class DeskState:
    """What a desk resumes from: open alarms by id, the staff directory, duty (staff id -> until)."""

    alarms: dict[str, Alarm] = field(default_factory=dict)
    staff: list[StaffMember] = field(default_factory=list)
    duty: dict[int, datetime] = field(default_factory=dict)

    def take_newer(self, rows: list[tuple[Any, ...]]) -> int:
        """Apply alarm snapshot rows (the journal's), a higher version winning; a closed one leaves. Returns how
        many changed what the desk will resume."""
        changed = 0
        for row in rows:
            alarm = alarm_from_snapshot(row)
            held = self.alarms.get(alarm.id)
            if held is not None and held.version >= alarm.version:
                continue
            changed += 1
            if alarm.state in _OPEN:
                self.alarms[alarm.id] = alarm
            else:
                self.alarms.pop(alarm.id, None)
        return changed


def alarm_from_snapshot(row: tuple[Any, ...] | list[Any]) -> Alarm:
    """An alarm from the tuple `persistence.snapshot_row` made of it (the journal's and this file's form)."""
    return alarm_from_row(dict(zip(SNAPSHOT_COLUMNS, row, strict=True)))


def encode(alarms: list[tuple[Any, ...]], staff: list[StaffMember], duty: dict[int, datetime]) -> bytes:
    """The file's bytes: alarm snapshot tuples, staff members and duty."""
    people = [m.as_row() for m in staff]
    return msgspec.msgpack.encode(
        {"version": _VERSION, "alarms": alarms, "staff": people, "duty": [(k, v) for k, v in duty.items()]}
    )


def save(directory: Path, data: bytes) -> None:
    """Write the file whole or not at all; raises OSError (a full disk)."""
    write_whole(directory / FILE, data)


def load(directory: Path) -> DeskState | None:
    """The last saved state, or None when there is none or it cannot be read (logged)."""
    path = directory / FILE
    try:
        raw = msgspec.msgpack.decode(path.read_bytes())
        if raw.get("version") != _VERSION:
            logger.warning("desk local state %s has version %s: not used", path, raw.get("version"))
            return None
        state = DeskState()
        state.take_newer([tuple(row) for row in raw["alarms"]])
        state.staff = [StaffMember.from_row(row) for row in raw["staff"]]
        state.duty = {int(k): v for k, v in raw["duty"]}
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, msgspec.DecodeError) as exc:
        logger.warning("desk local state %s cannot be read (%s): the database's copy is the only one", path, exc)
        return None
    return state


class LocalCopy:
    """What the desk's own copy learns from the lane as it works: that something changed (the copy is written at most
    once a second while it does) and which alarms closed since this start (a late restore never reopens them)."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self.dirty = asyncio.Event()
        self.closed_here: set[str] = set()

    def note(self, changes: Sequence[Change]) -> None:
        """The lane delivered these changes."""
        if changes:
            self.dirty.set()
        for change in changes:
            if change.kind is ChangeKind.CLOSE:
                self.closed_here.add(change.alarm.id)
