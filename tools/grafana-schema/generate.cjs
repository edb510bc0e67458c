#!/usr/bin/env node
// Generates JSON Schemas from the TypeScript types of @grafana/schema (pinned in
// package.json / package-lock.json) with ts-json-schema-generator.
//
//   node generate.cjs OUTDIR
//
// writes OUTDIR/dashboard.json (type Dashboard of the classic JSON model that
// /api/dashboards/db and file provisioning load) and OUTDIR/panel-<type>.json
// (type Options of each panel plugin's panelcfg) for the panel types netmgr uses.
// tests/integration/test_grafana_schema.py runs it and validates every dashboard.
"use strict";
const fs = require("fs");
const path = require("path");
const { createGenerator } = require("ts-json-schema-generator");

const types = path.join(__dirname, "node_modules", "@grafana", "schema", "dist", "types");
const targets = [
  ["dashboard", path.join(types, "raw", "dashboard", "x", "types.gen.d.ts"), "Dashboard"],
];
for (const panel of ["stat", "timeseries", "table", "geomap"]) {
  targets.push([`panel-${panel}`, path.join(types, "raw", "composable", panel, "panelcfg", "x", "types.gen.d.ts"),
                "Options"]);
}

const out = process.argv[2];
if (!out) {
  console.error("usage: node generate.cjs OUTDIR");
  process.exit(2);
}
fs.mkdirSync(out, { recursive: true });
const version = require(path.join(__dirname, "node_modules", "@grafana", "schema", "package.json")).version;
for (const [name, file, type] of targets) {
  const schema = createGenerator({
    path: file,
    type,
    tsconfig: path.join(__dirname, "tsconfig.json"),
    skipTypeCheck: true,
    additionalProperties: false,
    expose: name === "dashboard" ? "export" : "none",
    topRef: true,
  }).createSchema(type);
  schema.$comment = `generated from @grafana/schema ${version}, type ${type} of ${path.relative(types, file)}`;
  fs.writeFileSync(path.join(out, `${name}.json`), JSON.stringify(schema, null, 2) + "\n");
  console.log(`${name}.json: ${type} from @grafana/schema ${version}`);
}
