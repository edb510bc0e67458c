"""Every dashboard validates against Grafana's dashboard schema, generated here from the
TypeScript types of @grafana/schema with ts-json-schema-generator (tools/grafana-schema)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest
from support.grafana_schemas import TOOLS, generate_dashboard_schemas

from netmgr.grafana.provisioning import all_dashboards

DASHBOARDS = all_dashboards()


@pytest.fixture(scope="module")
def schemas(tmp_path_factory):
    return generate_dashboard_schemas(tmp_path_factory.mktemp("grafana-schema"))


def _errors(validator: jsonschema.Draft7Validator, doc) -> list[str]:
    """One line per error; for "not valid under any of" (a panel or a row?) its deepest cause."""
    out = []
    for e in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path))):
        if e.context:
            e = max(e.context, key=lambda c: len(c.absolute_path))
        out.append(f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message[:300]}")
    return out


def _panels(items):
    for p in items:
        if p["type"] == "row":
            yield from _panels(p.get("panels") or [])
        else:
            yield p


def test_the_schema_comes_from_the_pinned_grafana_schema_package(schemas):
    lock = json.loads((TOOLS / "package-lock.json").read_text(encoding="utf-8"))
    pinned = lock["packages"]["node_modules/@grafana/schema"]["version"]
    assert f"@grafana/schema {pinned}, type Dashboard" in schemas["dashboard"]["$comment"]
    dashboard = schemas["dashboard"]["definitions"]["Dashboard"]
    assert dashboard["additionalProperties"] is False and "panels" in dashboard["properties"]
    assert set(schemas) == {"dashboard", "panel-geomap", "panel-stat", "panel-table", "panel-timeseries"}


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_dashboard_validates_against_grafanas_dashboard_schema(schemas, name):
    validator = jsonschema.Draft7Validator(schemas["dashboard"])
    assert _errors(validator, DASHBOARDS[name]) == []


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_panel_options_validate_against_their_plugins_schema(schemas, name):
    for panel in _panels(DASHBOARDS[name]["panels"]):
        schema = schemas.get(f"panel-{panel['type']}")
        assert schema is not None, f"{panel['title']}: no schema for panel type {panel['type']}"
        assert _errors(jsonschema.Draft7Validator(schema), panel["options"]) == [], panel["title"]


def test_the_schemas_catch_mistakes(schemas):
    validator = jsonschema.Draft7Validator(schemas["dashboard"])
    d = copy.deepcopy(DASHBOARDS["ap-detail"])
    d["refersh"] = "1m"  # a typo
    d["panels"][1]["gridPos"]["w"] = "12"  # a string where Grafana wants a number
    del d["schemaVersion"]
    errors = _errors(validator, d)
    assert any("'refersh' was unexpected" in e for e in errors)
    assert any("'schemaVersion' is a required property" in e for e in errors)
    assert "panels/1/gridPos/w: '12' is not of type 'number'" in errors
    stat = copy.deepcopy(next(p for p in _panels(DASHBOARDS["ap-detail"]["panels"]) if p["type"] == "stat"))
    stat["options"]["colorMode"] = "rainbow"
    assert _errors(jsonschema.Draft7Validator(schemas["panel-stat"]), stat["options"])


def test_the_committed_files_are_the_validated_ones():
    committed = Path(__file__).resolve().parents[2] / "dashboards"
    for name, model in DASHBOARDS.items():
        assert json.loads((committed / f"{name}.json").read_text(encoding="utf-8")) == model, name
