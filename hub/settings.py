"""Settings: one object built at start and passed down. Nothing else reads the environment.

Sources, highest first: keyword arguments, environment (`VAKA_` prefix, `__` for nesting, e.g. `VAKA_DB__DSN`),
a TOML file (`VAKA_CONFIG` or `vaka --config FILE`), then the defaults below.
"""

from __future__ import annotations

import ipaddress
import os
from datetime import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, IPvAnyNetwork, SecretStr, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from hub.model import TOPIC_ROOT, EventKind, VakaError


class SettingsError(VakaError):
    """A setting is wrong; the message is one line that says which and why."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AdapterRoute(_Section):
    """Messages on topics matching `topic_filter` go to adapter `adapter` (see hub/intake/adapter_registry.py)."""

    topic_filter: str = Field(description="MQTT topic filter, e.g. zigbee2mqtt/#")
    adapter: str = Field(description="adapter name (entry point group vaka.adapters), e.g. zigbee2mqtt")
    site: str = Field(default="default", description="site that devices on this route belong to")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _split_address(address: str) -> tuple[str, int]:
    """`host:port` (`[v6 address]:port` for IPv6) as (host, port); ValueError with the reason otherwise."""
    host, sep, port_text = address.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        msg = f"mqtt.hosts entry {address!r} is not host:port"
        raise ValueError(msg)
    return host, int(port_text)


class MqttSettings(_Section):
    host: str = Field(default="127.0.0.1", description="broker host (with TLS: the name its certificate carries)")
    port: int = Field(default=1883, ge=1, le=65535, description="broker port (the shipped TLS listener: 8883)")
    hosts: list[str] = Field(
        default_factory=list,
        description="a broker cluster's nodes as host:port, tried in turn (each new connection attempt goes to the "
        "next); set, it replaces host and port (docs/ha.md)",
    )
    protocol: Literal["5", "3.1.1"] = Field(
        default="5",
        description='"5" (Mosquitto, the default) or "3.1.1" for a broker that speaks no MQTT 5 (RabbitMQ 3.10, '
        "docs/ha.md): a persistent session by clean_session false; no session expiry, receive maximum or noLocal",
    )
    username: str | None = Field(
        default=None,
        description="broker user name; unset: the client id (the shipped broker ties client id to user name); "
        "the telemetry connection logs in as <name>-telemetry",
    )
    password: SecretStr | None = Field(default=None, description="broker password (or password_file)")
    password_file: Path | None = Field(
        default=None, description="file whose first line is the broker password (`vaka mqtt credentials` writes it)"
    )
    tls: bool = Field(default=False, description="connect with TLS, verifying the broker's certificate")
    ca_file: Path | None = Field(default=None, description="CA certificates for the broker's (default: the system's)")
    cert_file: Path | None = Field(default=None, description="client certificate, if the broker demands one")
    key_file: Path | None = Field(default=None, description="the client certificate's private key")
    tls_verify_hostname: bool = Field(
        default=True, description="the broker's certificate must name `host`; off only for a test bench"
    )
    allow_plaintext_password: bool = Field(
        default=False, description="send the password over plain TCP to a broker that is not on this machine"
    )
    client_id: str = Field(
        default="vaka-hub", min_length=1, max_length=64, description="fixed, so the session persists"
    )
    session_expiry_s: int = Field(
        default=7 * 86400,
        ge=60,
        description="how long the broker keeps our session offline (MQTT 5; with 3.1.1 the broker's own policy)",
    )
    keepalive_s: int = Field(default=30, ge=5, le=600, description="MQTT keepalive")
    receive_maximum: int = Field(
        default=4096,
        ge=16,
        le=65535,
        description="unacked QoS 1 messages in flight to us (asked of an MQTT 5 broker; RabbitMQ: mqtt.prefetch); "
        "the telemetry connection stops reading at this many",
    )
    reconnect_min_s: float = Field(default=0.2, gt=0, description="first reconnect delay")
    reconnect_max_s: float = Field(default=30.0, gt=0, description="longest reconnect delay (jittered)")
    telemetry_connection: bool = Field(default=True, description="a second connection for telemetry topics")
    hub_status: bool = Field(
        default=True,
        description="publish the hub's retained vaka/v1/{site}/hub/status per site, offline as its Last Will "
        "(a connection per site: hub/supervision/hub_status.py)",
    )
    routes: list[AdapterRoute] = Field(default_factory=list, description="other vendor formats by topic filter")

    @model_validator(mode="after")
    def _known_addresses(self) -> MqttSettings:
        for address in self.hosts:
            _split_address(address)
        return self

    @model_validator(mode="after")
    def _backoff_order(self) -> MqttSettings:
        if self.reconnect_min_s > self.reconnect_max_s:
            msg = "reconnect_min_s must not exceed reconnect_max_s"
            raise ValueError(msg)
        return self

    @model_validator(mode="after")
    def _safe_credentials(self) -> MqttSettings:
        if self.password is not None and self.password_file is not None:
            msg = "set mqtt.password or mqtt.password_file, not both"
            raise ValueError(msg)
        if self.password_file is not None and not os.access(self.password_file, os.R_OK):
            msg = f"mqtt.password_file {self.password_file} cannot be read"
            raise ValueError(msg)
        for name in ("ca_file", "cert_file", "key_file"):
            path = getattr(self, name)
            if path is not None and not self.tls:
                msg = f"mqtt.{name} is set but mqtt.tls is false; set mqtt.tls = true"
                raise ValueError(msg)
            if path is not None and not os.access(path, os.R_OK):
                msg = f"mqtt.{name} {path} cannot be read"
                raise ValueError(msg)
        if self.key_file is not None and self.cert_file is None:
            msg = "mqtt.key_file needs mqtt.cert_file"
            raise ValueError(msg)
        has_password = self.password is not None or self.password_file is not None
        remote = [host for host, _ in self.broker_addresses() if not _is_loopback(host)]
        if has_password and not self.tls and remote and not self.allow_plaintext_password:
            msg = (
                f"the broker password would cross the network in plain text to {remote[0]}: set mqtt.tls = true "
                "(and mqtt.ca_file), or mqtt.allow_plaintext_password = true if that network is trusted"
            )
            raise ValueError(msg)
        return self

    def broker_addresses(self) -> list[tuple[str, int]]:
        """Where the broker is: every entry of `hosts` in order, or else `host` and `port`."""
        if self.hosts:
            return [_split_address(address) for address in self.hosts]
        return [(self.host, self.port)]

    def broker_password(self) -> str | None:
        """The password to log in with: `password`, else the first line of `password_file`, else None."""
        if self.password is not None:
            return self.password.get_secret_value()
        if self.password_file is not None:
            lines = self.password_file.read_text(encoding="utf-8").splitlines()
            return lines[0] if lines else ""
        return None

    def login_for(self, client_id: str) -> str:
        """The user name a connection with `client_id` logs in as: `username` (or the hub's client id) plus the
        connection's suffix, so each of the hub's connections has the user name its client id needs."""
        base = self.username or self.client_id
        return base + client_id.removeprefix(self.client_id) if client_id.startswith(self.client_id) else client_id


class DbSettings(_Section):
    dsn: SecretStr = Field(
        default=SecretStr("postgresql://postgres@127.0.0.1:5432/vaka"),
        description="PostgreSQL connection string of the hub's runtime role (least privilege; see docs/operations.md)",
    )
    owner_dsn: SecretStr | None = Field(
        default=None,
        description="connection string of the schema's owner: `vaka migrate` uses it (else dsn); `vaka serve` "
        "migrates with it when the schema is behind, and without it refuses to start on an old schema",
    )
    runtime_role: str | None = Field(
        default=None,
        pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        description="role `vaka migrate` grants runtime privileges (default: dsn's user, when owner_dsn is separate)",
    )
    readonly_role: str | None = Field(
        default=None, pattern=r"^[a-z_][a-z0-9_]{0,62}$", description="role `vaka migrate` grants SELECT (Grafana)"
    )
    require_least_privilege: bool = Field(
        default=False,
        description="refuse to serve as a role that could rewrite the audit logs (superuser, owner); set in production",
    )
    db_schema: str = Field(default="public", pattern=r"^[a-z_][a-z0-9_]{0,62}$", description="schema for Vaka's tables")
    storage: Literal["auto", "timescaledb"] = Field(
        default="auto",
        description="events storage intended: auto (a TimescaleDB hypertable when the extension can be had, else "
        "native partitions); timescaledb (`vaka migrate` and `vaka serve` refuse a database where events is not, "
        "or would not become, a hypertable: set it wherever TimescaleDB is deployed, as the compose stack does)",
    )
    pool_min: int = Field(default=1, ge=0)
    pool_max: int = Field(default=8, ge=1)
    command_timeout_s: float = Field(default=5.0, gt=0, description="no database call waits longer")
    connect_timeout_s: float = Field(default=3.0, gt=0)
    retention_days: int = Field(default=90, ge=1, description="events older than this are dropped")
    partitions_ahead_days: int = Field(default=3, ge=1, le=60, description="daily partitions created ahead")
    batch_size: int = Field(default=1000, ge=1, le=100_000, description="events per COPY batch")
    flush_interval_s: float = Field(default=0.1, gt=0, le=10, description="a batch waits at most this long")
    write_deadline_s: float = Field(default=2.0, gt=0, description="a batch slower than this goes to the spool")

    @model_validator(mode="after")
    def _pool_order(self) -> DbSettings:
        if self.pool_min > self.pool_max:
            msg = "pool_min must not exceed pool_max"
            raise ValueError(msg)
        return self


class SpoolSettings(_Section):
    directory: Path = Field(default=Path("var/spool"), description="local append-only spool for database outages")
    max_bytes: int = Field(
        default=1 << 30, ge=1 << 20, description="past this, telemetry is left in the broker (not acknowledged)"
    )
    disk_reserve_bytes: int = Field(
        default=64 << 20,
        ge=0,
        description="free disk kept for the desk's journal and the hub's state: below it the spool takes no telemetry,"
        " below half of it no care events either (both then wait in the broker, unacknowledged)",
    )
    fsync_interval_s: float = Field(default=0.01, ge=0, le=1, description="group-commit window for spool appends")


class HttpSettings(_Section):
    host: str = Field(default="127.0.0.1", description="listen address")
    port: int = Field(default=8080, ge=0, le=65535, description="listen port (0: any free port)")
    public_url: str = Field(default="http://127.0.0.1:8080", description="URL staff open; its origin is allowed")
    cookie_secure: bool = Field(default=True, description="Secure flag on the session cookie (off only for http dev)")
    session_idle_s: int = Field(default=8 * 3600, ge=60, description="a session idle longer is logged out")
    metrics_token_file: Path | None = Field(
        default=None,
        description=(
            "file with the bearer token Prometheus must send for /metrics; unset: /metrics answers only on loopback"
        ),
    )
    trusted_proxies: list[IPvAnyNetwork] = Field(
        default_factory=list,
        description="reverse proxies whose X-Forwarded-For is believed (CIDR); empty: the TCP peer is the client",
    )
    login_free_failures: int = Field(
        default=3, ge=1, le=20, description="wrong passwords per account and address before any wait"
    )
    login_first_delay_s: float = Field(
        default=2.0, gt=0, description="wait after the first counted failure, doubled per further one"
    )
    login_max_delay_s: float = Field(
        default=600.0, gt=0, description="the longest wait one account and address can earn"
    )
    login_account_free_failures: int = Field(
        default=20, ge=1, le=1000, description="wrong passwords per account, from all addresses, before the slow path"
    )
    login_account_delay_s: float = Field(
        default=10.0, gt=0, le=300, description="the slow path: one attempt per account per this many seconds"
    )


class EscalationTier(_Section):
    """One step of an escalation policy: who is notified when an alarm is still not accepted after `after_s`."""

    after_s: float = Field(ge=0, description="seconds after the alarm was raised")
    audience: Literal["unit", "nurse", "lead", "technical"] = Field(
        description="unit: staff of the unit; nurse: on-call nurses; lead: team leads (admin); technical: technicians"
    )


class EscalationPolicy(_Section):
    """Escalation for one site (or `*`) and category: tiers in order, then the last repeats until accepted."""

    site: str = Field(default="*", description="site id, or * for every site")
    category: Literal["care", "technical", "*"] = Field(default="*", description="alarm category, or *")
    tiers: list[EscalationTier] = Field(min_length=1, description="in order of after_s")
    repeat_s: float = Field(default=120.0, gt=0, description="after the last tier, notify again this often")

    @model_validator(mode="after")
    def _tier_order(self) -> EscalationPolicy:
        times = [t.after_s for t in self.tiers]
        if times != sorted(times):
            msg = "escalation tiers must be in order of after_s"
            raise ValueError(msg)
        return self


def _default_policies() -> list[EscalationPolicy]:
    return [
        EscalationPolicy(
            category="care",
            tiers=[
                EscalationTier(after_s=0, audience="unit"),
                EscalationTier(after_s=60, audience="unit"),
                EscalationTier(after_s=180, audience="nurse"),
                EscalationTier(after_s=300, audience="lead"),
            ],
            repeat_s=120,
        ),
        EscalationPolicy(
            category="technical",
            tiers=[EscalationTier(after_s=0, audience="technical"), EscalationTier(after_s=900, audience="lead")],
            repeat_s=1800,
        ),
    ]


class DeskSettings(_Section):
    policies: list[EscalationPolicy] = Field(
        default_factory=_default_policies, description="first matching site+category wins; exact site before *"
    )
    night_start: time = Field(default=time(22, 0), description="night begins, a time of day (site's zone), e.g. 22:00")
    night_end: time = Field(default=time(7, 0), description="night ends, a time of day (site's zone), e.g. 07:00")
    silence_rules: list[str] = Field(
        default_factory=lambda: ["silent", "offline", "supervision"],
        description="a technical alarm whose rule id contains one of these, on a safety device, wakes the patrol",
    )
    inventory_refresh_s: float = Field(
        default=30.0, gt=0, description="how often the hub re-reads the inventory and the desk its staff"
    )


class PatrolSettings(_Section):
    """Who is on duty and where an alarm goes when escalation finds nobody (issue 17)."""

    duty_required: bool = Field(
        default=True,
        description="escalation tiers reach only staff signed on to a shift (page or `vaka staff duty`)",
    )
    shift_hours: float = Field(default=10.0, gt=0, le=24, description="a sign-on on the page lasts this long")
    fallback_phones: dict[str, str] = Field(
        default_factory=dict,
        description="site id (or *) -> number the SMS/voice gateway calls when an alarm reaches nobody",
    )
    unreached_log_interval_s: float = Field(
        default=60.0, gt=0, description="at most one 'reached nobody' log line per site this often (the rest counted)"
    )


# the browsers' push services: Chrome/Android (FCM), Firefox (autopush), Safari (Apple), Edge on Windows (WNS)
DEFAULT_PUSH_HOSTS = ("fcm.googleapis.com", "*.push.services.mozilla.com", "*.push.apple.com", "*.notify.windows.com")


class NotifySettings(_Section):
    webhook_urls: list[str] = Field(default_factory=list, description="Standard Webhooks receivers (alarm, DECT)")
    webhook_secret: SecretStr | None = Field(default=None, description="whsec_<base64> signing secret")
    webhook_attempts: int = Field(default=5, ge=1, le=20, description="tries per delivery")
    webhook_backoff_s: float = Field(default=0.5, gt=0, description="first retry delay, doubled each time")
    webhook_timeout_s: float = Field(default=5.0, gt=0)
    vapid_private_key: SecretStr | None = Field(default=None, description="VAPID private key (base64url or PEM)")
    vapid_private_key_file: Path | None = Field(default=None, description="file holding the VAPID private key (PEM)")
    vapid_subject: str = Field(default="mailto:vaka@localhost", description="VAPID contact (mailto: or https:)")
    push_allowed_hosts: list[str] = Field(
        default_factory=lambda: list(DEFAULT_PUSH_HOSTS),
        description="hosts a Web Push endpoint may name (`*.example` for subdomains): the browsers' push services",
    )
    push_allowed_networks: list[IPvAnyNetwork] = Field(
        default_factory=list,
        description="non-public networks a push endpoint may still resolve to (an on-site push relay); empty in production",
    )
    push_allow_http: bool = Field(default=False, description="accept plain-http push endpoints (tests only)")
    sms_gateway_url: str | None = Field(default=None, description="HTTP endpoint that sends SMS (JSON POST)")
    sms_token: SecretStr | None = Field(default=None, description="bearer token for the SMS gateway")
    sms_attempts: int = Field(default=3, ge=1, le=10)


class ClockSettings(_Section):
    mode: Literal["wall", "simulated"] = Field(
        default="wall",
        description="wall in production; simulated follows `vaka/v1/_sim/clock` from `vaka simulate` (demo, bench)",
    )
    topic: str = Field(
        default=f"{TOPIC_ROOT}/_sim/clock",
        min_length=1,
        pattern=r"^[^#+]+$",
        description="simulated mode: the simulation's clock topic (`vaka simulate --clock-topic`); a demo of its own "
        "on a shared broker needs one of its own (the Makefile's: vaka/v1/_sim/SITE/clock)",
    )


class ScaipSettings(_Section):
    """The SCAIP receiver (social alarms over SIP MESSAGE, SS 91100 / CLC/TS 50134-9)."""

    enabled: bool = Field(default=False, description="listen for SCAIP alarms")
    host: str = Field(default="127.0.0.1", description="listen address (0.0.0.0 for every interface)")
    port: int = Field(default=5060, ge=0, le=65535, description="UDP and TCP port (0: any free port, for tests)")
    transports: list[Literal["udp", "tcp"]] = Field(
        default_factory=lambda: list[Literal["udp", "tcp"]](["udp", "tcp"]),
        min_length=1,
        description="UDP, TCP or both",
    )
    site: str = Field(default="default", description="site the alarm units belong to")
    heartbeat_interval_s: int = Field(
        default=300,
        ge=60,
        le=86400,
        description="heartbeat (PI) interval asked in each response of a unit that takes one (hbo 001); SCAIP counts "
        "it in whole minutes (hbi), so it is rounded up to one",
    )
    durable_timeout_s: float = Field(
        default=5.0, gt=0, le=60, description="longest wait for an event to be durable before answering `not treated`"
    )
    status_codes: dict[int, EventKind] = Field(
        default_factory=dict, description="status code (stc) → event kind, for a vendor's own codes; see adapters/scaip"
    )
    senders: dict[str, list[str]] = Field(
        default_factory=dict,
        description=(
            "who may send: source address or network (CIDR) → the inventory's SCAIP device ids (vendor scaip, this"
            " site) it speaks for, `*` for all of them; anything else is refused (docs/security.md, SCAIP senders)"
        ),
    )
    rate_per_source_s: float = Field(
        default=2.0, gt=0, le=1000, description="messages per second one source address may send, on average"
    )
    burst_per_source: int = Field(default=20, ge=1, le=10000, description="messages one source may send at once")

    @model_validator(mode="after")
    def _senders_are_networks(self) -> ScaipSettings:
        for network, devices in self.senders.items():
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError as exc:
                msg = f"scaip.senders: {network!r} is not an address or network (192.0.2.10, 10.20.0.0/16)"
                raise ValueError(msg) from exc
            if not devices:
                msg = f"scaip.senders: {network!r} speaks for no device (list device ids, or `*`)"
                raise ValueError(msg)
        return self


class RuleSettings(_Section):
    packs: list[Path] = Field(default_factory=list, description="rule pack files; empty means the default pack")


class ReliabilitySettings(_Section):
    """Limits that keep alarms right under faults (docs/reliability.md)."""

    care_freshness_s: float = Field(
        default=300.0, gt=0, description="a care rule ignores an event that arrives later than this after its own time"
    )
    technical_freshness_s: float = Field(
        default=3600.0, gt=0, description="the same for technical rules (battery, camera); supervision takes any age"
    )
    rule_freshness_s: dict[str, float] = Field(
        default_factory=dict, description="per-rule freshness windows by rule id, overriding the two above"
    )
    late_care_window_s: float = Field(
        default=86400.0,
        ge=0,
        description="a care event older than its rule's window but younger than this (buffered in a gateway) raises a"
        " late care alarm; an older one is a clock fault: stored and counted, shown to nobody (0: never)",
    )
    max_future_skew_s: float = Field(
        default=60.0, gt=0, le=86400, description="events dated further ahead of the hub's clock are rejected"
    )
    replay_margin_s: float = Field(
        default=300.0, ge=0, description="after a restart, stored events this far before the snapshot are replayed too"
    )
    offline_grace_s: float = Field(
        default=120.0, ge=0, description="a device that said offline (Last Will) and is not back by then is silent"
    )
    blind_grace_s: float = Field(
        default=60.0, ge=0, description="silence judged again only this long after the broker connection returns"
    )
    blind_alarm_after_s: float = Field(
        default=30.0, ge=0, description="broker connection away this long: one supervision-lost alarm per site"
    )
    input_gap_s: float = Field(
        default=5.0,
        gt=0,
        description="the hub's own input stalled, paused or behind longer than this: it is blind (issue 22.4)",
    )
    canary_interval_s: float = Field(default=60.0, gt=0, description="the canary event is sent this often")
    canary_timeout_s: float = Field(default=10.0, gt=0, description="a canary round trip slower than this fails")


class RelativesSettings(_Section):
    consent_text_version: str = Field(
        default="2026-1", min_length=1, description="version of the consent text shown to the resident (recorded)"
    )
    refresh_s: float = Field(
        default=20.0, gt=0, le=60, description="an open relatives page re-checks its consent this often"
    )
    session_idle_s: int = Field(default=7 * 86400, ge=60, description="a relative idle longer is logged out")
    unit_phones: dict[str, str] = Field(
        default_factory=dict,
        description="'site/unit', site id or * -> the unit's phone number, shown on the relatives page",
    )


class FollowupSettings(_Section):
    """Follow-up: indicators, reports, open data and the archive (docs/followup.md)."""

    accept_policy_s: float = Field(
        default=300.0,
        gt=0,
        description="a care alarm with no staff action within this is counted as not accepted in policy",
    )
    refresh_interval_s: float = Field(
        default=300.0, ge=10, description="how often the hub refreshes the daily rollup on plain PostgreSQL"
    )
    suppress_below: int = Field(
        default=5, ge=2, le=50, description="open data: counts below this are published as '<N'"
    )
    archive_retention_days: int = Field(
        default=730, ge=1, description="archive --purge deletes exported log rows only when older than this"
    )
    percentile_min_answered: int = Field(
        default=5, ge=5, description="open data: a response-time percentile needs at least this many answered alarms"
    )
    publisher: str = Field(default="", max_length=200, description="open data: the publishing municipality's name")
    publisher_uri: str = Field(
        default="", description="open data: the publisher's URI (dct:publisher), e.g. the municipality's web address"
    )
    publisher_type: str = Field(
        default="http://purl.org/adms/publishertype/LocalAuthority",
        description="open data: the publisher's type (ADMS publisher type vocabulary)",
    )
    contact_email: str = Field(default="", description="open data: the contact point's e-mail (dcat:contactPoint)")
    municipality_code: str = Field(
        default="", pattern=r"^(\d{4})?$", description="open data: the municipality's four-digit code (dct:spatial)"
    )
    spatial_uri: str = Field(
        default="", description="open data: a URI for the municipality as a place (e.g. its Geonames URI), optional"
    )
    base_url: str = Field(
        default="", description="open data: where the package is published; every URL in the metadata starts here"
    )
    archive_creator: str = Field(default="", description="archive: the archive creator (arkivbildare), by name")
    archive_creator_id: str = Field(
        default="", description="archive: the archive creator's identifier (organisationsnummer)"
    )
    archive_owner: str = Field(default="", description="archive: the records' owner (arkivägare), by name")
    archive_submitter: str = Field(
        default="", description="archive: who submits the package (levererande organisation)"
    )
    submission_agreement: str = Field(
        default="", description="archive: the submission agreement's reference (leveransöverenskommelse)"
    )


class CheckinSettings(_Section):
    """Night check-ins by camera (docs/checkins.md)."""

    gateway_url: str | None = Field(
        default=None, description="the camera gateway that issues short-lived viewing URLs; none: no camera looks"
    )
    gateway_token: SecretStr | None = Field(default=None, description="bearer token for the camera gateway")
    overdue_after_s: float = Field(
        default=0.0, ge=0, description="a task still open this long after its window closed raises an alarm"
    )
    tick_s: float = Field(
        default=5.0, gt=0, le=60, description="how often due check-ins are created (at least every simulated minute)"
    )


class HaSettings(_Section):
    """Hubs that own sites one at a time, by a lease per site in the database (docs/ha.md, issue 30). Off: one hub
    owns every site and keeps its local durability (spool, desk journal, local snapshot), as the single-node stack."""

    enabled: bool = Field(default=False, description="take part in a group of hubs sharing the sites by leases")
    hub_id: str = Field(
        default="hub", min_length=1, max_length=64, description="this hub's name in the leases (unique per hub)"
    )
    sites: list[str] | Literal["any"] = Field(
        default="any", description="the sites this hub may own: a list of site ids, or any site of the inventory"
    )
    prefer: list[str] = Field(
        default_factory=list,
        description="sites this hub takes as soon as they are free; the others only once their lease has run out"
        " (another hub died or stalled) and this hub has had the database for one lease",
    )
    lease_s: float = Field(default=10.0, ge=1.0, le=300.0, description="a lease runs out this long after its renewal")
    renew_s: float = Field(default=2.0, gt=0, description="leases are renewed (and free sites looked for) this often")
    snapshot_s: float = Field(
        default=5.0, gt=0, description="each owned site's engine snapshot is written to the database this often"
    )
    unowned_alarm_after_s: float = Field(
        default=30.0,
        gt=0,
        description="a site whose lease has run out this long ago, that no hub took: 'supervision lost' for it",
    )
    act_without_database: bool = Field(
        default=True,
        description="with the database away, go on acting for the sites held (alarms decided from memory; a partition"
        " that leaves another hub with the database makes both act for a while); false: act only while the lease is"
        " confirmed (never two hubs, but none while the database is away)",
    )

    @model_validator(mode="after")
    def _renew_within_lease(self) -> HaSettings:
        if self.renew_s * 2 > self.lease_s:
            msg = "ha.renew_s must be at most half of ha.lease_s (a lease must survive one failed renewal)"
            raise ValueError(msg)
        if self.sites != "any" and not set(self.prefer) <= set(self.sites):
            msg = "ha.prefer names a site that ha.sites does not let this hub own"
            raise ValueError(msg)
        return self


class Settings(BaseSettings):
    """Everything Vaka can be told at start."""

    model_config = SettingsConfigDict(
        env_prefix="VAKA_", env_nested_delimiter="__", extra="forbid", case_sensitive=False
    )

    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    db: DbSettings = Field(default_factory=DbSettings)
    spool: SpoolSettings = Field(default_factory=SpoolSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    clock: ClockSettings = Field(default_factory=ClockSettings)
    rules: RuleSettings = Field(default_factory=RuleSettings)
    desk: DeskSettings = Field(default_factory=DeskSettings)
    patrol: PatrolSettings = Field(default_factory=PatrolSettings)
    notify: NotifySettings = Field(default_factory=NotifySettings)
    reliability: ReliabilitySettings = Field(default_factory=ReliabilitySettings)
    relatives: RelativesSettings = Field(default_factory=RelativesSettings)
    followup: FollowupSettings = Field(default_factory=FollowupSettings)
    scaip: ScaipSettings = Field(default_factory=ScaipSettings)
    checkins: CheckinSettings = Field(default_factory=CheckinSettings)
    ha: HaSettings = Field(default_factory=HaSettings)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO")

    @model_validator(mode="after")
    def _ha_on_the_wall_clock(self) -> Settings:
        if self.ha.enabled and self.clock.mode != "wall":
            msg = "ha.enabled needs clock.mode = wall (a simulation runs on one hub)"
            raise ValueError(msg)
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml_file = os.environ.get("VAKA_CONFIG")
        if toml_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(toml_file)))
        return tuple(sources)


def load_settings(config_file: Path | None = None) -> Settings:
    """Build the settings, or raise SettingsError with one line naming the first wrong setting."""
    if config_file is not None:
        if not config_file.is_file():
            msg = f"config file {config_file} does not exist"
            raise SettingsError(msg)
        os.environ["VAKA_CONFIG"] = str(config_file)
    try:
        return Settings()
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "settings"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        msg = f"setting {where}: {err['msg']}{more}"
        raise SettingsError(msg) from None
    except (OSError, ValueError) as exc:
        msg = f"settings: {exc}"
        raise SettingsError(msg) from None
