import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { parseRecipe } from "../../src/compress/recipe.js";
import { readAllocation, recipeBits, splitLinearName } from "../../src/sweep/allocation.js";
import { paretoFront, resultsCsv, type SweepResults } from "../../src/sweep/results.js";
import { tempDir } from "../helpers.js";

const Q = "model.layers.0.self_attn.q_proj";
const DOWN = "model.layers.1.mlp.down_proj";

test("linear names split into layer and kind", () => {
  assert.deepEqual(splitLinearName(DOWN), { layer: 1, kind: "mlp.down_proj" });
  assert.deepEqual(splitLinearName("transformer.h.3.attn"), { layer: -1, kind: "transformer.h.3.attn" });
});

test("bits per linear follow the last quantizing stage whose targets match, as the pipeline matches", () => {
  const stages = parseRecipe(
    [
      "stages:",
      "  - method: sparsegpt",
      "    sparsity: 0.5",
      "  - method: gptq",
      "    bits: 4",
      "    group_size: 32",
      "  - method: rtn",
      "    bits: 8",
      '    targets: ["mlp\\\\."]',
      '    ignore: ["up_proj"]',
    ].join("\n"),
    "r.yaml",
  );
  assert.deepEqual(recipeBits(stages, Q), { bits: 4, groupSize: 32 });
  assert.deepEqual(recipeBits(stages, DOWN), { bits: 8, groupSize: -1 });
  assert.deepEqual(recipeBits(stages, "model.layers.1.mlp.up_proj"), { bits: 4, groupSize: 32 });
  assert.equal(recipeBits(stages.slice(0, 1), Q), null);
});

function topiaryJson(dir: string, recipe: object[], linears: Record<string, object>): string {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, "topiary.json"), JSON.stringify({ recipe, linears }));
  return dir;
}

test("allocation: recipe-derived bits, recorded per-linear bits win, quantizer zeros are not pruning", () => {
  const root = tempDir();
  const fromRecipe = topiaryJson(
    path.join(root, "a"),
    [
      { method: "sparsegpt", sparsity: 0.5, targets: ["mlp\\."], ignore: [], true_sequential: false },
      { method: "gptq", bits: 3, group_size: 128, targets: [".*"], ignore: [], true_sequential: false },
    ],
    { [Q]: { shape: [64, 64], zeros: 900, sparsity: 0.22 }, [DOWN]: { shape: [64, 172], zeros: 5504, sparsity: 0.5 } },
  );
  assert.deepEqual(readAllocation(fromRecipe), [
    { name: Q, layer: 0, kind: "self_attn.q_proj", sparsity: 0, bits: 3, groupSize: 128 },
    { name: DOWN, layer: 1, kind: "mlp.down_proj", sparsity: 0.5, bits: 3, groupSize: 128 },
  ]);
  // a solver plan records each linear's bits and group size itself
  const plan = topiaryJson(
    path.join(root, "b"),
    [{ method: "gptq", bits: 4, group_size: 128, targets: [".*"], ignore: [], true_sequential: false }],
    { [Q]: { sparsity: 0, bits: 2, groupSize: 32 }, [DOWN]: { sparsity: 0, bits: 8, groupSize: -1 } },
  );
  assert.deepEqual(
    readAllocation(plan).map((a) => [a.bits, a.groupSize]),
    [
      [2, 32],
      [8, -1],
    ],
  );
  // a recipe topiary cannot read matters only when a linear's bits must come from it
  const planOnly = topiaryJson(path.join(root, "c"), [{ method: "nosuch" }], { [Q]: { sparsity: 0.1, bits: 3, groupSize: 64 } });
  assert.deepEqual(readAllocation(planOnly), [{ name: Q, layer: 0, kind: "self_attn.q_proj", sparsity: 0.1, bits: 3, groupSize: 64 }]);
  const broken = topiaryJson(path.join(root, "d"), [{ method: "nosuch" }], { [Q]: { sparsity: 0 } });
  assert.throws(() => readAllocation(broken), /topiary\.json: recipe stage 1: unknown method "nosuch"/);
});

test("Pareto front: nothing at least as small and as good, one strictly", () => {
  const pts = [
    { bytes: 100, perplexity: 4 }, // the original
    { bytes: 50, perplexity: 10 },
    { bytes: 60, perplexity: 12 }, // dominated by the first run
    { bytes: 30, perplexity: 40 },
    { bytes: 30, perplexity: 50 }, // same size, worse
    { bytes: 120, perplexity: 4 }, // bigger than the original, no better
  ];
  assert.deepEqual(paretoFront(pts), [true, true, false, true, false, false]);
});

test("results.csv: header, the original, one quoted row per run", () => {
  const metrics = { perplexity: 5, klMean: 0.1, top1Agree: 0.9, bytes: 500, tokensPerSecond: null };
  const r = {
    original: { ...metrics, perplexity: 4, klMean: 0, top1Agree: 1, bytes: 1000 },
    model: "/m",
    runs: [{ ...metrics, id: "a", source: "x, y.yaml", recipe: [{ method: "sparsegpt" }, { method: "gptq" }], dir: "runs/a/model", bytesRatio: 0.5, zeros: 0.25, pareto: true }],
  } as unknown as SweepResults;
  assert.equal(
    resultsCsv(r),
    [
      "id,source,methods,bytes,bytes_ratio,zeros,perplexity,kl_mean,top1_agree,tokens_per_second,pareto,dir",
      "original,/m,,1000,1,0,4,0,1,,,/m",
      'a,"x, y.yaml",sparsegpt+gptq,500,0.5,0.25,5,0.1,0.9,,true,runs/a/model',
      "",
    ].join("\n"),
  );
});
