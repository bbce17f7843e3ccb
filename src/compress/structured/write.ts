// Writing a structurally pruned model: a smaller dense Hugging Face folder.
//
// Equal widths in every layer → a standard config (num_attention_heads, num_key_value_heads,
// intermediate_size, num_hidden_layers, head_dim made explicit) that transformers, transformers.js
// and llama.cpp load as they are. Compensation biases on o_proj/down_proj need the family's bias
// flags (Llama: attention_bias, mlp_bias), which also give q/k/v and gate/up a bias: those are
// written as zeros, as the reference does.
// Widths that differ per layer (FLAP's global allocation) → the top-level widths stay the
// original ones and config.json's `structured_pruning` key lists, per layer:
//   num_attention_heads, num_key_value_heads, intermediate_size   (the layer's widths)
//   kept_kv_groups, kept_mlp_channels                             (original unit indices)
//   o_proj_bias, down_proj_bias                                   (booleans: the tensor exists)
// — the keys ../shared/reference/structured writes, which topiary's loader reads back.
import fs from "node:fs";
import path from "node:path";
import { writeDirAtomic } from "../../formats/atomic.js";
import { copyModelFiles, storedFloatDtype, type FloatDtype } from "../../formats/hf-folder.js";
import { float32ToBytes, writeSafetensors } from "../../formats/safetensors.js";
import type { CausalLM } from "../../models/model.js";
import { reducedLayerTensors, type ReducedTensor } from "./apply.js";
import type { LayerSelection } from "./select.js";
import type { UnitGroup } from "./units.js";

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

/** config.json of the pruned model (see the header). */
export function structuredConfig(model: CausalLM, groups: UnitGroup[], selections: LayerSelection[]): Record<string, unknown> {
  const c = model.config;
  const rep = c.numHeads / c.numKvHeads;
  const raw: Record<string, unknown> = { ...c.raw, num_hidden_layers: selections.length, head_dim: c.headDim };
  const biased = selections.some((s) => s.biases.size > 0);
  if (uniformWidths(selections)) {
    const s = selections[0]!;
    raw.num_key_value_heads = s.kept.attention.length;
    raw.num_attention_heads = s.kept.attention.length * rep;
    raw.intermediate_size = s.kept.mlp.length;
    if (biased) {
      raw.attention_bias = true;
      raw.mlp_bias = true;
    }
    return raw;
  }
  const attn = groups.find((g) => g.kind === "attention")!;
  const mlp = groups.find((g) => g.kind === "mlp")!;
  raw.structured_pruning = {
    num_attention_heads: selections.map((s) => s.kept.attention.length * rep),
    num_key_value_heads: selections.map((s) => s.kept.attention.length),
    intermediate_size: selections.map((s) => s.kept.mlp.length),
    kept_kv_groups: selections.map((s) => s.kept.attention),
    kept_mlp_channels: selections.map((s) => s.kept.mlp),
    o_proj_bias: selections.map((s) => s.biases.has(attn.consumer)),
    down_proj_bias: selections.map((s) => s.biases.has(mlp.consumer)),
  };
  return raw;
}

/**
 * Writes the pruned model: the non-layer tensors as they are, each layer's tensors at their
 * reduced widths (one layer read at a time), config.json, tokenizer files and topiary.json.
 */
export async function writeStructured(model: CausalLM, groups: UnitGroup[], selections: LayerSelection[], opts: StructuredWriteOptions): Promise<void> {
  const config = structuredConfig(model, groups, selections);
  const uniform = uniformWidths(selections);
  const biased = uniform && selections.some((s) => s.biases.size > 0);
  const src = model.weights;
  const dtypeOf = (name: string): FloatDtype => opts.dtype ?? (src.has(name) ? storedFloatDtype(src, name) : "F32");
  const layerOf = (name: string): number | null => {
    const m = /^model\.layers\.(\d+)\./.exec(name);
    return m ? Number(m[1]) : null;
  };
  // every tensor name of the output with its shape, so the header is written before the data
  const entries: { name: string; shape: readonly number[]; layer: number | null }[] = [];
  for (const name of src.names()) if (layerOf(name) === null) entries.push({ name, shape: src.shape(name), layer: null });
  let cached: { layer: number; tensors: Map<string, ReducedTensor> } | null = null;
  /** Layer i's output tensors (reduced linears, untouched norms, zero biases when the flags need them). */
  const layerTensors = (i: number): Map<string, ReducedTensor> => {
    if (cached?.layer === i) return cached.tensors;
    const weights = model.layerWeights(i);
    const reduced = reducedLayerTensors(weights, groups, selections[i]!, (suffix) => src.shape(`model.layers.${i}.${suffix}`));
    const out = new Map<string, ReducedTensor>();
    for (const [suffix, data] of weights) {
      if (!reduced.has(suffix)) out.set(suffix, { data, shape: [...src.shape(`model.layers.${i}.${suffix}`)] });
    }
    for (const [suffix, t] of reduced) out.set(suffix, t);
    if (biased) {
      for (const g of groups) {
        for (const p of [...g.producers, g.consumer]) {
          const w = out.get(`${p}.weight`)!;
          if (!out.has(`${p}.bias`)) out.set(`${p}.bias`, { data: new Float32Array(w.shape[0]!), shape: [w.shape[0]!] });
        }
      }
    }
    model.forgetLayer(i);
    cached = { layer: i, tensors: out };
    return out;
  };
  for (let i = 0; i < selections.length; i++) {
    const t = layerTensors(i);
    for (const [suffix, v] of t) entries.push({ name: `model.layers.${i}.${suffix}`, shape: v.shape, layer: i });
  }
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  await writeDirAtomic(
    opts.outDir,
    (tmp) => {
      writeSafetensors(
        path.join(tmp, "model.safetensors"),
        entries.map((e) => ({
          name: e.name,
          dtype: dtypeOf(e.name),
          shape: e.shape,
          data: () => {
            if (e.layer === null) return float32ToBytes(src.read(e.name), dtypeOf(e.name));
            const suffix = e.name.slice(`model.layers.${e.layer}.`.length);
            return float32ToBytes(layerTensors(e.layer).get(suffix)!.data, dtypeOf(e.name));
          },
        })),
        { format: "pt" },
      );
      copyModelFiles(model.dir, tmp, config);
      fs.writeFileSync(path.join(tmp, "topiary.json"), JSON.stringify(opts.record, null, 2) + "\n");
    },
    { overwrite: opts.overwrite },
  );
}
