// Unit tests of the allocation pieces on small synthetic inputs with known answers: OWL's ratio
// and mapping, the knapsack against brute force, the loss from H against ‖ΔW·X‖² computed
// directly, the database's bytes against what the writer writes, and the mixed recipe stage.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { EndToEnd } from "../../../src/compress/allocation/end-to-end.js";
import { exactName, MixedCompressor } from "../../../src/compress/allocation/mixed.js";
import { outlierRatio, owlSparsities, wandaScores } from "../../../src/compress/allocation/owl.js";
import { buildSensitivityDatabase, outputLoss, readDatabase, settingFormat, settingsOf, settingStage, DEFAULT_GRID } from "../../../src/compress/allocation/sensitivity.js";
import type { CalibrationBatch } from "../../../src/data/calibration.js";
import { solveKnapsack, type Option } from "../../../src/compress/allocation/solver.js";
import { parseRecipe } from "../../../src/compress/recipe.js";
import { buildStage } from "../../../src/compress/registry.js";
import { storedLinearBytes, writeCompressedTensors } from "../../../src/formats/compressed-tensors/writer.js";
import { SafetensorsFile } from "../../../src/formats/safetensors.js";
import { SafetensorsWeights } from "../../../src/formats/weights.js";
import { loadModel } from "../../../src/models/load.js";
import { Tensor } from "../../../src/tensor/tensor.js";
import { STORIES, tempDir } from "../../helpers.js";

function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
}

describe("OWL", () => {
  it("outlier ratio: the share of all the layer's scores above M × their mean", () => {
    // mean of [1,1,1,1,1,1,1,1,1,11] and [1, 1] = 22/12; 5 × mean = 9.17: only 11 is above
    assert.equal(outlierRatio([Float32Array.from([1, 1, 1, 1, 1, 1, 1, 1, 1, 11]), Float32Array.from([1, 1])], 5), 1 / 12);
    assert.equal(outlierRatio([Float32Array.from([1, 2, 3])], 1), 1 / 3); // mean 2: only 3 is above
  });

  it("Wanda scores |W_ij|·‖X_j‖", () => {
    assert.deepEqual([...wandaScores(Float32Array.from([1, -2, 3, -4]), 2, Float32Array.from([4, 9]))], [2, 6, 6, 12]);
  });

  it("maps ratios onto a 2λ span whose mean is the target; more outliers, less sparsity", () => {
    const s = owlSparsities([0.01, 0.03, 0.02, 0.02], 0.7, 0.08);
    // scaled to [0, 0.16]: [0, 0.16, 0.08, 0.08], mean 0.08 → densities 0.3 + [−0.08, 0.08, 0, 0]
    const want = [0.78, 0.62, 0.7, 0.7];
    s.forEach((v, i) => assert.ok(Math.abs(v - want[i]!) < 1e-12, `${v} vs ${want[i]}`));
    assert.ok(Math.abs(s.reduce((a, b) => a + b) / s.length - 0.7) < 1e-12);
    assert.deepEqual(owlSparsities([0.02, 0.02], 0.5, 0.08), [0.5, 0.5]); // equal ratios: no division by zero
    assert.deepEqual(owlSparsities([0, 1], 0.05, 0.08).map((v) => +v.toFixed(12)), [0.13, 0.01]); // ≤ 0 → 0.01, as OWL
  });

  it("allocation: owl is a recipe key of pruning stages only", () => {
    const stage = buildStage({ method: "wanda", sparsity: 0.7, allocation: "owl" }, "t");
    assert.ok(stage.prepare);
    assert.deepEqual(stage.options.allocation, "owl");
    assert.throws(() => buildStage({ method: "gptq", allocation: "owl" }, "t"), /allocation owl needs method magnitude, wanda, sparsegpt/);
    assert.throws(() => buildStage({ method: "wanda", pattern: "2:4", allocation: "owl" }, "t"), /unstructured/);
    assert.throws(() => buildStage({ method: "wanda", owl_m: 7 }, "t"), /owl_m and owl_lambda need allocation: owl/);
    assert.equal(buildStage({ method: "wanda" }, "t").prepare, undefined);
    assert.equal("allocation" in buildStage({ method: "wanda" }, "t").options, false); // topiary.json unchanged for plain stages
  });
});

describe("knapsack", () => {
  it("finds the brute-force optimum within the budget", () => {
    const r = rng(7);
    for (let trial = 0; trial < 20; trial++) {
      const items: Option[][] = Array.from({ length: 4 }, () =>
        Array.from({ length: 3 }, () => ({ cost: Math.round(10 + 90 * (r() + 0.5)), loss: Math.round(1000 * (r() + 0.5)) })),
      );
      const budget = 150 + Math.round(150 * (r() + 0.5));
      let best = Infinity;
      for (let code = 0; code < 81; code++) {
        const pick = [0, 1, 2, 3].map((i) => Math.floor(code / 3 ** i) % 3);
        const cost = pick.reduce((a, k, i) => a + items[i]![k]!.cost, 0);
        const loss = pick.reduce((a, k, i) => a + items[i]![k]!.loss, 0);
        if (cost <= budget && loss < best) best = loss;
      }
      const s = solveKnapsack(items, budget, budget); // one bucket per unit: exact
      if (best === Infinity) assert.equal(s, null);
      else {
        assert.equal(s!.loss, best);
        assert.ok(s!.cost <= budget);
      }
    }
  });

  it("rounds costs up, so a coarse discretisation never overshoots", () => {
    const items = [[{ cost: 51, loss: 0 }, { cost: 10, loss: 5 }], [{ cost: 51, loss: 0 }, { cost: 10, loss: 5 }]];
    const s = solveKnapsack(items, 100, 4)!; // buckets of 25: 51 → 3 buckets, two of them do not fit
    assert.ok(s.cost <= 100);
    assert.equal(s.loss, 5);
    assert.equal(solveKnapsack(items, 19), null); // below the cheapest plan
  });
});

describe("sensitivity", () => {
  it("loss = ½·tr(ΔW·H·ΔWᵀ) = mean over sequences of Σ_tokens ‖ΔW·x‖²", async () => {
    const r = rng(3);
    const rows = 5, cols = 8, seqs = 3, tokens = 4;
    const W = new Tensor(Float32Array.from({ length: rows * cols }, r), [rows, cols]);
    const What = W.data.map((v, i) => (i % 3 === 0 ? 0 : v));
    const X = Float32Array.from({ length: seqs * tokens * cols }, r);
    const H = new Float32Array(cols * cols);
    for (let t = 0; t < seqs * tokens; t++) for (let a = 0; a < cols; a++) for (let b = 0; b < cols; b++) H[a * cols + b]! += (2 / seqs) * X[t * cols + a]! * X[t * cols + b]!;
    let direct = 0, signal = 0;
    for (let t = 0; t < seqs * tokens; t++) {
      for (let i = 0; i < rows; i++) {
        let d = 0, y = 0;
        for (let j = 0; j < cols; j++) {
          d += (W.data[i * cols + j]! - What[i * cols + j]!) * X[t * cols + j]!;
          y += W.data[i * cols + j]! * X[t * cols + j]!;
        }
        direct += d * d;
        signal += y * y;
      }
    }
    const l = await outputLoss(W, What, H);
    assert.ok(Math.abs(l.loss - direct / seqs) < 1e-4 * direct, `${l.loss} vs ${direct / seqs}`);
    assert.ok(Math.abs(l.relLoss - direct / signal) < 1e-4);
  });

  it("settings: dense, SparseGPT sparsities and N:M, GPTQ bits × group sizes × variants; each a valid stage", () => {
    const s = settingsOf(DEFAULT_GRID);
    assert.equal(s.length, 1 + 8 + 2 + 12 * 2);
    assert.deepEqual(s.find((x) => x.id === "gptq-3-g128-act-order+mse"), { id: "gptq-3-g128-act-order+mse", method: "gptq", bits: 3, groupSize: 128, actOrder: true, mse: true });
    // act-order with groups uses static groups: no g_idx, so the same bytes as without act-order
    assert.deepEqual(settingStage(s.find((x) => x.id === "gptq-4-g32-act-order+mse")!), { method: "gptq", bits: 4, group_size: 32, act_order: true, static_groups: true, mse: true });
    assert.deepEqual(settingStage(s.find((x) => x.id === "gptq-4-channel-act-order+mse")!), { method: "gptq", bits: 4, group_size: -1, act_order: true, mse: true });
    const mse = settingsOf({ ...DEFAULT_GRID, gptqVariants: ["mse"] });
    assert.deepEqual(settingStage(mse.find((x) => x.id === "gptq-3-g128-mse")!), { method: "gptq", bits: 3, group_size: 128, mse: true });
    for (const x of [...s, ...mse]) if (settingStage(x)) buildStage(settingStage(x)!, x.id);
    assert.deepEqual(s.find((x) => x.id === "gptq-4-g128"), { id: "gptq-4-g128", method: "gptq", bits: 4, groupSize: 128 });
    assert.deepEqual(s.find((x) => x.id === "sparsegpt-0.5"), { id: "sparsegpt-0.5", method: "sparsegpt", sparsity: 0.5 });
    assert.ok(s.find((x) => x.id === "gptq-3-channel"));
    assert.equal(settingFormat(s.find((x) => x.id === "sparsegpt-2:4")!), "sparse-bitmask");
  });

  it("bytes are what the compressed-tensors writer stores, scales, zero points and bitmasks included", async () => {
    const name = "model.layers.1.mlp.down_proj"; // [64, 172]: a partial last group at g128
    const weights = SafetensorsWeights.open(STORIES);
    const W = new Tensor(weights.read(`${name}.weight`), [64, 172]);
    weights.close();
    const cases: [string, Record<string, unknown>][] = [
      ["pack-quantized", { method: "rtn", bits: 3, group_size: 128 }],
      ["pack-quantized", { method: "rtn", bits: 4, group_size: -1 }],
      ["pack-quantized", { method: "rtn", bits: 2, group_size: 32, sym: true }],
      ["sparse-bitmask", { method: "magnitude", sparsity: 0.6 }],
      ["sparse-bitmask", { method: "magnitude", pattern: "2:4" }],
    ];
    for (const [format, raw] of cases) {
      const c = await buildStage(raw, "t").compressor.compress(name, W, null);
      const out = path.join(tempDir(), "m");
      const report = await writeCompressedTensors(out, { format: format as "pack-quantized", sourceModelDir: STORIES, compressed: new Map([[name, c]]) });
      assert.equal(storedLinearBytes(c, format as "pack-quantized", "F32"), report.linearBytes, JSON.stringify(raw));
      // and the file's own tensors of that linear
      const f = SafetensorsFile.open(path.join(out, "model.safetensors"));
      const inFile = [...f.tensors.values()].filter((t) => t.name.startsWith(`${name}.`)).reduce((a, t) => a + t.end - t.begin, 0);
      f.close();
      assert.equal(report.linearBytes, inFile);
    }
    assert.equal(storedLinearBytes({ name, weight: W }, "pack-quantized", "F32"), 64 * 172 * 4); // dense: the plain weight
  });
});

describe("mixed stage", () => {
  it("targets exactly its linears, each with its own method, in one pass", () => {
    const [stage] = parseRecipe(
      [
        "stages:",
        "  - method: mixed",
        "    linears:",
        "      model.layers.0.self_attn.q_proj: { method: gptq, bits: 3, group_size: 128 }",
        "      model.layers.1.mlp.down_proj: { method: sparsegpt, sparsity: 0.4 }",
      ].join("\n"),
      "plan.yaml",
    );
    assert.ok(stage!.compressor instanceof MixedCompressor);
    assert.equal(stage!.compressor.needs, "hessian");
    assert.deepEqual(stage!.targets.map((r) => r.source), [exactName("model.layers.0.self_attn.q_proj"), exactName("model.layers.1.mlp.down_proj")]);
    assert.ok(!stage!.targets[0]!.test("model.layers.0.self_attn.q_proj2"));
    assert.throws(() => parseRecipe("stages:\n  - method: mixed\n    linears:\n      a: { method: gptq, bits: 5 }\n", "p.yaml"), /p\.yaml: .*linear a.*bits/);
    assert.throws(() => parseRecipe("stages:\n  - method: mixed\n    linears: {}\n", "p.yaml"), /lists no linear/);
    assert.throws(() => parseRecipe("stages:\n  - method: mixed\n    linears:\n      a: { method: wanda, targets: [x] }\n", "p.yaml"), /belongs to a stage/);
  });
});

describe("end-to-end sensitivity", () => {
  it("KL is 0 for the original weight and grows with the damage", async () => {
    const model = loadModel(STORIES);
    try {
      const ids = Int32Array.from({ length: 64 }, (_, i) => (i * 37 + 1) % 512);
      const e2e = await EndToEnd.prepare(model, ids, 2, 32);
      const name = "model.layers.2.self_attn.v_proj";
      const W = model.weights.read(`${name}.weight`);
      assert.ok((await e2e.kl(2, name, W)) < 1e-6);
      const half = W.map((v, i) => (i % 2 === 0 ? 0 : v));
      const none = new Float32Array(W.length);
      const klHalf = await e2e.kl(2, name, half);
      const klNone = await e2e.kl(2, name, none);
      assert.ok(klHalf > 1e-4 && klNone > klHalf, `${klHalf} ${klNone}`);
      await assert.rejects(e2e.kl(1, name, W), /not a linear of layer 1/);
    } finally {
      model.close();
    }
  });
});

describe("sensitivity database file", () => {
  it("is rewritten after every layer and a partial one of the same run is resumed", async () => {
    const calibration = { batch: { ids: Int32Array.from({ length: 64 }, (_, i) => (i * 11 + 3) % 512), nsamples: 2, seqlen: 32 } as CalibrationBatch, info: { test: 1 } };
    const settings = settingsOf({ sparsities: [0.5], patterns: [], bits: [4], groupSizes: [-1], gptqVariants: ["plain"] });
    const out = path.join(tempDir(), "db.json");
    const run = async () => {
      const model = loadModel(STORIES);
      try {
        return await buildSensitivityDatabase({ model, modelDir: STORIES, calibration, select: buildStage({ method: "magnitude", targets: ["layers\\.[01]\\."] }, "t"), settings, out, version: "test" });
      } finally {
        model.close();
      }
    };
    const full = await run();
    assert.equal(full.linears.length, 14);
    assert.deepEqual(readDatabase(out), full);
    // an interrupted run: layer 0 done, marked with a sentinel the resumed run must keep
    const partial = { ...full, complete: false, linears: full.linears.filter((l) => l.layer === 0).map((l) => ({ ...l, loss: { ...l.loss, "gptq-4-channel": 12345 } })) };
    fs.writeFileSync(out, JSON.stringify(partial));
    assert.throws(() => readDatabase(out), /incomplete/);
    const resumed = await run();
    assert.equal(resumed.linears.length, 14);
    assert.deepEqual(resumed.linears.map((l) => l.loss["gptq-4-channel"] === 12345), [...Array(7).fill(true), ...Array(7).fill(false)]);
    assert.deepEqual(resumed.linears.slice(7), full.linears.slice(7));
  });
});
