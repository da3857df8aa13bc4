// Parse and validate an AsyncAPI document with the AsyncAPI project's own parser; print its diagnostics as JSON.
import { readFile } from "node:fs/promises";
import { Parser } from "@asyncapi/parser";

const path = process.argv[2];
const parser = new Parser();
const { document, diagnostics } = await parser.parse(await readFile(path, "utf8"), { source: path });
const severities = ["error", "warning", "information", "hint"];
const out = diagnostics.map((d) => ({
  severity: severities[d.severity] ?? String(d.severity),
  code: String(d.code),
  message: d.message,
  path: d.path.join("/"),
}));
console.log(JSON.stringify({ valid: document !== undefined, version: document?.version(), diagnostics: out }));
process.exit(document === undefined ? 1 : 0);
