"""Swedish and English words for every id the follow-up report shows: categories, alarm types, outcomes, severities,
device classes and the other breakdowns.

Alarm types are read from the catalogue the staff page reads (`hub.texts.catalogue.rule_label`, `rule.*`), so the
report and the page cannot drift apart (they did once, when the report kept a copy). The other words are the
report's own: a report is a document a manager reads, not a page. An id with no word is shown made readable
('door_sensor' → 'Door sensor'), never raw.
"""

from __future__ import annotations

from hub.texts.catalogue import rule_label

Words = dict[str, dict[str, str]]

CATEGORY: Words = {
    "care": {"sv": "Trygghetslarm", "en": "Care alarms"},
    "technical": {"sv": "Tekniska larm", "en": "Technical alarms"},
    "staff_process": {"sv": "Personalens process", "en": "Staff process"},
}
OUTCOME: Words = {
    "assisted": {"sv": "Hjälp gavs", "en": "Assisted"},
    "false_alarm": {"sv": "Falsklarm", "en": "False alarm"},
    "technical": {"sv": "Tekniskt fel", "en": "Technical fault"},
    "no_action": {"sv": "Ingen åtgärd", "en": "No action"},
    "cancelled": {"sv": "Återkallat av enheten", "en": "Withdrawn by the device"},
    "open": {"sv": "Ej avslutat", "en": "Not closed"},
}
SEVERITY: Words = {
    "1": {"sv": "Låg", "en": "Low"},
    "2": {"sv": "Medel", "en": "Medium"},
    "3": {"sv": "Hög", "en": "High"},
    "4": {"sv": "Kritisk", "en": "Critical"},
}
DEVICE_CLASS: Words = {
    "bed_sensor": {"sv": "Sängsensor", "en": "Bed sensor"},
    "motion_bedroom": {"sv": "Rörelsesensor sovrum", "en": "Motion sensor, bedroom"},
    "motion_bathroom": {"sv": "Rörelsesensor badrum", "en": "Motion sensor, bathroom"},
    "motion_hall": {"sv": "Rörelsesensor hall", "en": "Motion sensor, hall"},
    "presence_bathroom": {"sv": "Närvarosensor badrum", "en": "Presence sensor, bathroom"},
    "door_entrance": {"sv": "Dörrsensor ytterdörr", "en": "Front door sensor"},
    "door_sensor": {"sv": "Dörrsensor", "en": "Door sensor"},
    "fall_radar": {"sv": "Fallradar", "en": "Fall radar"},
    "alarm_button": {"sv": "Larmknapp", "en": "Alarm button"},
    "thermometer": {"sv": "Termometer", "en": "Thermometer"},
    "camera": {"sv": "Kamera", "en": "Camera"},
    "medication_robot": {"sv": "Läkemedelsrobot", "en": "Medication robot"},
    "water_sensor": {"sv": "Vattenlarm", "en": "Water sensor"},
    "smoke_detector": {"sv": "Brandvarnare", "en": "Smoke detector"},
    "smart_plug": {"sv": "Smart uttag", "en": "Smart plug"},
}
OTHER: Words = {
    # stat
    "p50": {"sv": "median", "en": "median"},
    "p90": {"sv": "90:e percentil", "en": "90th percentile"},
    "max": {"sv": "längst", "en": "longest"},
    # status of a care alarm's answer; doses
    "answered": {"sv": "besvarade", "en": "answered"},
    "unanswered": {"sv": "obesvarade", "en": "unanswered"},
    "withdrawn": {"sv": "återkallade", "en": "withdrawn"},
    "due": {"sv": "att ta", "en": "due"},
    "taken": {"sv": "tagna", "en": "taken"},
    "missed": {"sv": "missade", "en": "missed"},
    "late": {"sv": "sena", "en": "late"},
    # check-in mode
    "physical": {"sv": "besök", "en": "visit"},
}
TIER = {"sv": "nivå", "en": "tier"}
_BY_DIM: dict[str, Words] = {
    "category": CATEGORY,
    "outcome": OUTCOME,
    "severity": SEVERITY,
    "device_class": DEVICE_CLASS,
}


def word(dim: str, value: str, lang: str) -> str:
    """The word for one breakdown value in `lang` ('sv' or 'en'), e.g. ('rule', 'fall') → 'Fall'."""
    key = "sv" if lang == "sv" else "en"
    if dim == "tier":
        return f"{TIER[key]} {int(value) + 1}" if value.isdigit() else value
    if dim == "rule":
        return rule_label(key, value)
    if dim == "mode" and value == "camera":
        return DEVICE_CLASS["camera"][key].lower()
    table = _BY_DIM.get(dim, OTHER)
    if value in table:
        return table[value][key]
    if value in OTHER:
        return OTHER[value][key]
    return value.replace("_", " ").capitalize()


def breakdown(dims: dict[str, str], lang: str) -> str:
    """A breakdown in words: 'Trygghetslarm · Fall · Kritisk'."""
    return " · ".join(word(d, v, lang) for d, v in dims.items())
