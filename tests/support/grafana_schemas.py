"""The schemas netmgr's Grafana objects are validated against.

- Dashboards: JSON Schemas generated from the TypeScript types of the npm package
  @grafana/schema (type ``Dashboard``, and ``Options`` of each panel plugin used)
  with ts-json-schema-generator, both pinned in tools/grafana-schema/package-lock.json
  and installed by scripts/setup (``npm ci``).
- Alert rules: tools/grafana-schema/alerting/*.schema.json, written from Grafana's
  documented API model (ProvisionedAlertRule) and file provisioning model
  (AlertRuleGroupV1); each file says where it comes from in its ``$comment``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import referencing

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / "tools" / "grafana-schema"
ALERTING = TOOLS / "alerting"


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def api_rule_validator() -> jsonschema.Draft7Validator:
    """Validator of one ProvisionedAlertRule (the provisioning HTTP API's body)."""
    schema = _load(ALERTING / "provisioned-alert-rule.schema.json")
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def file_validator() -> jsonschema.Draft7Validator:
    """Validator of an alerting file-provisioning document (apiVersion 1, groups)."""
    api = _load(ALERTING / "provisioned-alert-rule.schema.json")
    schema = _load(ALERTING / "file-provisioning.schema.json")
    jsonschema.Draft7Validator.check_schema(schema)
    registry = referencing.Registry().with_resource(
        "provisioned-alert-rule.schema.json", referencing.Resource.from_contents(api))
    return jsonschema.Draft7Validator(schema, registry=registry)


def rule_problems(rule: dict[str, Any], validator: jsonschema.Draft7Validator | None = None) -> list[str]:
    """Every schema error of ``rule``, plus the cross-field checks Grafana makes in code."""
    v = validator or api_rule_validator()
    problems = [f"{'/'.join(map(str, e.absolute_path)) or '(rule)'}: {e.message}" for e in v.iter_errors(rule)]
    refs = [q.get("refId") for q in rule.get("data") or [] if isinstance(q, dict)]
    if len(refs) != len(set(refs)):
        problems.append(f"data: refIds are not unique: {refs}")
    if rule.get("condition") and rule["condition"] not in refs:
        problems.append(f"condition {rule['condition']!r} is not a refId of data {refs}")
    for q in rule.get("data") or []:
        model = q.get("model") if isinstance(q, dict) else None
        if isinstance(model, dict) and model.get("refId") not in (None, q.get("refId")):
            problems.append(f"data {q.get('refId')}: model.refId {model.get('refId')!r} differs")
        if isinstance(model, dict) and q.get("datasourceUid") == "__expr__":
            for ref in [model.get("expression")] if model.get("type") in ("reduce", "threshold") else []:
                if ref not in refs:
                    problems.append(f"data {q.get('refId')}: expression {ref!r} is not a refId of data")
    return problems


def generate_dashboard_schemas(out: Path) -> dict[str, dict[str, Any]]:
    """Run tools/grafana-schema/generate.cjs into ``out``; return the schemas by name."""
    node = shutil.which("node") or shutil.which("nodejs")
    if not node:
        raise RuntimeError("node is not installed: run scripts/setup (it installs nodejs and npm)")
    if not (TOOLS / "node_modules" / "ts-json-schema-generator").is_dir():
        raise RuntimeError(f"{TOOLS}/node_modules is missing: run scripts/setup (npm ci in {TOOLS})")
    r = subprocess.run([node, str(TOOLS / "generate.cjs"), str(out)], capture_output=True, text=True,
                       timeout=300, check=False)
    if r.returncode != 0:
        raise RuntimeError(f"generate.cjs failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return {p.stem: _load(p) for p in sorted(out.glob("*.json"))}
