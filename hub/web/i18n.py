"""Swedish and English texts of the staff pages (Swedish first: the night patrol's language)."""

from __future__ import annotations

from collections.abc import Callable

LANGS = ("sv", "en")

CATALOG: dict[str, dict[str, str]] = {
    "sv": {
        "app": "Vaka",
        "login.title": "Logga in",
        "login.username": "Användarnamn",
        "login.password": "Lösenord",
        "login.submit": "Logga in",
        "login.failed": "Fel användarnamn eller lösenord.",
        "login.limited": "För många försök. Vänta en stund och försök igen.",
        "logout": "Logga ut",
        "nav.alarms": "Larm",
        "nav.residents": "Boende",
        "nav.main": "Huvudmeny",
        "alarms.title": "Öppna larm",
        "alarms.none": "Inga öppna larm i dina enheter.",
        "alarm.resident": "Boende",
        "alarm.room": "Rum",
        "alarm.device": "Enhet",
        "alarm.unregistered": "Från okänd enhet (inte registrerad)",
        "alarm.nobody": "Ingen har tagit larmet",
        "alarm.taken_by": "Tas av",
        "alarm.ago": "sedan",
        "alarm.count": "gånger",
        "state.raised": "Nytt",
        "state.accepted": "Taget",
        "state.en_route": "På väg",
        "state.on_site": "På plats",
        "state.resolved": "Avslutat",
        "state.cancelled": "Återkallat",
        "action.accept": "Ta larmet",
        "action.en_route": "På väg",
        "action.on_site": "På plats",
        "action.resolve": "Avsluta",
        "resolve.outcome": "Utfall",
        "resolve.note": "Anteckning (frivillig)",
        "outcome.assisted": "Hjälp given",
        "outcome.false_alarm": "Falsklarm",
        "outcome.technical": "Tekniskt fel",
        "outcome.no_action": "Ingen åtgärd",
        "severity.low": "låg",
        "severity.medium": "medel",
        "severity.high": "hög",
        "severity.critical": "kritisk",
        "category.technical": "Tekniskt larm",
        "conn.lost": "Anslutningen är bruten – nya larm visas inte. Försöker igen …",
        "sound.enable": "Slå på larmljud",
        "push.enable": "Larm även när telefonen är låst",
        "residents.title": "Boende",
        "residents.resident": "Boende",
        "residents.room": "Rum",
        "residents.unit": "Enhet",
        "residents.devices": "Enheter",
        "residents.none": "Inga boende i dina enheter.",
        "device.ok": "fungerar",
        "device.fault": "fel",
        "device.all_ok": "enheter fungerar",
        "ring.title": "LARM",
        "error.state": "Larmet har redan ändrats av någon annan.",
        "rule.fall": "Fall",
        "rule.fall_detected": "Fall",
        "rule.alarm_button": "Larmknapp",
        "rule.bed_exit_no_return": "Uppe ur sängen, inte tillbaka",
        "rule.entrance_door_night": "Ytterdörr öppnad i natt",
        "rule.no_morning_activity": "Ingen aktivitet i morse",
        "rule.long_bathroom_visit": "Länge i badrummet",
        "rule.water_leak": "Vattenläcka",
        "rule.smoke": "Rök",
        "rule.low_room_temperature": "Kallt i rummet",
        "rule.medication_missed": "Medicin inte tagen",
        "rule.device_silent": "Enhet tyst",
        "rule.battery_low": "Lågt batteri",
        "rule.camera_offline": "Kamera ur drift",
        "rule.restless_night": "Orolig natt",
        "rule.frequent_bathroom_visits": "Täta badrumsbesök",
        "min": "min",
        "h": "tim",
        "s": "s",
    },
    "en": {
        "app": "Vaka",
        "login.title": "Sign in",
        "login.username": "User name",
        "login.password": "Password",
        "login.submit": "Sign in",
        "login.failed": "Wrong user name or password.",
        "login.limited": "Too many attempts. Wait a while and try again.",
        "logout": "Sign out",
        "nav.alarms": "Alarms",
        "nav.residents": "Residents",
        "nav.main": "Main menu",
        "alarms.title": "Open alarms",
        "alarms.none": "No open alarms in your units.",
        "alarm.resident": "Resident",
        "alarm.room": "Room",
        "alarm.device": "Device",
        "alarm.unregistered": "From an unknown device (not registered)",
        "alarm.nobody": "Nobody has taken it",
        "alarm.taken_by": "Taken by",
        "alarm.ago": "ago",
        "alarm.count": "times",
        "state.raised": "New",
        "state.accepted": "Accepted",
        "state.en_route": "On the way",
        "state.on_site": "On site",
        "state.resolved": "Resolved",
        "state.cancelled": "Cancelled",
        "action.accept": "Accept",
        "action.en_route": "On my way",
        "action.on_site": "On site",
        "action.resolve": "Resolve",
        "resolve.outcome": "Outcome",
        "resolve.note": "Note (optional)",
        "outcome.assisted": "Assisted",
        "outcome.false_alarm": "False alarm",
        "outcome.technical": "Technical fault",
        "outcome.no_action": "No action",
        "severity.low": "low",
        "severity.medium": "medium",
        "severity.high": "high",
        "severity.critical": "critical",
        "category.technical": "Technical alarm",
        "conn.lost": "Connection lost – new alarms will not show. Retrying …",
        "sound.enable": "Turn on alarm sound",
        "push.enable": "Alarms also when the phone is locked",
        "residents.title": "Residents",
        "residents.resident": "Resident",
        "residents.room": "Room",
        "residents.unit": "Unit",
        "residents.devices": "Devices",
        "residents.none": "No residents in your units.",
        "device.ok": "working",
        "device.fault": "fault",
        "device.all_ok": "devices working",
        "ring.title": "ALARM",
        "error.state": "Someone else has already changed this alarm.",
        "rule.fall": "Fall",
        "rule.fall_detected": "Fall",
        "rule.alarm_button": "Alarm button",
        "rule.bed_exit_no_return": "Out of bed, not back",
        "rule.entrance_door_night": "Front door opened at night",
        "rule.no_morning_activity": "No activity this morning",
        "rule.long_bathroom_visit": "Long bathroom visit",
        "rule.water_leak": "Water leak",
        "rule.smoke": "Smoke",
        "rule.low_room_temperature": "Cold room",
        "rule.medication_missed": "Medication missed",
        "rule.device_silent": "Device silent",
        "rule.battery_low": "Battery low",
        "rule.camera_offline": "Camera offline",
        "rule.restless_night": "Restless night",
        "rule.frequent_bathroom_visits": "Frequent bathroom visits",
        "min": "min",
        "h": "h",
        "s": "s",
    },
}


def translator(lang: str) -> Callable[[str], str]:
    """A function from text key to the text in `lang` (falls back to Swedish, then the key)."""
    table = CATALOG.get(lang, CATALOG["sv"])
    fallback = CATALOG["sv"]

    def t(key: str) -> str:
        return table.get(key) or fallback.get(key) or key

    return t


def rule_label(lang: str, rule_id: str) -> str:
    """What happened, in words: the catalog's label for a rule or its id made readable."""
    return CATALOG.get(lang, CATALOG["sv"]).get(f"rule.{rule_id}") or rule_id.replace("_", " ").capitalize()


def pick_lang(accept_language: str | None, requested: str | None = None) -> str:
    """The language for a page before login: `?lang=`, then Accept-Language, then Swedish."""
    if requested in LANGS:
        return requested
    for part in (accept_language or "").split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in LANGS:
            return code
    return "sv"
