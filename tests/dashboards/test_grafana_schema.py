"""The committed dashboards against Grafana's published JSON schemas (no Grafana can be installed here: Debian has
no package, and only Python, Debian and npm packages can be fetched).

The schemas are the ones grafana-foundation-sdk publishes from Grafana's own CUE kinds, for the Grafana the
dashboards are built for (the SDK's release branch `v11.6.x+cog-v0.0.x`, folder `jsonschema/`; the compose file
runs Grafana 11.6). They are not copied into this repository: VAKA_GRAFANA_SCHEMA_DIR names a folder holding
dashboard, timeseries, stat, table and prometheus `.jsonschema.json` (docs/operations.md, "Dashboards").

Checked: every dashboard against the dashboard kind (no unknown or mistyped field, rows and panels, variables,
time, links); every panel's `options` and `fieldConfig.defaults.custom` against its plugin's schema (unknown or
mistyped options; a missing one is not an error, Grafana fills in the plugin's default); every Prometheus target
against the Prometheus data query. Not covered: the PostgreSQL data source's targets (Grafana
publishes no schema for them; the night test runs their SQL instead), whether Grafana's schema migration of
`schemaVersion` changes anything on load, provisioning itself, and rendering.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jsonschema
import pytest

REPO = Path(__file__).resolve().parents[2]
JSON_DIR = REPO / "dashboards" / "json"
SCHEMA_DIR = Path(os.environ.get("VAKA_GRAFANA_SCHEMA_DIR", "/nonexistent"))

pytestmark = pytest.mark.skipif(
    not (SCHEMA_DIR / "dashboard.jsonschema.json").is_file(),
    reason="VAKA_GRAFANA_SCHEMA_DIR does not hold Grafana's dashboard.jsonschema.json (grafana-foundation-sdk, "
    "branch v11.6.x+cog-v0.0.x, folder jsonschema/): nothing to validate against",
)


# A panel plugin's schema marks every option that has a default as required: Grafana merges the plugin's defaults
# into a panel's options when it loads it, so a missing option is fine and only unknown or mistyped ones are errors.
WithDefaults = jsonschema.validators.extend(jsonschema.Draft7Validator, {"required": lambda *_: iter(())})


def validator(kind: str, definition: str | None = None, *, defaults: bool = False) -> jsonschema.Draft7Validator:
    schema: dict[str, Any] = json.loads((SCHEMA_DIR / f"{kind}.jsonschema.json").read_text())
    if definition is not None:
        schema = {**schema, "$ref": f"#/definitions/{definition}"}
    jsonschema.Draft7Validator.check_schema(schema)
    return WithDefaults(schema) if defaults else jsonschema.Draft7Validator(schema)


def dashboards() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text()) for p in sorted(JSON_DIR.glob("*.json"))}


def problems(check: jsonschema.Draft7Validator, instance: Any, where: str) -> list[str]:
    return [f"{where}: {'/'.join(map(str, e.absolute_path))}: {e.message}" for e in check.iter_errors(instance)]


def test_every_dashboard_is_a_valid_grafana_dashboard() -> None:
    check = validator("dashboard")
    found = [p for name, board in dashboards().items() for p in problems(check, board, name)]
    assert not found, "\n".join(found)


def test_every_panel_and_prometheus_query_is_valid_for_its_plugin() -> None:
    plugins = {kind: validator(kind, "Options", defaults=True) for kind in ("timeseries", "stat", "table")}
    custom = {kind: validator(kind, "FieldConfig", defaults=True) for kind in ("timeseries", "table")}
    query = validator("prometheus")
    found: list[str] = []
    checked = 0
    for name, board in dashboards().items():
        for panel in board["panels"]:
            if panel["type"] == "row":
                continue
            where = f"{name}: {panel['title']}"
            assert panel["type"] in plugins, f"{where}: no schema for panel type {panel['type']}"
            found += problems(plugins[panel["type"]], panel.get("options", {}), where + " options")
            if panel["type"] in custom:
                defaults = panel.get("fieldConfig", {}).get("defaults", {})
                found += problems(custom[panel["type"]], defaults.get("custom", {}), where + " custom")
            for target in panel["targets"]:
                if target.get("datasource", panel["datasource"])["type"] == "prometheus":
                    found += problems(query, target, f"{where} [{target['refId']}]")
                    checked += 1
    assert checked > 50
    assert not found, "\n".join(found)


def test_the_schemas_catch_mistakes() -> None:
    board = dashboards()["alarm-path.json"]
    board["graphTooltip"] = 7
    assert problems(validator("dashboard"), board, "broken")
    panel = next(p for p in board["panels"] if p["type"] == "timeseries")
    assert problems(validator("timeseries", "Options", defaults=True), {"legend": {"showLegend": "yes"}}, "broken")
    target = {**panel["targets"][0], "instant": "no"}
    assert problems(validator("prometheus"), target, "broken")
