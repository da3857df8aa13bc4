"""Message ids the templates build at run time (`t('state.' ~ a.state)`), marked here so Babel extracts them.

Extraction (`make i18n-extract`) only sees literal strings; a text whose key is computed must be listed here with
`N_`, or `pybabel update` would mark its translations obsolete. Adding a rule to the default pack? Add `rule.<id>`.
"""

from __future__ import annotations


def N_(msgid: str) -> str:
    """Mark `msgid` for extraction without translating it (gettext_noop)."""
    return msgid


STATES = [
    N_("state.raised"),
    N_("state.accepted"),
    N_("state.en_route"),
    N_("state.on_site"),
    N_("state.resolved"),
    N_("state.cancelled"),
]
ACTIONS = [N_("action.accept"), N_("action.en_route"), N_("action.on_site"), N_("action.resolve")]
OUTCOMES = [N_("outcome.assisted"), N_("outcome.false_alarm"), N_("outcome.technical"), N_("outcome.no_action")]
SEVERITIES = [N_("severity.low"), N_("severity.medium"), N_("severity.high"), N_("severity.critical")]
# Not on a page at the moment, kept so their translations stay while the staff page's wording is reworked.
KEPT = [N_("alarm.count"), N_("device.ok")]
ERRORS = [N_("login.failed"), N_("login.limited"), N_("login.database_away"), N_("error.state"), N_("error.handover")]
RULES = [
    N_("rule.fall"),
    N_("rule.fall_detected"),
    N_("rule.alarm_button"),
    N_("rule.bed_exit_no_return"),
    N_("rule.entrance_door_night"),
    N_("rule.no_morning_activity"),
    N_("rule.long_bathroom_visit"),
    N_("rule.water_leak"),
    N_("rule.smoke"),
    N_("rule.low_room_temperature"),
    N_("rule.medication_missed"),
    N_("rule.device_silent"),
    N_("rule.battery_low"),
    N_("rule.camera_offline"),
    N_("rule.camera_person"),
    N_("rule.device_fault"),
    N_("rule.restless_night"),
    N_("rule.frequent_bathroom_visits"),
]
# the default pack's rule profiles (alarms/packs/night_care.yaml `profiles:`); a site's own are shown by name
PROFILES = [
    N_("profile.wanders_at_night"),
    N_("profile.sleeps_late"),
    N_("profile.feels_the_cold"),
    N_("profile.camera_watch"),
    N_("profile_about.wanders_at_night"),
    N_("profile_about.sleeps_late"),
    N_("profile_about.feels_the_cold"),
    N_("profile_about.camera_watch"),
]

# the relatives page (hub/web/templates/relatives/)
RELATIVES = [
    N_("relatives.night.calm"),
    N_("relatives.night.restless"),
    N_("relatives.night.alarms"),
    N_("relatives.night.open"),
    N_("relatives.category.care"),
    N_("relatives.category.technical"),
    N_("relatives.devices.ok"),
    N_("relatives.devices.needs_service"),
    N_("relatives.invite.used"),
    N_("relatives.invite.expired"),
    N_("relatives.invite.unknown"),
    N_("relatives.invite.differ"),
    N_("relatives.invite.short"),
    N_("relatives.login.failed"),
    N_("relatives.login.limited"),
]
FOLLOWUP_CHARTS = [N_("followup.chart_1"), N_("followup.chart_2"), N_("followup.chart_3")]

# consents on the staff page (hub/web/templates/staff/consents.html)
CONSENTS = [
    N_("consents.scope.night_summary"),
    N_("consents.scope.alarm_notice"),
    N_("consents.scope.device_health"),
    N_("consents.status.live"),
    N_("consents.status.revoked"),
    N_("consents.status.ended"),
    N_("consents.status.future"),
    N_("consents.given_by.resident"),
    N_("consents.given_by.representative"),
    N_("consents.granted"),
    N_("consents.revoked"),
    N_("consents.invited"),
]
CHECKINS = [
    N_("checkins.mode.camera"),
    N_("checkins.mode.physical"),
    N_("checkins.reason.camera_down"),
    N_("checkins.reason.second_look"),
    N_("checkins.reason.not_visible_twice"),
    N_("checkins.reason.camera_not_working"),
    N_("checkins.reason.needs_visit"),
    N_("checkins.reason.second_look_overdue"),
    N_("checkins.outcome.seen_calm"),
    N_("checkins.outcome.seen_needs_visit"),
    N_("checkins.outcome.not_visible"),
    N_("checkins.outcome.camera_not_working"),
    N_("checkins.outcome.visited"),
    N_("checkins.outcome.visited_needs_help"),
    N_("checkins.outcome.visited_instead"),
    N_("checkins.outcome.not_needed"),
    N_("checkins.outcome.other"),
    N_("checkins.refusal.not_yours"),
    N_("checkins.refusal.not_open_camera"),
    N_("checkins.refusal.outside_slot"),
    N_("checkins.refusal.no_consent"),
    N_("checkins.refusal.no_gateway"),
    N_("checkins.refusal.gateway_failed"),
    N_("checkins.refusal.away"),
    N_("rule.checkin_overdue"),
]
# the desk's own alarms: escalation reached nobody; a care event that arrived past its freshness window
DESK_RULES = [N_("rule.nobody_reached"), N_("rule.late_care_event")]
# reason lines with fields, filled by hub/web/reasons.py (rules whose reason only restates the title have none)
REASONS = [
    N_("reason.bed_exit_no_return"),
    N_("reason.long_bathroom_visit"),
    N_("reason.low_room_temperature"),
    N_("reason.battery_low"),
    N_("reason.restless_night"),
    N_("reason.frequent_bathroom_visits"),
    N_("reason.nobody_reached"),
    N_("reason.nobody_reached.room"),
    N_("reason.late_care_event"),
    N_("reason.late_care_event.room"),
]
# "condition ended" notes: a rule's clear_reason / cancel_reason
ENDED = [
    N_("ended.fall.cancel"),
    N_("ended.fall.clear"),
    N_("ended.alarm_button.cancel"),
    N_("ended.bed_exit_no_return.clear"),
    N_("ended.entrance_door_night.clear"),
    N_("ended.no_morning_activity.clear"),
    N_("ended.long_bathroom_visit.clear"),
    N_("ended.low_room_temperature.clear"),
    N_("ended.camera_person.cancel"),
    N_("ended.device_fault.clear"),
    N_("ended.device_silent.clear"),
    N_("ended.battery_low.clear"),
    N_("ended.camera_offline.clear"),
    N_("ended.reset"),
    N_("ended.aborted"),
    N_("ended.water_leak.clear"),
    N_("ended.smoke.clear"),
]
# the night log: who did what (hub/desk/night_log.py)
LOG_ACTIONS = [
    N_("log.action.raised"),
    N_("log.action.accepted"),
    N_("log.action.en_route"),
    N_("log.action.on_site"),
    N_("log.action.resolved"),
    N_("log.action.cancelled"),
    N_("log.action.condition_ended"),
    N_("log.action.reset"),
    N_("log.action.sender_gave_up"),
    N_("log.action.repeated"),
    N_("log.action.taken_over"),
    N_("log.action.nobody_reached"),
    N_("log.action.repeat_answered"),
]
LOG_WHO = [N_("log.who.resident"), N_("log.who.device"), N_("log.who.system")]
# roles on the admin page
ROLES = [N_("role.staff"), N_("role.nurse"), N_("role.admin"), N_("role.manager")]
# the kinds of device, by name (hub/web/i18n.device_kind_label); unknown kinds show their id made readable
DEVICE_KINDS = [
    N_("device_kind.bed_sensor"),
    N_("device_kind.motion_bedroom"),
    N_("device_kind.motion_bathroom"),
    N_("device_kind.motion_hall"),
    N_("device_kind.presence_bathroom"),
    N_("device_kind.door_entrance"),
    N_("device_kind.fall_radar"),
    N_("device_kind.alarm_button"),
    N_("device_kind.thermometer"),
    N_("device_kind.camera"),
    N_("device_kind.medication_robot"),
    N_("device_kind.water_sensor"),
    N_("device_kind.smoke_detector"),
]
# the admin page: what it did, and why it refused (hub/web/staff/admin.py DONE and REFUSED)
ADMIN_DONE = [
    N_("admin.done.staff_added"),
    N_("admin.done.staff_enabled"),
    N_("admin.done.staff_disabled"),
    N_("admin.done.staff_password"),
    N_("admin.done.staff_units"),
    N_("admin.done.resident_away"),
    N_("admin.done.resident_home"),
    N_("admin.done.device_maintenance"),
    N_("admin.done.device_in_service"),
    N_("admin.done.profile_set"),
    N_("admin.done.profile_cleared"),
]
ADMIN_REFUSED = [
    N_("admin.error.units_format"),
    N_("admin.error.not_your_units"),
    N_("admin.error.no_account"),
    N_("admin.error.may_not_change"),
    N_("admin.error.not_in_your_units"),
    N_("admin.error.no_profile"),
    N_("admin.error.password_short"),
    N_("admin.error.needs_unit"),
    N_("admin.error.username_taken"),
    N_("admin.error.refused"),
]
# refusals of a request, in the person's language (hub/web/staff/pages.refusal)
REFUSALS = [
    N_("error.login_required"),
    N_("error.csrf"),
    N_("error.admin_only"),
    N_("error.consents_nurses"),
    N_("error.no_resident"),
    N_("error.followup_managers"),
    N_("error.not_your_unit"),
    N_("error.checkin_plans_nurses"),
]
