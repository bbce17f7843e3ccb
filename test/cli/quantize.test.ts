// `topiary quantize`, `prune --bits` (joint) and `compress --recipe` end to end: the saved
// compressed-tensors folders, their grids and sizes, and every bad input.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { before, describe, it } from "node:test";
import { dequantize } from "../../src/formats/compressed-linear.js";
import { SafetensorsModel } from "../../src/formats/safetensors.js";
import { loadModel } from "../../src/models/load.js";
import { DATA, STORIES, tempDir } from "../helpers.js";
import { compressAndEvaluate } from "../compress/reference-helpers.js";
import { oneLineError, topiary, topiaryInProcess } from "./run-cli.js";

const TEST_TEXT = path.join(DATA, "tinystories", "test.txt");
const CALIB = path.join(DATA, "tinystories", "calib.txt");
const CAL = ["--calib", CALIB, "--nsamples", "32", "--calib-seqlen", "128", "--calib-sampling", "first"];
const LINEAR = /layers\.\d+\.(self_attn|mlp)\.\w+_proj$/;

/** `topiary eval --json`'s perplexity (in this process: the spawned eval is checked in cli.test.ts). */
async function evalJson(dir: string): Promise<number> {
  const e = await topiaryInProcess(["eval", dir, "--data", TEST_TEXT, "--seqlen", "512", "--limit-windows", "120", "--json"]);
  assert.equal(e.code, 0, e.stderr);
  return JSON.parse(e.stdout).perplexity;
}

describe("topiary quantize / compress", () => {
  const out = tempDir();
  let inMemory = 0;

  before(async () => {
    const run = await compressAndEvaluate({ method: "gptq", bits: 4, group_size: 32 }, { calibration: { nsamples: 32, seqlen: 128 }, limitWindows: 120 });
    inMemory = run.perplexity;
    run.store.dispose();
  });

  it("gptq 4-bit g32 → compressed-tensors and dense folders that eval reads back with the in-memory perplexity", async (t) => {
    const ct = path.join(out, "gptq-ct");
    const r = await topiary(["quantize", STORIES, "--method", "gptq", "--bits", "4", "--group-size", "32", ...CAL, "--out", ct]);
    assert.equal(r.code, 0, r.stderr);
    // a partial last group (down_proj: 172 = 5·32 + 12) is kept, and the writer says vLLM will refuse it
    assert.match(r.stderr, /partial last group of 12 columns/);
    const dense = path.join(out, "gptq-dense");
    assert.equal((await topiaryInProcess(["quantize", STORIES, "--method", "gptq", "--bits", "4", "--group-size", "32", ...CAL, "--format", "dense", "--out", dense])).code, 0);
    const a = await evalJson(ct);
    const b = await evalJson(dense);
    t.diagnostic(`in memory ${inMemory}, compressed-tensors ${a}, dense ${b}`);
    assert.ok(Math.abs(a / inMemory - 1) < 1e-9 && Math.abs(b / inMemory - 1) < 1e-9);
    const cfg = JSON.parse(fs.readFileSync(path.join(ct, "config.json"), "utf8")).quantization_config;
    assert.equal(cfg.quant_method, "compressed-tensors");
    assert.equal(cfg.format, "pack-quantized");
    assert.equal(cfg.config_groups.group_0.weights.group_size, 32);
  });

  it("every saved weight lies on its grid (dequantize(codes) = the weight the model reads)", () => {
    const model = loadModel(path.join(out, "gptq-ct"));
    let checked = 0;
    for (const name of model.weights.names().filter((n) => LINEAR.test(n.replace(/\.weight$/, "")))) {
      const q = model.weights.quantized!(name)!;
      assert.ok(q, `${name} is not stored quantized`);
      assert.deepEqual(dequantize(q.codes, q.grid, q.shape[1]!), model.weights.read(name), name);
      checked++;
    }
    assert.equal(checked, 35);
    model.close();
  });

  // The next two check what the commands write, not the command line (the gptq runs above and
  // compress --recipe below are spawned), so they run the CLI's parser in this process.
  it("packed 4-bit linears are ≤ 0.3× their fp16 bytes (per channel)", async (t) => {
    const pc = path.join(out, "rtn-pc");
    const r = await topiaryInProcess(["quantize", STORIES, "--method", "rtn", "--bits", "4", "--out", pc]);
    assert.equal(r.code, 0, r.stderr);
    const st = SafetensorsModel.open(pc);
    let packed = 0;
    let fp16 = 0;
    for (const name of st.names()) {
      const linear = name.replace(/\.(weight_packed|weight_scale|weight_zero_point|weight_shape|weight_g_idx)$/, "");
      if (linear === name || !LINEAR.test(linear)) continue;
      const info = st.info(name);
      packed += info.end - info.begin;
      if (name.endsWith(".weight_shape")) {
        const bytes = st.readBytes(name);
        const [rows, cols] = st.info(name).dtype === "I64" ? Array.from(new BigInt64Array(bytes.buffer), Number) : Array.from(new Int32Array(bytes.buffer));
        fp16 += rows! * cols! * 2;
      }
    }
    st.close();
    const whole = fs.statSync(path.join(pc, "model.safetensors")).size;
    const denseWhole = fs.statSync(path.join(STORIES, "model.safetensors")).size / 2; // the fp32 source as fp16
    t.diagnostic(`linears: ${packed} B packed vs ${fp16} B fp16 = ${(packed / fp16).toFixed(3)}×; whole file ${whole} B = ${(whole / denseWhole).toFixed(3)}× of fp16`);
    assert.ok(packed / fp16 <= 0.3, `packed ratio ${packed / fp16}`);
  });

  it("prune --method sparsegpt --bits 4: joint, pruned weights stay exactly zero and on the grid", async () => {
    const j = path.join(out, "joint");
    const r = await topiaryInProcess(["prune", STORIES, "--method", "sparsegpt", "--pattern", "2:4", "--bits", "4", ...CAL, "--format", "compressed-tensors", "--out", j]);
    assert.equal(r.code, 0, r.stderr);
    const model = loadModel(j);
    for (const name of model.weights.names().filter((n) => LINEAR.test(n.replace(/\.weight$/, "")))) {
      const W = model.weights.read(name);
      const cols = model.weights.shape(name)[1]!;
      for (let i = 0; i < W.length; i += 4) {
        let zeros = 0;
        for (let k = i; k < i + 4 && k % cols >= i % cols; k++) if (W[k] === 0) zeros++;
        assert.ok(zeros >= 2, `${name}: group at ${i} has ${zeros} zeros`);
      }
      const q = model.weights.quantized!(name)!;
      assert.deepEqual(dequantize(q.codes, q.grid, cols), W, name);
    }
    const cfg = JSON.parse(fs.readFileSync(path.join(j, "config.json"), "utf8")).quantization_config;
    assert.equal(cfg.sparsity_config.sparsity_structure, "2:4");
    model.close();
  });

  it("compress --recipe: SparseGPT 50 % then GPTQ 4-bit keeps the zeros and quantizes the rest", async () => {
    const recipe = path.join(out, "recipe.yaml");
    fs.writeFileSync(recipe, "stages:\n  - method: sparsegpt\n    sparsity: 0.5\n  - method: gptq\n    bits: 4\n    group_size: 32\n");
    const o = path.join(out, "recipe-out");
    const r = await topiary(["compress", STORIES, "--recipe", recipe, ...CAL, "--out", o]);
    assert.equal(r.code, 0, r.stderr);
    const t = JSON.parse(fs.readFileSync(path.join(o, "topiary.json"), "utf8"));
    assert.deepEqual(t.recipe.map((s: { method: string }) => s.method), ["sparsegpt", "gptq"]);
    assert.ok(t.totals.sparsity >= 0.5, `sparsity ${t.totals.sparsity}`);
    const model = loadModel(o);
    const q = model.weights.quantized!("model.layers.3.mlp.up_proj.weight")!;
    assert.equal(q.grid.bits, 4);
    model.close();
  });

  // The refusals run through the CLI's parser in this process: each spawn would cost more than the check.
  describe("bad input: one line, non-zero exit", () => {
    const recipeCase = (text: string) => {
      const f = path.join(tempDir(), "recipe.yaml");
      fs.writeFileSync(f, text);
      return f;
    };
    const cases: [string, () => string[], RegExp][] = [
      ["bits outside {2, 3, 4, 8}", () => ["quantize", STORIES, "--method", "rtn", "--bits", "5"], /bits must be one of 2, 3, 4, 8/],
      ["a zero group size", () => ["quantize", STORIES, "--method", "rtn", "--group-size", "0"], /group_size must be a positive number of columns, or -1/],
      ["an unknown quantization method", () => ["quantize", STORIES, "--method", "awq"], /unknown method "awq"/],
      ["--bits on a method without joint quantization", () => ["prune", STORIES, "--method", "wanda", "--bits", "4"], /--bits \(joint quantization\) needs --method sparsegpt/],
      ["a typo in a recipe key", () => ["compress", STORIES, "--recipe", recipeCase("stages:\n  - method: sparsegpt\n    spasity: 0.5\n")], /recipe\.yaml: stage 1 \(sparsegpt\): .*"spasity"/],
      ["an unknown recipe method", () => ["compress", STORIES, "--recipe", recipeCase("- method: gptqq\n")], /recipe\.yaml: stage 1: unknown method "gptqq"/],
      ["a recipe that is not YAML", () => ["compress", STORIES, "--recipe", recipeCase("stages: [\n")], /recipe\.yaml: not valid YAML/],
      ["a recipe with no stages", () => ["compress", STORIES, "--recipe", recipeCase("stages: []\n")], /recipe\.yaml: .*at least one stage/],
      ["a recipe with an unknown top-level key", () => ["compress", STORIES, "--recipe", recipeCase("stage:\n  - method: rtn\n")], /recipe\.yaml: unknown key "stage"/],
      ["a missing recipe file", () => ["compress", STORIES, "--recipe", "/nonexistent/r.yaml"], /r\.yaml: no such recipe file/],
    ];
    for (const [what, args, message] of cases) {
      it(what, async () => {
        const r = await topiaryInProcess([...args(), "--out", path.join(tempDir(), "x")]);
        assert.match(oneLineError(r), message);
      });
    }
  });
});
