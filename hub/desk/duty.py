"""Who is on duty, as the desk holds it: signing on and off from the staff page (rosters: hub/people/duty.py)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from hub.desk.directory import DeskDirectory
from hub.desk.local_state import LocalCopy
from hub.desk.persistence import DeskStore
from hub.people.staff import StaffMember
from hub.runtime.clock import Clock

logger = logging.getLogger(__name__)


class DutyBoard:
    """Signs staff on and off: escalation reaches only people on duty (the directory), the change is stored behind."""

    def __init__(
        self, directory: DeskDirectory, store: DeskStore, clock: Clock, local: LocalCopy, *, shift_hours: float
    ) -> None:
        self._directory = directory
        self._store = store
        self._clock = clock
        self._local = local
        self._shift_hours = shift_hours

    def sign_on(self, staff: StaffMember, hours: float | None = None) -> datetime:
        """`staff` is on duty from now for `hours` (default: the configured shift); returns when the shift ends."""
        now = self._clock.now()
        until = now + timedelta(hours=hours or self._shift_hours)
        self._directory.duty[staff.id] = until
        self._store.duty(staff.id, now, until)
        self._local.dirty.set()
        logger.info("staff on duty staff=%s until=%s", staff.id, until.isoformat())
        return until

    def sign_off(self, staff: StaffMember) -> None:
        """`staff` is off duty from now."""
        if self._directory.duty.pop(staff.id, None) is not None:
            self._store.duty(staff.id, self._clock.now(), None)
            self._local.dirty.set()
            logger.info("staff off duty staff=%s", staff.id)

    def on_duty(self, staff: StaffMember) -> datetime | None:
        """When this person's shift ends, or None when they are not on duty."""
        return self._directory.duty.get(staff.id) if self._directory.on_duty(staff, self._clock.now()) else None
