"""The compose file's high-availability profile (`docker compose --profile ha`, docs/ha.md), checked without a Docker
engine: the two profiles apart, the configuration files it mounts the very ones the HA tests run, and the names the
parts use for each other (HAProxy's servers, the RabbitMQ peer list, etcd's members, Patroni's nodes, the hubs'
node lists) agreeing with the services that carry them."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.broker_cluster import DEPLOYED_HAPROXY, DEPLOYED_RABBITMQ
from tests.db_cluster import DEPLOYED_PATRONI, VAKA_INIT
from tests.deploy.test_compose import COMPOSE, REPO, env_example, hub_settings, interpolate

RABBITS = ["rabbit1", "rabbit2", "rabbit3"]
ETCDS = ["etcd1", "etcd2", "etcd3"]
PGS = ["pg1", "pg2", "pg3"]
HUBS = ["hub-a", "hub-b"]
HA = {*RABBITS, *ETCDS, *PGS, *HUBS, "haproxy"}


@pytest.fixture(scope="module")
def stack() -> dict[str, Any]:
    """docker-compose.yml as compose reads it with .env.example."""
    loaded = yaml.safe_load(interpolate(COMPOSE.read_text(), env_example()))
    assert isinstance(loaded, dict)
    return loaded


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path → source of each volume of a service."""
    return {v.split(":")[1]: v.split(":")[0] for v in service.get("volumes", [])}


def test_the_profiles_are_apart_and_the_single_node_stack_is_the_default(stack: dict[str, Any]) -> None:
    services = stack["services"]
    profiles = {name: service.get("profiles") for name, service in services.items()}
    assert {name for name, p in profiles.items() if p == ["ha"]} == HA
    single = {name for name, p in profiles.items() if p == ["single"]}
    assert single == services.keys() - HA, "every service belongs to one profile"
    assert {"hub", "timescaledb", "mosquitto", "prometheus", "grafana"} <= single
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert profiles[dependency] == profiles[name], f"{name} depends on {dependency} of another profile"
    # `docker compose up` with .env from .env.example starts the single-node stack, as before the profiles
    assert env_example()["COMPOSE_PROFILES"] == "single"


def test_the_ha_profile_mounts_the_files_the_ha_tests_run(stack: dict[str, Any]) -> None:
    services = stack["services"]
    for name in RABBITS:
        files = mounts(services[name])
        assert REPO / files["/etc/rabbitmq/rabbitmq.conf"] == DEPLOYED_RABBITMQ
        assert REPO / files["/etc/rabbitmq/enabled_plugins"] == DEPLOYED_RABBITMQ.with_name("enabled_plugins")
        assert files["/var/lib/rabbitmq"] in stack["volumes"]
    assert REPO / mounts(services["haproxy"])["/usr/local/etc/haproxy/haproxy.cfg"] == DEPLOYED_HAPROXY
    for name in PGS:
        files = mounts(services[name])
        assert REPO / files["/etc/patroni/patroni.yml"] == DEPLOYED_PATRONI
        # Patroni's post_bootstrap, where patroni.yml names it, and the single-node stack's init it runs
        assert files[yaml.safe_load(DEPLOYED_PATRONI.read_text())["bootstrap"]["post_bootstrap"]] == (
            "./deploy/ha/post-bootstrap.sh"
        )
        assert REPO / files["/usr/local/share/vaka/vaka-init.sh"] == VAKA_INIT
        assert {"db_owner_password", "db_hub_password"} <= set(services[name]["secrets"])
        assert files["/var/lib/postgresql/data"] in stack["volumes"]
        assert (REPO / services[name]["build"]["dockerfile"]).exists()
    for path in (DEPLOYED_RABBITMQ, DEPLOYED_HAPROXY, DEPLOYED_PATRONI):
        assert path.exists()
    assert "[rabbitmq_mqtt]." in DEPLOYED_RABBITMQ.with_name("enabled_plugins").read_text()


def test_the_parts_name_each_other_as_compose_names_them(stack: dict[str, Any]) -> None:
    services = stack["services"]
    # HAProxy's servers are the RabbitMQ services, on their MQTT listeners
    servers = re.findall(r"^\s*server (\S+) (\S+)", DEPLOYED_HAPROXY.read_text(), re.M)
    assert sorted({name for name, _ in servers}) == RABBITS
    assert {addr for _, addr in servers} == {f"{r}:{port}" for r in RABBITS for port in (1883, 8883)}
    assert [services[r]["hostname"] for r in RABBITS] == RABBITS  # RabbitMQ's node names follow the host name
    peers = re.findall(
        r"^cluster_formation\.classic_config\.nodes\.\d+ = rabbit@(\S+)$", DEPLOYED_RABBITMQ.read_text(), re.M
    )
    assert peers == RABBITS
    # etcd's members, and where Patroni looks for them
    for name in ETCDS:
        command = services[name]["command"]
        assert f"--name={name}" in command
        assert f"--advertise-client-urls=http://{name}:2379" in command
        cluster = next(c for c in command if c.startswith("--initial-cluster="))
        assert cluster == "--initial-cluster=" + ",".join(f"{e}=http://{e}:2380" for e in ETCDS)
    patroni = yaml.safe_load(DEPLOYED_PATRONI.read_text())
    assert patroni["etcd3"]["hosts"] == ",".join(f"{e}:2379" for e in ETCDS)
    assert patroni["bootstrap"]["dcs"]["synchronous_mode"] is True
    for name in PGS:
        env = services[name]["environment"]
        assert env["PATRONI_NAME"] == name
        assert env["PATRONI_POSTGRESQL_CONNECT_ADDRESS"] == f"{name}:5432"
        assert env["PATRONI_RESTAPI_CONNECT_ADDRESS"] == f"{name}:8008"
        assert env["PATRONI_ETCD3_HOSTS"] == patroni["etcd3"]["hosts"]
        assert set(services[name]["depends_on"]) == set(ETCDS)


def test_each_hub_knows_every_node_and_has_a_session_and_a_scaip_address_of_its_own(
    stack: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    services = stack["services"]
    client_ids, hub_ids, scaip_ports, volumes = set(), set(), set(), set()
    for name in HUBS:
        settings = hub_settings(stack, name, monkeypatch, tmp_path)
        dsn = settings.db.dsn.get_secret_value()
        assert dsn == (
            "postgresql://vaka_hub@" + ",".join(f"{pg}:5432" for pg in PGS) + "/vaka?target_session_attrs=read-write"
        )
        assert services[name]["environment"]["VAKA_OWNER_DSN"].endswith("?target_session_attrs=read-write")
        assert settings.mqtt.protocol == "3.1.1"
        assert settings.mqtt.hosts == [f"{r}:8883" for r in RABBITS]
        assert settings.mqtt.tls
        assert settings.scaip.enabled
        assert set(services[name]["depends_on"]) == set(RABBITS)
        assert settings.ha.enabled  # the sites shared by lease (slice 2), one hub id each
        hub_ids.add(settings.ha.hub_id)
        client_ids.add(settings.mqtt.client_id)
        scaip_ports |= {p.split(":")[-2] for p in services[name]["ports"] if p.endswith("/udp")}
        volumes.add(mounts(services[name])["/var/lib/vaka"])
    assert len(client_ids) == len(HUBS), "two hubs with one client id would take each other's session"
    assert len(scaip_ports) == len(HUBS), "the SCAIP senders' second receiver needs an address of its own"
    assert len(volumes) == len(HUBS)
    assert len(hub_ids) == len(HUBS), "two hubs with one hub id would hold each other's leases"


def _compose_cli() -> list[str] | None:
    """`docker compose` (or `docker-compose`) when this machine has it; the engine itself is not needed."""
    for cmd in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(cmd[0]) and subprocess.run([*cmd, "version"], capture_output=True).returncode == 0:
            return cmd
    return None


@pytest.mark.skipif(_compose_cli() is None, reason="no docker compose CLI on this machine")
def test_docker_compose_reads_the_ha_profile(tmp_path: Path) -> None:
    cli = _compose_cli()
    assert cli is not None
    (tmp_path / ".env").write_text((REPO / ".env.example").read_text())
    files = ["--project-directory", str(REPO), "--env-file", str(tmp_path / ".env"), "-f", str(COMPOSE)]
    done = subprocess.run(
        [*cli, *files, "--profile", "ha", "config", "--services"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert set(done.stdout.split()) >= HA
