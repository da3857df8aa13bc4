"""The web pages' gettext catalogues are complete: every text the templates and code use is translated.

The ids are extracted here with Babel from the same babel.cfg `make i18n-extract` uses, so a template that gains a
`t('…')` without its translations fails this test, not a night nurse's screen.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from alarms.rules import default_pack_path, load_rules
from hub.texts.catalogue import (
    LANGS,
    RELATIVE_LANGS,
    po_path,
    rule_label,
    rule_labels,
    text_direction,
    translations,
    translator,
)
from hub.web.reasons import note_text

ROOT = Path(__file__).resolve().parents[3]
RELATIVES_SOURCES = ("hub/web/templates/relatives/", "hub/web/relatives/")


def _extracted() -> dict[str, set[str]]:
    """msgid → the files it is used in."""
    with (ROOT / "babel.cfg").open() as f:
        method_map, options_map = parse_mapping_cfg(f)
    found: dict[str, set[str]] = defaultdict(set)
    keywords = {**DEFAULT_KEYWORDS, "t": None}
    for filename, _lineno, message, _comments, _context in extract_from_dir(
        str(ROOT), method_map, options_map, keywords=keywords
    ):
        msgid = message[0] if isinstance(message, tuple) else message
        if msgid:
            found[msgid].add(filename)
    return found


EXTRACTED = _extracted()


def _translated(lang: str) -> dict[str, object]:
    """Message id → translation, for every entry translated in full (each plural form of a plural one)."""
    with po_path(lang).open("rb") as f:
        catalog = read_po(f, locale=lang)
    done: dict[str, object] = {}
    for m in catalog:
        if not m.id or m.fuzzy:
            continue
        if isinstance(m.id, tuple) and isinstance(m.string, tuple) and all(m.string):
            done[m.id[0]] = m.string
        elif isinstance(m.id, str) and m.string:
            done[m.id] = m.string
    return done


def test_extraction_finds_the_staff_page_texts() -> None:
    assert {"login.title", "alarms.title", "state.raised", "rule.fall"} <= set(EXTRACTED)


@pytest.mark.parametrize("lang", LANGS)
def test_every_text_is_translated_for_staff_languages(lang: str) -> None:
    translated = _translated(lang)
    assert sorted(set(EXTRACTED) - set(translated)) == []


@pytest.mark.parametrize("lang", RELATIVE_LANGS)
def test_every_relatives_page_text_is_translated(lang: str) -> None:
    relatives_ids = {
        m
        for m, files in EXTRACTED.items()
        if m.startswith("relatives.") or any(f.startswith(RELATIVES_SOURCES) for f in files)
    }
    assert len(relatives_ids) > 40
    assert sorted(relatives_ids - set(_translated(lang))) == []


@pytest.mark.parametrize("lang", RELATIVE_LANGS)
def test_no_translation_is_left_for_a_text_nobody_uses(lang: str) -> None:
    """A stale entry means the ids were not re-extracted (`make i18n-extract` marks it obsolete)."""
    assert sorted(set(_translated(lang)) - set(EXTRACTED)) == []


@pytest.mark.parametrize("lang", LANGS)
def test_every_default_rule_has_a_label(lang: str) -> None:
    rule_ids = [rule.id for rule in load_rules([default_pack_path()]).rules]
    assert rule_ids
    assert [r for r in rule_ids if r not in rule_labels(lang)] == []
    assert rule_label(lang, "some_new_rule") == "Some new rule"


def test_the_catalogues_differ_and_fall_back_to_a_text_not_the_id() -> None:
    assert translator("sv")("login.title") == "Logga in"
    assert translator("en")("login.title") == "Sign in"
    assert translator("xx")("login.title") == "Logga in"
    assert text_direction("ar") == "rtl"
    assert text_direction("fi") == "ltr"


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
    from hub.texts.catalogue import pick_lang

    assert pick_lang(accept, requested) == expected


@pytest.mark.parametrize(
    "path", [po_path(lang) for lang in RELATIVE_LANGS] + [po_path("sv").parents[2] / "messages.pot"]
)
def test_every_catalogue_is_well_formed(path: Path) -> None:
    """A line Babel does not understand (a merge's conflict markers) is read past with a warning, silently dropping
    or mangling the entries around it; a catalogue must parse without one."""
    with path.open("rb") as f:
        read_po(f, abort_invalid=True)


@pytest.mark.parametrize(
    ("lang", "one", "five"),
    [
        ("sv", "1 enhet fungerar", "5 enheter fungerar"),
        ("en", "1 device working", "5 devices working"),
        ("fi", "1 laite toimii", "5 laitetta toimii"),
        ("ar", "1 device working", "5 devices working"),  # untranslated: English, not the message id
    ],
)
def test_counts_take_the_languages_plural(lang: str, one: str, five: str) -> None:
    ngettext = translations(lang).ngettext
    assert [ngettext("device.ok_count", "device.ok_count.plural", n) % {"num": n} for n in (1, 5)] == [one, five]


@pytest.mark.parametrize(
    ("rule_id", "note", "swedish"),
    [
        ("alarm_button", "reset at the alarm unit", "återställt vid larmenheten"),
        ("fall", "reset at the alarm unit", "återställt vid larmenheten"),
        (
            "alarm_button",
            "the alarm unit stopped waiting for Vaka and may have alerted another receiver",
            "larmenheten slutade vänta på Vaka och kan ha larmat en annan mottagare",
        ),
        ("water_leak", "the leak sensor is dry again", "läckagesensorn är torr igen"),
        ("smoke", "the smoke detector no longer senses smoke", "brandvarnaren känner inte längre rök"),
    ],
)
def test_how_an_alarm_ended_reads_in_swedish_on_the_card(rule_id: str, note: str, swedish: str) -> None:
    assert note_text("sv", rule_id, note) == swedish
