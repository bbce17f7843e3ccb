// Writing a structurally pruned model: a smaller dense Hugging Face folder.
//
// The family says what the pruned model is (FamilyAdapter.structure.prune): its config.json —
// equal widths in every layer → the family's standard keys, which transformers, transformers.js
// and llama.cpp load as they are; per-layer widths → what the family's loader reads back (Llama:
// a `structured_pruning` object, see models/llama.ts) — and so the tensors every layer must have.
// Each layer is written from its reduced linears (apply.ts), its untouched tensors (norms), and
// zeros for any bias the pruned config requires that the model never had (a standard Llama
// config can only give o_proj a bias together with q/k/v). One layer is read at a time, and the
// tensors go through the family's checkpoint view, so fused and transposed layouts are kept.
import fs from "node:fs";
import path from "node:path";
import { writeDirAtomic } from "../../formats/atomic.js";
import { copyModelFiles, storedFloatDtype, writeDenseSafetensors, type FloatDtype } from "../../formats/hf-folder.js";
import type { WeightSource } from "../../formats/weights.js";
import type { ModelConfig } from "../../models/config.js";
import type { CausalLM } from "../../models/model.js";
import type { PrunedLayer } from "../../models/structure.js";
import { reducedLayerTensors, type ReducedTensor } from "./apply.js";
import { shapeOf } from "./plan.js";
import type { LayerSelection } from "./select.js";
import { unitsOf } from "./units.js";

export interface StructuredWriteOptions {
  outDir: string;
  overwrite?: boolean;
  /** force one dtype for every tensor (default: the source's) */
  dtype?: FloatDtype;
  /** written as topiary.json beside the weights */
  record: Record<string, unknown>;
}

/** Do all layers keep the same number of units of every group? */
export function uniformWidths(selections: LayerSelection[]): boolean {
  const first = selections[0]!;
  return selections.every((s) => s.kept.attention.length === first.kept.attention.length && s.kept.mlp.length === first.kept.mlp.length);
}

/** The config of the model `selections` describe. */
function prunedConfig(model: CausalLM, selections: LayerSelection[]): ModelConfig {
  const layers: PrunedLayer[] = selections.map((s) => ({ kept: s.kept, consumerBias: s.biases.size > 0 }));
  return model.family.structure!.prune(model.config, layers);
}

/** The pruned model's tensors (topiary layout), computed one layer at a time. */
function prunedWeights(model: CausalLM, selections: LayerSelection[], pruned: ModelConfig): WeightSource {
  const family = model.family;
  const src = model.weights;
  const prefixes = Array.from({ length: pruned.numLayers }, (_, i) => family.layerPrefix(i));
  const byLength = [...prefixes.keys()].sort((a, b) => prefixes[b]!.length - prefixes[a]!.length);
  const layerOf = (name: string): number | null => byLength.find((i) => name.startsWith(prefixes[i]!)) ?? null;
  const shapes = prefixes.map((_, i) => family.layerTensors(pruned, i));
  const globals = src.names().filter((n) => layerOf(n) === null);
  let cached: { layer: number; tensors: Map<string, ReducedTensor> } | null = null;
  const layerTensors = (i: number): Map<string, ReducedTensor> => {
    if (cached?.layer === i) return cached.tensors;
    const weights = model.layerWeights(i);
    const reduced = reducedLayerTensors(weights, unitsOf(model, i), selections[i]!, shapeOf(model, i));
    const out = new Map<string, ReducedTensor>();
    for (const [suffix, shape] of shapes[i]!) {
      const own = weights.get(suffix);
      const t =
        reduced.get(suffix) ??
        (own && own.length === shape.reduce((a, b) => a * b, 1) ? { data: own, shape } : null) ??
        (suffix.endsWith(".bias") ? { data: new Float32Array(shape[0]!), shape } : null);
      if (!t || t.shape.join() !== shape.join()) throw new Error(`layer ${i}: no data of shape [${shape}] for "${suffix}" in the pruned model`);
      out.set(suffix, t);
    }
    model.forgetLayer(i);
    cached = { layer: i, tensors: out };
    return out;
  };
  const split = (name: string): [number, string] | null => {
    const i = layerOf(name);
    return i === null ? null : [i, name.slice(prefixes[i]!.length)];
  };
  return {
    location: src.location,
    names: () => [...globals, ...prefixes.flatMap((p, i) => [...shapes[i]!.keys()].map((s) => p + s))],
    has: (n) => {
      const s = split(n);
      return s ? shapes[s[0]]!.has(s[1]) : src.has(n);
    },
    shape: (n) => {
      const s = split(n);
      return s ? shapes[s[0]]!.get(s[1])! : src.shape(n);
    },
    read: (n) => {
      const s = split(n);
      return s ? layerTensors(s[0]).get(s[1])!.data.slice() : src.read(n);
    },
    storedBytes: (n) => (split(n) ? 4 : src.storedBytes(n)),
    // a layer tensor keeps its source's dtype; new ones (zero biases) follow the layer's weights
    dtype: (n) => {
      const s = split(n);
      if (!s) return src.dtype(n);
      const orig = model.family.layerPrefix(s[0]) + s[1];
      return src.has(orig) ? src.dtype(orig) : src.dtype(orig.replace(/\.bias$/, ".weight"));
    },
    close: () => {},
  };
}

/** Writes the pruned model: weights, config.json, tokenizer files and topiary.json. */
export async function writeStructured(model: CausalLM, selections: LayerSelection[], opts: StructuredWriteOptions): Promise<ModelConfig> {
  let pruned: ModelConfig | null = null;
  await writeDirAtomic(opts.outDir, (tmp) => void (pruned = writeStructuredInto(tmp, model, selections, opts)), { overwrite: opts.overwrite });
  return pruned!;
}

/**
 * The files of the pruned model, written into the folder `dir` (a resumable job's work folder,
 * renamed into place by the job; writeStructured: a temporary one).
 */
export function writeStructuredInto(dir: string, model: CausalLM, selections: LayerSelection[], opts: Omit<StructuredWriteOptions, "outDir" | "overwrite">): ModelConfig {
  const pruned = prunedConfig(model, selections);
  const view = model.family.checkpointView;
  const topiaryLayout = prunedWeights(model, selections, pruned);
  const weights = view ? view.toCheckpoint(pruned, topiaryLayout) : topiaryLayout;
  writeDenseSafetensors(dir, weights, (name) => opts.dtype ?? storedFloatDtype(weights, name));
  copyModelFiles(model.dir, dir, pruned.raw);
  fs.writeFileSync(path.join(dir, "topiary.json"), JSON.stringify(opts.record, null, 2) + "\n");
  return pruned;
}
