"""The staff page speaks Swedish and English alike, and names every rule of the default pack in both."""

from __future__ import annotations

import pytest

from alarms.rules import default_pack_path, load_rules
from hub.web.i18n import CATALOG, pick_lang, rule_label


def test_both_languages_have_every_text() -> None:
    assert set(CATALOG["sv"]) == set(CATALOG["en"])


@pytest.mark.parametrize("lang", ["sv", "en"])
def test_every_default_rule_has_a_label(lang: str) -> None:
    rule_ids = [rule.id for rule in load_rules([default_pack_path()]).rules]
    assert rule_ids
    missing = [r for r in rule_ids if f"rule.{r}" not in CATALOG[lang]]
    assert missing == []
    assert rule_label(lang, "some_new_rule") == "Some new rule"


@pytest.mark.parametrize(
    ("accept", "requested", "expected"),
    [
        (None, None, "sv"),
        ("en-GB,en;q=0.9", None, "en"),
        ("de-DE,en;q=0.5", None, "en"),
        ("en", "sv", "sv"),
        ("fr", None, "sv"),
    ],
)
def test_language_before_login(accept: str | None, requested: str | None, expected: str) -> None:
    assert pick_lang(accept, requested) == expected
