import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { exportGguf } from "../../src/export/gguf.js";
import { chooseType, isOutputTensor, outputNote, permuteRows, unpermuteRows } from "../../src/export/gguf-tensors.js";
import { llamaVocab } from "../../src/export/gguf-vocab.js";
import { GgufWeights } from "../../src/export/gguf-weights.js";
import type { CompressedLinear } from "../../src/formats/compressed-linear.js";
import { writeCompressedTensors } from "../../src/formats/compressed-tensors/writer.js";
import { QuantType, TokenType } from "../../src/formats/gguf/constants.js";
import { GgufFile } from "../../src/formats/gguf/reader.js";
import { halfToFloat, floatToHalf } from "../../src/tensor/dtype.js";
import { loadModel } from "../../src/models/load.js";
import type { CausalLM } from "../../src/models/model.js";
import { Tensor } from "../../src/tensor/tensor.js";
import { STORIES, tempDir } from "../helpers.js";
import { QuantizedOverlay, rtnSym } from "./gguf-helpers.js";

const dir = tempDir("topiary-gguf-export-");

describe("GGUF export pieces", () => {
  test("q/k rows follow convert_hf_to_gguf.py's permute: reshape(n_head, 2, hd/2, ·).swapaxes(1, 2)", () => {
    // 2 heads of head_dim 4, rows labelled by their index
    const w = Float32Array.from({ length: 8 * 3 }, (_, i) => Math.floor(i / 3));
    const p = permuteRows(w, 8, 2);
    assert.deepEqual([...p].filter((_, i) => i % 3 === 0), [0, 2, 1, 3, 4, 6, 5, 7]);
    assert.deepEqual(unpermuteRows(p, 8, 2), w);
    assert.throws(() => permuteRows(new Float32Array(6), 6, 2), /cannot permute 6 rows into 2 heads of even size/);
  });

  test("type fallback follows llama-quant.cpp: Q4_K → Q5_0 → F16, Q4_0/Q8_0 → F16, norms F32, LM head Q6_K → Q8_0 → F16", () => {
    const none = { fallback: null, note: null };
    assert.deepEqual(chooseType(QuantType.Q4_K, [64, 512]), { type: QuantType.Q4_K, ...none });
    assert.deepEqual(chooseType(QuantType.Q4_K, [64, 64]), { type: QuantType.Q5_0, fallback: "64 columns are not a multiple of Q4_K's block of 256", note: null });
    assert.equal(chooseType(QuantType.Q4_K, [64, 172]).type, QuantType.F16);
    assert.equal(chooseType(QuantType.Q4_0, [64, 172]).type, QuantType.F16);
    assert.equal(chooseType(QuantType.Q8_0, [64, 96]).type, QuantType.Q8_0);
    assert.deepEqual(chooseType(QuantType.Q4_0, [64]), { type: QuantType.F32, ...none });
    assert.deepEqual(chooseType(QuantType.F16, [64, 172]), { type: QuantType.F16, ...none });
    // the output tensor (LM head): Q6_K when its rows are whole 256-blocks, else Q8_0, else F16
    assert.deepEqual(chooseType(QuantType.Q4_0, [512, 256], true), { type: QuantType.Q6_K, fallback: null, note: outputNote(QuantType.Q6_K) });
    assert.equal(chooseType(QuantType.Q4_K, [512, 2048], true).type, QuantType.Q6_K);
    assert.deepEqual(chooseType(QuantType.Q4_0, [512, 64], true), { type: QuantType.Q8_0, fallback: null, note: outputNote(QuantType.Q8_0) });
    assert.equal(chooseType(QuantType.Q4_K, [512, 288], true).type, QuantType.Q8_0);
    assert.equal(chooseType(QuantType.Q4_0, [512, 72], true).type, QuantType.F16);
    assert.equal(chooseType(QuantType.F16, [512, 64], true).type, QuantType.F16);
    assert.equal(chooseType(QuantType.Q8_0, [512, 256], true).type, QuantType.Q8_0);
    assert.equal(isOutputTensor("token_embd.weight", false), true);
    assert.equal(isOutputTensor("token_embd.weight", true), false);
  });
});

describe("GGUF export of stories260K", () => {
  let model: CausalLM;
  before(() => {
    model = loadModel(STORIES);
  });
  after(() => model.close());

  test("vocabulary: types as LlamaHfVocab assigns them; scores restore the sentencepiece model's exactly", () => {
    const v = llamaVocab(STORIES, 512, { bos: 1, eos: 2 });
    assert.equal(v.tokens.length, 512);
    assert.deepEqual([v.tokens[0], v.tokens[1], v.tokens[2], v.tokens[3], v.tokens[259]], ["<unk>", "<s>", "</s>", "<0x00>", "▁t"]);
    const count = (t: TokenType) => v.types.filter((x) => x === t).length;
    assert.deepEqual([count(TokenType.UNKNOWN), count(TokenType.CONTROL), count(TokenType.BYTE), count(TokenType.NORMAL)], [1, 2, 256, 253]);
    assert.deepEqual([v.bosId, v.eosId, v.unkId, v.padId, v.addBos, v.addEos, v.addSpacePrefix], [1, 2, 0, null, true, false, true]);
    // llama2.c's tok512.bin holds the sentencepiece scores the tokenizer.json's merges were made from
    const bin = fs.readFileSync(path.join(STORIES, "original", "tok512.bin"));
    const original: number[] = [];
    for (let p = 4, i = 0; i < 512; i++) {
      original.push(bin.readFloatLE(p));
      p += 8 + bin.readInt32LE(p + 4);
    }
    assert.deepEqual(v.scores.map((s) => (Object.is(s, -0) ? 0 : s)), original.map((s) => (Object.is(s, -0) ? 0 : s)));
    // a config vocab_size beyond the tokenizer's: "[PADn]" rows, UNUSED, as convert_hf_to_gguf.py pads
    const wide = llamaVocab(STORIES, 515, { bos: 1, eos: 2 });
    assert.deepEqual(wide.tokens.slice(512), ["[PAD1]", "[PAD2]", "[PAD3]"]);
    assert.deepEqual(wide.types.slice(512), [TokenType.UNUSED, TokenType.UNUSED, TokenType.UNUSED]);
    assert.deepEqual(wide.scores.slice(512), [-1000, -1000, -1000]);
  });

  test("f32: llama metadata, llama.cpp names, tied head left out, q/k permuted, weights read back exactly", () => {
    const out = path.join(dir, "f32.gguf");
    const r = exportGguf(model, { type: "f32", out });
    assert.equal(r.fileType, "ALL_F32");
    assert.deepEqual(r.warnings, []);
    const g = GgufFile.open(out);
    try {
      const expect: Record<string, unknown> = {
        "general.architecture": "llama",
        "general.name": "stories260K",
        "general.file_type": 0,
        "general.alignment": 32,
        "general.quantization_version": 2,
        "llama.vocab_size": 512,
        "llama.context_length": 512,
        "llama.embedding_length": 64,
        "llama.block_count": 5,
        "llama.feed_forward_length": 172,
        "llama.rope.dimension_count": 8,
        "llama.attention.head_count": 8,
        "llama.attention.head_count_kv": 4,
        "llama.attention.layer_norm_rms_epsilon": Math.fround(1e-5),
        "llama.rope.freq_base": 10000,
        "tokenizer.ggml.model": "llama",
        "tokenizer.ggml.bos_token_id": 1,
        "tokenizer.ggml.eos_token_id": 2,
        "tokenizer.ggml.unknown_token_id": 0,
        "tokenizer.ggml.add_bos_token": true,
        "tokenizer.ggml.add_eos_token": false,
      };
      for (const [k, v] of Object.entries(expect)) assert.equal(g.get(k), v, k);
      assert.equal((g.get("tokenizer.ggml.tokens") as string[]).length, 512);
      assert.equal(g.tensors.length, 2 + 5 * 9);
      assert.equal(g.tensors.some((t) => t.name === "output.weight"), false);
      assert.deepEqual(g.tensor("token_embd.weight").shape, [512, 64]);
      assert.deepEqual(g.tensor("blk.4.ffn_down.weight").shape, [64, 172]);
      assert.deepEqual(g.tensor("blk.0.attn_k.weight").shape, [32, 64]);
      const q = model.weights.read("model.layers.2.self_attn.q_proj.weight");
      assert.deepEqual(g.readFloat32("blk.2.attn_q.weight"), permuteRows(q, 64, 8));
      const k = model.weights.read("model.layers.2.self_attn.k_proj.weight");
      assert.deepEqual(g.readFloat32("blk.2.attn_k.weight"), permuteRows(k, 32, 4));
      const back = new GgufWeights(GgufFile.open(out));
      for (const name of model.weights.names()) assert.deepEqual(back.read(name), model.weights.read(name), name);
      back.close();
    } finally {
      g.close();
    }
  });

  test("q4_0 / q4_k: 2-D weights quantized, norms F32, the tied LM head Q8_0, rows of 172 (ffn_down) fall back", () => {
    const q40 = exportGguf(model, { type: "q4_0", out: path.join(dir, "q4_0.gguf") });
    const types = (r: typeof q40, re: RegExp) => [...new Set(r.tensors.filter((t) => re.test(t.name)).map((t) => t.type))];
    assert.deepEqual(types(q40, /norm/), ["F32"]);
    assert.deepEqual(types(q40, /attn_[qkvo]|ffn_(gate|up)/), ["Q4_0"]);
    assert.deepEqual(types(q40, /ffn_down/), ["F16"]);
    assert.equal(q40.tensors.find((t) => t.name === "blk.0.ffn_down.weight")!.fallback, "172 columns are not a multiple of Q4_0's block of 32");
    const embd = q40.tensors.find((t) => t.name === "token_embd.weight")!;
    assert.deepEqual([embd.type, embd.fallback, embd.note], ["Q8_0", null, outputNote(QuantType.Q8_0)]); // 64 columns: not a whole 256-block
    const q4k = exportGguf(model, { type: "q4_k", out: path.join(dir, "q4_k.gguf") });
    assert.deepEqual(types(q4k, /attn_[qkvo]|ffn_(gate|up)/), ["Q5_0"]); // 64 columns: not a whole 256-block
    assert.deepEqual(types(q4k, /ffn_down/), ["F16"]);
    assert.deepEqual(types(q4k, /token_embd/), ["Q8_0"]);
    assert.ok(q40.bytes < 0.3 * fs.statSync(path.join(STORIES, "model.safetensors")).size);
  });

  test("checkpoint tensors with no place in the GGUF are left out, named in one warning", () => {
    const extra = ["model.extra.a", "model.extra.b", "model.extra.c", "model.extra.d"];
    const w = model.weights;
    const weights = { location: w.location, names: () => [...w.names(), ...extra], has: (n: string) => w.has(n), shape: (n: string) => w.shape(n), read: (n: string) => w.read(n), storedBytes: (n: string) => w.storedBytes(n), dtype: (n: string) => w.dtype(n), close: () => {} };
    const r = exportGguf({ config: model.config, weights, dir: STORIES }, { type: "f32", out: path.join(dir, "extra.gguf") });
    assert.deepEqual(r.warnings, ['left out: no place in the GGUF: "model.extra.a", "model.extra.b", "model.extra.c" and 1 more']);
  });

  test("unsupported architecture or dtype: one-line error, no file, no temporary file", () => {
    const sub = path.join(dir, "refused");
    fs.mkdirSync(sub);
    const out = path.join(sub, "x.gguf");
    // OPT: llama.cpp has no such architecture
    const opt = { config: { ...model.config, architecture: "OPTForCausalLM" }, weights: model.weights, dir: STORIES };
    assert.throws(() => exportGguf(opt, { type: "f16", out }), /^Error: GGUF export supports LlamaForCausalLM, MistralForCausalLM, [\w, ]+; this model is OPTForCausalLM$/);
    const ints = new QuantizedOverlay(model.weights);
    ints.dtype = (name: string) => (name.endsWith("q_proj.weight") ? "I8" : model.weights.dtype(name));
    assert.throws(() => exportGguf({ config: model.config, weights: ints, dir: STORIES }, { type: "q8_0", out }), /tensor "model.layers.0.self_attn.q_proj.weight" has dtype I8; GGUF export reads F32, F16, BF16 or topiary-quantized tensors/);
    const failing = new QuantizedOverlay(model.weights);
    failing.read = (name: string) => {
      if (name.includes("layers.3")) throw new Error(`cannot read ${name}`);
      return model.weights.read(name);
    };
    assert.throws(() => exportGguf({ config: model.config, weights: failing, dir: STORIES }, { type: "q8_0", out }), /cannot read model.layers.3/);
    assert.deepEqual(fs.readdirSync(sub), []);
  });
});

describe("GGUF export keeps topiary's quantization codes", () => {
  let model: CausalLM;
  before(() => {
    model = loadModel(STORIES);
  });
  after(() => model.close());

  /** ffn_down (172 columns) falls back to F16: its dense weight rounded to f16; the rest exact. */
  const denseAsStored = (name: string, dense: Float32Array) => (name.includes("down_proj") ? dense.map((x) => halfToFloat(floatToHalf(x))) : dense);

  /** Every linear of every layer quantized with symmetric RTN. */
  function quantizedModel(bits: number, groupSize: number, f16Scales: boolean): QuantizedOverlay {
    const w = new QuantizedOverlay(model.weights);
    for (let i = 0; i < model.numLayers; i++) {
      for (const l of model.linears(i)) {
        const name = `${l.name}.weight`;
        w.entries.set(name, rtnSym(model.weights.read(name), l.outFeatures, l.inFeatures, bits, groupSize, f16Scales));
      }
    }
    return w;
  }

  test("4-bit g32 symmetric → Q4_0 holds the same codes and scales: the weights come back bit for bit", () => {
    const w = quantizedModel(4, 32, true);
    const out = path.join(dir, "codes-q4_0.gguf");
    const r = exportGguf({ config: model.config, weights: w, dir: STORIES }, { type: "q4_0", out });
    const fromCodes = r.tensors.filter((t) => t.fromCodes).map((t) => t.name);
    assert.equal(fromCodes.length, 5 * 6); // q, k, v, o, gate, up; ffn_down (172 columns) falls back to F16
    assert.ok(r.tensors.every((t) => !t.fromCodes || t.scaleRelError === 0));
    assert.deepEqual(r.warnings, []);
    const g = GgufFile.open(out);
    const back = new GgufWeights(GgufFile.open(out));
    try {
      for (const [name, e] of w.entries) assert.deepEqual(back.read(name), denseAsStored(name, e.dense), name);
      // the nibbles are the codes themselves (c = q − 8 stored as c + 8), rows in ggml's q order
      const e = w.entries.get("model.layers.1.self_attn.q_proj.weight")!;
      const bytes = g.readBytes("blk.1.attn_q.weight");
      const codes = permuteRows(Int8Array.from(e.codes), 64, 8);
      const scales = permuteRows(Uint16Array.from(e.grid.scale, (s) => floatToHalf(s)), 64, 8);
      for (let b = 0; b < bytes.length / 18; b++) {
        assert.equal(bytes[18 * b]! | (bytes[18 * b + 1]! << 8), scales[b]);
        for (let j = 0; j < 16; j++) {
          assert.equal(bytes[18 * b + 2 + j]! & 0x0f, codes[32 * b + j]);
          assert.equal(bytes[18 * b + 2 + j]! >> 4, codes[32 * b + 16 + j]);
        }
      }
    } finally {
      g.close();
      back.close();
    }
  });

  test("8-bit g64 symmetric → Q8_0 (two blocks per group) keeps the codes as q − 128", () => {
    const w = quantizedModel(8, 64, true);
    const out = path.join(dir, "codes-q8_0.gguf");
    const r = exportGguf({ config: model.config, weights: w, dir: STORIES }, { type: "q8_0", out });
    assert.equal(r.tensors.filter((t) => t.fromCodes).length, 30);
    const back = new GgufWeights(GgufFile.open(out));
    for (const [name, e] of w.entries) assert.deepEqual(back.read(name), denseAsStored(name, e.dense), name);
    const g = GgufFile.open(out);
    const e = w.entries.get("model.layers.0.mlp.up_proj.weight")!;
    assert.deepEqual(new Int8Array(g.readBytes("blk.0.ffn_up.weight").buffer, 2, 32), Int8Array.from(e.codes.subarray(0, 32), (q) => q - 128));
    g.close();
    back.close();
  });

  test("float32 scales: codes kept, scales rounded to the nearest f16, the change reported (≤ 2⁻¹¹)", () => {
    const w = quantizedModel(4, 32, false);
    const r = exportGguf({ config: model.config, weights: w, dir: STORIES }, { type: "q4_0", out: path.join(dir, "codes-f32scales.gguf") });
    const worst = Math.max(...r.tensors.map((t) => t.scaleRelError ?? 0));
    assert.ok(worst > 0 && worst <= 2 ** -11, `worst relative scale change ${worst}`);
    const e = w.entries.get("model.layers.0.self_attn.v_proj.weight")!;
    const back = new GgufWeights(GgufFile.open(path.join(dir, "codes-f32scales.gguf")));
    const v = back.read("model.layers.0.self_attn.v_proj.weight");
    for (let j = 0; j < v.length; j++) {
      const s = halfToFloat(floatToHalf(e.grid.scale[Math.floor(j / 32)]!));
      assert.equal(v[j], Math.fround(s * (e.codes[j]! - 8)));
    }
    back.close();
  });

  test("a compressed-tensors checkpoint (pack-quantized, read by the real reader) exports its codes", async () => {
    const linears = new Map<string, CompressedLinear>();
    const rtn = new Map<string, ReturnType<typeof rtnSym>>();
    for (let i = 0; i < model.numLayers; i++) {
      for (const l of model.linears(i)) {
        const r = rtnSym(model.weights.read(`${l.name}.weight`), l.outFeatures, l.inFeatures, 4, 32, true);
        rtn.set(`${l.name}.weight`, r);
        linears.set(l.name, { name: l.name, weight: new Tensor(r.dense, [l.outFeatures, l.inFeatures]), quant: r.grid });
      }
    }
    const ckpt = path.join(dir, "stories-w4g32");
    await writeCompressedTensors(ckpt, { format: "pack-quantized", sourceModelDir: STORIES, compressed: linears, scaleDtype: "F32" });
    const loaded = loadModel(ckpt);
    const out = path.join(dir, "ct-q4_0.gguf");
    try {
      const r = exportGguf(loaded, { type: "q4_0", out });
      assert.equal(r.tensors.filter((t) => t.fromCodes).length, 30);
      assert.ok(r.tensors.every((t) => !t.fromCodes || t.scaleRelError === 0));
      const back = new GgufWeights(GgufFile.open(out));
      for (const [name, e] of rtn) {
        assert.deepEqual(loaded.weights.quantized!(name)!.codes, e.codes, name);
        assert.deepEqual(back.read(name), denseAsStored(name, loaded.weights.read(name)), name);
      }
      back.close();
    } finally {
      loaded.close();
    }
  });

  test("grids a block cannot hold are re-quantized, and the export says so", () => {
    const g16 = quantizedModel(4, 16, true);
    const r = exportGguf({ config: model.config, weights: g16, dir: STORIES }, { type: "q4_0", out: path.join(dir, "g16.gguf") });
    assert.equal(r.tensors.filter((t) => t.fromCodes).length, 0);
    // one warning for the 30 linears of 64 columns (the 172-wide down_proj fits no block: F16)
    assert.deepEqual(r.warnings, [
      're-quantized to Q4_0, as its grid does not fit (columns 0..31 span more than one quantization group): "model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.k_proj.weight", "model.layers.0.self_attn.v_proj.weight" and 27 more',
    ]);
    const b8 = quantizedModel(8, 32, true);
    const r8 = exportGguf({ config: model.config, weights: b8, dir: STORIES }, { type: "q4_0", out: path.join(dir, "b8.gguf") });
    assert.match(r8.warnings[0]!, /outside Q4_0's range \[-8, 7\]/);
    const k = exportGguf({ config: model.config, weights: quantizedModel(4, 32, true), dir: STORIES }, { type: "q4_k", out: path.join(dir, "k.gguf") });
    // stories260K's 64-wide linears fall back from Q4_K to Q5_0 (one warning for all of them); its
    // 172-wide down_proj rows fit no block and stay F16, which holds any grid
    assert.deepEqual(k.warnings, [
      're-quantized to Q5_0, which cannot hold a 4-bit grid (Q4_0 or Q8_0 keep the codes): "model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.k_proj.weight", "model.layers.0.self_attn.v_proj.weight" and 27 more',
    ]);
  });
});
