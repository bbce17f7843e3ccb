// The two checks of a family's block backward (train/blocks/<family>.ts) on a tiny random model:
//   - float64 central finite differences, loss = Σ out ⊙ R for a fixed random R (so d loss / d out
//     = R), probed at random entries of every layer tensor (linears, biases, norms) and of the input;
//   - float32: the forward the backward graph recomputes equals the family's own forward graph, and
//     the float32 gradients (the graph training runs) equal the float64 ones.
// And of its head (`train.headBackward` inside the head + KL loss graph): d loss / d hidden against
// finite differences (float64), its logits against the model's own head graph (float32).
import assert from "node:assert/strict";
import { Rng } from "../../../src/data/rng.js";
import { CausalLM } from "../../../src/models/model.js";
import { adapterFor } from "../../../src/models/registry.js";
import { syntheticModel, type SyntheticShape } from "../../../src/models/synthetic.js";
import { cachedSession, type RtTensor } from "../../../src/runtime/ort.js";
import { headLossGraph } from "../../../src/train/head-loss.js";
import { blockBackward } from "../../../src/train/model-backward.js";
import { centralDifference, relativeError } from "../finite-difference.js";

export interface BlockCheck {
  /** worst relative error of the backward vs central finite differences */
  fdWorst: number;
  /** max |Δ| of the recomputed forward vs the model's forward graph (float32) */
  forwardDiff: number;
  /** worst ‖Δ‖/‖g‖ of a float32 gradient against the float64 one */
  grad32: number;
}

export async function checkBlock(shape: SyntheticShape, opts: { layer?: number; B?: number; T?: number; probes?: number } = {}): Promise<BlockCheck> {
  const layer = opts.layer ?? 0;
  const B = opts.B ?? 2;
  const T = opts.T ?? 5;
  const { config, weights } = syntheticModel(shape, 11);
  const family = adapterFor(config);
  const prefix = family.layerPrefix(layer);
  const w64 = new Map<string, Float64Array>();
  for (const suffix of family.layerTensors(config, layer).keys()) w64.set(suffix, Float64Array.from(weights.read(prefix + suffix)));
  const rng = new Rng(5);
  const size = B * T * config.hiddenSize;
  const x = Float64Array.from({ length: size }, () => 2 * rng.next() - 1);
  const R = Float64Array.from({ length: size }, () => 2 * rng.next() - 1);

  const run = (xx: Float64Array, normGrads = false) => blockBackward(config, layer, B, T, xx, w64, R, { normGrads });
  const loss = async () => {
    const r = await run(x);
    let s = 0;
    for (let i = 0; i < R.length; i++) s += r.out[i]! * R[i]!;
    return s;
  };
  const g = await run(x, true);
  assert.deepEqual([...g.grads.keys()].sort(), [...w64.keys()].sort(), "a gradient for every layer tensor");
  const eps = 1e-6;
  let worst = 0;
  const probe = async (label: string, arr: Float64Array, grad: Float64Array) => {
    assert.equal(grad.length, arr.length, `${label}: gradient size`);
    for (let k = 0; k < (opts.probes ?? 4); k++) {
      const i = rng.int(arr.length);
      const fd = await centralDifference(arr, i, eps, loss);
      const err = relativeError(fd, grad[i]!);
      worst = Math.max(worst, err);
      // FD_VERBOSE=1 prints every probe above 1e-6 (to tell the finite-difference noise floor from a wrong formula)
      if (process.env.FD_VERBOSE && err > 1e-6) console.log(`# ${label}[${i}] fd ${fd} backward ${grad[i]} err ${err}`);
      assert.ok(err < 1e-5, `${label}[${i}]: finite difference ${fd}, backward ${grad[i]}`);
    }
  };
  for (const [suffix, w] of w64) await probe(suffix, w, g.grads.get(suffix)!);
  await probe("hidden", x, g.gradHidden);

  // float32: the recomputed forward against the family's forward graph
  const model = new CausalLM(config, weights, "<synthetic>");
  const x32 = Float32Array.from(x);
  const w32 = model.layerWeights(layer);
  const fwd = (await model.runLayer(layer, x32, B, T, { weights: w32 })).hidden;
  const r32 = await blockBackward(config, layer, B, T, x32, w32, new Float32Array(size));
  let diff = 0;
  for (let i = 0; i < fwd.length; i++) diff = Math.max(diff, Math.abs(fwd[i]! - r32.out[i]!));
  assert.ok(diff < 2e-5, `recomputed forward: max |Δ| ${diff}`);
  // the float32 graph (what training runs; GELU through the Erf op) gives the float64 gradients
  const g32 = await blockBackward(config, layer, B, T, x32, new Map([...w64].map(([k, v]) => [k, Float32Array.from(v)])), Float32Array.from(R), { normGrads: true });
  let grad32 = 0;
  const norm = (a: ArrayLike<number>) => Math.sqrt(Array.from(a).reduce((s, v) => s + v * v, 0));
  // k_proj's bias has a zero gradient (it shifts all of a query's scores by one constant): float32
  // leaves rounding noise there, so norms below 1e-3 of the input gradient's are compared to that
  const floor = 1e-3 * norm(g.gradHidden);
  const relative = (a: Float32Array, b: Float64Array) => {
    let num = 0;
    for (let i = 0; i < b.length; i++) num += (a[i]! - b[i]!) ** 2;
    return Math.sqrt(num) / Math.max(norm(b), floor);
  };
  for (const [suffix, g64] of [...g.grads, ["hidden", g.gradHidden] as const]) {
    const e = relative(suffix === "hidden" ? g32.gradHidden : g32.grads.get(suffix)!, g64);
    grad32 = Math.max(grad32, e);
    assert.ok(e < 1e-4, `${suffix}: float32 gradient ‖Δ‖/‖g‖ ${e} against float64`);
  }
  return { fdWorst: worst, forwardDiff: diff, grad32 };
}

export function report(name: string, r: BlockCheck): void {
  console.log(`# ${name}: worst relative error vs finite differences ${r.fdWorst.toExponential(2)}, forward max |Δ| ${r.forwardDiff.toExponential(2)}, float32 gradients ‖Δ‖/‖g‖ ≤ ${r.grad32.toExponential(2)}`);
}

export interface HeadCheck {
  fdWorst: number;
  /** max |Δ| of the logits vs the model's head graph, relative to the largest logit */
  logitsDiff: number;
}

export async function checkHead(shape: SyntheticShape, opts: { B?: number; T?: number } = {}): Promise<HeadCheck> {
  const B = opts.B ?? 2;
  const T = opts.T ?? 3;
  const N = B * T;
  const { config, weights } = syntheticModel(shape, 13);
  const D = config.hiddenSize;
  const V = config.vocabSize;
  const rng = new Rng(7);
  const hidden = Float64Array.from({ length: N * D }, () => 2 * rng.next() - 1);
  const teacher = Float64Array.from({ length: N * V }, () => 3 * (2 * rng.next() - 1));
  const has = (n: string) => weights.has(n);
  const build = (type: "float32" | "float64") => headLossGraph(config, { type, N, loss: "kl", temperature: 1 }, has);
  const g64 = build("float64");
  const s64 = await cachedSession(`test:head:${config.architecture}:${JSON.stringify(shape)}:64`, () => g64.bytes);
  const feeds64: Record<string, RtTensor> = { teacher_logits: { data: teacher, dims: [N, V] } };
  for (const [name, dims] of g64.weights) feeds64[name] = { data: Float64Array.from(weights.read(name)), dims };
  const run = (h: Float64Array) => s64.run({ ...feeds64, hidden: { data: h, dims: [N, D] } }, ["loss", "grad_hidden"]);
  const grad = (await run(hidden)).grad_hidden!.data as Float64Array;
  const eps = 1e-6;
  let worst = 0;
  for (let k = 0; k < 8; k++) {
    const i = rng.int(hidden.length);
    const fd = await centralDifference(hidden, i, eps, async () => ((await run(hidden)).loss!.data as Float64Array)[0]!);
    const err = relativeError(fd, grad[i]!);
    worst = Math.max(worst, err);
    assert.ok(err < 1e-5, `head: hidden[${i}]: finite difference ${fd}, backward ${grad[i]}`);
  }
  // float32 logits against the model's head graph
  const g32 = build("float32");
  const s32 = await cachedSession(`test:head:${config.architecture}:${JSON.stringify(shape)}:32`, () => g32.bytes);
  const h32 = Float32Array.from(hidden);
  const feeds32: Record<string, RtTensor> = { hidden: { data: h32, dims: [N, D] }, teacher_logits: { data: Float32Array.from(teacher), dims: [N, V] } };
  for (const [name, dims] of g32.weights) feeds32[name] = { data: weights.read(name), dims };
  const logits = (await s32.run(feeds32, ["logits"])).logits!.data as Float32Array;
  const want = await new CausalLM(config, weights, "<synthetic>").logits(h32);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < want.length; i++) {
    diff = Math.max(diff, Math.abs(want[i]! - logits[i]!));
    scale = Math.max(scale, Math.abs(want[i]!));
  }
  assert.ok(diff <= 1e-5 * scale, `head logits: max |Δ| ${diff} (largest logit ${scale})`);
  return { fdWorst: worst, logitsDiff: diff / scale };
}

export function reportHead(name: string, r: HeadCheck): void {
  console.log(`# ${name} head: worst relative error vs finite differences ${r.fdWorst.toExponential(2)}, logits max |Δ| / max |logit| ${r.logitsDiff.toExponential(2)}`);
}
