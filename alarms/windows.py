"""Baseline anomaly: a resident's matching events per local hour compared with their own last days, using numpy.

Counts live in one array per rule, shape (residents, history_days + 1, 24): a ring of local days per resident. At
each local hour boundary of a site the hour that just ended is compared, for all the site's residents at once, with
the same hour of their previous days: z = (today − mean) / max(std, min_std). Days before the resident's first
event are left out; at least `min_days` are needed. On the autumn DST night the repeated hour counts twice as long,
and in spring the skipped hour is empty; `min_std` keeps that from looking like an anomaly.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

from alarms.base import Compiled, Matcher, RuleContext, Where, utc
from alarms.directory import DeviceInfo
from alarms.schedule import DAY_S
from alarms.spec import BaselineRule, ScheduleSpec
from hub.model import Event

_HOURS = 24


class BaselineEval(Compiled):
    """Rolling per-resident hour-of-day counts and a vectorised z-score at every hour boundary."""

    def __init__(self, rule: BaselineRule, schedules: dict[str, ScheduleSpec]) -> None:
        super().__init__(rule, schedules, 0.0)
        self.match = Matcher(rule.match)
        self.listens = self.match.kinds
        self.history_days = rule.history_days
        self.ring = rule.history_days + 1
        self.min_days = rule.min_days
        self.z = rule.z
        self.min_std = rule.min_std
        self.rows: dict[str, int] = {}
        self.site_rows: dict[str, list[int]] = {}
        self.row_ids: list[str] = []
        self.counts = np.zeros((0, self.ring, _HOURS), dtype=np.int32)
        self.last_day = np.zeros(0, dtype=np.int64)
        self.first_day = np.zeros(0, dtype=np.int64)
        self.armed_sites: set[str] = set()

    def _row(self, rid: str, site: str, day: int) -> int:
        row = self.rows.get(rid)
        if row is not None:
            return row
        row = len(self.row_ids)
        if row >= len(self.counts):
            grow = max(16, len(self.counts))
            self.counts = np.concatenate([self.counts, np.zeros((grow, self.ring, _HOURS), dtype=np.int32)])
            self.last_day = np.concatenate([self.last_day, np.zeros(grow, dtype=np.int64)])
            self.first_day = np.concatenate([self.first_day, np.zeros(grow, dtype=np.int64)])
        self.rows[rid] = row
        self.row_ids.append(rid)
        self.site_rows.setdefault(site, []).append(row)
        self.last_day[row] = day
        self.first_day[row] = day
        return row

    def _advance(self, row: int, day: int) -> None:
        last = int(self.last_day[row])
        if day <= last:
            return
        for d in range(max(last + 1, day - self.ring + 1), day + 1):
            self.counts[row, d % self.ring, :] = 0
        self.last_day[row] = day

    def on_event(self, ctx: RuleContext, event: Event, t: float, dev: DeviceInfo | None, rid: str | None) -> None:
        """Count the event in its resident's local hour."""
        if dev is None or rid is None or not self.match.test(event, dev):
            return
        local = ctx.clock(event.site).local_s(t)
        day = int(local // DAY_S)
        row = self._row(rid, event.site, day)
        self._advance(row, day)
        if day > int(self.last_day[row]) - self.ring:
            self.counts[row, day % self.ring, int(local % DAY_S) // 3600] += 1
        if event.site not in self.armed_sites:
            self.armed_sites.add(event.site)
            ctx.timers.push(self._next_hour(ctx, event.site, t), self.id, event.site, 0.0)

    @staticmethod
    def _next_hour(ctx: RuleContext, site: str, t: float) -> float:
        local = ctx.clock(site).local_s(t)
        return t + (3600 - local % 3600)

    def on_timer(self, ctx: RuleContext, subject: str, anchor: float, due: float) -> None:
        """Compare the hour that just ended with the residents' own history; raise for z >= threshold."""
        site = subject
        ctx.timers.push(self._next_hour(ctx, site, due + 1), self.id, site, 0.0)
        clock = ctx.clock(site)
        bucket_local = clock.local_s(due - 1)
        if self.schedule is not None and not self.schedule.active_local(bucket_local - bucket_local % 3600):
            return
        rows = self.site_rows.get(site)
        if not rows:
            return
        day = int(bucket_local // DAY_S)
        hour = int(bucket_local % DAY_S) // 3600
        for row in rows:
            self._advance(row, day)
        index = np.asarray(rows)
        slots = [(day - back) % self.ring for back in range(1, self.history_days + 1)]
        history = self.counts[index][:, slots, hour].astype(np.float64)
        today = self.counts[index, day % self.ring, hour].astype(np.float64)
        days = np.minimum(day - self.first_day[index], self.history_days)
        mask = np.arange(1, self.history_days + 1)[None, :] <= days[:, None]
        used = np.maximum(days, 1)
        mean = (history * mask).sum(axis=1) / used
        std = np.sqrt((((history - mean[:, None]) * mask) ** 2).sum(axis=1) / used)
        z = (today - mean) / np.maximum(std, self.min_std)
        for position in np.nonzero((z >= self.z) & (days >= self.min_days))[0]:
            rid = self.row_ids[rows[int(position)]]
            params = self.params(rid)
            if ctx.may_raise(self, rid, None, params):
                ctx.raise_or_update(
                    self,
                    rid,
                    t=due,
                    at=utc(due),
                    where=Where(site, rid, None),
                    dev=None,
                    ref=None,
                    reason=self.reason(count=int(today[position])),
                )

    def state_to_json(self) -> Any:
        """Counts per resident (only residents seen), and which sites have an hourly timer."""
        used = len(self.row_ids)
        return {
            "residents": list(self.row_ids),
            "sites": {site: [self.row_ids[r] for r in rows] for site, rows in self.site_rows.items()},
            # sparse (most hours of most days count nothing): flat indexes and values as raw int32, base64 in JSON;
            # far cheaper for the event loop than nested lists of every hour
            "counts_sparse": _sparse(self.counts[:used]),
            "last_day": self.last_day[:used].tolist(),
            "first_day": self.first_day[:used].tolist(),
            "armed_sites": sorted(self.armed_sites),
        }

    def state_from_json(self, data: Any) -> None:
        """Restore counts; a changed history length starts afresh."""
        counts = _counts_from_json(data, self.ring)
        if counts is None:
            self.armed_sites = set(data.get("armed_sites", ())) if data else set()
            return
        self.row_ids = [str(r) for r in data["residents"]]
        self.rows = {rid: i for i, rid in enumerate(self.row_ids)}
        self.site_rows = {site: [self.rows[r] for r in rids] for site, rids in data["sites"].items()}
        self.counts = counts
        self.last_day = np.asarray(data["last_day"], dtype=np.int64)
        self.first_day = np.asarray(data["first_day"], dtype=np.int64)
        self.armed_sites = set(data.get("armed_sites", ()))


def _sparse(counts: np.ndarray[Any, np.dtype[np.int32]]) -> dict[str, Any]:
    index = np.flatnonzero(counts).astype(np.int32)
    values = counts.ravel()[index].astype(np.int32)
    return {"ring": int(counts.shape[1]), "index": index.tobytes(), "value": values.tobytes()}


def _raw(value: Any) -> bytes:
    return base64.b64decode(value) if isinstance(value, str) else bytes(value)


def _counts_from_json(data: Any, ring: int) -> np.ndarray[Any, np.dtype[np.int32]] | None:
    """The counts array of a snapshot (sparse raw int32, base64; or the nested lists of older snapshots); None when
    absent or of another history length."""
    if not data:
        return None
    residents = len(data.get("residents", ()))
    sparse = data.get("counts_sparse")
    if sparse is not None:
        if residents == 0 or sparse.get("ring") != ring or len(data.get("last_day", ())) != residents:
            return None
        index = np.frombuffer(_raw(sparse["index"]), dtype=np.int32)
        values = np.frombuffer(_raw(sparse["value"]), dtype=np.int32)
        size = residents * ring * _HOURS
        if len(index) != len(values) or (len(index) and int(index.max()) >= size):
            return None
        counts = np.zeros(size, dtype=np.int32)
        counts[index] = values
        return counts.reshape(residents, ring, _HOURS)
    nested = data.get("counts")
    if not nested or len(nested[0]) != ring:
        return None
    return np.asarray(nested, dtype=np.int32).reshape(residents, ring, _HOURS)
