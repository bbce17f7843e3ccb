// A seeded sample of the fuzzer's bad inputs (test/fuzz/cases.ts): most through the CLI's parser
// in this process (fast), a few through the real binary (exit code, peak RSS, 10 s limit).
// `npm run fuzz` runs all of them, one process each.
import assert from "node:assert/strict";
import path from "node:path";
import { describe, test } from "node:test";
import { Rng } from "../../src/data/rng.js";
import { tempDir } from "../helpers.js";
import { fuzzCases, type FuzzCase } from "./cases.js";
import { inProcessCli, prepareBases, runAll, spawnCli, tally } from "./harness.js";

const IN_PROCESS = 72;
const SPAWNED = 2;

/** k cases drawn without replacement, in a seeded order, at least one per category. */
function sample(cases: FuzzCase[], k: number, rng: Rng): FuzzCase[] {
  const order = cases.map((c) => ({ c, key: rng.next() })).sort((a, b) => a.key - b.key).map((x) => x.c);
  const firsts = [...new Map(order.map((c) => [c.category, c])).values()];
  return [...firsts, ...order.filter((c) => !firsts.includes(c))].slice(0, k);
}

describe("fuzzed bad inputs: exit 1, one line naming the file or flag, nothing written", () => {
  const root = tempDir("topiary-fuzz-");
  let cases: FuzzCase[] = [];

  test("the generator makes ≥ 300 inputs across every kind of file", async () => {
    const bases = await prepareBases(path.join(root, "bases"), (args) => inProcessCli(args, { CI: "1" }));
    cases = fuzzCases(bases, 1);
    assert.ok(cases.length >= 300, `${cases.length} cases`);
    const categories = new Set(cases.map((c) => c.category));
    assert.deepEqual([...categories].sort(), ["compressed-tensors", "config", "flags", "gguf", "recipe", "safetensors", "tokenizer"]);
    assert.equal(new Set(cases.map((c) => c.id)).size, cases.length, "case ids are unique");
  });

  test(`${IN_PROCESS} of them in process`, async () => {
    const picked = sample(cases, IN_PROCESS, new Rng(14));
    const results = await runAll(picked, root, inProcessCli, 1);
    const bad = results.filter((r) => r.verdict !== "one-line error").map((r) => `${r.fuzzCase.id}: ${r.verdict} (${r.why}) ${r.line}`);
    assert.deepEqual(bad, [], tally(results).line);
  });

  test(`${SPAWNED} of them through bin/topiary.js`, async () => {
    const picked = sample(cases, SPAWNED, new Rng(15));
    const results = await runAll(picked, root, (args, env) => spawnCli(args, env), 2);
    const bad = results.filter((r) => r.verdict !== "one-line error").map((r) => `${r.fuzzCase.id}: ${r.verdict} (${r.why}) ${r.line}`);
    assert.deepEqual(bad, [], tally(results).line);
    for (const r of results) assert.ok(r.result.maxRssBytes !== null && r.result.maxRssBytes > 0, "peak RSS measured");
  });
});
