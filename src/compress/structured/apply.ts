// Turning a selection of kept units into weights: either the same shapes with the removed rows
// and columns zeroed (what the scoring pass feeds the next layer, and an exact stand-in for the
// smaller model), or the smaller matrices themselves (what is written to disk).
import type { LayerWeights } from "../../models/model.js";
import type { LayerSelection } from "./select.js";
import { keptColumns, keptRows, type UnitGroup } from "./units.js";

/** Rows [out] of W [rows, cols] kept. */
function takeRows(W: Float32Array, cols: number, rows: readonly number[]): Float32Array {
  const out = new Float32Array(rows.length * cols);
  rows.forEach((r, i) => out.set(W.subarray(r * cols, (r + 1) * cols), i * cols));
  return out;
}

/** Columns of W [rows, cols] kept. */
function takeColumns(W: Float32Array, rows: number, cols: number, keep: readonly number[]): Float32Array {
  const out = new Float32Array(rows * keep.length);
  for (let r = 0; r < rows; r++) for (let i = 0; i < keep.length; i++) out[r * keep.length + i] = W[r * cols + keep[i]!]!;
  return out;
}

/** The layer with removed units' producer rows and consumer columns set to zero (shapes kept). */
function maskedLayerWeights(
  weights: LayerWeights,
  groups: UnitGroup[],
  sel: LayerSelection,
  shapeOf: (suffix: string) => readonly number[],
): LayerWeights {
  const out: LayerWeights = new Map(weights);
  for (const g of groups) {
    const kept = sel.kept[g.kind];
    for (const p of g.producers) {
      const key = `${p}.weight`;
      const [rows, cols] = shapeOf(key) as [number, number];
      const keepRows = new Set(keptRows(g, p, kept));
      const W = weights.get(key)!.slice();
      for (let r = 0; r < rows; r++) if (!keepRows.has(r)) W.fill(0, r * cols, (r + 1) * cols);
      out.set(key, W);
      const bias = weights.get(`${p}.bias`);
      if (bias) out.set(`${p}.bias`, bias.map((v, r) => (keepRows.has(r) ? v : 0)));
    }
    const key = `${g.consumer}.weight`;
    const [rows, cols] = shapeOf(key) as [number, number];
    const keepCols = new Set(keptColumns(g, kept));
    const W = (sel.consumers?.get(g.consumer) ?? weights.get(key)!).slice();
    for (let r = 0; r < rows; r++) for (let j = 0; j < cols; j++) if (!keepCols.has(j)) W[r * cols + j] = 0;
    out.set(key, W);
  }
  return out;
}

export interface ReducedTensor {
  data: Float32Array;
  shape: number[];
}

/**
 * The layer's linears at their reduced widths: producers keep their kept rows (and bias
 * entries), consumers their kept columns plus the compensation bias (added to any bias they
 * had). Tensors the selection does not touch are not returned.
 */
export function reducedLayerTensors(
  weights: LayerWeights,
  groups: UnitGroup[],
  sel: LayerSelection,
  shapeOf: (suffix: string) => readonly number[],
): Map<string, ReducedTensor> {
  const out = new Map<string, ReducedTensor>();
  for (const g of groups) {
    const kept = sel.kept[g.kind];
    for (const p of g.producers) {
      const [, cols] = shapeOf(`${p}.weight`) as [number, number];
      const rows = keptRows(g, p, kept);
      out.set(`${p}.weight`, { data: takeRows(weights.get(`${p}.weight`)!, cols, rows), shape: [rows.length, cols] });
      const bias = weights.get(`${p}.bias`);
      if (bias) out.set(`${p}.bias`, { data: Float32Array.from(rows, (r) => bias[r]!), shape: [rows.length] });
    }
    const [rows, cols] = shapeOf(`${g.consumer}.weight`) as [number, number];
    const keep = keptColumns(g, kept);
    const W = sel.consumers?.get(g.consumer) ?? weights.get(`${g.consumer}.weight`)!;
    out.set(`${g.consumer}.weight`, { data: takeColumns(W, rows, cols, keep), shape: [rows, keep.length] });
    const comp = sel.biases.get(g.consumer);
    const own = weights.get(`${g.consumer}.bias`);
    if (comp || own) {
      const b = new Float32Array(rows);
      if (own) b.set(own);
      if (comp) for (let r = 0; r < rows; r++) b[r] = b[r]! + comp[r]!;
      out.set(`${g.consumer}.bias`, { data: b, shape: [rows] });
    }
  }
  return out;
}

/** Decoder-linear weights (biases not counted) a selection keeps in one layer. */
export function keptWeights(groups: UnitGroup[], sel: LayerSelection): number {
  return groups.reduce((s, g) => s + sel.kept[g.kind].length * g.weightsPerUnit, 0);
}

/** The layer as pruned, at its original shapes: masked rows/columns, refitted consumers, biases added. */
export function layerWeightsAfter(weights: LayerWeights, groups: UnitGroup[], sel: LayerSelection, shape: (suffix: string) => readonly number[]): LayerWeights {
  const out = maskedLayerWeights(weights, groups, sel, shape);
  for (const [consumer, b] of sel.biases) {
    const key = `${consumer}.bias`;
    const own = weights.get(key);
    if (!own) throw new Error(`layer has no bias slot for ${consumer} (run it through withConsumerBiases)`);
    out.set(key, own.map((v, r) => v + b[r]!));
  }
  return out;
}
