"""The one authorisation rule, as a table: role × own unit / other unit / other site / wildcard."""

from __future__ import annotations

import pytest

from hub.people.staff import Role, StaffError, StaffMember

NURSE_A = StaffMember(1, "nils", Role.NURSE, frozenset({("north", "night")}))
ADMIN_SITE = StaffMember(2, "lisa", Role.ADMIN, frozenset({("north", "*")}))
STAFF_A = StaffMember(3, "anna", Role.STAFF, frozenset({("north", "night")}))
MANAGER_A = StaffMember(4, "mia", Role.MANAGER, frozenset({("north", "night")}))

OWN, OTHER, ELSEWHERE, WILD = ("north", "night"), ("north", "day"), ("south", "night"), ("north", "*")


@pytest.mark.parametrize(
    ("me", "unit", "holds"),
    [
        (NURSE_A, OWN, True),
        (NURSE_A, OTHER, False),
        (NURSE_A, ELSEWHERE, False),
        (NURSE_A, WILD, False),
        (ADMIN_SITE, OWN, True),
        (ADMIN_SITE, OTHER, True),
        (ADMIN_SITE, ELSEWHERE, False),
        (ADMIN_SITE, WILD, True),
        (STAFF_A, OWN, True),
        (STAFF_A, WILD, False),
    ],
)
def test_holds(me: StaffMember, unit: tuple[str, str], holds: bool) -> None:
    assert me.holds(*unit) is holds


@pytest.mark.parametrize(
    ("me", "wanted", "granted"),
    [
        (NURSE_A, {OWN}, {OWN}),
        (NURSE_A, {WILD}, {OWN}),  # expanded against her units, never the site's
        (NURSE_A, {OTHER}, None),
        (NURSE_A, {ELSEWHERE}, None),
        (NURSE_A, {("south", "*")}, None),
        (NURSE_A, {OWN, OTHER}, None),
        (ADMIN_SITE, {WILD}, {WILD}),
        (ADMIN_SITE, {OTHER}, {OTHER}),
        (ADMIN_SITE, {ELSEWHERE}, None),
    ],
)
def test_within_mine(me: StaffMember, wanted: set[tuple[str, str]], granted: set[tuple[str, str]] | None) -> None:
    if granted is None:
        with pytest.raises(StaffError, match="not one of your units"):
            me.within_mine(frozenset(wanted))
    else:
        assert me.within_mine(frozenset(wanted)) == granted


@pytest.mark.parametrize(
    ("me", "units", "role", "may"),
    [
        (NURSE_A, {OWN}, Role.STAFF, True),
        (NURSE_A, {OWN}, Role.NURSE, True),
        (NURSE_A, {OWN}, Role.ADMIN, False),
        (NURSE_A, {OWN}, Role.MANAGER, False),
        (NURSE_A, {OTHER}, Role.STAFF, False),
        (NURSE_A, {OWN, OTHER}, Role.STAFF, False),
        (NURSE_A, {WILD}, Role.STAFF, False),
        (NURSE_A, {ELSEWHERE}, Role.STAFF, False),
        (NURSE_A, set(), Role.STAFF, False),
        (ADMIN_SITE, {WILD}, Role.ADMIN, True),
        (ADMIN_SITE, {ELSEWHERE}, Role.STAFF, False),
        (STAFF_A, {OWN}, Role.STAFF, False),
        (MANAGER_A, {OWN}, Role.STAFF, False),
    ],
)
def test_may_manage(me: StaffMember, units: set[tuple[str, str]], role: Role, may: bool) -> None:
    assert me.may_manage(frozenset(units), role) is may
