"""Texts of the web pages from gettext catalogues: `hub/texts/locale/<lang>/LC_MESSAGES/messages.po`.

Message ids are stable keys (`login.title`, `rule.fall`), not English sentences: a wording change in any language,
English included, is an edit of a `.po` file only, and never orphans the other translations. The `.po` files are
compiled in memory the first time a language is used (no `.mo` files to build, ship or forget to rebuild); a
translator's edit shows after the hub restarts. `make i18n-extract` re-extracts the ids from the templates and code
(`babel.cfg`) and merges them into every `.po`. See docs/i18n.md.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from babel.dates import format_date
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

LOCALE_DIR = Path(__file__).resolve().parent / "locale"
DOMAIN = "messages"
LANGS = ("sv", "en")
"""The staff page's languages (Swedish first: the night patrol's language)."""
RELATIVE_LANGS = ("sv", "en", "fi", "ar")
"""The relatives page's languages."""
ALL_LANGS = RELATIVE_LANGS
RTL_LANGS = frozenset({"ar"})
_FALLBACKS: dict[str, tuple[str, ...]] = {"sv": (), "en": ("sv",), "fi": ("en", "sv"), "ar": ("en", "sv")}


def po_path(lang: str) -> Path:
    """The translator-editable catalogue of `lang`."""
    return LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


def _load(lang: str) -> Translations:
    """`lang`'s .po compiled to a gettext catalogue in memory (fuzzy and empty entries left out)."""
    with po_path(lang).open("rb") as f:
        catalog = read_po(f, locale=lang, domain=DOMAIN)
    for message in list(catalog):
        # babel's write_mo leaves out an empty translation but not an empty plural one (a tuple of empty strings),
        # which would then hide the fallback language's text behind the message id
        if message.id and isinstance(message.string, tuple) and not any(message.string):
            del catalog[message.id]
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    buffer.seek(0)
    return Translations(fp=buffer, domain=DOMAIN)


@functools.cache
def translations(lang: str) -> Translations:
    """The catalogue for `lang` with its fallbacks (English, then Swedish); unknown languages get Swedish."""
    if lang not in _FALLBACKS:
        lang = "sv"
    result = _load(lang)
    for fallback in _FALLBACKS[lang]:
        # add_fallback appends to the end of the chain, so every link is a fresh object of its own
        result.add_fallback(_load(fallback))
    return result


def translator(lang: str) -> Callable[[str], str]:
    """A function from message id to the text in `lang` (falls back to English/Swedish, then the id)."""
    gettext: Callable[[str], str] = translations(lang).gettext
    return gettext


def rule_label(lang: str, rule_id: str) -> str:
    """What happened, in words: the catalogue's label for a rule or its id made readable."""
    msgid = f"rule.{rule_id}"
    text: str = translations(lang).gettext(msgid)
    return rule_id.replace("_", " ").capitalize() if text == msgid else text


def device_kind_label(lang: str, kind: str) -> str:
    """A kind of device in words ("Larmknapp"), or its id made readable for a kind the catalogue does not know."""
    msgid = f"device_kind.{kind}"
    text: str = translations(lang).gettext(msgid)
    return kind.replace("_", " ").capitalize() if text == msgid else text


def rule_labels(lang: str) -> dict[str, str]:
    """Every rule the catalogue names, id → label in `lang` (for the page's script)."""
    ids = {m for m in _ids("sv") | _ids(lang) if m.startswith("rule.")}
    return {m.removeprefix("rule."): rule_label(lang, m.removeprefix("rule.")) for m in sorted(ids)}


def _ids(lang: str) -> set[str]:
    catalog: dict[str, str] = getattr(translations(lang), "_catalog", {})
    return {k for k in catalog if isinstance(k, str) and k}


def local_clock(at: datetime, zone: ZoneInfo, now: datetime, lang: str) -> str:
    """A moment as the site's wall clock shows it: "02:14" on the day of `now` (the hub's clock), else with the date,
    "26 nov. 02:14" (the month in `lang`)."""
    local = at.astimezone(zone)
    hm = local.strftime("%H:%M")
    if local.date() == now.astimezone(zone).date():
        return hm
    return f"{format_date(local.date(), 'd MMM', locale=lang)} {hm}"


def text_direction(lang: str) -> str:
    """`rtl` for right-to-left languages (Arabic), else `ltr`."""
    return "rtl" if lang in RTL_LANGS else "ltr"


def pick_lang(accept_language: str | None, requested: str | None = None, langs: tuple[str, ...] = LANGS) -> str:
    """The language for a page before login: `?lang=`, then Accept-Language, then Swedish."""
    if requested in langs:
        return requested
    for part in (accept_language or "").split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in langs:
            return code
    return "sv"
