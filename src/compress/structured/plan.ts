// The calibration pass of structured pruning: walk the decoder layers in order, feed each the
// calibration activations, record its consumers' input statistics one sample at a time (FLAP's
// batch-of-one accumulation), and choose the units to keep.
//   flap:     statistics of the DENSE model (FLAP scores every layer before pruning any), then
//             one global threshold over all layers (AL-AM);
//   wanda-sp: layer i is scored on the outputs of the already-pruned layers 0..i−1 and pruned
//             before layer i+1 is scored (FLAP's prune_wanda_sp), the same ratio in every layer.
// Memory: one layer's weights and two buffers of calibration activations, as the compression
// pipeline; the consumers' weights of every layer are kept for FLAP's global step (o_proj and
// down_proj only).
import type { CalibrationBatch } from "../../data/calibration.js";
import type { CaptureName } from "../../models/llama.js";
import type { CausalLM, LayerWeights } from "../../models/model.js";
import { maskedLayerWeights } from "./apply.js";
import { flapSelect, wandaSpSelect, type LayerInputs, type LayerSelection } from "./select.js";
import { FluctuationStats, SquaredNormStats } from "./stats.js";
import { llamaUnits, type UnitGroup } from "./units.js";

export type StructuredMethod = "flap" | "wanda-sp";

export interface StructuredOptions {
  method: StructuredMethod;
  /** fraction of decoder-linear weights removed, in [0, 1) */
  ratio: number;
  onLayer?: (layer: number, layers: number) => void;
}

/** Calibration tokens per layer run: a few thousand keeps the GEMMs efficient. */
const TOKENS_PER_RUN = 8192;

interface Stats {
  addSample(X: Float32Array): void;
}

/**
 * Runs the calibration batch through layer i with `weights`, handing each sample's captured
 * consumer inputs to `stats`; returns the layer's outputs when `outputs` is set.
 */
async function runLayer(
  model: CausalLM,
  i: number,
  inputs: Float32Array,
  calib: CalibrationBatch,
  weights: LayerWeights,
  stats: Map<CaptureName, Stats[]> | null,
  outputs: boolean,
): Promise<Float32Array | null> {
  const { nsamples, seqlen: T } = calib;
  const D = model.config.hiddenSize;
  const perRun = Math.max(1, Math.floor(TOKENS_PER_RUN / T));
  const out = outputs ? new Float32Array(nsamples * T * D) : null;
  const capture = stats ? [...stats.keys()] : [];
  for (let s0 = 0; s0 < nsamples; s0 += perRun) {
    const B = Math.min(perRun, nsamples - s0);
    const r = await model.runLayer(i, inputs.subarray(s0 * T * D, (s0 + B) * T * D), B, T, { weights, capture });
    for (const [name, sinks] of stats ?? []) {
      const X = r.captures[name]!;
      const width = X.length / (B * T);
      for (let b = 0; b < B; b++) for (const s of sinks) s.addSample(X.subarray(b * T * width, (b + 1) * T * width));
    }
    out?.set(r.hidden, s0 * T * D);
  }
  return out;
}

function layerInputs<S extends Stats>(model: CausalLM, groups: UnitGroup[], weights: LayerWeights, make: (width: number) => S) {
  const consumers = new Map<string, { W: Float32Array; rows: number; cols: number }>();
  const stats = new Map<string, S>();
  const byCapture = new Map<CaptureName, Stats[]>();
  for (const g of groups) {
    const key = `${g.consumer}.weight`;
    const [rows, cols] = shapeOf(model)(key) as [number, number];
    consumers.set(g.consumer, { W: weights.get(key)!, rows, cols });
    const s = make(cols);
    stats.set(g.consumer, s);
    byCapture.set(g.consumerInput, [...(byCapture.get(g.consumerInput) ?? []), s]);
  }
  return { inputs: { groups, consumers, stats } as LayerInputs<S>, byCapture };
}

/** Shapes of a layer's tensors by suffix (every layer of the unpruned model has the same). */
export function shapeOf(model: CausalLM): (suffix: string) => readonly number[] {
  return (suffix) => model.weights.shape(`model.layers.0.${suffix}`);
}

/** Chooses the units every layer keeps (and FLAP's compensation biases). */
export async function planStructured(model: CausalLM, calib: CalibrationBatch, opts: StructuredOptions): Promise<LayerSelection[]> {
  if (!(opts.ratio >= 0 && opts.ratio < 1)) throw new Error(`structured pruning ratio ${opts.ratio} must be in [0, 1)`);
  const L = model.numLayers;
  const groups = llamaUnits(model.config);
  let hidden = model.embed(calib.ids);
  if (opts.method === "flap") {
    const layers: LayerInputs<FluctuationStats>[] = [];
    for (let i = 0; i < L; i++) {
      const weights = model.layerWeights(i);
      const { inputs, byCapture } = layerInputs(model, groups, weights, (w) => new FluctuationStats(w));
      hidden = (await runLayer(model, i, hidden, calib, weights, byCapture, i + 1 < L)) ?? hidden;
      layers.push(inputs);
      model.forgetLayer(i);
      opts.onLayer?.(i + 1, L);
    }
    return flapSelect(layers, opts.ratio);
  }
  const selections: LayerSelection[] = [];
  for (let i = 0; i < L; i++) {
    const weights = model.layerWeights(i);
    const { inputs, byCapture } = layerInputs(model, groups, weights, (w) => new SquaredNormStats(w));
    await runLayer(model, i, hidden, calib, weights, byCapture, false);
    const sel = wandaSpSelect(inputs, opts.ratio);
    selections.push(sel);
    if (i + 1 < L) hidden = (await runLayer(model, i, hidden, calib, maskedLayerWeights(weights, groups, sel, shapeOf(model)), null, true))!;
    model.forgetLayer(i);
    opts.onLayer?.(i + 1, L);
  }
  return selections;
}
