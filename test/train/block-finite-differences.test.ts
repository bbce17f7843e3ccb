// Finite differences of the block backward on tiny synthetic shapes, in float64: the same graph
// code built with float64 elements, loss = Σ out ⊙ R for a fixed random R (so d loss / d out = R).
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { Rng } from "../../src/data/rng.js";
import { CausalLM } from "../../src/models/model.js";
import { layerPrefix, layerTensorShapes } from "../../src/models/llama.js";
import type { LlamaConfig } from "../../src/models/llama.js";
import { syntheticModel, type SyntheticShape } from "../../src/models/synthetic.js";
import { releaseSessions } from "../../src/runtime/ort.js";
import { blockBackward } from "../../src/train/model-backward.js";
import { centralDifference, relativeError } from "./finite-difference.js";

after(releaseSessions);

const tiny = (extra: Partial<SyntheticShape> = {}): SyntheticShape => ({
  hidden_size: 16,
  intermediate_size: 24,
  num_hidden_layers: 1,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  head_dim: 4,
  vocab_size: 32,
  rms_norm_eps: 1e-5,
  ...extra,
});

function setup(shape: SyntheticShape, B: number, T: number, layer = 0) {
  const { config, weights } = syntheticModel(shape, 7);
  const w64 = new Map<string, Float64Array>();
  for (const suffix of layerTensorShapes(config as LlamaConfig, layer).keys()) w64.set(suffix, Float64Array.from(weights.read(layerPrefix(layer) + suffix)));
  const rng = new Rng(3);
  const N = B * T * config.hiddenSize;
  const x = Float64Array.from({ length: N }, () => 2 * rng.next() - 1);
  const R = Float64Array.from({ length: N }, () => 2 * rng.next() - 1);
  return { config, weights, w64, x, R, rng };
}

async function checkFiniteDifferences(shape: SyntheticShape, B: number, T: number, layer = 0): Promise<number> {
  const { config, w64, x, R, rng } = setup(shape, B, T, layer);
  const loss = async (xx: Float64Array, ww: Map<string, Float64Array>) => {
    const r = await blockBackward(config, layer, B, T, xx, ww, R);
    let s = 0;
    for (let i = 0; i < R.length; i++) s += r.out[i]! * R[i]!;
    return s;
  };
  const g = await blockBackward(config, layer, B, T, x, w64, R, { normGrads: true });
  assert.deepEqual([...g.grads.keys()].sort(), [...w64.keys()].sort(), "a gradient for every tensor of the layer");
  const eps = 1e-6;
  let worst = 0;
  const probe = async (label: string, arr: Float64Array, grad: Float64Array, reload: () => Promise<number>) => {
    for (let k = 0; k < 4; k++) {
      const i = rng.int(arr.length);
      const fd = await centralDifference(arr, i, eps, reload);
      const err = relativeError(fd, grad[i]!);
      worst = Math.max(worst, err);
      assert.ok(err < 1e-5, `${label}[${i}]: finite difference ${fd}, backward ${grad[i]}`);
    }
  };
  for (const [suffix, w] of w64) await probe(suffix, w, g.grads.get(suffix)!, () => loss(x, w64));
  await probe("hidden", x, g.gradHidden, () => loss(x, w64));
  return worst;
}

test("block backward matches finite differences (float64; GQA 4 q / 2 kv heads, causal)", async () => {
  const worst = await checkFiniteDifferences(tiny(), 2, 5);
  console.log(`# worst relative error vs finite differences: ${worst.toExponential(2)}`);
});

test("… with q/k/v biases and a sliding window shorter than the sequence (Qwen2 / Mistral fields)", async () => {
  const worst = await checkFiniteDifferences(tiny({ architectures: ["Qwen2ForCausalLM"], sliding_window: 3, use_sliding_window: true }), 2, 6);
  console.log(`# worst relative error vs finite differences: ${worst.toExponential(2)}`);
});

// a structured student (FLAP): layer 1 keeps 2 of 4 query heads, 1 of 2 KV heads, 10 of 24 MLP
// channels, and carries the o_proj / down_proj compensation biases; layer 0 is left whole
const perLayer = (extra: Partial<SyntheticShape> = {}) =>
  tiny({
    num_hidden_layers: 2,
    structured_pruning: {
      num_attention_heads: [4, 2],
      num_key_value_heads: [2, 1],
      intermediate_size: [24, 10],
      o_proj_bias: [false, true],
      down_proj_bias: [false, true],
    },
    ...extra,
  });

test("… per-layer widths with FLAP's o_proj / down_proj biases (a structured student's layer 1)", async () => {
  const worst = await checkFiniteDifferences(perLayer(), 2, 5, 1);
  console.log(`# worst relative error vs finite differences: ${worst.toExponential(2)}`);
});

test("… Qwen3's per-head q/k RMSNorm (their scales' gradients too)", async () => {
  const worst = await checkFiniteDifferences(tiny({ architectures: ["Qwen3ForCausalLM"] }), 2, 5);
  console.log(`# worst relative error vs finite differences: ${worst.toExponential(2)}`);
});

for (const [label, shape, layer] of [
  ["GQA", tiny(), 0],
  ["per-layer widths + biases, layer 1", perLayer(), 1],
  ["Qwen3 q/k norm", tiny({ architectures: ["Qwen3ForCausalLM"] }), 0],
] as const) {
  test(`the recomputed forward inside the backward equals the model's forward graph (${label})`, async () => {
    const B = 2;
    const T = 5;
    const { config, weights, x } = setup(shape, B, T, layer);
    const model = new CausalLM(config, weights, "<synthetic>");
    const x32 = Float32Array.from(x);
    const w32 = model.layerWeights(layer);
    const fwd = (await model.runLayer(layer, x32, B, T, { weights: w32 })).hidden;
    const r = await blockBackward(config, layer, B, T, x32, w32, new Float32Array(x32.length));
    let diff = 0;
    for (let i = 0; i < fwd.length; i++) diff = Math.max(diff, Math.abs(fwd[i]! - r.out[i]!));
    assert.ok(diff < 1e-5, `max |Δ| ${diff}`);
  });
}
