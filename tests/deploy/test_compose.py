"""docker-compose.yml, checked without a Docker engine: the Compose Specification's JSON Schema, and what an
operations team relies on — healthchecks, start order, volumes for state, secrets only from files, settings the hub
knows, and every file the stack mounts present in the repository."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from hub.settings import Settings

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
SCHEMA = Path(__file__).with_name("compose-spec.json")
_VAR = re.compile(r"\$\{(?P<name>[A-Z0-9_]+)(?::-(?P<default>[^}]*)|:\?(?P<required>[^}]*))?\}")


def env_example() -> dict[str, str]:
    values = {}
    for line in (REPO / ".env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's `${VAR:-default}` and `${VAR:?message}`: the .env value, else the default; a variable with neither
    is an error (compose stops with the message)."""

    def value(match: re.Match[str]) -> str:
        name, default = match.group("name"), match.group("default")
        if name in env:
            return env[name]
        if default is None:
            msg = f"${{{name}}} has no default and is not in .env.example: {match.group('required') or ''}"
            raise AssertionError(msg)
        return default

    return _VAR.sub(value, text)


def compose_validator() -> jsonschema.Draft7Validator:
    """The specification's schema (draft 7, as its $schema says)."""
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(interpolate(COMPOSE.read_text(), env_example()))
    assert isinstance(loaded, dict)
    return loaded


def test_the_file_is_valid_against_the_compose_specification(compose: dict[str, Any]) -> None:
    validator = compose_validator()
    validator.validate(yaml.safe_load(COMPOSE.read_text()))  # as written, variables and all
    validator.validate(compose)  # as compose sees it with .env.example


def test_the_schema_check_catches_a_mistake(compose: dict[str, Any]) -> None:
    broken = json.loads(json.dumps(compose))
    broken["services"]["hub"]["depends_on"]["timescaledb"]["condition"] = "service_healty"
    with pytest.raises(jsonschema.ValidationError, match="service_healty"):
        compose_validator().validate(broken)


def test_the_stack_has_its_services_from_the_agreed_images(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"timescaledb", "mosquitto", "hub", "prometheus", "alertmanager", "grafana"} <= services.keys()
    assert re.fullmatch(r"timescale/timescaledb:[\w.]+-pg17", services["timescaledb"]["image"])
    assert services["mosquitto"]["image"].startswith("eclipse-mosquitto:2.")
    assert services["grafana"]["image"].startswith("grafana/grafana-oss:")
    assert services["hub"]["build"]["context"] == "."
    assert services["hub"]["build"]["dockerfile"] == "Dockerfile"


# name:version with a full version (2.28.3, v2.53.4, 3.11.13; a suffix such as -pg17 allowed), optionally @digest
EXACT = re.compile(r"[a-z0-9./-]+:v?\d+\.\d+\.\d+[\w.-]*(@sha256:[0-9a-f]{64})?")


def test_every_image_is_an_exact_version_set_in_one_place() -> None:
    text = COMPOSE.read_text()
    images = {k: v for k, v in env_example().items() if k.endswith("_IMAGE")}
    assert images.keys() >= {"TIMESCALEDB_IMAGE", "MOSQUITTO_IMAGE", "PYTHON_IMAGE", "VAKA_IMAGE", "GRAFANA_IMAGE"}
    for name, ref in images.items():
        assert EXACT.fullmatch(ref), f"{name}={ref}: an exact version (not :2, :latest)"
        # no fallback in the compose file: a missing .env line stops compose instead of pulling something else
        assert f"${{{name}:?" in text, f"{name} must be required in docker-compose.yml"
    assert not re.search(r"\$\{\w+_IMAGE:-", text)
    dockerfile = (REPO / "Dockerfile").read_text()
    assert f"ARG PYTHON_IMAGE={images['PYTHON_IMAGE']}\n" in dockerfile
    assert re.findall(r"^FROM (\S+)", dockerfile, re.M) == ["${PYTHON_IMAGE}", "${PYTHON_IMAGE}"]
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert images["VAKA_IMAGE"] == f"vaka-hub:{version}"


def test_pin_images_adds_each_digest_and_keeps_everything_else(tmp_path: Path) -> None:
    # a stand-in for `docker buildx imagetools inspect` (the registry is outside this machine): one digest per tag
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(
        "#!/bin/sh\n"
        '[ "$1 $2 $3" = "buildx imagetools inspect" ] || exit 9\n'
        'echo "Name:      $4"\necho "MediaType: application/vnd.oci.image.index.v1+json"\n'
        'echo "Digest:    sha256:$(printf %s "$4" | sha256sum | cut -c1-64)"\n'
    )
    (bin_dir / "docker").chmod(0o755)
    env_file = tmp_path / ".env"
    env_file.write_text((REPO / ".env.example").read_text())
    pinned_before = "GRAFANA_IMAGE=grafana/grafana-oss:11.6.0@sha256:" + "a" * 64
    env_file.write_text(env_file.read_text().replace("GRAFANA_IMAGE=grafana/grafana-oss:11.6.0", pinned_before))
    run = subprocess.run(
        [str(REPO / "deploy" / "pin-images.sh"), str(env_file)],
        env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"},
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    before = (REPO / ".env.example").read_text().splitlines()
    after = env_file.read_text().splitlines()
    assert len(after) == len(before)
    for old, new in zip(before, after, strict=True):
        name, _, ref = old.partition("=")
        if name.endswith("_IMAGE") and name not in {"VAKA_IMAGE", "GRAFANA_IMAGE"}:
            digest = hashlib.sha256(ref.encode()).hexdigest()
            assert new == f"{old}@sha256:{digest}"
            assert EXACT.fullmatch(new.partition("=")[2])
        elif name == "GRAFANA_IMAGE":
            assert new == pinned_before  # already pinned: kept
        else:
            assert new == old


def test_every_service_has_a_healthcheck_and_waits_for_what_it_needs(compose: dict[str, Any]) -> None:
    services = compose["services"]
    # an image with no shell and no client in it cannot check itself: Prometheus scrapes it (VakaExporterDown)
    watched_by_prometheus = {"mosquitto-exporter"}
    for name, service in services.items():
        if name in watched_by_prometheus:
            assert service["healthcheck"] == {"disable": True}
        else:
            assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        assert service.get("restart") == "unless-stopped", f"{name} does not come back after a crash"
        for dependency, how in service.get("depends_on", {}).items():
            assert how["condition"] == "service_healthy", f"{name} starts before {dependency} is healthy"
    assert set(services["hub"]["depends_on"]) == {"timescaledb", "mosquitto"}
    assert set(services["grafana"]["depends_on"]) == {"prometheus", "timescaledb"}
    # Prometheus must not wait for the hub: it is what notices the hub is down
    assert "hub" not in services["prometheus"].get("depends_on", {})
    assert "/healthz" in " ".join(services["hub"]["healthcheck"]["test"])


def test_state_lives_in_named_volumes_where_each_program_keeps_it(compose: dict[str, Any]) -> None:
    broker_conf = (REPO / "deploy" / "mosquitto" / "mosquitto.conf").read_text()
    persistence = re.search(r"^persistence_location\s+(\S+?)/?$", broker_conf, re.M)
    assert persistence is not None
    dockerfile = (REPO / "Dockerfile").read_text()
    spool = re.search(r"VAKA_SPOOL__DIRECTORY=(\S+)", dockerfile)
    assert spool is not None
    needed = {
        "timescaledb": "/var/lib/postgresql/data",
        "mosquitto": persistence.group(1),
        "hub": str(Path(spool.group(1)).parent),
        "prometheus": "/prometheus",
        "alertmanager": "/alertmanager",
        "grafana": "/var/lib/grafana",
    }
    for name, path in needed.items():
        mounts = {v.split(":")[1]: v.split(":")[0] for v in compose["services"][name]["volumes"]}
        assert path in mounts, f"{name} keeps {path} in the container only"
        assert mounts[path] in compose["volumes"], f"{name}: {path} is not a named volume"
    assert "/var/lib/vaka" in dockerfile  # VOLUME and the user's home


def test_every_mounted_repository_file_exists(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./") and not source.startswith(("./secrets", "./backups")):
                assert (REPO / source).exists(), f"{name} mounts {source}, which is not in the repository"
    for name, secret in compose["secrets"].items():
        assert secret["file"].startswith("./secrets/"), f"secret {name} must come from ./secrets/"
    assert "secrets/" in (REPO / ".gitignore").read_text().split()


SECRETISH = re.compile(r"PASSWORD|SECRET|TOKEN|_KEY$|CREDENTIAL", re.I)


def test_no_secret_is_written_into_the_file(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for key, value in service.get("environment", {}).items():
            if SECRETISH.search(key):
                assert key.endswith(("_FILE", "__FILE")), f"{name}: {key} must point at a secret file"
                assert str(value).startswith("/run/secrets/"), f"{name}: {key} is not a mounted secret"
            assert not re.search(r"://[^/@:]+:[^/@]+@", str(value)), f"{name}: {key} carries a password"
        for secret in service.get("secrets", []):
            source = secret if isinstance(secret, str) else secret["source"]
            assert source in compose["secrets"], f"{name} uses undeclared secret {source}"


def hub_settings(compose: dict[str, Any], name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Settings:
    """The settings hub service `name` starts with: every variable a setting the hub knows or one the entrypoint reads,
    every secret file it points at mounted into the service. Raises as the container would stop on a bad one."""
    env = compose["services"][name]["environment"]
    entrypoint = (REPO / "deploy" / "docker" / "entrypoint.sh").read_text()
    for key in list(env):
        if "__" not in key and key.removeprefix("VAKA_").lower() not in Settings.model_fields:
            assert key in entrypoint, f"{name}: {key} is neither a setting nor read by the entrypoint"
    for key in [k for k in os.environ if k.startswith("VAKA_")]:
        monkeypatch.delenv(key)
    mounted = {
        (s if isinstance(s, str) else s.get("target", s["source"])) for s in compose["services"][name]["secrets"]
    }
    for key, value in env.items():
        if str(value).startswith("/run/secrets/"):
            # the settings check that a file is readable: stand the secret in where compose would mount it
            secret = str(value).removeprefix("/run/secrets/")
            assert secret in mounted, f"{name}: {key} points at {value}, which is not mounted into the hub"
            (tmp_path / secret).write_text("x\n")
            value = str(tmp_path / secret)
        if "__" in key or key.removeprefix("VAKA_").lower() in Settings.model_fields:
            monkeypatch.setenv(key, str(value))
    return Settings()


def test_the_hub_environment_is_settings_the_hub_knows(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = hub_settings(compose, "hub", monkeypatch, tmp_path)
    assert settings.mqtt.host == "mosquitto"
    assert settings.mqtt.tls  # the broker's plain listener is on its own loopback only
    assert settings.mqtt.password_file is not None
    assert settings.db.dsn.get_secret_value().startswith("postgresql://vaka_hub@timescaledb:5432/")


def test_alertmanager_and_grafana_find_their_secrets_where_they_are_mounted(compose: dict[str, Any]) -> None:
    services = compose["services"]
    alert_targets = {s["target"] for s in services["alertmanager"]["secrets"]}
    url_files = set(re.findall(r"url_file:\s*(\S+)", (REPO / "deploy/alertmanager/alertmanager.yml").read_text()))
    assert url_files
    assert url_files <= alert_targets
    datasources = (REPO / "deploy/grafana/provisioning/datasources/vaka.yml").read_text()
    for path in re.findall(r"\$__file\{(/run/secrets/[^}]+)\}", datasources):
        assert path.removeprefix("/run/secrets/") in services["grafana"]["secrets"]
    init = (REPO / "deploy/timescaledb/vaka-init.sh").read_text()
    for path in re.findall(r"/run/secrets/(\w+)", init):
        assert path in services["timescaledb"]["secrets"]


def test_first_start_file_modes_keep_the_secret_directories_traversable(tmp_path: Path) -> None:
    # the file-mode lines of docs/operations.md's "First start", run on a secrets tree as the steps before make it
    operations = (REPO / "docs" / "operations.md").read_text()
    block = operations.split("### First start", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    modes = [line.split("#")[0].strip() for line in block.splitlines() if re.match(r"(chmod|find secrets)\b", line)]
    assert modes
    for path in ("secrets/tls/ca.crt", "secrets/mqtt/passwd", "secrets/db_hub_password"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("x\n")
        (tmp_path / path).chmod(0o600)
    result = subprocess.run(["sh", "-ec", "\n".join(modes)], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    for path in (tmp_path / "secrets").rglob("*"):
        mode = path.stat().st_mode & 0o777
        if path.is_dir():
            assert mode & 0o100, f"{path.relative_to(tmp_path)} ({oct(mode)}): not traversable"
            assert not mode & 0o007, f"{path.relative_to(tmp_path)} ({oct(mode)}): open to everyone"
        else:
            assert mode & 0o004, f"{path.relative_to(tmp_path)} ({oct(mode)}): the hub's uid cannot read it"
    assert (tmp_path / "secrets" / "tls").stat().st_mode & 0o100


def test_prometheus_reaches_every_exporter_where_compose_runs_it(compose: dict[str, Any]) -> None:
    services = compose["services"]
    jobs = {
        j["job_name"]: j
        for j in yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())["scrape_configs"]
    }
    assert jobs["postgres"]["static_configs"][0]["targets"] == ["postgres-exporter:9187"]
    # the Mosquitto exporter shares the broker's network namespace, so it answers at the broker's name
    assert services["mosquitto-exporter"]["network_mode"] == "service:mosquitto"
    assert services["mosquitto-exporter"]["environment"]["BIND_ADDRESS"].endswith(":9234")
    assert jobs["mosquitto"]["static_configs"][0]["targets"] == ["mosquitto:9234"]
    assert services["mosquitto-exporter"]["environment"]["BROKER_ENDPOINT"] == "tcp://127.0.0.1:1883"
    assert "listener 1883 127.0.0.1" in (REPO / "deploy/mosquitto/mosquitto.conf").read_text()
    # the blackbox exporter probes the broker's TLS port with the stack's CA, as a device would
    assert jobs["broker-tls"]["static_configs"][0]["targets"] == ["mosquitto:8883"]
    assert jobs["broker-tls"]["relabel_configs"][-1]["replacement"] == "blackbox-exporter:9115"
    blackbox = yaml.safe_load((REPO / "deploy/blackbox/blackbox.yml").read_text())["modules"]["broker_tls"]["tcp"]
    assert blackbox["tls"] is True
    assert {"source": "mqtt_ca_cert", "target": blackbox["tls_config"]["ca_file"]} in services["blackbox-exporter"][
        "secrets"
    ]
    assert blackbox["tls_config"]["server_name"] == "mosquitto"
    # the backups' metrics: written under ./backups/metrics in the database container, read by node-exporter
    assert "./backups:/backups" in services["timescaledb"]["volumes"]
    assert "./backups/metrics:/textfile:ro" in services["node-exporter"]["volumes"]
    assert "--collector.textfile.directory=/textfile" in services["node-exporter"]["command"]
    assert "BACKUP_METRICS_DIR:-$dir/metrics" in (REPO / "deploy/backup/vaka-backup.sh").read_text()
    assert "BACKUP_DIR:-/backups" in (REPO / "deploy/backup/vaka-backup.sh").read_text()
    # postgres_exporter's role: created by the init with its own secret, pg_monitor only
    init = (REPO / "deploy/timescaledb/vaka-init.sh").read_text()
    assert "CREATE ROLE vaka_monitor LOGIN" in init
    assert "IN ROLE pg_monitor" in init
    assert services["postgres-exporter"]["environment"]["DATA_SOURCE_USER"] == "vaka_monitor"
