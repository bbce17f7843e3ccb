// The runtime host's attention options that no registered family exercises yet, checked against
// hand-computed attention: ALiBi (BLOOM) with the KV cache off and on, and a window.
import assert from "node:assert/strict";
import { after, test } from "node:test";
import type { ModelConfig } from "../../src/models/config.js";
import type { AttentionOptions, FamilyAdapter } from "../../src/models/family.js";
import { causalMask, layerGraph } from "../../src/models/runtime-graphs.js";
import { cachedSession, f32, releaseSessions } from "../../src/runtime/ort.js";

after(releaseSessions);

const H = 2;
const hd = 2;
const D = H * hd;

/** A family whose block is attention with q = k = v = the hidden state, nothing else. */
function probe(opts: Partial<AttentionOptions>): FamilyAdapter {
  return {
    name: "probe",
    parseConfig: () => {
      throw new Error("unused");
    },
    layerPrefix: (i) => `l${i}.`,
    globalTensors: () => [],
    headWeight: () => "none",
    layerTensors: () => new Map(),
    linears: () => [],
    captureWidths: () => ({}),
    trueSequentialGroups: () => [],
    layerKey: () => opts,
    rotary: () => ({}),
    embed: () => {
      throw new Error("unused");
    },
    block: (g, ctx, _w, _c, _i, x) => {
      const s = g.op("Reshape", [x, ctx.shape(D)]);
      return ctx.attention(s, s, s, { numHeads: H, numKvHeads: H, headDim: hd, ...opts });
    },
    head: () => {
      throw new Error("unused");
    },
  };
}

/** Attention of x [T, D] on itself, by hand: scores q·k/√hd + slope·j, keys j ≤ t within the window. */
function expected(x: Float32Array, T: number, slopes: number[] | null, window: number | null): Float32Array {
  const out = new Float32Array(T * D);
  for (let h = 0; h < H; h++) {
    for (let t = 0; t < T; t++) {
      const keys: number[] = [];
      for (let j = 0; j <= t; j++) if (window === null || j > t - window) keys.push(j);
      const s = keys.map((j) => {
        let d = 0;
        for (let e = 0; e < hd; e++) d += x[t * D + h * hd + e]! * x[j * D + h * hd + e]!;
        return d / Math.sqrt(hd) + (slopes ? slopes[h]! * j : 0);
      });
      const m = Math.max(...s);
      const w = s.map((v) => Math.exp(v - m));
      const z = w.reduce((a, b) => a + b, 0);
      for (let e = 0; e < hd; e++) out[t * D + h * hd + e] = keys.reduce((a, j, k) => a + (w[k]! / z) * x[j * D + h * hd + e]!, 0);
    }
  }
  return out;
}

const c = { hiddenSize: D, numKvHeads: H, headDim: hd } as ModelConfig;
const T = 5;
const x = Float32Array.from({ length: T * D }, (_, i) => Math.sin(i * 1.7) * 2);

for (const [label, opts] of [
  ["ALiBi", { alibiSlopes: [0.5, 0.125] }],
  ["window 2", { window: 2 }],
  ["ALiBi and window 3", { alibiSlopes: [1, -0.25], window: 3 }],
] as const) {
  test(`${label}: runtime attention = hand-computed, without and with the KV cache`, async () => {
    const want = expected(x, T, "alibiSlopes" in opts ? [...opts.alibiSlopes] : null, "window" in opts ? opts.window : null);
    const family = probe(opts as Partial<AttentionOptions>);
    const window = "window" in opts ? opts.window : null;
    const maskName = window === undefined || window === null ? "mask" : `mask_w${window}`;
    const full = layerGraph(family, c, 0, { kvCache: false, seqLen: T });
    const s = await cachedSession(`test:probe:${label}:full`, () => full.bytes);
    const y = (await s.run({ hidden: f32(x, [1, T, D]), [maskName]: f32(causalMask(0, T, window ?? null), [T, T]) }, ["out"])).out!.data as Float32Array;
    for (let i = 0; i < y.length; i++) assert.ok(Math.abs(y[i]! - want[i]!) < 1e-5, `${label} [${i}]: ${y[i]} vs ${want[i]}`);

    // the same with a cache: 3 tokens, then the last 2 against the past keys/values
    const kv = layerGraph(family, c, 0, { kvCache: true });
    const sk = await cachedSession(`test:probe:${label}:kv`, () => kv.bytes);
    const empty = new Float32Array(0);
    const a = await sk.run({ hidden: f32(x.subarray(0, 3 * D), [1, 3, D]), [maskName]: f32(causalMask(0, 3, window ?? null), [3, 3]), past_key: f32(empty, [1, H, 0, hd]), past_value: f32(empty, [1, H, 0, hd]) }, ["out", "present_key", "present_value"]);
    const b = await sk.run(
      { hidden: f32(x.subarray(3 * D), [1, 2, D]), [maskName]: f32(causalMask(3, 2, window ?? null), [2, 5]), past_key: f32(a.present_key!.data as Float32Array, [1, H, 3, hd]), past_value: f32(a.present_value!.data as Float32Array, [1, H, 3, hd]) },
      ["out"],
    );
    const stepped = new Float32Array([...(a.out!.data as Float32Array), ...(b.out!.data as Float32Array)]);
    for (let i = 0; i < stepped.length; i++) assert.ok(Math.abs(stepped[i]! - want[i]!) < 1e-5, `${label} cached [${i}]: ${stepped[i]} vs ${want[i]}`);
  });
}
