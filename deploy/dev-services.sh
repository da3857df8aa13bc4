#!/usr/bin/env bash
# Local development services for Vaka: PostgreSQL and Mosquitto, installed with apt-get when missing and started
# when stopped, plus Debian's chromium for the browser tests. Idempotent; safe to run again.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

need_apt=()
command -v psql >/dev/null 2>&1 && ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need_apt+=(postgresql)
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto)
if [ "${VAKA_WITH_BROWSER:-0}" = "1" ] && ! [ -x /usr/bin/chromium ]; then need_apt+=(chromium); fi
# the test suite's real peers: sipp for SCAIP, prometheus/promtool and amtool for the alert rules and dashboards,
# the node, postgres and blackbox exporters for the dashboards' operations panels
if [ "${VAKA_WITH_BROWSER:-0}" = "1" ]; then
    command -v sipp >/dev/null 2>&1 || need_apt+=(sip-tester)
    command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
    command -v amtool >/dev/null 2>&1 || need_apt+=(prometheus-alertmanager)
    command -v prometheus-node-exporter >/dev/null 2>&1 || need_apt+=(prometheus-node-exporter)
    command -v prometheus-postgres-exporter >/dev/null 2>&1 || need_apt+=(prometheus-postgres-exporter)
    command -v prometheus-blackbox-exporter >/dev/null 2>&1 || need_apt+=(prometheus-blackbox-exporter)
    command -v npm >/dev/null 2>&1 || need_apt+=(npm)
    # the high-availability tier (docs/ha.md): a RabbitMQ cluster with its MQTT plugin, HAProxy in front of it, and
    # PostgreSQL managed by Patroni with etcd; the tests start private instances and never these packages' services
    [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || need_apt+=(rabbitmq-server)
    [ -x /usr/sbin/haproxy ] || need_apt+=(haproxy)
    [ -x /usr/bin/patroni ] || need_apt+=(patroni)
    [ -x /usr/bin/etcd ] || need_apt+=(etcd-server)
    command -v etcdctl >/dev/null 2>&1 || need_apt+=(etcd-client)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "dev-services: installing ${need_apt[*]} with apt-get"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" python3-venv >/dev/null
fi

# PostgreSQL on 127.0.0.1:5432
if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
    version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -1)
    echo "dev-services: starting PostgreSQL $version"
    $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null || $SUDO pg_ctlcluster "$version" main start
    for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 0.5; done
fi
pg_isready -h 127.0.0.1 -p 5432 -q || { echo "dev-services: PostgreSQL does not answer on 127.0.0.1:5432"; exit 1; }
# the demo database; trust or peer auth for the postgres user is assumed on a development machine
if ! psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='vaka'" 2>/dev/null | grep -q 1; then
    psql -h 127.0.0.1 -U postgres -c "CREATE DATABASE vaka" >/dev/null 2>&1 \
        || $SUDO -u postgres psql -c "CREATE DATABASE vaka" >/dev/null
fi
if ! psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='test'" 2>/dev/null | grep -q 1; then
    psql -h 127.0.0.1 -U postgres -c "CREATE DATABASE test" >/dev/null 2>&1 \
        || $SUDO -u postgres psql -c "CREATE DATABASE test" >/dev/null
fi

# Mosquitto on 127.0.0.1:1883
if ! (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null; then
    echo "dev-services: starting Mosquitto"
    $SUDO mosquitto -d -c /etc/mosquitto/mosquitto.conf
    for _ in $(seq 1 30); do (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null && break; sleep 0.2; done
fi
(exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null || { echo "dev-services: Mosquitto does not answer on 127.0.0.1:1883"; exit 1; }
echo "dev-services: PostgreSQL and Mosquitto are up"
