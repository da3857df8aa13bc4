"""An invitation never takes over an account: a link to an e-mail that already has a password asks its owner to sign in
and accept it, and never sets the password; nurses and admins invite and record consents only for residents of units
they hold, and only with the relative's live consent (the page and `vaka relative invite|consent grant` alike)."""

from __future__ import annotations

import re

from hub.relatives.consent import Scope
from tests.hub.relatives.conftest import DAUGHTER, PASSWORD, Home, Relative, RelativesSite, csrf_of

ATTACKER_PASSWORD = "the nurse's choice 1"


async def test_a_link_to_an_account_in_use_does_not_set_its_password(relatives_site: RelativesSite) -> None:
    """The reproduction: the daughter sees r3 (unit B); a link made for r1 (unit A) to her e-mail is opened by someone
    else who chooses a password. Nobody is logged in as her, r3 stays unread, her own password keeps working."""
    site = relatives_site
    r1, r3 = site.home.resident(1), site.home.resident(3)
    await site.grant(DAUGHTER, r3, Scope.NIGHT_SUMMARY)
    daughter, intruder = Relative(site), Relative(site)
    try:
        assert (await daughter.accept(await site.invite(DAUGHTER, r3))).status == 303
        await site.grant(DAUGHTER, r1, Scope.NIGHT_SUMMARY)
        link = await site.invite(DAUGHTER, r1)

        page = await intruder.http.get(link + "?lang=en")
        html = await page.text()
        assert page.status == 200
        assert "You already have an account" in html
        assert 'autocomplete="new-password"' not in html
        form = {"csrf": csrf_of(html), "password": ATTACKER_PASSWORD, "password2": ATTACKER_PASSWORD, "lang": "en"}
        taken = await intruder.http.post(link, data=form, allow_redirects=False)
        assert taken.status == 401
        assert (await intruder.http.get(f"/relative/api/v1/residents/{r3}/status", allow_redirects=False)).status in (
            303,
            401,
        )
        assert (await intruder.login(DAUGHTER, ATTACKER_PASSWORD)).status == 401
        assert (await daughter.login(DAUGHTER, PASSWORD)).status == 303

        # the owner signs in on the link to accept it: her password stays, the link is used
        page = await daughter.http.get(link + "?lang=en")
        form = {"csrf": csrf_of(await page.text()), "email": DAUGHTER, "password": PASSWORD, "lang": "en"}
        accepted = await daughter.http.post(link, data=form, allow_redirects=False)
        assert accepted.status == 303
        assert accepted.headers["Location"] == "/relative/"
        assert "already been used" in await (await intruder.http.get(link + "?lang=en")).text()
        status, _ = await daughter.get_json(f"/relative/api/v1/residents/{r1}/status")
        assert status == 200
    finally:
        await daughter.http.close()
        await intruder.http.close()


async def test_another_relative_cannot_accept_a_link_meant_for_an_account_in_use(relatives_site: RelativesSite) -> None:
    site = relatives_site
    r1 = site.home.resident(1)
    son, daughter = Relative(site), Relative(site)
    try:
        await site.grant(DAUGHTER, r1, Scope.NIGHT_SUMMARY)
        await site.grant("son@example.se", r1, Scope.NIGHT_SUMMARY)
        assert (await daughter.accept(await site.invite(DAUGHTER, r1))).status == 303
        assert (await son.accept(await site.invite("son@example.se", r1))).status == 303
        link = await site.invite(DAUGHTER, r1)
        page = await son.http.get(link + "?lang=en")
        form = {"csrf": csrf_of(await page.text()), "email": "son@example.se", "password": PASSWORD, "lang": "en"}
        assert (await son.http.post(link, data=form, allow_redirects=False)).status == 401
        assert "You already have an account" in await (await son.http.get(link + "?lang=en")).text()  # still unused
    finally:
        await son.http.close()
        await daughter.http.close()


def _link(output: str) -> str:
    match = re.search(r"(http\S+/relative/invite/\S+)", output)
    assert match, output
    return match.group(1)


async def test_vaka_relative_invite_never_takes_over_an_account(relatives_site: RelativesSite) -> None:
    site = relatives_site
    home = site.home
    r1, r3 = home.resident(1), home.resident(3)
    await site.grant(DAUGHTER, r3, Scope.NIGHT_SUMMARY)
    daughter, intruder = Relative(site), Relative(site)
    try:
        assert (await daughter.accept(await site.invite(DAUGHTER, r3))).status == 303
        refused = home.vaka("relative", "invite", DAUGHTER, "--resident", r1)
        assert refused.returncode == 1
        assert "no live consent" in refused.stdout
        await site.grant(DAUGHTER, r1, Scope.NIGHT_SUMMARY)
        made = home.vaka("relative", "invite", DAUGHTER, "--resident", r1)
        assert made.returncode == 0, made.stdout + made.stderr
        assert "already have an account" in made.stdout
        link = _link(made.stdout)
        assert (await intruder.accept(link, ATTACKER_PASSWORD)).status == 401
        assert (await daughter.login(DAUGHTER, PASSWORD)).status == 303
    finally:
        await daughter.http.close()
        await intruder.http.close()


def test_invite_and_consent_at_the_command_line_take_a_nurse_or_admin_of_the_residents_unit(home: Home) -> None:
    """The matrix at the command line: nurse of A (own unit / other unit), staff of A, admin of the whole site, a nurse
    of another site."""
    site = home.site
    r1, r3 = home.resident(1), home.resident(3)

    def grant(by: str, resident: str) -> int:
        return home.vaka(
            "consent", "grant", resident, "--relative", "son@example.se", "--scope", "night_summary",
            "--given-by", "resident", "--recorded-by", by,
        ).returncode  # fmt: skip

    assert grant(f"nils-{site}", r1) == 0
    assert grant(f"nils-{site}", r3) == 1
    assert grant(f"anna-{site}", r1) == 1
    assert grant(f"carl-{site}", r3) == 1
    assert grant(f"lisa-{site}", r3) == 0
    refused = home.vaka("relative", "invite", "son@example.se", "--resident", r3, "--by", f"nils-{site}")
    assert refused.returncode == 1
    assert "not a nurse or admin" in refused.stdout
    assert home.vaka("relative", "invite", "son@example.se", "--resident", r3, "--by", f"lisa-{site}").returncode == 0
    assert home.vaka("relative", "invite", "son@example.se", "--resident", r1, "--by", f"nils-{site}").returncode == 0
    listed = home.vaka("consent", "list", r3).stdout
    assert listed.count("\tlive\t") == 1
    assert f"by lisa-{site}" in listed
