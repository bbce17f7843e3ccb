// The calibration passes of structured pruning: walk the decoder layers in order, feed each the
// calibration activations, record its consumers' input statistics one sample at a time (FLAP's
// batch-of-one accumulation), and choose the units to keep.
//   flap:     statistics of the DENSE model (FLAP scores every layer before pruning any), then
//             one global threshold over all layers (AL-AM), with bias compensation;
//   wanda-sp: layer i is scored on the outputs of the already-pruned layers 0..i−1 and pruned
//             before layer i+1 is scored (FLAP's prune_wanda_sp), the same ratio in every layer;
//   obs-sp:   layer by layer like wanda-sp, units removed greedily by their OBS loss, the
//             survivors refitted after every removal (obs.ts); the layer's budget of r of its
//             weights is split between attention and MLP by the measured layer output error
//             (splitObs; --uniform: floor(r·count) of each group, as wanda-sp);
//   reconstruct (flap, wanda-sp): after choosing, refit the consumers' kept columns and bias by
//             least squares on the inputs of the already-pruned predecessors.
// Memory: one layer's weights and two buffers of calibration activations, as the compression
// pipeline; FLAP also keeps every layer's o_proj/down_proj for its global step.
import type { CalibrationBatch } from "../../data/calibration.js";
import type { CaptureName, CausalLM, LayerWeights } from "../../models/model.js";
import { killPoint } from "../../formats/kill-point.js";
import { GramAccumulator } from "../../runtime/kernels.js";
import { keptWeights, layerWeightsAfter } from "./apply.js";
import { withConsumerBiases } from "./biased-model.js";
import { StructuredObs } from "./obs.js";
import { nearestKept, unitGranularity } from "./multiple.js";
import { flapSelect, uniformKeptCounts, wandaSpSelect, type LayerInputs, type LayerSelection } from "./select.js";
import { FluctuationStats, SquaredNormStats } from "./stats.js";
import type { PassCheckpoint } from "./pass.js";
import { unitsOf, type KeptUnits, type UnitGroup, type UnitKind } from "./units.js";

export type StructuredMethod = "flap" | "wanda-sp" | "obs-sp";

export interface StructuredOptions {
  method: StructuredMethod;
  /** fraction of decoder-linear weights removed, in [0, 1) */
  ratio: number;
  /** refit the consumers by least squares after choosing (always on for obs-sp) */
  reconstruct?: boolean;
  /** flap, obs-sp: remove floor(r·count) units of every group in every layer (equal widths, as wanda-sp) */
  uniform?: boolean;
  /**
   * round each layer's kept units to multiples (multiple.ts): MLP channels to multiples of m,
   * KV groups so that o_proj's input width is one (when a group is narrower); default 1 (none)
   */
  multipleOf?: number;
  /**
   * obs-sp with per-layer widths: the layer's budget split between attention and MLP by the
   * measured layer output error ("measured", the default: splitObs) or by the greedy's loss per
   * weight ("greedy": greedyObs)
   */
  obsSplit?: "greedy" | "measured";
  /** λ of H + λ·mean(diag H)·I for the least-squares refit (default 0.01) */
  dampening?: number;
  onLayer?: (layer: number, layers: number) => void;
  /**
   * Resuming (pass.ts): where FLAP's statistics pass (per layer: the consumers' statistics, by
   * consumer suffix) and the sequential selection pass (per layer: its selection) start, and what
   * they hand over after each layer
   */
  checkpoints?: { statistics?: PassCheckpoint<Map<string, FluctuationStats>>; selection?: PassCheckpoint<LayerSelection> };
}

/** Calibration tokens per layer run: a few thousand keeps the GEMMs efficient. */
const TOKENS_PER_RUN = 8192;

interface SampleSink {
  addSample(X: Float32Array): void;
}

/** XᵀX of the inputs augmented by a constant 1 (for the bias), as a running mean. */
class AugmentedGram {
  private readonly acc: GramAccumulator;
  private n = 0;
  constructor(readonly width: number) {
    this.acc = new GramAccumulator(width + 1);
  }
  async add(X: Float32Array): Promise<void> {
    const d = this.width;
    const t = X.length / d;
    const aug = new Float32Array(t * (d + 1));
    for (let r = 0; r < t; r++) {
      aug.set(X.subarray(r * d, (r + 1) * d), r * (d + 1));
      aug[r * (d + 1) + d] = 1;
    }
    await this.acc.add(aug, this.n / (this.n + t), 1 / (this.n + t));
    this.n += t;
  }
  matrix(): Float32Array {
    return this.acc.matrix();
  }
}

interface Captured {
  samples?: Map<CaptureName, SampleSink[]>;
  grams?: Map<CaptureName, AugmentedGram[]>;
}

/**
 * Runs the calibration batch through layer i with `weights`, handing each sample's captured
 * consumer inputs to the sinks; returns the layer's outputs when `outputs` is set.
 */
async function runLayer(
  model: CausalLM,
  i: number,
  inputs: Float32Array,
  calib: CalibrationBatch,
  weights: LayerWeights,
  sinks: Captured,
  outputs: boolean,
): Promise<Float32Array | null> {
  const { nsamples, seqlen: T } = calib;
  const D = model.config.hiddenSize;
  const perRun = Math.max(1, Math.floor(TOKENS_PER_RUN / T));
  const out = outputs ? new Float32Array(nsamples * T * D) : null;
  const capture = [...new Set([...(sinks.samples?.keys() ?? []), ...(sinks.grams?.keys() ?? [])])];
  for (let s0 = 0; s0 < nsamples; s0 += perRun) {
    const B = Math.min(perRun, nsamples - s0);
    const r = await model.runLayer(i, inputs.subarray(s0 * T * D, (s0 + B) * T * D), B, T, { weights, capture });
    for (const [name, list] of sinks.samples ?? []) {
      const X = r.captures[name]!;
      const width = X.length / (B * T);
      for (let b = 0; b < B; b++) for (const s of list) s.addSample(X.subarray(b * T * width, (b + 1) * T * width));
    }
    for (const [name, list] of sinks.grams ?? []) for (const g of list) await g.add(r.captures[name]!);
    out?.set(r.hidden, s0 * T * D);
    killPoint("calibration-run");
  }
  return out;
}

/** Shapes of layer i's tensors by suffix. */
export function shapeOf(model: CausalLM, i: number): (suffix: string) => readonly number[] {
  const p = model.family.layerPrefix(i);
  return (suffix) => model.weights.shape(p + suffix);
}

function consumerMatrix(model: CausalLM, i: number, g: UnitGroup, weights: LayerWeights) {
  const [rows, cols] = shapeOf(model, i)(`${g.consumer}.weight`) as [number, number];
  return { W: weights.get(`${g.consumer}.weight`)!, rows, cols };
}

function statsFor<S extends SampleSink>(model: CausalLM, i: number, groups: UnitGroup[], weights: LayerWeights, make: (width: number) => S) {
  const consumers = new Map<string, { W: Float32Array; rows: number; cols: number }>();
  const stats = new Map<string, S>();
  const byCapture = new Map<CaptureName, SampleSink[]>();
  for (const g of groups) {
    const m = consumerMatrix(model, i, g, weights);
    consumers.set(g.consumer, m);
    const s = make(m.cols);
    stats.set(g.consumer, s);
    byCapture.set(g.consumerInput, [...(byCapture.get(g.consumerInput) ?? []), s]);
  }
  return { inputs: { groups, consumers, stats } as LayerInputs<S>, byCapture };
}

function gramsFor(model: CausalLM, i: number, groups: UnitGroup[]) {
  const grams = new Map<string, AugmentedGram>();
  const byCapture = new Map<CaptureName, AugmentedGram[]>();
  for (const g of groups) {
    const cols = shapeOf(model, i)(`${g.consumer}.weight`)[1]!;
    const acc = new AugmentedGram(cols);
    grams.set(g.consumer, acc);
    byCapture.set(g.consumerInput, [...(byCapture.get(g.consumerInput) ?? []), acc]);
  }
  return { grams, byCapture };
}

/** FLAP's scoring pass: statistics of the dense model, every layer. */
async function flapSelection(model: CausalLM, calib: CalibrationBatch, opts: StructuredOptions): Promise<LayerSelection[]> {
  const L = model.numLayers;
  const checkpoint = opts.checkpoints?.statistics ?? {};
  // resumed: the saved statistics of the layers done, beside their (re-read) consumer weights
  const layers: LayerInputs<FluctuationStats>[] = (checkpoint.start?.done ?? []).map((stats, i) => {
    const groups = unitsOf(model, i);
    const weights = model.layerWeights(i);
    const consumers = new Map(groups.map((g) => [g.consumer, consumerMatrix(model, i, g, weights)]));
    model.forgetLayer(i);
    return { groups, consumers, stats };
  });
  let hidden = layers.length >= L ? null : layers.length > 0 ? checkpoint.start!.inputs! : await model.embed(calib.ids, calib.nsamples, calib.seqlen);
  for (let i = layers.length; i < L; i++) {
    const weights = model.layerWeights(i);
    const { inputs, byCapture } = statsFor(model, i, unitsOf(model, i), weights, (w) => new FluctuationStats(w));
    hidden = (await runLayer(model, i, hidden!, calib, weights, { samples: byCapture }, i + 1 < L)) ?? hidden;
    layers.push(inputs);
    model.forgetLayer(i);
    await checkpoint.after?.(i, inputs.stats, i + 1 < L ? hidden : null);
    if (!opts.reconstruct) opts.onLayer?.(i + 1, L);
  }
  return flapSelect(layers, opts.ratio, Boolean(opts.uniform), opts.multipleOf ?? 1);
}

/** Removes the units `kept` leaves out of each consumer (jointly) and refits the rest. */
async function refit(obs: Map<string, StructuredObs>, groups: UnitGroup[], kept: KeptUnits): Promise<void> {
  for (const g of groups) {
    const keep = new Set(kept[g.kind]);
    const R: number[] = [];
    for (let u = 0; u < g.count; u++) if (!keep.has(u)) R.push(...g.columns(u));
    if (R.length > 0) await obs.get(g.consumer)!.remove(R);
  }
}

/**
 * obs-sp's choice in one layer: repeatedly remove the unit whose OBS loss per weight removed is
 * smallest (attention and MLP units compete), until `budget` weights are gone, or — `uniform` —
 * until each group has lost floor(r·count) units. Single-column units (MLP channels) go in small
 * batches of the cheapest (≤ 1/64 of the group per step) to bound the number of refits.
 * `multipleOf` m > 1: every step of a group leaves a multiple of its granularity kept (the first
 * step also removes the remainder), the budget is met to within half a step, and the uniform
 * quotas are the rounded equal-widths counts.
 */
async function greedyObs(obs: Map<string, StructuredObs>, groups: UnitGroup[], ratio: number, uniform: boolean, multipleOf = 1): Promise<KeptUnits> {
  const alive = new Map<UnitKind, Set<number>>(groups.map((g) => [g.kind, new Set(Array.from({ length: g.count }, (_, u) => u))]));
  const keptCounts = uniformKeptCounts(groups, ratio, multipleOf);
  const quota = new Map<UnitKind, number>(groups.map((g) => [g.kind, g.count - keptCounts[g.kind]]));
  const step = new Map<UnitKind, number>(groups.map((g) => [g.kind, unitGranularity(g, multipleOf)]));
  /** units to remove from a group of `live` so that a multiple of `a` (≥ a) stays, removing at least `want`; 0: none can go */
  const takeFor = (live: number, a: number, want: number): number => {
    const left = Math.floor((live - want) / a) * a;
    return left >= a ? live - left : 0;
  };
  const total = groups.reduce((s, g) => s + g.count * g.weightsPerUnit, 0);
  const budget = ratio * total;
  let removed = 0;
  for (;;) {
    let best: { g: UnitGroup; scores: [number, number][] } | null = null;
    let bestScore = Infinity;
    for (const g of groups) {
      const live = alive.get(g.kind)!;
      const least = takeFor(live.size, step.get(g.kind)!, 1);
      if (least === 0) continue; // at least one unit (one step's worth) of each kind stays
      if (uniform && quota.get(g.kind)! <= 0) continue;
      if (!uniform && removed + least * g.weightsPerUnit > budget + (least * g.weightsPerUnit) / 2) continue;
      const o = obs.get(g.consumer)!;
      const scores: [number, number][] = [...live].map((u) => [u, o.loss(g.columns(u)) / g.weightsPerUnit]);
      scores.sort((a, b) => a[1] - b[1]);
      if (scores[0]![1] < bestScore) {
        bestScore = scores[0]![1];
        best = { g, scores };
      }
    }
    if (!best) break;
    const { g, scores } = best;
    const live = alive.get(g.kind)!;
    const a = step.get(g.kind)!;
    const least = takeFor(live.size, a, 1);
    const batch = g.columns(0).length === 1 ? Math.max(1, Math.floor(g.count / 64)) : 1;
    let take = takeFor(live.size, a, Math.min(batch, live.size - 1)) || least;
    if (uniform) take = Math.min(take, quota.get(g.kind)!);
    else {
      // no further than the budget allows, in whole steps (at least the smallest step)
      const room = Math.floor((budget - removed) / g.weightsPerUnit);
      if (take > room) take = Math.max(least, live.size - Math.ceil((live.size - room) / a) * a);
    }
    const units = scores.slice(0, take).map(([u]) => u);
    await obs.get(g.consumer)!.remove(units.flatMap((u) => g.columns(u)));
    for (const u of units) live.delete(u);
    quota.set(g.kind, quota.get(g.kind)! - units.length);
    removed += units.length * g.weightsPerUnit;
  }
  return Object.fromEntries([...alive].map(([k, s]) => [k, [...s].sort((a, b) => a - b)])) as KeptUnits;
}

/**
 * ‖layer(x; pruned) − layer(x; dense)‖² over the calibration inputs, a chunk at a time (neither
 * output is kept whole: for a real model each is as large as the hidden states).
 */
async function layerOutputError(model: CausalLM, i: number, inputs: Float32Array, calib: CalibrationBatch, dense: LayerWeights, pruned: LayerWeights): Promise<number> {
  const { nsamples, seqlen: T } = calib;
  const D = model.config.hiddenSize;
  const perRun = Math.max(1, Math.floor(TOKENS_PER_RUN / T));
  let err = 0;
  for (let s0 = 0; s0 < nsamples; s0 += perRun) {
    const B = Math.min(perRun, nsamples - s0);
    const x = inputs.subarray(s0 * T * D, (s0 + B) * T * D);
    const want = (await model.runLayer(i, x, B, T, { weights: dense, capture: [] })).hidden;
    const got = (await model.runLayer(i, x, B, T, { weights: pruned, capture: [] })).hidden;
    for (let j = 0; j < got.length; j++) err += (got[j]! - want[j]!) ** 2;
  }
  return err;
}

/** The selection a set of OBS states stands for (kept units; the consumers that have a state refitted, with their biases). */
function selectionOf(obs: Map<string, StructuredObs>, groups: UnitGroup[], weights: LayerWeights, kept: KeptUnits): LayerSelection {
  const biases = new Map<string, Float32Array>();
  const consumers = new Map<string, Float32Array>();
  for (const g of groups) {
    if (!obs.has(g.consumer)) continue;
    const { W, bias } = obs.get(g.consumer)!.result();
    const own = weights.get(`${g.consumer}.bias`);
    consumers.set(g.consumer, W);
    biases.set(g.consumer, own ? bias.map((b, r) => b - own[r]!) : bias);
  }
  return { kept, biases, consumers };
}

/** At most this many splits are tried at a time (grid, then refined around the best: splitObs). */
const SPLIT_GRID = 8;

/**
 * obs-sp's per-layer choice with a measured split of the layer's budget r·(its weights) between
 * attention and MLP. For a number kA of attention units removed: attention goes first (OBS
 * greedy, o_proj refitted), the MLP's inputs are captured again through the pruned attention,
 * the rest of the budget goes from the MLP (OBS greedy, down_proj refitted on those inputs), and
 * the layer's output error against the unpruned layer on the same inputs is measured. The kA
 * with the smallest error wins: every kA when there are few, else a grid refined around the best.
 * (Comparing units by loss per weight instead — the greedy — weighs o_proj's own error against
 * down_proj's, and leaves out what removing attention does to the MLP's inputs: it removed too
 * much attention.)
 */
async function splitObs(
  run: CausalLM,
  i: number,
  hidden: Float32Array,
  calib: CalibrationBatch,
  weights: LayerWeights,
  groups: UnitGroup[],
  grams: Map<string, AugmentedGram>,
  opts: StructuredOptions,
): Promise<{ kept: KeptUnits; obs: Map<string, StructuredObs> }> {
  const attn = groups.find((g) => g.kind === "attention")!;
  const mlp = groups.find((g) => g.kind === "mlp")!;
  const shape = shapeOf(run, i);
  const damp = opts.dampening ?? 0.01;
  const m = opts.multipleOf ?? 1;
  const budget = opts.ratio * groups.reduce((s, g) => s + g.count * g.weightsPerUnit, 0);
  const create = (g: UnitGroup, H: Float32Array) => {
    const [rows, cols] = shape(`${g.consumer}.weight`) as [number, number];
    return StructuredObs.create(weights.get(`${g.consumer}.weight`)!, weights.get(`${g.consumer}.bias`) ?? null, rows, cols, H, damp);
  };
  const everything = (n: number) => Array.from({ length: n }, (_, u) => u);
  // the feasible kA: within the budget (to half a unit), at least one unit left, kept a multiple of the step
  const step = unitGranularity(attn, m);
  const feasible = everything(attn.count).filter((kA) => kA * attn.weightsPerUnit <= budget + attn.weightsPerUnit / 2 && (kA === 0 || (attn.count - kA) % step === 0));
  // errors of the splits tried; only the best one's OBS states are kept (an MLP's is (F + 1)² floats)
  const tried = new Map<number, number>();
  const best: { split: { err: number; kept: KeptUnits; obs: Map<string, StructuredObs> } | null } = { split: null };
  const tryRemoving = async (kA: number) => {
    if (tried.has(kA)) return;
    const oA = await create(attn, grams.get(attn.consumer)!.matrix());
    // the uniform greedy within one group removes floor(ratio·count) units: (k + ½)/count removes exactly k
    const liveA = await greedyObs(new Map([[attn.consumer, oA]]), [attn], (kA + 0.5) / attn.count, true);
    const partial = selectionOf(new Map([[attn.consumer, oA]]), groups, weights, { attention: liveA.attention, mlp: everything(mlp.count) });
    const mlpGram = new AugmentedGram(shape(`${mlp.consumer}.weight`)[1]!);
    await runLayer(run, i, hidden, calib, layerWeightsAfter(weights, groups, partial, shape), { grams: new Map([[mlp.consumerInput, [mlpGram]]]) }, false);
    const oM = await create(mlp, mlpGram.matrix());
    const removeM = Math.max(0, Math.min(mlp.count - 1, Math.round((budget - kA * attn.weightsPerUnit) / mlp.weightsPerUnit)));
    const keptM = nearestKept(mlp.count, mlp.count - removeM, unitGranularity(mlp, m));
    const liveM = await greedyObs(new Map([[mlp.consumer, oM]]), [mlp], (mlp.count - keptM + 0.5) / mlp.count, true);
    const obs = new Map([[attn.consumer, oA], [mlp.consumer, oM]]);
    const kept = { attention: liveA.attention, mlp: liveM.mlp } as KeptUnits;
    const err = await layerOutputError(run, i, hidden, calib, weights, layerWeightsAfter(weights, groups, selectionOf(obs, groups, weights, kept), shape));
    tried.set(kA, err);
    if (!best.split || err < best.split.err) best.split = { err, kept, obs };
  };
  // a grid over the feasible kA, then a finer grid between the best's neighbours, down to every kA
  let lo = 0;
  let hi = feasible.length - 1;
  for (;;) {
    const n = hi - lo + 1;
    const idx = n <= SPLIT_GRID ? everything(n).map((j) => lo + j) : everything(SPLIT_GRID).map((j) => lo + Math.round((j * (n - 1)) / (SPLIT_GRID - 1)));
    for (const j of idx) await tryRemoving(feasible[j]!);
    if (n <= SPLIT_GRID) break;
    const bestJ = idx.reduce((b, j) => (tried.get(feasible[j]!)! < tried.get(feasible[b]!)! ? j : b));
    const at = idx.indexOf(bestJ);
    lo = idx[Math.max(0, at - 1)]!;
    hi = idx[Math.min(idx.length - 1, at + 1)]!;
  }
  return { kept: best.split!.kept, obs: best.split!.obs };
}

/** Chooses the units every layer keeps, with their consumers' biases (and refitted weights). */
export async function planStructured(model: CausalLM, calib: CalibrationBatch, opts: StructuredOptions): Promise<LayerSelection[]> {
  if (!(opts.ratio >= 0 && opts.ratio < 1)) throw new Error(`structured pruning ratio ${opts.ratio} must be in [0, 1)`);
  const L = model.numLayers;
  const reconstruct = opts.method === "obs-sp" || Boolean(opts.reconstruct);
  const flap = opts.method === "flap" ? await flapSelection(model, calib, opts) : null;
  if (flap && !reconstruct) return flap;

  // the sequential pass: layer i sees the outputs of the already-pruned layers before it
  const run = reconstruct ? withConsumerBiases(model) : model;
  const checkpoint = opts.checkpoints?.selection ?? {};
  const selections: LayerSelection[] = [...(checkpoint.start?.done ?? [])];
  if (selections.length >= L) return selections;
  let hidden = selections.length > 0 ? checkpoint.start!.inputs! : await model.embed(calib.ids, calib.nsamples, calib.seqlen);
  for (let i = selections.length; i < L; i++) {
    const groups = unitsOf(model, i);
    const weights = run.layerWeights(i);
    const sinks: Captured = {};
    const norms = opts.method === "wanda-sp" ? statsFor(model, i, groups, weights, (w) => new SquaredNormStats(w)) : null;
    if (norms) sinks.samples = norms.byCapture;
    const grams = reconstruct ? gramsFor(model, i, groups) : null;
    if (grams) sinks.grams = grams.byCapture;
    await runLayer(run, i, hidden, calib, weights, sinks, false);

    let sel: LayerSelection;
    if (!reconstruct) {
      sel = wandaSpSelect(norms!.inputs, opts.ratio, opts.multipleOf ?? 1);
    } else {
      const measured = opts.method === "obs-sp" && !opts.uniform && (opts.obsSplit ?? "measured") === "measured";
      let kept: KeptUnits;
      let obs = new Map<string, StructuredObs>();
      if (measured) {
        ({ kept, obs } = await splitObs(run, i, hidden, calib, weights, groups, grams!.grams, opts));
      } else {
        for (const g of groups) {
          const { W, rows, cols } = consumerMatrix(model, i, g, weights);
          obs.set(g.consumer, await StructuredObs.create(W, weights.get(`${g.consumer}.bias`) ?? null, rows, cols, grams!.grams.get(g.consumer)!.matrix(), opts.dampening ?? 0.01));
        }
        if (flap) kept = flap[i]!.kept;
        else if (norms) kept = wandaSpSelect(norms.inputs, opts.ratio, opts.multipleOf ?? 1).kept;
        else kept = await greedyObs(obs, groups, opts.ratio, Boolean(opts.uniform), opts.multipleOf ?? 1);
        if (flap || norms) await refit(obs, groups, kept);
      }
      sel = selectionOf(obs, groups, weights, kept);
    }
    selections.push(sel);
    if (i + 1 < L) hidden = (await runLayer(run, i, hidden, calib, layerWeightsAfter(weights, groups, sel, shapeOf(model, i)), {}, true))!;
    run.forgetLayer(i);
    await checkpoint.after?.(i, sel, i + 1 < L ? hidden : null);
    opts.onLayer?.(i + 1, L);
  }
  return selections;
}

/** Fraction of decoder-linear weights a plan keeps. */
export function keptFraction(model: CausalLM, selections: LayerSelection[]): number {
  let kept = 0;
  let total = 0;
  selections.forEach((sel, i) => {
    const groups = unitsOf(model, i);
    kept += keptWeights(groups, sel);
    total += groups.reduce((s, g) => s + g.count * g.weightsPerUnit, 0);
  });
  return kept / total;
}
