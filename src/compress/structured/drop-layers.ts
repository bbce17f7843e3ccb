// Removing whole decoder blocks: the blocks whose output is most similar to their input on the
// calibration data (mean cosine similarity over tokens, as ShortGPT's Block Influence and
// llama.cpp users' layer-pruning experiments measure it) change the residual stream least, so
// they go first. The result is a model with fewer layers, renumbered.
import type { CalibrationBatch } from "../../data/calibration.js";
import type { WeightSource } from "../../formats/weights.js";
import { killPoint } from "../../formats/kill-point.js";
import { CausalLM } from "../../models/model.js";
import type { PassCheckpoint } from "./pass.js";

/**
 * Mean over calibration tokens of cos(block input, block output), per layer, on the dense model.
 * `checkpoint`: start after the layers it holds, and report each layer as it is done (pass.ts).
 */
export async function blockSimilarity(model: CausalLM, calib: CalibrationBatch, checkpoint: PassCheckpoint<number> = {}): Promise<number[]> {
  const D = model.config.hiddenSize;
  const T = calib.seqlen;
  const perRun = Math.max(1, Math.floor(8192 / T));
  const out: number[] = [...(checkpoint.start?.done ?? [])];
  if (out.length >= model.numLayers) return out;
  let hidden = out.length > 0 ? checkpoint.start!.inputs! : await model.embed(calib.ids, calib.nsamples, calib.seqlen);
  for (let i = out.length; i < model.numLayers; i++) {
    const next = new Float32Array(hidden.length);
    let sum = 0;
    for (let s0 = 0; s0 < calib.nsamples; s0 += perRun) {
      const B = Math.min(perRun, calib.nsamples - s0);
      const x = hidden.subarray(s0 * T * D, (s0 + B) * T * D);
      const y = (await model.runLayer(i, x, B, T)).hidden;
      for (let t = 0; t < B * T; t++) {
        let dot = 0;
        let nx = 0;
        let ny = 0;
        for (let j = 0; j < D; j++) {
          const a = x[t * D + j]!;
          const b = y[t * D + j]!;
          dot += a * b;
          nx += a * a;
          ny += b * b;
        }
        sum += nx > 0 && ny > 0 ? dot / Math.sqrt(nx * ny) : 1;
      }
      next.set(y, s0 * T * D);
      killPoint("calibration-run");
    }
    out.push(sum / (calib.nsamples * T));
    hidden = next;
    model.forgetLayer(i);
    await checkpoint.after?.(i, out[i]!, i + 1 < model.numLayers ? hidden : null);
  }
  return out;
}

/** The k layers with the most similar input and output (ascending indices). */
export function layersToDrop(similarity: number[], k: number): number[] {
  if (!Number.isInteger(k) || k < 0 || k >= similarity.length) {
    throw new Error(`--drop-layers ${k} must be an integer in [0, ${similarity.length - 1}] (the model has ${similarity.length} layers)`);
  }
  return similarity
    .map((s, i) => [s, i] as const)
    .sort((a, b) => b[0] - a[0] || a[1] - b[1])
    .slice(0, k)
    .map(([, i]) => i)
    .sort((a, b) => a - b);
}

/** The model without layers `drop`, the rest renumbered 0..L−k−1 (a view: nothing is copied). */
export function withoutLayers(model: CausalLM, drop: readonly number[]): CausalLM {
  if (drop.length === 0) return model;
  const structure = model.family.structure;
  if (!structure) throw new Error(`dropping layers of ${model.config.architecture} is not supported yet (its adapter has no structure hooks)`);
  const dropped = new Set(drop);
  const kept = [...Array(model.numLayers).keys()].filter((i) => !dropped.has(i));
  const prefix = (i: number) => model.family.layerPrefix(i);
  // longest prefixes first: "model.layers.1." must not claim "model.layers.10.…"
  const original = [...Array(model.numLayers).keys()].sort((a, b) => prefix(b).length - prefix(a).length);
  const layerOf = (name: string): number | null => original.find((i) => name.startsWith(prefix(i))) ?? null;
  const src = model.weights;
  /** output name → source name (null: a layer beyond the kept ones) */
  const toSource = (name: string): string | null => {
    const i = layerOf(name);
    if (i === null) return name;
    return i < kept.length ? prefix(kept[i]!) + name.slice(prefix(i).length) : null;
  };
  const names = src.names().flatMap((n) => {
    const i = layerOf(n);
    if (i === null) return [n];
    const j = kept.indexOf(i);
    return j < 0 ? [] : [prefix(j) + n.slice(prefix(i).length)];
  });
  const resolve = (name: string): string => {
    const s = toSource(name);
    if (s === null || !src.has(s)) throw new Error(`${src.location}: no tensor "${name}" after dropping layers`);
    return s;
  };
  const weights: WeightSource = {
    location: src.location,
    names: () => names,
    has: (n) => {
      const s = toSource(n);
      return s !== null && src.has(s);
    },
    shape: (n) => src.shape(resolve(n)),
    read: (n) => src.read(resolve(n)),
    storedBytes: (n) => src.storedBytes(resolve(n)),
    dtype: (n) => src.dtype(resolve(n)),
    quantized: src.quantized ? (n) => src.quantized!(resolve(n)) : undefined,
    close: () => src.close(),
  };
  return new CausalLM(structure.keepLayers(model.config, kept), weights, model.dir);
}
