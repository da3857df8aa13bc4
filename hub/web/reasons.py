"""Reason lines in the reader's language: the rule pack's English reason parsed back into its fields.

The rule engine formats a rule's `reason` ("out of bed for 23 min, not back") once, for every reader. The staff page
shows it in Swedish or English: the text is matched against the default pack's template, its fields (`minutes`,
`value`, `count`, …) taken out, and the catalogue's `reason.<rule_id>` filled with them. A reason that only restates
the rule ("fall detected" under the title "Fall") has no fields and is not shown. A text no template matches (a site's
own pack) is shown as it is. The page's script does the same with `page_texts()` for alarms that arrive live.
"""

from __future__ import annotations

import functools
import re
import string
from typing import Any

from alarms.instant import ABORT_REASON, RESET_REASON
from alarms.rules import RulesError, default_pack_path, load_rules
from hub.texts.catalogue import translator

# reasons the desk writes itself (hub/desk/machine.py `_nobody_reached`, hub/desk/lane.py `_late_care`), most specific first
DESK_REASONS = {
    "nobody_reached": ("nobody reached: {rule} room {room}", "nobody reached: {rule}"),
    "late_care_event": (
        "late: {rule} at {at}, arrived {arrived} room {room}",
        "late: {rule} at {at}, arrived {arrived}",
    ),
}


@functools.cache
def _pack_texts() -> dict[str, dict[str, str]]:
    """rule id -> {"reason", "clear", "cancel"}: the default pack's English texts."""
    try:
        pack = load_rules([default_pack_path()])
    except RulesError:
        return {}
    found: dict[str, dict[str, str]] = {}
    for rule in pack.rules:
        texts = {"reason": rule.reason, "clear": rule.clear_reason}
        cancel = getattr(rule, "cancel_reason", None)
        if isinstance(cancel, str):
            texts["cancel"] = cancel
            texts["reset"] = RESET_REASON
            texts["aborted"] = ABORT_REASON
        found[rule.id] = texts
    return found


def _fields(template: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]


@functools.cache
def _pattern(template: str) -> re.Pattern[str]:
    parts: list[str] = []
    for literal, name, _, _ in string.Formatter().parse(template):
        parts.append(re.escape(literal))
        if name is not None:
            parts.append(f"(?P<{name}>.+?)")
    return re.compile("^" + "".join(parts) + "$")


@functools.cache
def page_texts(lang: str) -> dict[str, Any]:
    """Reason forms and notes in `lang`: `reasons[rule] = [[english, translated or None], …]`, `notes[rule][english]`.

    `translated` None means the reason only restates the rule's title: not shown.
    """
    t = translator(lang)
    reasons: dict[str, list[list[str | None]]] = {}
    notes: dict[str, dict[str, str]] = {}
    for rule_id, texts in _pack_texts().items():
        english = texts["reason"]
        key = f"reason.{rule_id}"
        translated: str | None = None
        if _fields(english):
            translated = t(key) if t(key) != key else english
        reasons[rule_id] = [[english, translated]]
        for kind in ("clear", "cancel", "reset", "aborted"):
            nkey = f"ended.{kind}" if kind in ("reset", "aborted") else f"ended.{rule_id}.{kind}"
            if kind in texts and t(nkey) != nkey:
                notes.setdefault(rule_id, {})[texts[kind]] = t(nkey)
    for rule_id, forms in DESK_REASONS.items():
        keys = (f"reason.{rule_id}.room", f"reason.{rule_id}")
        reasons[rule_id] = [
            [english, t(key) if t(key) != key else english] for english, key in zip(forms, keys, strict=True)
        ]
    return {"reasons": reasons, "notes": notes}


def reason_text(lang: str, rule_id: str, reason: str) -> str | None:
    """The reason line in `lang`, or None when it would only repeat the title."""
    t = translator(lang)
    for english, translated in page_texts(lang)["reasons"].get(rule_id, []):
        found = _pattern(english).match(reason)
        if found is None:
            continue
        if translated is None:
            return None
        values: dict[str, Any] = found.groupdict()
        if "rule" in values:
            key = f"rule.{values['rule']}"
            values["rule"] = t(key) if t(key) != key else str(values["rule"]).replace("_", " ")
        try:
            return str(translated).format(**values)
        except (KeyError, IndexError, ValueError):
            return reason
    return reason or None


def note_text(lang: str, rule_id: str, note: str | None) -> str | None:
    """A "condition ended" note in `lang`: the rule's clear or cancel text translated, free text as it is."""
    if not note:
        return None
    translated: str = page_texts(lang)["notes"].get(rule_id, {}).get(note, note)
    return translated
