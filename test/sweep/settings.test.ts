import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { gridSettings, recipeSettings } from "../../src/sweep/settings.js";
import { tempDir } from "../helpers.js";

test("grid: a pruning method's values are sparsities or N:M patterns, a quantizer's are bits", () => {
  const s = gridSettings("  sparsegpt:0.3,0.5,2:4   gptq:3,4 ");
  assert.deepEqual(
    s.map((x) => x.id),
    ["sparsegpt-0.3", "sparsegpt-0.5", "sparsegpt-2of4", "gptq-3bit", "gptq-4bit"],
  );
  assert.equal(s[1]!.stages[0]!.options.sparsity, 0.5);
  assert.equal(s[2]!.stages[0]!.options.pattern, "2:4");
  assert.equal(s[3]!.stages[0]!.method, "gptq");
  assert.equal(s[3]!.stages[0]!.options.bits, 3);
  assert.equal(s[3]!.stages[0]!.options.group_size, -1);
  assert.equal(s[0]!.source, "--grid sparsegpt:0.3,0.5,2:4");
});

test("grid: options in brackets apply to every value and name the run", () => {
  const s = gridSettings("gptq[group_size=128,sym=true]:4 wanda[pattern=unstructured]:0.6");
  assert.deepEqual(
    s.map((x) => x.id),
    ["gptq-4bit-g128-sym", "wanda-0.6-pattern=unstructured"],
  );
  assert.equal(s[0]!.stages[0]!.options.group_size, 128);
  assert.equal(s[0]!.stages[0]!.options.sym, true);
});

test("grid: bad entries are one clear error", () => {
  assert.throws(() => gridSettings(""), /--grid is empty/);
  assert.throws(() => gridSettings("sparsegpt"), /expected method:values/);
  assert.throws(() => gridSettings("nosuch:0.5"), /unknown method "nosuch"/);
  assert.throws(() => gridSettings("gptq:5"), /bits must be one of 2, 3, 4, 8/);
  assert.throws(() => gridSettings("sparsegpt:1.5"), /sparsity must be in \[0, 1\)/);
  assert.throws(() => gridSettings("gptq[group_size]:4"), /option "group_size" is not key=value/);
  assert.throws(() => gridSettings("sparsegpt:abc"), /"abc" is not a number/);
});

test("recipes: one run per file, named after it, duplicates numbered", () => {
  const dir = tempDir();
  const a = path.join(dir, "mixed.yaml");
  fs.writeFileSync(a, "stages:\n  - method: sparsegpt\n    sparsity: 0.6\n  - method: gptq\n    bits: 4\n");
  fs.mkdirSync(path.join(dir, "b"));
  const b = path.join(dir, "b", "mixed.json");
  fs.writeFileSync(b, JSON.stringify([{ method: "rtn", bits: 8 }]));
  const s = recipeSettings([a, b]);
  assert.deepEqual(s.map((x) => x.id), ["mixed", "mixed-2"]);
  assert.deepEqual(s[0]!.stages.map((x) => x.method), ["sparsegpt", "gptq"]);
  assert.equal(s[1]!.source, b);
});
