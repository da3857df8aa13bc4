"""Property: over any sequence of grants, revocations, consents ending, logins, logouts and time passing, a relative
reads a scope exactly while logged in and inside a live consent for it (against the real database)."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.relatives import accounts as acc
from hub.relatives.consent import GivenBy, Scope, grant, relative_id_for, revoke
from hub.relatives.view import NightHours, NotPermittedError, UnknownResidentError, authorize, resident_status
from tests.conftest import PG_DSN
from tests.hub.relatives.conftest import Home

IDLE_S = 3600.0
scopes = st.sets(st.sampled_from(list(Scope)), min_size=1)
ops = st.one_of(
    st.tuples(st.just("grant"), scopes, st.none() | st.integers(1, 48)),
    st.tuples(st.just("revoke"), st.none() | scopes),
    st.tuples(
        st.just("advance"), st.sampled_from([0, 60, 1800, 3600, 7200]) | st.integers(0, 120).map(lambda m: m * 60)
    ),
    st.tuples(st.just("expire")),
    st.tuples(st.just("login")),
    st.tuples(st.just("logout")),
    st.tuples(st.just("read")),
)


@dataclass
class Model:
    """What the rules say should be visible."""

    now: datetime
    until: dict[Scope, datetime | None] = field(default_factory=dict)
    logged_in_seen: datetime | None = None

    def live(self) -> set[Scope]:
        return {s for s, u in self.until.items() if u is None or self.now < u}


async def _run(schema: str, resident: str, recorder: str, steps: list[tuple[object, ...]]) -> None:
    conn = await asyncpg.connect(PG_DSN, server_settings={"search_path": schema})
    try:
        email = f"{uuid.uuid4().hex[:8]}@example.se"
        model = Model(datetime(2030, 1, 1, tzinfo=UTC) + timedelta(days=uuid.uuid4().int % 10_000))
        await relative_id_for(conn, email, create=True)
        relative_id = await relative_id_for(conn, email)
        assert relative_id is not None
        token: str | None = None
        for step in steps:
            kind = step[0]
            if kind == "grant":
                chosen, hours = step[1], step[2]
                assert isinstance(chosen, set)
                until = model.now + timedelta(hours=hours) if isinstance(hours, int) else None
                await grant(
                    conn, resident_id=resident, relative_email=email, scopes=sorted(chosen), given_by=GivenBy.RESIDENT,
                    recorded_by=recorder, text_version="t1", at=model.now, valid_until=until,
                )  # fmt: skip
                for scope in chosen:
                    model.until[scope] = until
            elif kind == "revoke":
                chosen_or_all = step[1]
                await revoke(
                    conn, resident_id=resident, relative_email=email,
                    scopes=sorted(chosen_or_all) if isinstance(chosen_or_all, set) else None,
                    recorded_by=recorder, at=model.now,
                )  # fmt: skip
                for scope in list(model.until):
                    if not isinstance(chosen_or_all, set) or scope in chosen_or_all:
                        del model.until[scope]
            elif kind == "advance":
                assert isinstance(step[1], int)
                model.now += timedelta(seconds=step[1])
            elif kind == "expire":  # to the very moment the next live consent ends
                ends = [u for s, u in model.until.items() if u is not None and s in model.live()]
                if ends:
                    model.now = min(ends)
            elif kind == "login":
                token = await acc.create_session(conn, relative_id, model.now)
                model.logged_in_seen = model.now
            elif kind == "logout" and token is not None:
                await acc.end_session(conn, token)
                token, model.logged_in_seen = None, None
            # after every step, read: what the relative gets must be exactly what the model allows
            session = await acc.session(conn, token, model.now, IDLE_S)
            expect_session = (
                model.logged_in_seen is not None and (model.now - model.logged_in_seen).total_seconds() < IDLE_S
            )
            assert (session is not None) == expect_session, (step, model)
            if session is None:
                token, model.logged_in_seen = None, None
                continue
            model.logged_in_seen = model.now
            live = model.live()
            try:
                got = await authorize(conn, session.relative.id, resident, model.now)
            except (NotPermittedError, UnknownResidentError):  # before any consent: as an unknown id (issue 24)
                got = frozenset()
            assert set(got) == live, (step, model)
            if got:
                status = await resident_status(conn, resident, got, model.now, NightHours())
                # any live consent shows the recorded name and the unit's phone; whether an alarm is open goes with
                # the night summary or the alarm notices
                assert ("alarm_open" in status) == bool(live & {Scope.NIGHT_SUMMARY, Scope.ALARM_NOTICE})
                fields = set(status) - {"resident", "scopes", "name", "unit_phone", "alarm_open"}
                names = {"night_summary": Scope.NIGHT_SUMMARY, "alarm_notices": Scope.ALARM_NOTICE,
                         "device_health": Scope.DEVICE_HEALTH}  # fmt: skip
                assert {names[f] for f in fields} == live
    finally:
        await conn.close()


@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(ops, max_size=25))
def test_a_scope_is_readable_only_inside_a_live_consent_and_a_live_session(
    home: Home, steps: list[tuple[object, ...]]
) -> None:
    asyncio.run(_run(home.settings.db.db_schema, home.resident(1), f"nils-{home.site}", steps))
