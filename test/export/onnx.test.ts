// ONNX export of stories260K, run by onnxruntime through eval/onnx-decoder.ts (the inputs
// transformers.js feeds), against topiary's own forward: greedy generations token for token,
// logits within float32 noise; 4-bit MatMulNBits against topiary on the dequantized weights;
// failures leave nothing behind.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { decode } from "../../src/eval/decode.js";
import { generate } from "../../src/eval/generate.js";
import { OnnxDecoder } from "../../src/eval/onnx-decoder.js";
import { exportOnnx, type OnnxExportOptions } from "../../src/export/onnx.js";
import type { WeightSource } from "../../src/formats/weights.js";
import { loadModel } from "../../src/models/load.js";
import { CausalLM } from "../../src/models/model.js";
import { syntheticModel } from "../../src/models/synthetic.js";
import { releaseSessions } from "../../src/runtime/ort.js";
import { TextTokenizer } from "../../src/tokenizer/tokenizer.js";
import { STORIES, tempDir } from "../helpers.js";
import { maxAbsDiff, PROMPTS, quantizedCheckpoint, top1Agreement } from "./onnx-helpers.js";

const greedy = { maxNewTokens: 48, temperature: 0, topK: 0, topP: 1, seed: 0 };

/** Logits [T, V] of the whole prompt from both, and the max |diff|. */
async function compareLogits(dec: OnnxDecoder, model: CausalLM, ids: Int32Array): Promise<{ onnx: Float32Array; own: Float32Array; diff: number }> {
  const onnx = (await dec.step(ids, 1, ids.length, null)).logits;
  const own = await model.forward(ids, 1, ids.length);
  return { onnx, own, diff: maxAbsDiff(onnx, own) };
}

describe("ONNX export of stories260K", () => {
  let model: CausalLM;
  let tok: TextTokenizer;
  const tmp = tempDir("topiary-onnx-");
  const exported = (name: string, weights: WeightSource, opts: OnnxExportOptions) =>
    exportOnnx(model.config, weights, path.join(tmp, name), { sourceDir: STORIES, ...opts });

  before(() => {
    model = loadModel(STORIES);
    tok = TextTokenizer.load(STORIES);
  });
  after(async () => {
    model.close();
    await releaseSessions();
  });

  test("fp32: folder layout, greedy generation token for token on 3 prompts, logits within 2e-5", async (t) => {
    const r = await exported("fp32", model.weights, { dtype: "fp32" });
    assert.equal(r.file, path.join(tmp, "fp32", "onnx", "model.onnx"));
    for (const f of ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "onnx/model.onnx"]) {
      assert.ok(fs.existsSync(path.join(r.dir, f)), f);
    }
    const config = JSON.parse(fs.readFileSync(path.join(r.dir, "config.json"), "utf8"));
    assert.deepEqual(config["transformers.js_config"], { dtype: "fp32" });
    assert.equal(config.architectures[0], "LlamaForCausalLM");
    const dec = await OnnxDecoder.open(r.dir);
    for (const prompt of PROMPTS) {
      const own = await generate(model, tok, prompt, greedy);
      const onnx = await decode(dec, tok.encode(prompt), greedy);
      assert.deepEqual(onnx.ids, own.ids, prompt);
      assert.ok(own.ids.length >= 20, `${prompt}: only ${own.ids.length} tokens`);
      const { diff } = await compareLogits(dec, model, tok.encode(prompt));
      t.diagnostic(`"${prompt}": ${own.ids.length} tokens equal, logits max |diff| ${diff.toExponential(2)}`);
      assert.ok(diff < 2e-5, `logits max |diff| ${diff}`); // README: logits within 2e-5
    }
    await dec.close();
  });

  test("fp32 with external data: the same logits, the graph file holds no weights", async () => {
    const r = await exported("fp32-ext", model.weights, { dtype: "fp32", externalData: true });
    const graph = fs.statSync(r.file).size;
    const data = fs.statSync(`${r.file}_data`).size;
    assert.ok(graph < 100_000 && data > 1_000_000, `graph ${graph} B, data ${data} B`);
    const config = JSON.parse(fs.readFileSync(path.join(r.dir, "config.json"), "utf8"));
    assert.deepEqual(config["transformers.js_config"].use_external_data_format, { "model.onnx": 1 });
    const dec = await OnnxDecoder.open(r.dir);
    const { diff } = await compareLogits(dec, model, tok.encode(PROMPTS[0]!));
    assert.ok(diff < 2e-5, String(diff));
    await dec.close();
  });

  test("fp16 weights: half the bytes, logits within 0.05 of float32, same top-1 on most positions", async (t) => {
    const r = await exported("fp16", model.weights, { dtype: "fp16" });
    assert.equal(path.basename(r.file), "model_fp16.onnx");
    assert.ok(r.bytes < 0.55 * fs.statSync(path.join(tmp, "fp32", "onnx", "model.onnx")).size, String(r.bytes));
    const dec = await OnnxDecoder.open(r.dir);
    const { onnx, own, diff } = await compareLogits(dec, model, tok.encode(PROMPTS[2]!));
    const agree = top1Agreement(onnx, own, model.config.vocabSize);
    t.diagnostic(`fp16: logits max |diff| ${diff.toFixed(4)}, top-1 agreement ${(agree * 100).toFixed(0)} %`);
    assert.ok(diff < 0.05 && agree >= 0.9, `${diff}, ${agree}`);
    await dec.close();
  });

  test("4-bit checkpoint codes → MatMulNBits: logits match topiary on the dequantized weights", async (t) => {
    const q4 = quantizedCheckpoint(model);
    const deq = new CausalLM(model.config, q4, STORIES);
    const ids = tok.encode(PROMPTS[2]!);
    for (const accuracyLevel of [0, 4]) {
      const r = await exported(`q4-acc${accuracyLevel}`, q4, { dtype: "fp32", accuracyLevel });
      assert.equal(path.basename(r.file), "model_q4.onnx");
      assert.equal(r.quantizedLinears, 7 * model.config.numLayers);
      const dec = await OnnxDecoder.open(r.dir);
      const { onnx, own, diff } = await compareLogits(dec, deq, ids);
      const agree = top1Agreement(onnx, own, model.config.vocabSize);
      const g1 = await generate(deq, tok, PROMPTS[0]!, greedy);
      const g2 = await decode(dec, tok.encode(PROMPTS[0]!), greedy);
      let same = 0;
      while (same < g1.ids.length && g1.ids[same] === g2.ids[same]) same++;
      t.diagnostic(
        `q4 g32 accuracy_level ${accuracyLevel}: ${(r.bytes / 1e3).toFixed(0)} kB, logits max |diff| ${diff.toExponential(2)}, ` +
          `top-1 ${(agree * 100).toFixed(0)} %, greedy: first ${same} of ${g1.ids.length} tokens equal`,
      );
      // level 0 computes in float32 (float noise only): README "logits within 2e-5 at accuracy_level 0";
      // level 4 quantizes activations to int8 per block: README "logits within ~0.3 … (same greedy text)"
      assert.ok(diff < (accuracyLevel === 0 ? 2e-5 : 0.3), `max |diff| ${diff}`);
      assert.deepEqual(g2.ids, g1.ids, `accuracy_level ${accuracyLevel}: greedy text differs`);
      await dec.close();
    }
  });

  test("--quantize (RTN on export): down_proj's 172 inputs end in a partial block; same logits as the codes path", async () => {
    const r = await exported("rtn", model.weights, { dtype: "fp32", quantize: { bits: 4, groupSize: 32, sym: false }, accuracyLevel: 0 });
    assert.equal(r.quantizedLinears, 7 * model.config.numLayers);
    const deq = new CausalLM(model.config, quantizedCheckpoint(model), STORIES);
    const dec = await OnnxDecoder.open(r.dir);
    const { diff } = await compareLogits(dec, deq, tok.encode(PROMPTS[1]!));
    assert.ok(diff < 1e-3, String(diff));
    await dec.close();
  });

  test("3-bit checkpoint codes (no MatMulNBits form) are stored dense, dequantized, with one warning naming them", async () => {
    const q3 = quantizedCheckpoint(model, 3);
    const r = await exported("q3", q3, { dtype: "fp32" });
    assert.equal(path.basename(r.file), "model.onnx");
    assert.equal(r.quantizedLinears, 0);
    assert.equal(r.warnings.length, 1);
    assert.match(r.warnings[0]!, /^stored dense \(dequantized\) because MatMulNBits has no 3-bit form .*: "model\.layers\.0\.self_attn\.q_proj\.weight", "model\.layers\.0\.self_attn\.k_proj\.weight", "model\.layers\.0\.self_attn\.v_proj\.weight" and (\d+) more$/);
    assert.equal(Number(/and (\d+) more$/.exec(r.warnings[0]!)![1]), 7 * model.config.numLayers - 3);
    const dec = await OnnxDecoder.open(r.dir);
    const { diff } = await compareLogits(dec, new CausalLM(model.config, q3, STORIES), tok.encode(PROMPTS[0]!));
    assert.ok(diff < 1e-4, String(diff));
    await dec.close();
  });

  test("an unsupported architecture or dtype, or a failure mid-write, fails in one line and leaves nothing", async () => {
    const before = fs.readdirSync(tmp);
    const cases: [string, Promise<unknown>, RegExp][] = [
      ["arch", exportOnnx({ ...model.config, architecture: "UnknownForCausalLM" }, model.weights, path.join(tmp, "arch"), { dtype: "fp32" }), /cannot export architecture "UnknownForCausalLM" to ONNX/],
      ["dtype", exportOnnx(model.config, model.weights, path.join(tmp, "dtype"), { dtype: "bf16" as "fp32" }), /cannot export weights as "bf16"/],
      ["group", exportOnnx(model.config, model.weights, path.join(tmp, "group"), { dtype: "fp32", quantize: { bits: 4, groupSize: 24, sym: false } }), /group size 24/],
    ];
    const failing = Object.create(model.weights) as WeightSource;
    failing.read = (name: string) => {
      if (name.startsWith("model.layers.3.")) throw new Error(`disk error reading ${name}`);
      return model.weights.read(name);
    };
    cases.push(["midway", exportOnnx(model.config, failing, path.join(tmp, "midway"), { dtype: "fp32", externalData: true }), /disk error reading model\.layers\.3\./]);
    for (const [name, p, message] of cases) {
      await assert.rejects(p, (e: Error) => message.test(e.message) && !e.message.includes("\n"), name);
      assert.ok(!fs.existsSync(path.join(tmp, name)), `${name}: output folder exists`);
    }
    assert.deepEqual(fs.readdirSync(tmp), before, "temporary folders left behind");
  });
});

test("synthetic Qwen2-shaped model (q/k/v biases, untied head, GQA, rope θ 1e6): ONNX logits = topiary's", async () => {
  const { config, weights } = syntheticModel({
    architectures: ["Qwen2ForCausalLM"],
    hidden_size: 64,
    intermediate_size: 96,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    vocab_size: 300,
    tie_word_embeddings: false,
    rope_theta: 1e6,
  });
  const out = path.join(tempDir("topiary-onnx-qwen-"), "out");
  await exportOnnx(config, weights, out, { dtype: "fp32" });
  const dec = await OnnxDecoder.open(out);
  const own = new CausalLM(config, weights, out);
  const ids = Int32Array.of(1, 20, 30, 40, 50, 299);
  const first = await dec.step(ids.subarray(0, 4), 1, 4, null);
  const second = await dec.step(ids.subarray(4), 1, 2, first.cache); // a 2-token step on a cache
  const ref = await own.forward(ids, 1, ids.length);
  assert.ok(maxAbsDiff(first.logits, ref.subarray(0, 4 * 300)) < 1e-4);
  assert.ok(maxAbsDiff(second.logits, ref.subarray(4 * 300)) < 1e-4);
  await dec.close();
  await releaseSessions();
});
