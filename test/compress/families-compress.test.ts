// `topiary prune --method sparsegpt` and `quantize --method gptq` on OPT, BLOOM, GPT-2 and GPT-NeoX
// (the tiny checkpoints of ../shared/reference/architectures): exact sparsity, every weight on its
// 4-bit grid, fused linears (query_key_value, c_attn) compressed whole and written back fused in
// the checkpoint's own layout, and the saved folder evaluating to the in-memory perplexity.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { compressModel } from "../../src/compress/pipeline.js";
import { buildStage } from "../../src/compress/registry.js";
import { CompressedStore } from "../../src/compress/store.js";
import { dequantize } from "../../src/formats/compressed-linear.js";
import { calibrationWindows } from "../../src/data/calibration.js";
import { perplexity } from "../../src/eval/perplexity.js";
import { SafetensorsModel } from "../../src/formats/safetensors.js";
import { loadModel } from "../../src/models/load.js";
import { CausalLM } from "../../src/models/model.js";
import { releaseSessions } from "../../src/runtime/ort.js";
import { TextTokenizer } from "../../src/tokenizer/tokenizer.js";
import { oneLineError, topiary, topiaryInProcess } from "../cli/run-cli.js";
import { DATA, REFERENCE, tempDir } from "../helpers.js";

const TEST_TEXT = path.join(DATA, "tinystories", "test.txt");
const CALIB = path.join(DATA, "tinystories", "calib.txt");
const NSAMPLES = 8;
const CAL = ["--calib", CALIB, "--nsamples", String(NSAMPLES), "--calib-seqlen", "128", "--calib-sampling", "first"];
const EVAL = { seqlen: 128, limitWindows: 16 };

/** The fused linear of each family and its shape as the checkpoint stores it (D = 64). */
const FAMILIES: Record<string, { fused: string; fusedShape: number[]; quantizeFormat: string[] }> = {
  opt: { fused: "", fusedShape: [], quantizeFormat: [] },
  bloom: { fused: "transformer.h.0.self_attention.query_key_value.weight", fusedShape: [192, 64], quantizeFormat: [] },
  // GPT-2's Conv1D layers are [in, out]: quantized weights are written dense (see README)
  gpt2: { fused: "transformer.h.0.attn.c_attn.weight", fusedShape: [64, 192], quantizeFormat: ["--format", "dense"] },
  gpt_neox: { fused: "gpt_neox.layers.0.attention.query_key_value.weight", fusedShape: [192, 64], quantizeFormat: [] },
};

/** In-memory compression with the CLI's calibration, and the perplexity of the result. */
async function inMemory(dir: string, stage: Record<string, unknown>): Promise<number> {
  const base = loadModel(dir);
  const tok = TextTokenizer.load(dir);
  const calibration = calibrationWindows(tok.encode(fs.readFileSync(CALIB, "utf8")), { nsamples: NSAMPLES, seqlen: 128, sampling: "first", seed: 0 });
  const store = new CompressedStore(path.join(tempDir(), "store"));
  await compressModel(base, { stage: buildStage(stage, "test"), calibration, store });
  const model = new CausalLM(base.config, store.over(base.weights), dir);
  const r = await perplexity(model, tok.encode(fs.readFileSync(TEST_TEXT, "utf8")), EVAL);
  store.dispose();
  base.close();
  return r.perplexity;
}

/** The saved folder read back as `topiary eval` reads it (the CLI itself is tested on the originals). */
async function evalPerplexity(dir: string): Promise<number> {
  const model = loadModel(dir);
  const r = await perplexity(model, TextTokenizer.load(dir).encode(fs.readFileSync(TEST_TEXT, "utf8")), EVAL);
  model.close();
  return r.perplexity;
}

after(() => releaseSessions());

for (const [name, f] of Object.entries(FAMILIES)) {
  describe(`${name}: sparsegpt 50 % and gptq 4-bit g32`, () => {
    const src = path.join(REFERENCE, "architectures", name);
    const out = tempDir();
    const pruned = path.join(out, "sparsegpt");
    const quantized = path.join(out, "gptq");

    before(async () => {
      // OPT's runs are the spawned CLI; the other families' run its parser in this process (the
      // same commands, without ~1.7 s of CPU of start-up each)
      const cli = name === "opt" ? topiary : topiaryInProcess;
      const p = await cli(["prune", src, "--method", "sparsegpt", "--sparsity", "0.5", ...CAL, "--out", pruned]);
      assert.equal(p.code, 0, p.stderr);
      const q = await cli(["quantize", src, "--method", "gptq", "--bits", "4", "--group-size", "32", ...CAL, ...f.quantizeFormat, "--out", quantized]);
      assert.equal(q.code, 0, q.stderr);
    });

    test("pruned: exactly ⌊n/2⌋ + 1 zeros per 128-column block of every decoder linear; fused linears stay fused", () => {
      const model = loadModel(pruned);
      let checked = 0;
      for (let i = 0; i < model.numLayers; i++) {
        for (const l of model.linears(i)) {
          const w = model.weights.read(`${l.name}.weight`);
          let expected = 0;
          for (let c0 = 0; c0 < l.inFeatures; c0 += 128) expected += Math.floor((l.outFeatures * Math.min(128, l.inFeatures - c0)) / 2) + 1;
          assert.equal(w.filter((v) => v === 0).length, expected, l.name);
          checked++;
        }
      }
      model.close();
      assert.ok(checked >= 8);
      if (f.fused) {
        const st = SafetensorsModel.open(pruned);
        assert.deepEqual(st.info(f.fused).shape, f.fusedShape);
        assert.ok(!st.names().some((n) => /\.(q_proj|k_proj|v_proj)\./.test(n)) || name === "opt");
        st.close();
      }
    });

    test("pruned folder evaluates to the in-memory perplexity", async (t) => {
      const mem = await inMemory(src, { method: "sparsegpt", sparsity: 0.5 });
      const saved = await evalPerplexity(pruned);
      t.diagnostic(`in memory ${mem}, saved ${saved}`);
      assert.ok(Math.abs(saved / mem - 1) < 1e-9, `${saved} vs ${mem}`);
    });

    test("quantized: every decoder weight on its 4-bit grid (≤ 16 values per group of 32), reloads with the in-memory perplexity", async (t) => {
      const model = loadModel(quantized);
      for (let i = 0; i < model.numLayers; i++) {
        for (const l of model.linears(i)) {
          const w = model.weights.read(`${l.name}.weight`);
          const q = model.weights.quantized?.(`${l.name}.weight`) ?? null;
          if (q) assert.deepEqual(dequantize(q.codes, q.grid, q.shape[1]!), w, l.name);
          for (let r = 0; r < l.outFeatures; r++) {
            for (let c0 = 0; c0 < l.inFeatures; c0 += 32) {
              const values = new Set(w.subarray(r * l.inFeatures + c0, r * l.inFeatures + Math.min(c0 + 32, l.inFeatures)));
              assert.ok(values.size <= 16, `${l.name} row ${r} group ${c0 / 32}: ${values.size} values`);
            }
          }
        }
      }
      model.close();
      const mem = await inMemory(src, { method: "gptq", bits: 4, group_size: 32 });
      const saved = await evalPerplexity(quantized);
      t.diagnostic(`in memory ${mem}, saved ${saved}`);
      assert.ok(Math.abs(saved / mem - 1) < 1e-9, `${saved} vs ${mem}`);
    });
  });
}

describe("GPT-2 and compressed-tensors", () => {
  // compressed-tensors holds [out, in] linears; GPT-2's Conv1D stores [in, out]. The refusal must
  // come before any work (it used to come after the whole compression, from the writer).
  const gpt2 = path.join(REFERENCE, "architectures", "gpt2");
  const refusal = (dir: string) =>
    new RegExp(`^topiary: ${dir.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}: gpt2 stores its linears \\[in, out\\] \\(Conv1D, e\\.g\\. transformer\\.h\\.0\\.attn\\.c_attn\\.weight\\); compressed-tensors holds \\[out, in\\] linears only: use --format dense$`);

  test("quantize into compressed-tensors (the default format) is refused in one line naming the model, before any work", async () => {
    const out = path.join(tempDir(), "gpt2-ct");
    const r = await topiary(["quantize", gpt2, "--method", "rtn", "--bits", "4", "--out", out]);
    assert.match(oneLineError(r), refusal(gpt2));
    assert.ok(!fs.existsSync(out));
    // refused before the calibration text is even read: a missing --calib file is not what it reports
    const g = await topiary(["quantize", gpt2, "--method", "gptq", "--bits", "4", "--calib", path.join(tempDir(), "missing.txt"), "--out", out]);
    assert.match(oneLineError(g), refusal(gpt2));
    const p = await topiary(["prune", gpt2, "--method", "sparsegpt", "--format", "sparse-bitmask", "--calib", path.join(tempDir(), "missing.txt"), "--out", out]);
    assert.match(oneLineError(p), refusal(gpt2));
    assert.ok(!fs.existsSync(out));
  });
});
