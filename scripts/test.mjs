#!/usr/bin/env node
// `npm test`: every test/**/*.test.ts through node's test runner with tsx's loader.
// (Node 20's --test does not expand globs, so the files are listed here; scripts/run-tests.mjs
// runs them in this order, which `node --test` would not keep.)
// Extra arguments select files by substring: `npm test -- safetensors generate`.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { withMallocEnv } from "./malloc-env.mjs";

function find(dir) {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? find(p) : e.name.endsWith(".test.ts") ? [p] : [];
  });
}

// The end-to-end tests compare against ../shared (models, data, reference outputs); without it
// they would all fail on their first file access, so say why once, up front. Nothing skips: a
// folder missing from a partial ../shared is named here too, not discovered test by test.
const shared = path.resolve(import.meta.dirname, "..", "..", "shared");
const NEEDED = ["models/stories260K/config.json", "data/tinystories", "reference/architectures", "reference/structured", "reference/recovery"];
if (!fs.existsSync(path.join(shared, NEEDED[0]))) {
  console.error(`npm test: ${shared} is missing: the tests need the shared folder (models/stories260K, data, reference) beside the repository`);
  process.exit(1);
}
const missing = NEEDED.filter((p) => !fs.existsSync(path.join(shared, p)));
if (missing.length) {
  console.error(`npm test: ${shared} lacks ${missing.join(", ")}: the tests need them`);
  process.exit(1);
}

// The slowest files (tens of seconds to minutes each on 2 cores) start first: the runner
// (run-tests.mjs) takes files in the order given, two at a time, and a long file started last
// would run alone on one of the two cores while the other idles. Longest first keeps both busy to the end. A file renamed or
// gone only loses its place; the rest follow in alphabetical order.
const SLOWEST_FIRST = [
  "test/compress/quantization-reference.test.ts",
  "test/compress/allocation/budget.test.ts",
  "test/compress/pruning-reference.test.ts",
  "test/compress/structured/reference.test.ts",
  "test/compress/allocation/owl-reference.test.ts",
  "test/eval/perplexity.test.ts",
  "test/compress/structured/write.test.ts",
];
const rank = (f) => {
  const i = SLOWEST_FIRST.indexOf(f.split(path.sep).join("/"));
  return i < 0 ? SLOWEST_FIRST.length : i;
};

const filters = process.argv.slice(2);
const files = find("test")
  .filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)))
  .sort()
  .sort((a, b) => rank(a) - rank(b));
if (files.length === 0) {
  console.error(`no test files match ${filters.join(" ")}`);
  process.exit(1);
}
// Two files run at once. Each onnxruntime session would otherwise take as many intra-op threads
// as there are cores, so two files oversubscribe the CPU and each one's spinning pool threads
// steal the cores the other needs (on CI's 2 cores: 525 s with 2 threads per file, 447–472 s with 1).
// Each file gets its share of the cores, unless TOPIARY_THREADS is already set.
const CONCURRENCY = 2;
const env = withMallocEnv();
env.TOPIARY_THREADS ??= String(Math.max(1, Math.floor(os.availableParallelism() / CONCURRENCY)));
const r = spawnSync(process.execPath, ["--import", "tsx", path.join(import.meta.dirname, "run-tests.mjs"), String(CONCURRENCY), ...files], { stdio: "inherit", env });

// The size of src/, as tinygrad reports it: a number to watch, not a gate.
const sources = fs.readdirSync("src", { recursive: true }).filter((f) => String(f).endsWith(".ts"));
const lines = sources.reduce((n, f) => n + fs.readFileSync(path.join("src", String(f)), "utf8").split("\n").length, 0);
console.log(`# src/: ${lines} lines in ${sources.length} TypeScript files`);
process.exit(r.status ?? 1);
