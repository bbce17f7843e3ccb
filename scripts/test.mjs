#!/usr/bin/env node
// `npm test`: every test/**/*.test.ts through node's test runner with tsx's loader.
// (Node 20's --test does not expand globs, so the files are listed here.)
// Extra arguments select files by substring: `npm test -- safetensors generate`.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { withMallocEnv } from "./malloc-env.mjs";

function find(dir) {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? find(p) : e.name.endsWith(".test.ts") ? [p] : [];
  });
}

// The end-to-end tests compare against ../shared (models, data, reference outputs); without it
// they would all fail on their first file access, so say why once, up front. Nothing skips.
const shared = path.resolve(import.meta.dirname, "..", "..", "shared");
if (!fs.existsSync(path.join(shared, "models", "stories260K", "config.json"))) {
  console.error(`npm test: ${shared} is missing: the tests need the shared folder (models/stories260K, data, reference) beside the repository`);
  process.exit(1);
}

const filters = process.argv.slice(2);
const files = find("test")
  .filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)))
  .sort();
if (files.length === 0) {
  console.error(`no test files match ${filters.join(" ")}`);
  process.exit(1);
}
const r = spawnSync(process.execPath, ["--import", "tsx", "--test", "--test-concurrency=2", ...files], { stdio: "inherit", env: withMallocEnv() });

// The size of src/, as tinygrad reports it: a number to watch, not a gate.
const sources = fs.readdirSync("src", { recursive: true }).filter((f) => String(f).endsWith(".ts"));
const lines = sources.reduce((n, f) => n + fs.readFileSync(path.join("src", String(f)), "utf8").split("\n").length, 0);
console.log(`# src/: ${lines} lines in ${sources.length} TypeScript files`);
process.exit(r.status ?? 1);
