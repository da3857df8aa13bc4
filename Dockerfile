# The Vaka hub as a container image, built from pyproject.toml and its lock files (docker compose builds it;
# docs/operations.md). Two stages: the first downloads every dependency exactly as requirements/hub.lock pins it,
# each file checked against its hash, and builds Vaka's own wheel with the locked build backend
# (requirements/build.lock); the second installs those wheels offline and nothing else, so nothing is resolved or
# downloaded when the container runs. The base image is PYTHON_IMAGE: an exact version, pinned by digest in .env
# (deploy/pin-images.sh; docs/operations.md, "Pinned versions"). The hub runs as an unprivileged user; migrations
# run at start as the owner role, then `vaka serve` as the runtime role (deploy/docker/entrypoint.sh).
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm
FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY requirements/hub.lock requirements/build.lock ./requirements/
RUN pip install --no-cache-dir --require-hashes -r requirements/build.lock \
    && pip wheel --no-cache-dir --require-hashes --wheel-dir /wheels -r requirements/hub.lock
COPY pyproject.toml README.md ./
COPY hub ./hub
COPY adapters ./adapters
COPY alarms ./alarms
RUN pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    VAKA_HTTP__HOST=0.0.0.0 \
    VAKA_HTTP__PORT=8080 \
    VAKA_SPOOL__DIRECTORY=/var/lib/vaka/spool
RUN groupadd --system --gid 10001 vaka \
    && useradd --system --uid 10001 --gid vaka --home-dir /var/lib/vaka --shell /usr/sbin/nologin vaka \
    && install -d -o vaka -g vaka -m 0750 /var/lib/vaka /var/lib/vaka/spool
COPY --from=build /wheels /tmp/wheels
RUN pip install --no-cache-dir --no-index --no-deps /tmp/wheels/*.whl \
    && pip check \
    && rm -rf /tmp/wheels
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
