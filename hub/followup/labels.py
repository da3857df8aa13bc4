"""Swedish and English words for every id the follow-up report shows: categories, alarm types (the same words as
the staff page's catalogue, `rule.*`), outcomes, severities, device classes and the other breakdowns.

A report is a document a manager reads, not a page: it carries its own two languages (the staff page's catalogue
stays the source of the alarm-type words; `tests/hub/followup/test_report.py` checks the two agree). An id with no
word here is shown made readable ('door_sensor' → 'Door sensor'), never raw.
"""

from __future__ import annotations

Words = dict[str, dict[str, str]]

CATEGORY: Words = {
    "care": {"sv": "Trygghetslarm", "en": "Care alarms"},
    "technical": {"sv": "Tekniska larm", "en": "Technical alarms"},
    "staff_process": {"sv": "Personalens process", "en": "Staff process"},
}
RULE: Words = {
    "fall": {"sv": "Fall", "en": "Fall"},
    "fall_detected": {"sv": "Fall", "en": "Fall"},
    "alarm_button": {"sv": "Larmknapp", "en": "Alarm button"},
    "bed_exit_no_return": {"sv": "Uppe ur sängen, inte tillbaka", "en": "Out of bed, not back"},
    "entrance_door_night": {"sv": "Ytterdörr öppnad i natt", "en": "Front door opened at night"},
    "no_morning_activity": {"sv": "Ingen aktivitet i morse", "en": "No activity this morning"},
    "long_bathroom_visit": {"sv": "Länge i badrummet", "en": "Long bathroom visit"},
    "water_leak": {"sv": "Vattenläcka", "en": "Water leak"},
    "smoke": {"sv": "Rök", "en": "Smoke"},
    "low_room_temperature": {"sv": "Kallt i rummet", "en": "Cold room"},
    "medication_missed": {"sv": "Läkemedel inte taget", "en": "Medication missed"},
    "device_silent": {"sv": "Enhet tyst", "en": "Device silent"},
    "battery_low": {"sv": "Lågt batteri", "en": "Battery low"},
    "camera_offline": {"sv": "Kamera ur drift", "en": "Camera offline"},
    "camera_person": {"sv": "Kameran såg en person", "en": "Camera saw a person"},
    "device_fault": {"sv": "Fel på enhet", "en": "Device fault"},
    "restless_night": {"sv": "Orolig natt", "en": "Restless night"},
    "frequent_bathroom_visits": {"sv": "Täta badrumsbesök", "en": "Frequent bathroom visits"},
    "checkin_overdue": {"sv": "Tillsyn inte gjord i tid", "en": "Check-in not done in time"},
    "nobody_reached": {"sv": "Larmet når ingen", "en": "Alarm reached nobody"},
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
    "rule": RULE,
    "outcome": OUTCOME,
    "severity": SEVERITY,
    "device_class": DEVICE_CLASS,
}


def word(dim: str, value: str, lang: str) -> str:
    """The word for one breakdown value in `lang` ('sv' or 'en'), e.g. ('rule', 'fall') → 'Fall'."""
    key = "sv" if lang == "sv" else "en"
    if dim == "tier":
        return f"{TIER[key]} {int(value) + 1}" if value.isdigit() else value
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
