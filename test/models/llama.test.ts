import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, describe, test } from "node:test";
import { ropeTables, type LlamaConfig } from "../../src/models/llama.js";
import { inverseFrequencies } from "../../src/models/rope.js";
import { causalMask } from "../../src/models/runtime-graphs.js";
import { loadModel } from "../../src/models/load.js";
import type { CausalLM } from "../../src/models/model.js";
import { releaseSessions } from "../../src/runtime/ort.js";
import { argmax } from "../../src/eval/sampling.js";
import { TextTokenizer } from "../../src/tokenizer/tokenizer.js";
import { REFERENCE, STORIES } from "../helpers.js";

/** Largest |a − b| over rows [0, rows) of two [*, V] logit arrays, with where it happened. */
function maxDiff(a: Float32Array, b: ArrayLike<number>, n = a.length): { diff: number; at: number } {
  let diff = 0;
  let at = -1;
  for (let i = 0; i < n; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (!(d <= diff)) {
      diff = d;
      at = i;
    }
  }
  return { diff, at };
}

describe("rotary tables and the causal mask", () => {
  const c = { headDim: 8, ropeTheta: 10000, ropeScaling: { type: "none" } } as LlamaConfig;

  test("inv_freq = theta^(-2i/hd)", () => {
    const inv = inverseFrequencies(8, 10000, { type: "none" });
    assert.deepEqual(Array.from(inv), [1, 0.1, 0.01, 0.001].map(Math.fround));
    const linear = inverseFrequencies(8, 10000, { type: "linear", factor: 4 });
    assert.deepEqual(Array.from(linear), Array.from(inv, (f) => Math.fround(f / 4)));
  });

  test("llama3 scaling divides low frequencies by the factor and keeps high ones", () => {
    const s = { type: "llama3", factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 } as const;
    const base = inverseFrequencies(128, 500000, { type: "none" });
    const scaled = inverseFrequencies(128, 500000, s);
    for (let i = 0; i < 64; i++) {
      const wavelen = (2 * Math.PI) / base[i]!;
      if (wavelen < 8192 / 4) assert.equal(scaled[i], base[i], `high frequency ${i} unchanged`);
      else if (wavelen > 8192) assert.equal(scaled[i], Math.fround(base[i]! / 8), `low frequency ${i} / 8`);
      else assert.ok(scaled[i]! < base[i]! && scaled[i]! > base[i]! / 8, `medium frequency ${i} interpolated`);
    }
  });

  test("cos/sin at a hand-computed position, halves duplicated as HF cat(freqs, freqs)", () => {
    const { cos, sin } = ropeTables(c, 0, 4);
    // position 3, i = 1: angle = 3 · 10000^(-2/8) = 0.3
    assert.ok(Math.abs(cos[3 * 8 + 1]! - Math.cos(0.3)) < 1e-7);
    assert.ok(Math.abs(sin[3 * 8 + 1]! - Math.sin(0.3)) < 1e-7);
    assert.equal(cos[3 * 8 + 5], cos[3 * 8 + 1]);
    assert.equal(sin[3 * 8 + 5], sin[3 * 8 + 1]);
    // position 2, i = 0: angle 2 rad
    assert.ok(Math.abs(sin[2 * 8]! - 0.9092974268256817) < 1e-7);
    // position 0: cos 1, sin 0
    assert.deepEqual(Array.from(cos.subarray(0, 8)), [1, 1, 1, 1, 1, 1, 1, 1]);
    assert.deepEqual(Array.from(sin.subarray(0, 8)), [0, 0, 0, 0, 0, 0, 0, 0]);
    // a table that starts at position 2 is rows 2.. of one that starts at 0
    const shifted = ropeTables(c, 2, 2);
    assert.deepEqual(shifted.cos, cos.subarray(16, 32));
    assert.deepEqual(shifted.sin, sin.subarray(16, 32));
  });

  test("causalMask(P=2, T=3): query t sees keys 0..P+t", () => {
    const X = -Infinity;
    assert.deepEqual(Array.from(causalMask(2, 3)), [0, 0, 0, X, X, 0, 0, 0, 0, X, 0, 0, 0, 0, 0]);
    assert.deepEqual(Array.from(causalMask(0, 2)), [0, X, 0, 0]);
    assert.deepEqual(Array.from(causalMask(4, 1)), [0, 0, 0, 0, 0]);
  });

  test("causalMask with a window of 2: query t sees keys P+t−1..P+t", () => {
    const X = -Infinity;
    assert.deepEqual(Array.from(causalMask(0, 3, 2)), [0, X, X, 0, 0, X, X, 0, 0]);
    assert.deepEqual(Array.from(causalMask(2, 1, 2)), [X, 0, 0]);
  });
});

interface GoldenPrompt {
  prompt: string;
  ids: number[];
  shape: [number, number];
  argmax_last: number;
  logits: number[][];
}

describe("stories260K forward", () => {
  const golden: GoldenPrompt[] = JSON.parse(fs.readFileSync(path.join(REFERENCE, "golden_logits.json"), "utf8")).prompts;
  let model: CausalLM;
  const V = 512;

  after(async () => {
    model?.close();
    await releaseSessions();
  });

  test("golden logits at every position, to 1e-4 (reference.README: PyTorch float32)", async () => {
    model = loadModel(STORIES);
    const tok = TextTokenizer.load(STORIES);
    assert.equal(golden.length, 3);
    for (const g of golden) {
      assert.deepEqual(Array.from(tok.encode(g.prompt)), g.ids, `ids of ${JSON.stringify(g.prompt)}`);
      const T = g.ids.length;
      assert.deepEqual(g.shape, [T, V]);
      const logits = await model.forward(Int32Array.from(g.ids), 1, T);
      assert.equal(logits.length, T * V);
      const { diff, at } = maxDiff(logits, g.logits.flat());
      assert.ok(diff < 1e-4, `${JSON.stringify(g.prompt)}: max |diff| ${diff} at position ${Math.floor(at / V)}, token ${at % V}`);
      assert.equal(argmax(logits.subarray((T - 1) * V)), g.argmax_last);
    }
  });

  test("KV cache: token-by-token step() equals the full forward, to 1e-4", async () => {
    const ids = Int32Array.from(golden[2]!.ids); // 17 tokens
    const T = ids.length;
    const full = await model.forward(ids, 1, T);
    let cache = null;
    for (let t = 0; t < T; t++) {
      const r = await model.step(ids.subarray(t, t + 1), 1, 1, cache);
      cache = r.cache;
      const { diff } = maxDiff(r.logits, full.subarray(t * V, (t + 1) * V));
      assert.ok(diff < 1e-4, `position ${t}: max |diff| ${diff}`);
    }
    assert.equal(cache!.length, T);
    assert.equal(cache!.keys.length, 5);
    assert.equal(cache!.keys[0]!.length, 1 * 4 * T * 8); // [B, KV, P, hd]
    // a prefill of 5 then a chunk of 12 with the cache
    const a = await model.step(ids.subarray(0, 5), 1, 5, null);
    const b = await model.step(ids.subarray(5), 1, T - 5, a.cache);
    assert.ok(maxDiff(a.logits, full.subarray(0, 5 * V)).diff < 1e-4);
    assert.ok(maxDiff(b.logits, full.subarray(5 * V)).diff < 1e-4);
  });

  test("201-token greedy path: chunked attention equals plain attention, argmax follows the path", async () => {
    const readme = fs.readFileSync(path.join(STORIES, "README.md"), "utf8");
    const block = readme.split("The 200 generated ids (after the BOS `1`):")[1]!.split("```")[1]!;
    const ids = Int32Array.from([1, ...block.trim().split(/\s+/).map(Number)]);
    assert.equal(ids.length, 201);
    const T = ids.length;
    const chunked = await model.forward(ids, 1, T); // fixed-T graph: 6 row chunks
    const plain = (await model.step(ids, 1, T, null)).logits; // KV graph: one Attention
    const { diff, at } = maxDiff(chunked, plain);
    assert.ok(diff < 1e-4, `max |diff| ${diff} at position ${Math.floor(at / V)}`);
    for (let t = 0; t + 1 < T; t++) assert.equal(argmax(chunked.subarray(t * V, (t + 1) * V)), ids[t + 1], `greedy step ${t}`);
  });

  test("a batch of two sequences gives each sequence's own logits", async () => {
    const x = Int32Array.from(golden[2]!.ids);
    const y = x.map((id, i) => (i === 0 ? 1 : (id * 7 + i) % V));
    const T = x.length;
    const both = await model.forward(Int32Array.from([...x, ...y]), 2, T);
    const alone = await model.forward(y, 1, T);
    assert.ok(maxDiff(both.subarray(T * V), alone).diff < 1e-5);
    assert.ok(maxDiff(both, await model.forward(x, 1, T), T * V).diff < 1e-5);
  });
});
