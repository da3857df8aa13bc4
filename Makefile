# Vaka: `make run` brings up a demo care unit, `make test` runs every check CI runs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
VAKA := $(BIN)/vaka
SPEED ?= 30
RESIDENTS ?= 12
export VAKA_DB__DSN ?= postgresql://postgres@127.0.0.1:5432/vaka

.PHONY: run test services venv lint typecheck clean i18n-extract

$(BIN)/vaka: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(BIN)/vaka

venv: $(BIN)/vaka

services:
	VAKA_WITH_BROWSER=$(WITH_BROWSER) bash deploy/dev-services.sh

run: services venv
	mkdir -p var
	$(VAKA) simulate --inventory var/inventory.yaml --write-only --residents $(RESIDENTS) --seed 7
	$(VAKA) migrate
	$(VAKA) site load var/inventory.yaml
	echo natt1-demo | $(VAKA) staff add natt1 --role staff --unit 'demo/*' --lang en --password-stdin \
		|| echo natt1-demo | $(VAKA) staff add natt1 --role staff --unit 'demo/*' --lang en --password-stdin --update
	VAKA_CLOCK__MODE=simulated VAKA_HTTP__COOKIE_SECURE=false $(VAKA) serve > var/hub.log 2>&1 & echo $$! > var/hub.pid; \
	trap 'kill $$(cat var/hub.pid) 2>/dev/null; wait' EXIT INT TERM; \
	for i in $$(seq 1 60); do curl -sf http://127.0.0.1:8080/healthz >/dev/null && break; sleep 0.5; done; \
	echo; echo "Vaka is up: open http://127.0.0.1:8080/ and log in as natt1 / natt1-demo (Ctrl-C stops)"; \
	echo "metrics: http://127.0.0.1:8080/metrics  readiness: http://127.0.0.1:8080/readyz  hub log: var/hub.log"; \
	echo "ground truth of the simulated incidents: var/truth.jsonl"; echo; \
	$(VAKA) simulate --residents $(RESIDENTS) --seed 7 --speed $(SPEED) --nights 7 --truth var/truth.jsonl

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

test: WITH_BROWSER=1
test: services venv lint typecheck
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache

# Re-extract the web pages' message ids (templates, hub/web/*.py) and merge them into every .po (docs/i18n.md).
LOCALE := hub/web/locale
i18n-extract: venv
	$(BIN)/pybabel extract -F babel.cfg -k t --no-location --sort-output --project=Vaka --msgid-bugs-address= \
		-o $(LOCALE)/messages.pot .
	$(BIN)/pybabel update -i $(LOCALE)/messages.pot -d $(LOCALE) -D messages --no-fuzzy-matching \
		--ignore-pot-creation-date
