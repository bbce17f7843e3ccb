// GGUF files exported from stories260K, run by llama.cpp (node-llama-cpp's prebuilt CPU binary):
// same tokens, same greedy text (f16), and — for the quantized files — the same perplexity as
// topiary measures on the very weights in the file (GgufWeights dequantizes them back).
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { generate } from "../../src/eval/generate.js";
import { perplexity } from "../../src/eval/perplexity.js";
import { exportGguf, type GgufTypeName } from "../../src/export/gguf.js";
import { GgufWeights } from "../../src/export/gguf-weights.js";
import { GgufFile } from "../../src/formats/gguf/reader.js";
import { loadModel } from "../../src/models/load.js";
import { CausalLM } from "../../src/models/model.js";
import { TextTokenizer } from "../../src/tokenizer/tokenizer.js";
import { DATA, STORIES, tempDir } from "../helpers.js";
import { QuantizedOverlay, rtnSym, widenLlama } from "./gguf-helpers.js";
import { llamaCppGreedy, llamaCppPerplexity, llamaCppTokenize, loadLlama } from "./llama-cpp.js";

// node-llama-cpp is a dev dependency (npm ci installs it): a binary that does not load is a failure, not a skip
const llama = await loadLlama();
if (typeof llama === "string") throw new Error(llama);
const dir = tempDir("topiary-gguf-llama-");

const SEQLEN = 512;
const WINDOWS = 4;
/** Perplexities must agree within this relative difference (llama.cpp rounds activations to 8 bits for quantized matmuls). */
const PPL_TOLERANCE = 0.01;

describe("GGUF in llama.cpp (node-llama-cpp)", () => {
  let model: CausalLM;
  let tok: TextTokenizer;
  let ids: Int32Array;
  const files = {} as Record<GgufTypeName, string>;

  before(() => {
    model = loadModel(STORIES);
    tok = TextTokenizer.load(STORIES);
    // the first windows of the TinyStories test text, tokenized once with BOS at the start
    ids = tok.encode(fs.readFileSync(path.join(DATA, "tinystories", "test.txt"), "utf8").slice(0, 20_000));
    for (const type of ["f16", "q8_0", "q4_0", "q4_k"] as const) {
      files[type] = path.join(dir, `stories260K-${type}.gguf`);
      exportGguf(model, { type, out: files[type] });
    }
  });
  after(() => model.close());

  test("llama.cpp tokenizes like tokenizer.json (scores derived from the merges, byte fallback)", async () => {
    const texts = [
      fs.readFileSync(path.join(DATA, "tinystories", "test.txt"), "utf8").slice(0, 3000),
      "a  b",
      "héllo ✓ 日本 ok",
      '\n\nLily said: "Hi!"\n',
      " leading space",
    ];
    for (const text of texts) {
      const ours = Array.from(tok.encode(text)).slice(1); // without BOS
      assert.deepEqual(await llamaCppTokenize(llama as Exclude<typeof llama, string>, files.f16, text), ours, JSON.stringify(text.slice(0, 40)));
    }
  });

  test("f16: llama.cpp's greedy continuations equal topiary's for 3 prompts", async () => {
    const prompts = ["Once upon a time", "The little dog", "Lily and Tom went to the park. They"];
    for (const prompt of prompts) {
      const ours = await generate(model, tok, prompt, { maxNewTokens: 40, temperature: 0, topK: 0, topP: 1, seed: 0 });
      const theirs = await llamaCppGreedy(llama as Exclude<typeof llama, string>, files.f16, ours.promptIds, ours.ids.length);
      assert.equal(ours.ids.length, 40);
      assert.deepEqual(theirs, ours.ids, `${prompt}: ${tok.decode(theirs)} | ${tok.decode(ours.ids)}`);
    }
  });

  for (const type of ["f16", "q8_0", "q4_0", "q4_k"] as const) {
    test(`${type}: llama.cpp's perplexity is within 1 % of topiary's on the same weights (${WINDOWS} × ${SEQLEN} tokens)`, async (t) => {
      const back = new CausalLM(model.config, new GgufWeights(GgufFile.open(files[type])), STORIES);
      const ours = await perplexity(back, ids, { seqlen: SEQLEN, limitWindows: WINDOWS });
      back.close();
      const theirs = await llamaCppPerplexity(llama as Exclude<typeof llama, string>, files[type], ids, SEQLEN, WINDOWS);
      assert.equal(theirs.predicted, ours.predicted);
      const rel = Math.abs(theirs.perplexity / ours.perplexity - 1);
      t.diagnostic(`${type}: topiary ${ours.perplexity.toFixed(4)}, llama.cpp ${theirs.perplexity.toFixed(4)} (${(100 * rel).toFixed(3)} %)`);
      assert.ok(rel < PPL_TOLERANCE, `${type}: topiary ${ours.perplexity}, llama.cpp ${theirs.perplexity}`);
    });
  }

  test("topiary's own 4-bit codes (RTN g32 sym) stored as Q4_0: llama.cpp's perplexity within 1 % of topiary's quantized model", async (t) => {
    const w = new QuantizedOverlay(model.weights);
    for (let i = 0; i < model.numLayers; i++) {
      for (const l of model.linears(i)) {
        const name = `${l.name}.weight`;
        w.entries.set(name, rtnSym(model.weights.read(name), l.outFeatures, l.inFeatures, 4, 32, true));
      }
    }
    const file = path.join(dir, "rtn-q4_0.gguf");
    const r = exportGguf({ config: model.config, weights: w, dir: STORIES }, { type: "q4_0", out: file });
    assert.equal(r.tensors.filter((x) => x.fromCodes).length, 30);
    const quantized = new CausalLM(model.config, w, STORIES);
    const ours = await perplexity(quantized, ids, { seqlen: SEQLEN, limitWindows: WINDOWS });
    const theirs = await llamaCppPerplexity(llama as Exclude<typeof llama, string>, file, ids, SEQLEN, WINDOWS);
    const rel = Math.abs(theirs.perplexity / ours.perplexity - 1);
    t.diagnostic(`RTN 4-bit g32 as Q4_0: topiary ${ours.perplexity.toFixed(4)}, llama.cpp ${theirs.perplexity.toFixed(4)} (${(100 * rel).toFixed(3)} %)`);
    assert.ok(rel < PPL_TOLERANCE, `topiary ${ours.perplexity}, llama.cpp ${theirs.perplexity}`);
  });

  test("q4_k with real Q4_K blocks and a Q6_K LM head: stories260K widened to 256 (zero padding), same perplexity in both", async (t) => {
    const wide = widenLlama(model.config, model.weights, 256, 256);
    const wideModel = new CausalLM(wide.config, wide.weights, STORIES);
    const plain = await perplexity(model, ids, { seqlen: SEQLEN, limitWindows: 1 });
    const padded = await perplexity(wideModel, ids, { seqlen: SEQLEN, limitWindows: 1 });
    assert.ok(Math.abs(padded.perplexity / plain.perplexity - 1) < 1e-5, `widening changed the model: ${plain.perplexity} → ${padded.perplexity}`);
    const file = path.join(dir, "wide-q4_k.gguf");
    const r = exportGguf({ config: wide.config, weights: wide.weights, dir: STORIES }, { type: "q4_k", out: file, name: "stories260K-wide" });
    const q4k = r.tensors.filter((t) => t.type === "Q4_K").map((t) => t.name);
    assert.equal(q4k.length, 5 * 6); // q, k, v, gate, up, down; attn_output (64 columns) Q5_0; token_embd (the LM head) Q6_K
    assert.equal(r.tensors.find((t) => t.name === "token_embd.weight")!.type, "Q6_K");
    const back = new CausalLM(wide.config, new GgufWeights(GgufFile.open(file)), STORIES);
    const ours = await perplexity(back, ids, { seqlen: SEQLEN, limitWindows: WINDOWS });
    back.close();
    const theirs = await llamaCppPerplexity(llama as Exclude<typeof llama, string>, file, ids, SEQLEN, WINDOWS);
    const rel = Math.abs(theirs.perplexity / ours.perplexity - 1);
    t.diagnostic(`wide q4_k: topiary ${ours.perplexity.toFixed(4)}, llama.cpp ${theirs.perplexity.toFixed(4)} (${(100 * rel).toFixed(3)} %)`);
    assert.ok(rel < PPL_TOLERANCE, `topiary ${ours.perplexity}, llama.cpp ${theirs.perplexity}`);
  });
});
