"""Absence rules: silence longer than a duration (device supervision), or no activity within a daily local window."""

from __future__ import annotations

import math
from typing import Any

from alarms.base import Compiled, Matcher, Params, RuleContext, Where, utc
from alarms.directory import DeviceInfo
from alarms.schedule import compile_schedule
from alarms.spec import AbsenceRule, ScheduleSpec
from hub.model import Event, EventKind


class SilenceEval(Compiled):
    """No matching event for longer than `within` (or the device's supervision interval) after the last one.

    Each subject has at most one timer in the heap. Events only note the time; when the timer comes due and the
    subject spoke meanwhile, the timer is pushed to the new deadline, so the hot path never touches the heap.

    Supervision (`within: supervision`): a device's own "offline" (its Last Will or status) is no sign of life but
    evidence of absence: the device is silent once `offline_grace_s` has passed without a newer sign of life. While
    the hub cannot see its devices (`supervision_suspended`), silence is not judged: due subjects wait in `deferred`
    and are judged on their events' own times when the hub calls `resume`.

    Only a fresh sign of life ends a silence (issue 22.5): one newer than the device's latest (its high-water mark),
    newer than the silence alarm itself, and recent enough that its own deadline has not passed by the engine's
    clock. An older event (a gateway's buffer, a late replay) is noted as what it is and changes no alarm.
    """

    def __init__(self, rule: AbsenceRule, schedules: dict[str, ScheduleSpec]) -> None:
        supervision = rule.within == "supervision"
        super().__init__(rule, schedules, 0.0 if supervision else float(rule.within or 0.0))
        self.supervision = supervision
        self.match = Matcher(rule.match)
        self.listens = self.match.kinds
        self.match_all = rule.match == type(rule.match)()
        self.last: dict[str, float] = {}
        self.where: dict[str, Where] = {}
        self.armed: set[str] = set()
        self.silent: set[str] = set()
        self.silent_at: dict[str, float] = {}  # subject -> when its silence alarm was raised (or adopted)
        self.offline: dict[str, float] = {}  # subject -> when it said offline (newer than its last sign of life)
        self.deferred: set[str] = set()

    def _interval_s(self, ctx: RuleContext, subject: str, rid: str | None) -> float | None:
        if self.supervision:
            dev = ctx.devices.get(subject)
            return dev.supervision_interval_s if dev is not None else None
        return self.params(rid).duration_s

    def on_event(self, ctx: RuleContext, event: Event, t: float, dev: DeviceInfo | None, rid: str | None) -> None:
        """Note the time; clear a silence alarm."""
        if dev is None or (not self.match_all and not self.match.test(event, dev)):
            return
        subject = event.device_id if self.by_device or rid is None else rid
        last = self.last.get(subject)
        fresh = last is None or t > last
        if self.supervision and event.kind is EventKind.DEVICE_OFFLINE:
            if last is None or t >= last:
                self.offline[subject] = t
                self.where[subject] = Where(event.site, rid, event.device_id)
                # its own timer, anchored at the offline report; the regular one keeps running beside it
                ctx.timers.push(t + ctx.offline_grace_s, self.id, subject, t)
            return
        if last is None or t > last:
            self.last[subject] = t
            if self.offline and subject in self.offline and t > self.offline[subject]:
                del self.offline[subject]
        if subject not in self.armed:
            interval = self._interval_s(ctx, subject, rid)
            if interval is not None:
                self.where[subject] = Where(event.site, rid, event.device_id)
                self.armed.add(subject)
                ctx.timers.push(t + interval, self.id, subject, 0.0)
        if subject in self.silent and fresh and t > self.silent_at.get(subject, -math.inf):
            interval = self._interval_s(ctx, subject, rid)
            if interval is None or t + interval > ctx.clock_s:
                self.silent.discard(subject)
                self.silent_at.pop(subject, None)
                ctx.clear(self, subject, event.ts)

    def arm(self, ctx: RuleContext, t: float) -> None:
        """Supervise every device of the directory from `t` on (devices already supervised keep their timers)."""
        if not self.supervision:
            return
        for device_id, dev in ctx.devices.items():
            if device_id in self.armed or device_id in self.silent:
                continue
            last = self.last.setdefault(device_id, t)
            self.where[device_id] = Where(dev.site, dev.resident_id, device_id)
            self.armed.add(device_id)
            ctx.timers.push(last + dev.supervision_interval_s, self.id, device_id, 0.0)

    def on_timer(self, ctx: RuleContext, subject: str, anchor: float, due: float) -> None:
        """Raise when still silent, else move the timer to the new deadline."""
        if anchor:  # the grace after an offline report: void once the device spoke again or reported anew
            if self.offline.get(subject) != anchor:
                return
        else:
            self.armed.discard(subject)
        where = self.where.get(subject)
        rid = where.resident_id if where is not None else None
        interval = self._interval_s(ctx, subject, rid)
        last = self.last.get(subject)
        if interval is None or last is None or where is None:
            return  # the device left the inventory
        deadline = last + interval
        offline_at = self.offline.get(subject)
        if offline_at is not None:
            deadline = min(deadline, offline_at + ctx.offline_grace_s)
        if deadline > due:
            if not anchor:
                self.armed.add(subject)
                ctx.timers.push(deadline, self.id, subject, 0.0)
            return
        if self.supervision and ctx.supervision_suspended:
            self.deferred.add(subject)  # blind: judged when the hub sees again (resume)
            return
        dev = ctx.devices.get(where.device_id) if where.device_id else None
        if subject in self.silent:
            return  # already alarmed (a second offline of the same absence)
        if ctx.may_raise(self, rid, dev, self.params(rid)):
            self.silent.add(subject)
            self.silent_at[subject] = due
            ctx.raise_or_update(self, subject, t=due, at=utc(due), where=where, dev=dev, ref=None, reason=self.reason())
        elif not anchor:
            # silenced (maintenance, away): keep watching so the alarm comes once the device is back in service
            self.armed.add(subject)
            ctx.timers.push(due + interval, self.id, subject, 0.0)

    def adopt(self, ctx: RuleContext, subject: str, t: float) -> None:
        """The desk holds this subject's silence open and the engine had lost it (a restart): silent since `t`."""
        self.silent.add(subject)
        self.silent_at[subject] = t

    def holds(self, subject: str) -> bool:
        """Whether the subject is silent now, by this rule's own state."""
        return subject in self.silent

    def resume(self, ctx: RuleContext, t: float) -> None:
        """The hub sees again: every subject whose silence came due while it was blind is judged now."""
        for subject in sorted(self.deferred):
            if subject not in self.armed:
                self.armed.add(subject)
                ctx.timers.push(t, self.id, subject, 0.0)
        self.deferred.clear()

    def state_to_json(self) -> Any:
        """Last times, armed, silent, offline and deferred subjects."""
        return {
            "last": dict(self.last),
            "where": dict(self.where),  # immutable tuples: shared, not copied
            "armed": list(self.armed),
            "silent": list(self.silent),
            "silent_at": dict(self.silent_at),
            "offline": dict(self.offline),
            "deferred": list(self.deferred),
        }

    def state_from_json(self, data: Any) -> None:
        """Restore."""
        data = data or {}
        self.last = {str(k): float(v) for k, v in data.get("last", {}).items()}
        self.where = {str(k): Where(str(v[0]), v[1], v[2]) for k, v in data.get("where", {}).items()}
        self.armed = set(data.get("armed", ()))
        self.silent = set(data.get("silent", ()))
        self.silent_at = {str(k): float(v) for k, v in data.get("silent_at", {}).items()}
        self.offline = {str(k): float(v) for k, v in data.get("offline", {}).items()}
        self.deferred = set(data.get("deferred", ()))


class DailyAbsenceEval(Compiled):
    """No matching event within a daily local window (no motion 06:00–10:00): checked when the window ends.

    A resident is watched when they have a device of the matching kinds not in maintenance. A window already under
    way when watching starts is skipped, so a hub started at 09:00 does not alarm for a morning it did not see.
    """

    def __init__(self, rule: AbsenceRule, schedules: dict[str, ScheduleSpec]) -> None:
        super().__init__(rule, schedules, 0.0)
        assert rule.window is not None
        window = rule.window
        self.schedule = compile_schedule(window.start, window.end, list(window.days) if window.days else None)
        self.defaults = Params(
            enabled=rule.enabled, threshold=None, clear_at=None, duration_s=0.0, schedule=self.schedule
        )
        self.match = Matcher(rule.match)
        self.listens = self.match.kinds
        self.last: dict[str, float] = {}
        self.armed: set[str] = set()
        self.absent: set[str] = set()

    def _site_if_watched(self, ctx: RuleContext, rid: str) -> str | None:
        kinds = self.match.device_kinds
        for dev in ctx.devices_by_resident.get(rid, ()):
            if not dev.maintenance and (kinds is None or dev.kind in kinds):
                return dev.site
        return None

    def on_event(self, ctx: RuleContext, event: Event, t: float, dev: DeviceInfo | None, rid: str | None) -> None:
        """Note activity; clear an open absence alarm."""
        if dev is None or rid is None or not self.match.test(event, dev):
            return
        last = self.last.get(rid)
        if last is None or t > last:
            self.last[rid] = t
        if rid in self.absent:
            self.absent.discard(rid)
            ctx.clear(self, rid, event.ts)

    def _arm_one(self, ctx: RuleContext, rid: str, site: str, after: float, skip_running: bool) -> None:
        params = self.params(rid)
        assert params.schedule is not None
        clock = ctx.clock(site)
        start, end = params.schedule.next_window(clock, after)
        if skip_running and start < after:
            start, end = params.schedule.next_window(clock, end)
        self.armed.add(rid)
        ctx.timers.push(end, self.id, rid, start)

    def arm(self, ctx: RuleContext, t: float) -> None:
        """Watch residents who are not yet watched."""
        for rid in ctx.devices_by_resident:
            if rid not in self.armed and (site := self._site_if_watched(ctx, rid)) is not None:
                self._arm_one(ctx, rid, site, t, skip_running=True)

    def on_timer(self, ctx: RuleContext, subject: str, anchor: float, due: float) -> None:
        """The window ended: raise when nothing was seen since it started; watch the next one."""
        self.armed.discard(subject)
        site = self._site_if_watched(ctx, subject)
        if site is None:
            return
        params = self.params(subject)
        if self.last.get(subject, float("-inf")) < anchor and ctx.may_raise(self, subject, None, params):
            self.absent.add(subject)
            ctx.raise_or_update(
                self,
                subject,
                t=due,
                at=utc(due),
                where=Where(site, subject, None),
                dev=None,
                ref=None,
                reason=self.reason(),
            )
        self._arm_one(ctx, subject, site, due, skip_running=False)

    def state_to_json(self) -> Any:
        """Last activity, watched and absent residents."""
        return {"last": dict(self.last), "armed": list(self.armed), "absent": list(self.absent)}

    def state_from_json(self, data: Any) -> None:
        """Restore."""
        data = data or {}
        self.last = {str(k): float(v) for k, v in data.get("last", {}).items()}
        self.armed = set(data.get("armed", ()))
        self.absent = set(data.get("absent", ()))
