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
