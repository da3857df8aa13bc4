"""Nurses record, list and revoke a resident's consents from the command line, and every mistake says what to do."""

from __future__ import annotations

import getpass

from tests.hub.relatives.conftest import Home


def test_grant_list_revoke(home: Home) -> None:
    r1, nils = home.resident(1), f"nils-{home.site}"
    granted = home.vaka(
        "consent", "grant", r1, "--relative", "dotter@example.se", "--scope", "night_summary", "device_health",
        "--until", "2099-12-31", "--given-by", "resident", "--recorded-by", nils,
    )  # fmt: skip
    assert granted.returncode == 0, granted.stdout + granted.stderr
    assert "night_summary, device_health" in granted.stdout

    listed = home.vaka("consent", "list", r1).stdout.splitlines()
    assert len(listed) == 2
    for line in listed:
        assert "\tlive\tdotter@example.se\t" in line
        assert "given by resident" in line
        assert f"by {nils}" in line
        assert "text 2026-1" in line
        assert "until 2100-01-01T00:00+01:00" in line

    revoked = home.vaka(
        "consent", "revoke", r1, "--relative", "DOTTER@example.se", "--scope", "device_health", "--recorded-by", nils
    )
    assert revoked.returncode == 0, revoked.stdout
    assert "no longer sees device_health" in revoked.stdout
    states = sorted(
        line.split("\t")[1] + ":" + line.split("\t")[3] for line in home.vaka("consent", "list", r1).stdout.splitlines()
    )
    assert states == ["live:night_summary", "revoked:device_health"]

    again = home.vaka("consent", "revoke", r1, "--relative", "dotter@example.se", "--recorded-by", nils)
    assert "no longer sees night_summary" in again.stdout
    nothing = home.vaka("consent", "revoke", r1, "--relative", "dotter@example.se", "--recorded-by", nils)
    assert nothing.returncode == 1
    assert "nothing revoked" in nothing.stdout


def test_reads_at_the_command_line_are_in_the_access_log(home: Home) -> None:
    """Who a resident's relatives are, and who read the resident's data, are the resident's data: each command-line
    read is logged (as the operator's login name), the access log's own read showing the next time."""
    r1, operator = home.resident(1), f"cli:{getpass.getuser()}"
    assert home.vaka("consent", "list", r1).returncode == 0
    assert home.vaka("consent", "list", "nobody-r9").returncode == 0  # no such resident: nothing read, nothing logged
    first = [line.split("\t")[1:4] for line in home.vaka("access-log", r1).stdout.splitlines()]
    assert first == [[operator, "operator", "consent_list"]]
    again = [line.split("\t")[1:4] for line in home.vaka("access-log", r1).stdout.splitlines()]
    assert again == [[operator, "operator", "consent_list"], [operator, "operator", "access_log"]]


def test_mistakes_are_refused_with_a_reason(home: Home) -> None:
    nils = f"nils-{home.site}"
    base = ["consent", "grant", home.resident(1), "--relative", "son@example.se", "--given-by", "representative"]
    unknown_staff = home.vaka(*base, "--scope", "night_summary", "--recorded-by", "nobody")
    assert unknown_staff.returncode == 1
    assert "no active staff member 'nobody'" in unknown_staff.stdout
    bad_scope = home.vaka(*base, "--scope", "camera", "--recorded-by", nils)
    assert bad_scope.returncode == 2
    assert "invalid choice: 'camera'" in bad_scope.stderr
    unknown_resident = home.vaka(
        "consent", "grant", "nobody-r9", "--relative", "son@example.se", "--given-by", "resident",
        "--scope", "night_summary", "--recorded-by", nils,
    )  # fmt: skip
    assert unknown_resident.returncode == 1
    assert "no resident 'nobody-r9'" in unknown_resident.stdout
    past = home.vaka(*base, "--scope", "night_summary", "--recorded-by", nils, "--until", "2020-01-01")
    assert past.returncode == 1
    assert "end before it starts" in past.stdout
    assert home.vaka("consent", "list", home.resident(1)).stdout.startswith("no consents recorded")
