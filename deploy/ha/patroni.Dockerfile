# PostgreSQL with TimescaleDB and Patroni, for the high-availability profile (docs/ha.md): the compose stack's
# TimescaleDB image with Patroni from PyPI beside it. Patroni runs as the postgres user and starts PostgreSQL itself
# (the image's own entrypoint, which would initdb on its own, is not used). The tests run Debian's Patroni 3.0.2 with
# deploy/ha/patroni.yml; the file is read the same by 3.x and 4.x.
ARG TIMESCALEDB_IMAGE
FROM ${TIMESCALEDB_IMAGE}
ARG PATRONI_VERSION=4.0.4
RUN apk add --no-cache python3 py3-pip py3-psycopg2 py3-yaml \
    && pip install --no-cache-dir --break-system-packages "patroni[etcd3]==${PATRONI_VERSION}"
USER postgres
ENTRYPOINT []
CMD ["patroni", "/etc/patroni/patroni.yml"]
