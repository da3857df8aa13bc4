# Vaka: `make run` brings up a demo care unit, `make test` runs every check CI runs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
VAKA := $(BIN)/vaka
SPEED ?= 30
RESIDENTS ?= 12
NIGHTS ?= 7
SITE ?= demo
HTTP_HOST ?= 127.0.0.1
HTTP_PORT ?= 8080
MQTT_HOST ?= 127.0.0.1
MQTT_PORT ?= 1883
MQTT_CLIENT_ID ?= vaka-hub
# the simulator's own client id: two demos on one broker need two (the broker drops a client whose id reconnects)
SIM_CLIENT_ID ?= vaka-simulator
# the simulation's clock, one per site, so two demos on one broker do not move each other's hub clock
CLOCK_TOPIC ?= vaka/v1/_sim/$(SITE)/clock
DEMO_LANG ?= sv
# the demo's own database, dropped and created afresh by every `make run` (and by `make demo-clean`); a database you
# name with VAKA_DB__DSN is yours and is never reset
DEMO_DB ?= vaka
ifeq ($(origin VAKA_DB__DSN),undefined)
export VAKA_DB__DSN := postgresql://postgres@127.0.0.1:5432/$(DEMO_DB)
DEMO_OWNS_DB := 1
endif
export VAKA_HTTP__HOST ?= $(HTTP_HOST)
export VAKA_HTTP__PORT ?= $(HTTP_PORT)
export VAKA_HTTP__PUBLIC_URL ?= http://$(HTTP_HOST):$(HTTP_PORT)
export VAKA_MQTT__HOST ?= $(MQTT_HOST)
export VAKA_MQTT__PORT ?= $(MQTT_PORT)
export VAKA_MQTT__CLIENT_ID ?= $(MQTT_CLIENT_ID)
URL = http://$(VAKA_HTTP__HOST):$(VAKA_HTTP__PORT)
# demo accounts: user, role, password (the password is the user name + "-demo")
DEMO_ACCOUNTS := natt1:staff natt2:staff sjuksk1:nurse ledare1:admin

.PHONY: run demo-clean test test-ha services venv lint typecheck clean i18n-extract lock

# The dependencies exactly as locked (requirements/README.md), every file checked against its hash; then Vaka itself
# with the locked build backend, and nothing else resolved.
$(BIN)/vaka: pyproject.toml requirements/dev.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes -r requirements/dev.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/pip check
	touch $(BIN)/vaka

venv: $(BIN)/vaka

services:
	VAKA_WITH_BROWSER=$(WITH_BROWSER) bash deploy/dev-services.sh

run: services venv
	@$(MAKE) --no-print-directory -f $(firstword $(MAKEFILE_LIST)) demo-clean DEMO_OWNS_DB=$(DEMO_OWNS_DB)
	@if [ -n "$(DEMO_OWNS_DB)" ]; then echo "A fresh demo: a new database '$(DEMO_DB)'; the last run's alarms are gone"; \
		psql -h 127.0.0.1 -U postgres -d postgres -q -v ON_ERROR_STOP=1 -c 'CREATE DATABASE "$(DEMO_DB)"'; fi
	mkdir -p var
	$(VAKA) simulate --inventory var/inventory.yaml --directory var/directory.csv --write-only \
		--residents $(RESIDENTS) --seed 7 --site $(SITE) --nights $(NIGHTS) --speed $(SPEED)
	$(VAKA) migrate
	$(VAKA) site load var/inventory.yaml
	# a fictional resident directory (names, homes, how to get in): staff on the way see it, as in a real unit
	$(VAKA) resident import-csv var/directory.csv
	for account in $(DEMO_ACCOUNTS); do user=$${account%%:*}; role=$${account##*:}; \
		add="$(VAKA) staff add $$user --role $$role --unit $(SITE)/* --lang $(DEMO_LANG) --password-stdin"; \
		echo $$user-demo | $$add >/dev/null 2>&1 || echo $$user-demo | $$add --update || exit 1; done
	# the nurse and the lead are on call for the whole demo (a roster); the night staff go on duty by signing in
	$(VAKA) staff duty sjuksk1 on --hours $$(( $(NIGHTS) * 24 + 24 ))
	$(VAKA) staff duty ledare1 on --hours $$(( $(NIGHTS) * 24 + 24 ))
	VAKA_CLOCK__MODE=simulated VAKA_CLOCK__TOPIC=$(CLOCK_TOPIC) VAKA_HTTP__COOKIE_SECURE=false $(VAKA) serve > var/hub.log 2>&1 & echo $$! > var/hub.pid; \
	trap 'kill $$(cat var/hub.pid) 2>/dev/null; wait; echo; echo "The demo hub stopped. make run starts a fresh one; make demo-clean removes its data."' EXIT; \
	trap 'exit 130' INT TERM; \
	for i in $$(seq 1 60); do curl -sf $(URL)/healthz >/dev/null && break; sleep 0.5; done; \
	curl -sf $(URL)/healthz >/dev/null || { echo "the hub did not come up on $(URL): see var/hub.log"; exit 1; }; \
	wall=$$(awk 'BEGIN { s = $(SPEED); w = s > 0 ? (($(NIGHTS) - 1) * 86400 + 52200) / s : 0; \
		if (s <= 0) print "as fast as it can publish"; else if (w < 120) printf "about %d s of wall time", w; \
		else if (w < 7200) printf "about %d min of wall time", w / 60 + 0.5; \
		else printf "about %d h %d min of wall time", w / 3600, (w - int(w / 3600) * 3600) / 60 }'); \
	echo; echo "Vaka is up: open $(URL)/ and log in as natt1 / natt1-demo"; \
	echo "also: natt2 / natt2-demo (staff), sjuksk1 / sjuksk1-demo (nurse), ledare1 / ledare1-demo (lead)"; \
	echo "metrics: $(URL)/metrics  readiness: $(URL)/readyz  hub log: var/hub.log"; \
	echo "ground truth of the simulated incidents: var/truth.jsonl"; \
	echo "$(NIGHTS) simulated night(s), 20:00 to 10:30, at $(SPEED)x speed: $$wall;"; \
	echo "then the hub stays up with what the nights left (open alarms, the night log) until you press Ctrl-C."; echo; \
	$(VAKA) simulate --residents $(RESIDENTS) --seed 7 --site $(SITE) --host $(MQTT_HOST) --port $(MQTT_PORT) \
		--client-id $(SIM_CLIENT_ID) --clock-topic $(CLOCK_TOPIC) --speed $(SPEED) --nights $(NIGHTS) --truth var/truth.jsonl || exit $$?; \
	echo; echo "The simulated nights are over. The hub stays up at $(URL)/ until you press Ctrl-C."; \
	wait $$(cat var/hub.pid)

# The demo's data: its database (unless VAKA_DB__DSN names your own) and var/ (hub log, spool, snapshots, truth).
demo-clean:
	@if [ -f var/hub.pid ] && kill -0 $$(cat var/hub.pid) 2>/dev/null; then kill $$(cat var/hub.pid); sleep 1; fi
	rm -rf var
ifneq ($(DEMO_OWNS_DB),)
	@echo "demo data removed: var/ and database '$(DEMO_DB)' (its alarms, accounts, directory and logs)"
	@psql -h 127.0.0.1 -U postgres -d postgres -q -v ON_ERROR_STOP=1 -c 'DROP DATABASE IF EXISTS "$(DEMO_DB)" WITH (FORCE)'
else
	@echo "VAKA_DB__DSN names your own database: the demo does not reset it"
endif

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

test: WITH_BROWSER=1
test: services venv lint typecheck
	$(BIN)/pytest -q

# The high-availability tier (docs/ha.md): vaka serve on a 3-node RabbitMQ cluster and on a Patroni PostgreSQL
# cluster, nodes killed under load; two hubs sharing sites by lease, the owner killed, stopped past its lease, the
# database away; a device behind HAProxy; the compose profile's files.
test-ha: venv
	$(BIN)/pytest -q -s tests/hub/test_ha_cluster.py tests/hub/test_ha_takeover.py tests/hub/test_ha_takeover_cluster.py \
		tests/hub/test_ha_haproxy.py tests/hub/test_ha_database.py tests/hub/store/test_failover.py \
		tests/hub/scaip/test_second_receiver.py tests/deploy/test_compose_ha.py

# everything `make run` and `make venv` made, the demo database included
clean:
	-@$(MAKE) --no-print-directory -f $(firstword $(MAKEFILE_LIST)) demo-clean DEMO_OWNS_DB=$(DEMO_OWNS_DB)
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache

# Re-extract the web pages' message ids (templates, hub/web/*.py) and merge them into every .po (docs/i18n.md).
LOCALE := hub/texts/locale
i18n-extract: venv
	$(BIN)/pybabel extract -F babel.cfg -k t --no-location --sort-output --project=Vaka --msgid-bugs-address= \
		-o $(LOCALE)/messages.pot .
	$(BIN)/pybabel update -i $(LOCALE)/messages.pot -d $(LOCALE) -D messages --no-fuzzy-matching \
		--ignore-pot-creation-date

# Re-make the lock files from pyproject.toml and requirements/build.in with uv (requirements/README.md). Pins already in
# a lock file are kept; bump with UPGRADE=--upgrade (everything) or UPGRADE='--upgrade-package aiohttp'.
UV ?= uv
UPGRADE ?=
LOCK = $(UV) pip compile --universal --python-version 3.11 --generate-hashes --quiet --no-config \
	--custom-compile-command 'make lock' $(UPGRADE)
lock:
	$(LOCK) pyproject.toml -o requirements/hub.lock
	$(LOCK) requirements/build.in -o requirements/build.lock
	$(LOCK) pyproject.toml requirements/build.in --extra dev -o requirements/dev.lock
