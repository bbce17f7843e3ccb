// GGUF export of GPT-2, BLOOM and GPT-NeoX (llama.cpp's gpt2, bloom, gptneox): llama.cpp tensor
// names and metadata, query_key_value rows reordered to q|k|v and read back exactly, and llama.cpp
// itself (node-llama-cpp) continuing the golden prompt with transformers' 24 greedy tokens.
// The checkpoints get stories260K's tokenizer (same 512 ids): the comparison is by token ids, and
// byte-level BPE vocabularies in GGUF are another change. OPT: refused in one line.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, describe, test } from "node:test";
import { decode } from "../../src/eval/decode.js";
import { exportGguf, type GgufTypeName } from "../../src/export/gguf.js";
import { GgufWeights } from "../../src/export/gguf-weights.js";
import { GgufFile } from "../../src/formats/gguf/reader.js";
import { loadModel } from "../../src/models/load.js";
import { CausalLM } from "../../src/models/model.js";
import { releaseSessions } from "../../src/runtime/ort.js";
import { oneLineError, topiaryInProcess } from "../cli/run-cli.js";
import { DATA, REFERENCE, STORIES, tempDir } from "../helpers.js";
import { llamaCppGreedy, loadLlama } from "./llama-cpp.js";

const llama = await loadLlama();
if (typeof llama === "string") throw new Error(llama);
const ARCH = path.join(REFERENCE, "architectures");
const GREEDY = { maxNewTokens: 24, temperature: 0, topK: 0, topP: 1, seed: 0, stopIds: [] };

/** The golden checkpoint `name` with stories260K's tokenizer files. */
function withSpmTokenizer(name: string): string {
  const dir = path.join(tempDir("topiary-gguf-family-"), name);
  fs.mkdirSync(dir);
  for (const f of ["config.json", "model.safetensors", "generation_config.json"]) fs.copyFileSync(path.join(ARCH, name, f), path.join(dir, f));
  for (const f of ["tokenizer.json", "tokenizer_config.json"]) fs.copyFileSync(path.join(STORIES, f), path.join(dir, f));
  return dir;
}

const LAYER_TENSORS = ["attn_norm", "attn_qkv", "attn_output", "ffn_norm", "ffn_up", "ffn_down"].flatMap((t) => [`${t}.weight`, `${t}.bias`]);
const CASES: { name: string; arch: string; global: string[]; metadata: Record<string, unknown>; f16Greedy: boolean }[] = [
  {
    name: "gpt2",
    arch: "gpt2",
    global: ["token_embd.weight", "position_embd.weight", "output_norm.weight", "output_norm.bias"],
    metadata: { "gpt2.context_length": 256, "gpt2.embedding_length": 64, "gpt2.feed_forward_length": 256, "gpt2.block_count": 2, "gpt2.attention.head_count": 4 },
    f16Greedy: true,
  },
  {
    name: "bloom",
    arch: "bloom",
    global: ["token_embd.weight", "token_embd_norm.weight", "token_embd_norm.bias", "output_norm.weight", "output_norm.bias"],
    metadata: { "bloom.embedding_length": 64, "bloom.feed_forward_length": 256, "bloom.block_count": 2, "bloom.attention.head_count": 4, "bloom.attention.head_count_kv": 4 },
    f16Greedy: true,
  },
  {
    name: "gpt_neox",
    arch: "gptneox",
    // untied: embed_out is written as output
    global: ["token_embd.weight", "output_norm.weight", "output_norm.bias", "output.weight"],
    metadata: {
      "gptneox.context_length": 256,
      "gptneox.feed_forward_length": 256,
      "gptneox.rope.dimension_count": 4, // int(16 · 0.25)
      "gptneox.rope.freq_base": 10000,
      "gptneox.use_parallel_residual": true,
    },
    // its greedy prompt has a near-tie (top-2 logits 0.0011 apart): llama.cpp's f16 activations flip it
    f16Greedy: false,
  },
];

after(() => releaseSessions());

for (const k of CASES) {
  describe(`GGUF export of ${k.name} (llama.cpp "${k.arch}")`, () => {
    const dir = withSpmTokenizer(k.name);
    const files = {} as Record<GgufTypeName, string>;
    const golden = JSON.parse(fs.readFileSync(path.join(ARCH, k.name, "golden.json"), "utf8"));

    test("f32/f16: llama.cpp tensor names and metadata; every tensor reads back as the original", () => {
      const model = loadModel(dir);
      for (const type of ["f32", "f16"] as const) {
        files[type] = path.join(path.dirname(dir), `${k.name}-${type}.gguf`);
        exportGguf({ config: model.config, weights: model.weights, dir }, { type, out: files[type] });
      }
      const g = GgufFile.open(files.f32);
      const expected = [...k.global, ...[0, 1].flatMap((i) => LAYER_TENSORS.map((t) => `blk.${i}.${t}`))].sort();
      assert.deepEqual(g.tensors.map((t) => t.name).sort(), expected);
      assert.equal(g.get("general.architecture"), k.arch);
      for (const [key, value] of Object.entries(k.metadata)) assert.equal(g.get(key), value, key);
      assert.ok(Math.abs(Number(g.get(`${k.arch}.attention.layer_norm_epsilon`)) - 1e-5) < 1e-12);
      const back = new GgufWeights(g);
      for (const name of back.names()) assert.deepEqual(back.read(name), model.weights.read(name), name);
      back.close();
      model.close();
    });

    test("f16 weights read back by topiary give transformers' 24 greedy tokens", async () => {
      const model = loadModel(dir);
      const fromGguf = new CausalLM(model.config, new GgufWeights(GgufFile.open(files.f16)), dir);
      assert.deepEqual((await decode(fromGguf, Int32Array.from(golden.greedy_prompt_ids), GREEDY)).ids, golden.greedy_new_ids);
      fromGguf.close();
      model.close();
    });

    test("llama.cpp continues the golden prompt with transformers' 24 greedy tokens", async () => {
      if (typeof llama === "string") return;
      assert.deepEqual(await llamaCppGreedy(llama, files.f32, golden.greedy_prompt_ids, 24), golden.greedy_new_ids, "f32");
      if (k.f16Greedy) assert.deepEqual(await llamaCppGreedy(llama, files.f16, golden.greedy_prompt_ids, 24), golden.greedy_new_ids, "f16");
    });
  });
}

describe("GGUF q4_0 of a GPTQ-quantized BLOOM", () => {
  test("query_key_value keeps its codes through the q|k|v row reorder: the file holds exactly the quantized weights (up to f16 scales)", async () => {
    const dir = path.join(tempDir("topiary-gguf-gptq-"), "bloom-gptq");
    const calib = ["--calib", path.join(DATA, "tinystories", "calib.txt"), "--nsamples", "4", "--calib-seqlen", "64", "--calib-sampling", "first"];
    // the CLI's parser in this process: the files are the subject, not the command line
    const q = await topiaryInProcess(["quantize", path.join(ARCH, "bloom"), "--method", "gptq", "--bits", "4", "--group-size", "32", "--sym", ...calib, "--out", dir]);
    assert.equal(q.code, 0, q.stderr);
    for (const f of ["tokenizer.json", "tokenizer_config.json"]) fs.copyFileSync(path.join(STORIES, f), path.join(dir, f));
    const model = loadModel(dir);
    const out = path.join(path.dirname(dir), "bloom-q4_0.gguf");
    const r = exportGguf({ config: model.config, weights: model.weights, dir }, { type: "q4_0", out });
    const qkv = r.tensors.filter((t) => t.name.endsWith("attn_qkv.weight"));
    assert.equal(qkv.length, 2);
    for (const t of qkv) assert.ok(t.fromCodes, `${t.name} was re-quantized`);
    const back = new GgufWeights(GgufFile.open(out));
    for (let i = 0; i < 2; i++) {
      const name = `transformer.h.${i}.self_attention.query_key_value.weight`;
      const a = back.read(name);
      const b = model.weights.read(name);
      let worst = 0;
      for (let j = 0; j < a.length; j++) worst = Math.max(worst, Math.abs(a[j]! - b[j]!) / Math.max(Math.abs(b[j]!), 1e-3));
      assert.ok(worst < 1e-3, `${name}: relative difference ${worst}`);
    }
    back.close();
    model.close();
  });
});

describe("GGUF export of OPT", () => {
  test("refused in one line (llama.cpp has no OPT architecture), nothing written", async () => {
    const out = path.join(tempDir(), "opt.gguf");
    const r = await topiaryInProcess(["export", path.join(ARCH, "opt"), "--to", "gguf", "--out", out]);
    assert.match(oneLineError(r), /GGUF export supports .*; this model is OPTForCausalLM$/);
    assert.ok(!fs.existsSync(out));
  });
});
