# The Vaka hub as a container image, built from pyproject.toml (docker compose builds it; docs/operations.md).
# Two stages: the first builds wheels for Vaka and every dependency; the second installs them offline, so nothing is
# downloaded when the container runs. The hub runs as an unprivileged user; migrations run at start as the owner
# role, then `vaka serve` as the runtime role (deploy/docker/entrypoint.sh).
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY hub ./hub
COPY adapters ./adapters
COPY alarms ./alarms
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    VAKA_HTTP__HOST=0.0.0.0 \
    VAKA_HTTP__PORT=8080 \
    VAKA_SPOOL__DIRECTORY=/var/lib/vaka/spool
RUN groupadd --system --gid 10001 vaka \
    && useradd --system --uid 10001 --gid vaka --home-dir /var/lib/vaka --shell /usr/sbin/nologin vaka \
    && install -d -o vaka -g vaka -m 0750 /var/lib/vaka /var/lib/vaka/spool
COPY --from=build /wheels /tmp/wheels
RUN pip install --no-cache-dir --no-index --find-links /tmp/wheels vaka && rm -rf /tmp/wheels
COPY --chmod=0755 deploy/docker/entrypoint.sh /usr/local/bin/vaka-entrypoint
USER vaka:vaka
WORKDIR /var/lib/vaka
VOLUME ["/var/lib/vaka"]
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["vaka-entrypoint"]
CMD ["serve"]
