// The budget solver on stories260K.
//  - CLI: `topiary sensitivity` then `topiary compress --target-bytes` with that database; the
//    written linears' bytes (every tensor of every decoder linear in model.safetensors) are within
//    the budget, the plan is a recipe that `topiary compress --recipe` accepts, and topiary.json
//    records each linear's bits / group size / sparsity.
//  - Issue #15 acceptance, with the reference calibration: at exactly the bytes of uniform GPTQ
//    3-bit g128, and at the kept weights of uniform SparseGPT 60 %, the solver's plan against the
//    uniform one, with the default objective (the end-to-end KL, measured on 4 calibration windows)
//    and the default settings (GPTQ plain and with act-order + the mse range search). The
//    mixed-sparsity plan beats uniform; the bytes plan is ≥ 10 % below uniform (README, Budget
//    solver, for how much of that the act-order + mse candidates give on their own).
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { planStage, solveBudget } from "../../../src/compress/allocation/budget.js";
import { buildSensitivityDatabase, DEFAULT_GRID, readDatabase, settingsOf, settingStage, writeDatabase, type SensitivityDatabase, type Setting } from "../../../src/compress/allocation/sensitivity.js";
import { parseRecipe } from "../../../src/compress/recipe.js";
import { buildStage } from "../../../src/compress/registry.js";
import { SafetensorsFile } from "../../../src/formats/safetensors.js";
import { loadModel } from "../../../src/models/load.js";
import { DATA, STORIES, tempDir } from "../../helpers.js";
import { topiary, topiaryInProcess } from "../../cli/run-cli.js";
import { compressAndEvaluate, referenceCalibration } from "../reference-helpers.js";

const CALIB = path.join(DATA, "tinystories", "calib.txt");
const SMALL = ["--calib", CALIB, "--nsamples", "16", "--calib-seqlen", "128", "--calib-sampling", "first"];

/** Bytes of every tensor of the decoder linears (`model.layers.N.<…>.…`) in a written model. */
function linearBytes(dir: string, linears: string[]): number {
  const f = SafetensorsFile.open(path.join(dir, "model.safetensors"));
  try {
    return [...f.tensors.values()].filter((t) => linears.some((l) => t.name.startsWith(`${l}.`))).reduce((a, t) => a + t.end - t.begin, 0);
  } finally {
    f.close();
  }
}

describe("budget solver CLI", () => {
  it("sensitivity → compress --target-bytes: written bytes within the budget, a re-runnable recipe, per-linear settings", async () => {
    const dir = tempDir();
    const db = path.join(dir, "db.json");
    const s = await topiary(["sensitivity", STORIES, ...SMALL, "--sparsities", "0.5", "--patterns", "none", "--bits", "2,3,4", "--group-sizes", "32,-1", "--gptq-variants", "plain", "--out", db], 300_000);
    assert.equal(s.code, 0, s.stderr);
    const data = readDatabase(db);
    assert.equal(data.linears.length, 35);
    assert.deepEqual(data.settings.map((x) => x.id), ["dense", "sparsegpt-0.5", "gptq-2-g32", "gptq-2-channel", "gptq-3-g32", "gptq-3-channel", "gptq-4-g32", "gptq-4-channel"]);
    for (const l of data.linears) {
      assert.equal(l.loss.dense, 0);
      assert.equal(l.bytes.dense, l.shape[0] * l.shape[1] * 4);
      assert.ok(l.loss["gptq-2-g32"]! > l.loss["gptq-4-g32"]!);
      assert.ok(l.relLoss["gptq-3-channel"]! > 0 && l.relLoss["gptq-3-channel"]! < 1);
    }
    const names = data.linears.map((l) => l.name);
    const budget = data.linears.reduce((a, l) => a + l.bytes["gptq-3-channel"]!, 0);
    const out = path.join(dir, "out");
    const r = await topiary(["compress", STORIES, ...SMALL, "--target-bytes", String(budget), "--sensitivity", db, "--out", out], 300_000);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /^plan: \d+ of \d+ bytes/m);
    const written = linearBytes(out, names);
    assert.ok(written <= budget, `written ${written} > budget ${budget}`);
    const record = JSON.parse(fs.readFileSync(path.join(out, "topiary.json"), "utf8"));
    assert.equal(record.plan.linearBytes, written); // the database's bytes are the writer's bytes
    const recipe = parseRecipe(fs.readFileSync(path.join(out, "recipe.yaml"), "utf8"), "recipe.yaml");
    assert.equal(recipe[0]!.method, "mixed");
    for (const [name, l] of Object.entries(record.linears) as [string, { bits: number | null; groupSize: number | null; sparsity: number }][]) {
      const chosen = record.plan.linears[name].setting as string;
      const m = /^gptq-(\d)-(g(\d+)|channel)$/.exec(chosen)!;
      assert.equal(l.bits, Number(m[1]), name);
      assert.equal(l.groupSize, m[3] ? Number(m[3]) : -1, name);
    }
    // the same plan from the recipe: the same weights (the CLI's parser in this process: the
    // spawned compress --recipe is checked in test/cli/quantize.test.ts)
    const again = path.join(dir, "again");
    const r2 = await topiaryInProcess(["compress", STORIES, ...SMALL, "--recipe", path.join(out, "recipe.yaml"), "--out", again]);
    assert.equal(r2.code, 0, r2.stderr);
    assert.equal(linearBytes(again, names), written);
    assert.ok(fs.readFileSync(path.join(again, "model.safetensors")).equals(fs.readFileSync(path.join(out, "model.safetensors"))));
  });

  // in this process (the CLI's parser; a spawn would cost more than the checks)
  it("refuses a budget below the smallest plan and a database of another model", async () => {
    const dir = tempDir();
    const db = path.join(dir, "db.json");
    const s = await topiaryInProcess(["sensitivity", STORIES, ...SMALL, "--sparsities", "0.5", "--patterns", "none", "--bits", "4", "--group-sizes", "-1", "--targets", "layers\\.0\\.", "--out", db]);
    assert.equal(s.code, 0, s.stderr);
    const low = await topiaryInProcess(["compress", STORIES, ...SMALL, "--target-bytes", "100", "--sensitivity", db, "--out", path.join(dir, "o")]);
    assert.match(low.stderr, /^topiary: .*below the smallest plan/);
    const data = JSON.parse(fs.readFileSync(db, "utf8"));
    data.linears[0].shape = [1, 2];
    fs.writeFileSync(db, JSON.stringify(data));
    const bad = await topiaryInProcess(["compress", STORIES, ...SMALL, "--target-bpw", "4", "--sensitivity", db, "--out", path.join(dir, "o")]);
    assert.match(bad.stderr, /^topiary: .*db\.json: linear model\.layers\.0\.self_attn\.q_proj is \[1, 2\] in the database, \[64, 64\] in the model\n$/);
    assert.equal(fs.existsSync(path.join(dir, "o")), false);
  });
});

/**
 * The acceptance runs' database: `settingsOf(DEFAULT_GRID)` measured on the reference calibration
 * with the end-to-end KL on 4 windows. Building it takes minutes (every linear × setting is
 * compressed and the rest of the model run), so it is stored beside this test and checked against
 * the current code on layer 4 (a sparse, a plain GPTQ and an act-order+mse GPTQ setting: bytes and zeros exactly,
 * losses and KL to 1e-3): a change to SparseGPT, GPTQ, the writer's sizes or the KL that moves
 * them fails that check. `TOPIARY_REBUILD_SENSITIVITY=1 npm test -- allocation/budget` rebuilds it.
 */
const FIXTURE = path.join(import.meta.dirname, "stories260K-sensitivity.json");
const CHECKED = ["sparsegpt-0.6", "gptq-3-g128", "gptq-3-channel-act-order+mse"];

async function referenceDatabase(settings: Setting[], targets?: string[]): Promise<SensitivityDatabase> {
  const model = loadModel(STORIES);
  try {
    return await buildSensitivityDatabase({
      model,
      modelDir: "stories260K",
      calibration: { batch: referenceCalibration(), info: { reference: "first 128 × 512 of tinystories/calib.txt" } },
      select: buildStage({ method: "magnitude", ...(targets ? { targets } : {}) }, "test"),
      settings,
      version: "test",
      endToEnd: 4,
    });
  } finally {
    model.close();
  }
}

describe("budget solver on stories260K (issue #15 acceptance)", () => {
  let db: SensitivityDatabase;
  const uniformSum = (key: "bytes" | "kl", id: string) => db.linears.reduce((a, l) => a + l[key]![id]!, 0);

  it("the stored database is what the current code measures (layer 4, three settings)", async () => {
    if (process.env.TOPIARY_REBUILD_SENSITIVITY) writeDatabase(FIXTURE, await referenceDatabase(settingsOf(DEFAULT_GRID)));
    db = readDatabase(FIXTURE);
    assert.deepEqual(db.settings, settingsOf(DEFAULT_GRID));
    assert.equal(db.linears.length, 35);
    assert.equal(db.endToEndTokens, 4 * 512);
    // act-order (static groups: no g_idx) and the mse range search store exactly what plain GPTQ does
    for (const l of db.linears) for (const s of db.settings.filter((x) => x.actOrder)) assert.equal(l.bytes[s.id], l.bytes[s.id.replace("-act-order+mse", "")], `${l.name} ${s.id}`);
    const fresh = await referenceDatabase(db.settings.filter((s) => CHECKED.includes(s.id)), ["layers\\.4\\."]);
    assert.equal(fresh.linears.length, 7);
    const close = (a: number, b: number) => Math.abs(a - b) <= 1e-3 * Math.max(Math.abs(a), Math.abs(b), 1e-6);
    for (const f of fresh.linears) {
      const stored = db.linears.find((l) => l.name === f.name)!;
      for (const id of CHECKED) {
        assert.equal(f.bytes[id], stored.bytes[id], `${f.name} ${id} bytes`);
        assert.equal(f.zeros[id], stored.zeros[id], `${f.name} ${id} zeros`);
        assert.ok(close(f.loss[id]!, stored.loss[id]!), `${f.name} ${id} loss ${f.loss[id]} vs stored ${stored.loss[id]}`);
        assert.ok(close(f.kl![id]!, stored.kl![id]!), `${f.name} ${id} kl ${f.kl![id]} vs stored ${stored.kl![id]}`);
      }
    }
  });

  it("at the bytes of uniform GPTQ 3-bit g128", async (t) => {
    const budget = uniformSum("bytes", "gptq-3-g128");
    const plan = solveBudget(db, { kind: "bytes", value: budget });
    assert.ok(plan.bytes <= budget);
    assert.equal(plan.objective, "kl");
    assert.ok(plan.loss <= uniformSum("kl", "gptq-3-channel-act-order+mse"), "every uniform plan within the budget is a feasible point of the knapsack");
    const mixed = await compressAndEvaluate(planStage(plan));
    const uniform = await compressAndEvaluate({ method: "gptq", bits: 3, group_size: 128 });
    const msg = `budget ${budget} bytes: plan ${plan.bytes} bytes, ppl ${mixed.perplexity.toFixed(4)} vs uniform GPTQ 3-bit g128 ${uniform.perplexity.toFixed(4)}`;
    t.diagnostic(msg);
    assert.ok(mixed.perplexity <= 0.9 * uniform.perplexity, msg); // the goal: ≥ 10 % lower
    // and the allocation itself, not only its better candidates: the plan also beats the uniform
    // setting that fits the budget with the least summed KL (3-bit g128 act-order + mse)
    const fits = db.settings.filter((x) => x.method === "gptq" && uniformSum("bytes", x.id) <= budget);
    const best = fits.reduce((a, x) => (uniformSum("kl", x.id) < uniformSum("kl", a.id) ? x : a));
    const bestUniform = await compressAndEvaluate(settingStage(best)!);
    t.diagnostic(`best uniform setting within the budget, ${best.id}: ppl ${bestUniform.perplexity.toFixed(4)}`);
    assert.ok(mixed.perplexity < bestUniform.perplexity);
  });

  it("at the kept weights of uniform SparseGPT 60 %", async (t) => {
    const plan = solveBudget(db, { kind: "sparsity", value: 0.6 });
    const uniformKept = db.linears.reduce((a, l) => a + l.shape[0] * l.shape[1] - l.zeros["sparsegpt-0.6"]!, 0);
    assert.ok(plan.cost <= plan.budget && plan.budget <= Math.ceil(0.4 * plan.weights));
    const mixed = await compressAndEvaluate(planStage(plan));
    const uniform = await compressAndEvaluate({ method: "sparsegpt", sparsity: 0.6 });
    const zeros = mixed.reports.reduce((a, r) => a + r.zeros, 0);
    assert.ok(zeros >= 0.6 * plan.weights, `plan sparsity ${zeros / plan.weights}`);
    const msg = `kept ${plan.cost} (uniform ${uniformKept}): ppl ${mixed.perplexity.toFixed(4)} vs uniform SparseGPT 60 % ${uniform.perplexity.toFixed(4)}`;
    t.diagnostic(msg);
    assert.ok(mixed.perplexity < uniform.perplexity, msg);
  });
});
