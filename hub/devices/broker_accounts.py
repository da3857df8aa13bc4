"""Broker accounts for an inventory: Mosquitto's password file and ACL, so onboarding a device is one command.

`vaka mqtt credentials --inventory FILE --out DIR` writes into DIR:
- `passwd`: Mosquitto's own hash format (`$7$`: PBKDF2-SHA512, as `mosquitto_passwd` writes it);
- `acl`: one block per account (see `accounts_for` for who may do what);
- `credentials.secret` (mode 0600): every account's password, for the operator to hand to installers;
- `<hub user>.password` (mode 0600): the hub's password alone, for the hub's `mqtt.password_file` setting.
Running it again keeps every existing password, adds accounts new in the inventory and drops removed ones.
Passwords never reach a log or the terminal.

The shipped broker configuration (deploy/mosquitto/mosquitto.conf) sets `use_username_as_clientid`: every client's
id is its user name, so nobody without the hub's password can take over the hub's session.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import logging
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from hub.model import CANARY_TELEMETRY_TOPIC, CANARY_TOPIC, Inventory, VakaError

logger = logging.getLogger(__name__)

Role = Literal["hub", "tools", "monitor", "device", "gateway", "integration"]

TOPIC_ROOT = "vaka/v1"
# second-level topics under a site that belong to the hub: a device with one of these ids would own them
RESERVED_IDS = frozenset({"hub", "alarms", "checkins", "_sim"})
TELEMETRY_SUFFIX = "-telemetry"
# `vaka vendor check`, `vaka site discover`: read-only, so they never take the hub's session (as hub.intake.mqtt.TOOL_LOGINS)
TOOL_LOGINS = ("tools", "tools-snapshot")
STATUS_SUFFIX = "-status-"  # the hub's status per site, as hub.supervision.hub_status.STATUS_SUFFIX
CANARY_SUFFIX = (
    "-canary"  # the hub's self-test device (hub/supervision/canary.py): may publish its two topics, nothing else
)
# the broker's own statistics for the stack's mosquitto-exporter: reads $SYS, nothing else
MONITOR_SUFFIX = "-monitor"
MONITOR_ENV_FILE = "monitor.env"
PASSWORD_FILE = "passwd"
ACL_FILE = "acl"
SECRETS_FILE = "credentials.secret"
# Mosquitto's own default; the passwords are 192 random bits, so more stretching would add nothing but connect time
PBKDF2_ITERATIONS = 101
_SALT_BYTES = 12
_USER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


class CredentialsError(VakaError):
    """The inventory cannot be turned into broker accounts (a reserved or duplicate name, an unknown site)."""


@dataclass(frozen=True, slots=True)
class Account:
    """One broker user: its name (also its client id) and its ACL lines (`topic read|write|readwrite FILTER`)."""

    name: str
    role: Role
    acl: tuple[str, ...]


def hash_password(password: str, *, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS) -> str:
    """Mosquitto 2.0's password file hash: `$7$iterations$salt$hash`, PBKDF2-HMAC-SHA512, base64."""
    salt = salt if salt is not None else secrets.token_bytes(_SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, 64)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def accounts_for(inventory: Inventory, hub_user: str = "vaka-hub") -> list[Account]:
    """The broker accounts an inventory needs, with least privilege each.

    - the hub (two users: `hub_user` for events and `hub_user-telemetry`, like its two client ids): reads and
      publishes everything under `vaka/v1/`, reads the gateways' vendor topics; its canary (`hub_user-canary`)
      publishes the canary's two topics; its status per site (`hub_user-status-{site}`, hub/supervision/hub_status.py) publishes
      that site's retained `vaka/v1/{site}/hub/status` (and its Last Will there), nothing else;
    - the hub's tools (`hub_user-tools`, `hub_user-tools-snapshot`, same password: `vaka vendor check`, `vaka site discover`): read only, with
      a client id of their own, so running one never takes over the hub's session;
    - a native device: publishes and reads only under `vaka/v1/{site}/{device_id}/`;
    - a gateway: reads and publishes its own vendor topics only;
    - an integration: reads the alarm states and hub status of its sites only;
    - the broker's monitor (`hub_user-monitor`, the stack's mosquitto-exporter): reads `$SYS/#` only.
    Nobody else publishes alarm states or reads `#`; nobody else reads `$SYS`.
    """
    if not _USER.match(hub_user):
        msg = f"hub user name {hub_user!r} must be letters, digits, '_', '.', '-'"
        raise CredentialsError(msg)
    vendor_topics = sorted({t for site in inventory.sites for gw in site.gateways for t in gw.topics})
    hub_acl = (f"topic readwrite {TOPIC_ROOT}/#", *(f"topic read {t}" for t in vendor_topics))
    tools_acl = (f"topic read {TOPIC_ROOT}/#", *(f"topic read {t}" for t in vendor_topics))
    accounts = [
        Account(hub_user, "hub", hub_acl),
        Account(hub_user + TELEMETRY_SUFFIX, "hub", hub_acl),
        Account(
            hub_user + CANARY_SUFFIX,
            "hub",
            (f"topic write {CANARY_TOPIC}", f"topic write {CANARY_TELEMETRY_TOPIC}"),
        ),
        *(Account(f"{hub_user}-{login}", "tools", tools_acl) for login in TOOL_LOGINS),
        Account(hub_user + MONITOR_SUFFIX, "monitor", ("topic read $SYS/#",)),
        *(
            Account(f"{hub_user}{STATUS_SUFFIX}{site.id}", "hub", (f"topic write {TOPIC_ROOT}/{site.id}/hub/status",))
            for site in inventory.sites
        ),
    ]
    site_ids = {site.id for site in inventory.sites}
    for site in inventory.sites:
        for device in site.devices:
            if device.vendor != "native":
                continue  # a vendor's device reaches the broker through its gateway's account
            if device.id in RESERVED_IDS:
                msg = f"device id {device.id!r} on site {site.id!r} is reserved for the hub's own topics; rename it"
                raise CredentialsError(msg)
            accounts.append(Account(device.id, "device", (f"topic readwrite {TOPIC_ROOT}/{site.id}/{device.id}/#",)))
        for gateway in site.gateways:
            accounts.append(Account(gateway.id, "gateway", tuple(f"topic readwrite {t}" for t in gateway.topics)))
    for integration in inventory.integrations:
        unknown = sorted(set(integration.sites) - site_ids)
        if unknown:
            msg = f"integration {integration.id!r} names unknown site(s): {', '.join(unknown)}"
            raise CredentialsError(msg)
        acl: list[str] = []
        for site_id in integration.sites:
            acl += [f"topic read {TOPIC_ROOT}/{site_id}/alarms/#", f"topic read {TOPIC_ROOT}/{site_id}/hub/status"]
        accounts.append(Account(integration.id, "integration", tuple(acl)))
    seen: dict[str, Role] = {}
    for account in accounts:
        if account.name in seen:
            msg = f"{account.role} {account.name!r} has the same name as a {seen[account.name]}: names must be unique"
            raise CredentialsError(msg)
        seen[account.name] = account.role
    return accounts


def render_acl(accounts: list[Account], source: str) -> str:
    """The Mosquitto ACL file: a block per user; nothing for anonymous clients (the broker refuses them)."""
    lines = [
        f"# Generated by `vaka mqtt credentials` from {source}; do not edit, run the command again.",
        "# Every client id is its user name (use_username_as_clientid). Anything not granted here is refused.",
    ]
    for account in accounts:
        lines += ["", f"# {account.role}", f"user {account.name}", *account.acl]
    return "\n".join(lines) + "\n"


def read_secrets(path: Path) -> dict[str, str]:
    """The passwords of an earlier run (`name:password` lines), or nothing."""
    if not path.exists():
        return {}
    found: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#") and ":" in line:
            name, password = line.split(":", 1)
            found[name] = password
    return found


def _write_private(path: Path, text: str, mode: int) -> None:
    """Write `text` to `path` with `mode`, never readable by others even for a moment."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.chmod(tmp, mode)
    tmp.replace(path)


@dataclass(frozen=True, slots=True)
class CredentialsResult:
    """What a run did, by account name (no passwords)."""

    added: list[str]
    kept: list[str]
    removed: list[str]


def write_credentials(
    inventory: Inventory, out_dir: Path, *, source: str = "the inventory", hub_user: str = "vaka-hub"
) -> CredentialsResult:
    """Write the password file, ACL and secrets for `inventory` into `out_dir`, keeping existing passwords."""
    accounts = accounts_for(inventory, hub_user)
    out_dir.mkdir(parents=True, exist_ok=True)
    old = read_secrets(out_dir / SECRETS_FILE)
    passwords: dict[str, str] = {}
    hub_password = old.get(hub_user) or secrets.token_urlsafe(24)
    for account in accounts:
        shared = account.role in ("hub", "tools")  # the hub's password file serves all three
        passwords[account.name] = hub_password if shared else old.get(account.name) or secrets.token_urlsafe(24)
    names = [a.name for a in accounts]
    result = CredentialsResult(
        added=[n for n in names if n not in old],
        kept=[n for n in names if n in old],
        removed=sorted(set(old) - set(names)),
    )
    secret_lines = ["# Vaka broker credentials, name:password. Keep private; hand each to its installer."]
    secret_lines += [f"{a.name}:{passwords[a.name]}" for a in accounts]
    _write_private(out_dir / SECRETS_FILE, "\n".join(secret_lines) + "\n", 0o600)
    _write_private(out_dir / f"{hub_user}.password", hub_password + "\n", 0o600)
    # the exporter's image has no shell to read a password file: compose hands it this env_file
    monitor = hub_user + MONITOR_SUFFIX
    monitor_env = f"MQTT_USER={monitor}\nMQTT_PASS={passwords[monitor]}\nMQTT_CLIENT_ID={monitor}\n"
    _write_private(out_dir / MONITOR_ENV_FILE, monitor_env, 0o600)
    # the broker drops root and reads these as its own user: hashes and rules only, no secret in them
    hashed = "".join(f"{a.name}:{hash_password(passwords[a.name])}\n" for a in accounts)
    _write_private(out_dir / PASSWORD_FILE, hashed, 0o644)
    _write_private(out_dir / ACL_FILE, render_acl(accounts, source), 0o644)
    logger.info(
        "broker accounts written to %s: %s (%s new, %s kept, %s removed)",
        out_dir,
        len(accounts),
        len(result.added),
        len(result.kept),
        len(result.removed),
    )
    return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`vaka mqtt credentials` options."""
    parser.add_argument("--inventory", type=Path, required=True, help="inventory YAML (as for `vaka site load`)")
    parser.add_argument("--out", type=Path, default=Path("var/mqtt"), help="directory for passwd, acl, secrets")
    parser.add_argument("--hub-user", default="vaka-hub", help="the hub's user name = its mqtt.client_id")


def credentials_main(args: argparse.Namespace, inventory: Inventory) -> int:
    """Write the broker's files for an inventory and say what changed (never a password)."""
    try:
        result = write_credentials(inventory, args.out, source=str(args.inventory), hub_user=args.hub_user)
    except CredentialsError as exc:
        print(f"vaka mqtt credentials: {exc}")
        return 1
    except OSError as exc:
        print(f"vaka mqtt credentials: cannot write to {args.out}: {exc.strerror}")
        return 2
    total = len(result.added) + len(result.kept)
    print(f"broker accounts: {total} ({len(result.added)} new, {len(result.kept)} kept, {len(result.removed)} removed)")
    if result.added:
        print(f"new: {', '.join(result.added)}")
    if result.removed:
        print(f"removed: {', '.join(result.removed)}")
    out = args.out
    print(f"wrote {out / PASSWORD_FILE} and {out / ACL_FILE}: install them for the broker and reload it (SIGHUP)")
    print(f"passwords are in {out / SECRETS_FILE} (mode 0600): hand each to its installer, keep the file private")
    print(f"the hub's password alone: {out / (args.hub_user + '.password')} (setting mqtt.password_file)")
    return 0
