// The GGUF side of the LayerNorm families llama.cpp runs (gpt2, gptneox, bloom), after
// convert_hf_to_gguf.py's GPT2Model, GPTNeoXModel and BloomModel: every tensor under its
// llama.cpp name (LayerNorm weights and biases included), the fused q/k/v as one `attn_qkv`
// whose rows llama.cpp reads as q|k|v — BLOOM's and GPT-NeoX's per-head interleaved rows are
// reordered (weight and bias), GPT-2's c_attn already is — and each family's metadata.
import { Keys } from "../formats/gguf/constants.js";
import { FormatError } from "../formats/errors.js";
import { mapTensorName, type TensorNameTable } from "../formats/gguf/names.js";
import type { WeightSource } from "../formats/weights.js";
import type { ModelConfig } from "./config.js";
import type { GgufFamily, GgufTensorPlan } from "./family.js";
import { gatherRows, interleavedToConcatenatedRows, invertRows } from "./fused-layout.js";
import { GgufMeta } from "./gguf-meta.js";

export interface LayerNormGgufSpec<C extends ModelConfig> {
  /** llama.cpp architecture name */
  archName: string;
  /** [HF module path, llama.cpp name] rows; "{bid}" is the block index */
  names: TensorNameTable;
  /**
   * Every tensor to write, in file order: a topiary name (its llama.cpp name from `names`), or a
   * source written under another name (a tied head llama.cpp requires: `output` ← the embedding).
   */
  tensors(c: C, w: WeightSource): (string | { source: string; name: string })[];
  /** module path suffix of the per-head interleaved query_key_value, if the family has one */
  interleavedQkv?: string;
  /** what llama.cpp cannot run as the config says: one line, or null */
  unsupported(c: C): string | null;
  /** what llama.cpp will compute differently from the original, one line each */
  warnings?(c: C): string[];
  /** architecture metadata beyond the common keys */
  metadata(c: C, meta: GgufMeta): void;
}

/** gguf-py Keys.Attention.LAYERNORM_EPS */
export const LAYERNORM_EPS = "attention.layer_norm_epsilon";
/** gguf-py Keys.LLM.USE_PARALLEL_RESIDUAL */
export const USE_PARALLEL_RESIDUAL = "use_parallel_residual";

export function layerNormGguf<C extends ModelConfig>(spec: LayerNormGgufSpec<C>): GgufFamily<C> {
  const isQkv = (name: string) => spec.interleavedQkv !== undefined && new RegExp(`\\.${spec.interleavedQkv.replace(/\./g, "\\.")}\\.(weight|bias)$`).test(name);
  return {
    archName: spec.archName,
    arch(c) {
      const problem = spec.unsupported(c);
      if (problem) throw new Error(`GGUF export of this ${c.architecture}: ${problem}`);
      return spec.archName;
    },
    tensors(c, w): GgufTensorPlan[] {
      return spec.tensors(c, w).map((entry) => {
        const source = typeof entry === "string" ? entry : entry.source;
        const name = typeof entry === "string" ? mapTensorName(spec.names, source, "toGguf") : entry.name;
        if (!name) throw new Error(`no llama.cpp name for tensor "${source}"`);
        if (!w.has(source)) throw new FormatError(w.location, `missing tensor "${source}"`);
        const shape = [...w.shape(source)];
        const plan: GgufTensorPlan = { name, source, shape, permuteHeads: null };
        if (isQkv(source)) {
          // [heads, 3, headDim] rows → [3, heads, headDim] (convert_hf_to_gguf.py "re-format attention.linear_qkv")
          plan.rowOrder = interleavedToConcatenatedRows(c.numHeads, c.headDim);
        }
        return plan;
      });
    },
    metadata(c, arch) {
      // GgufMeta.common writes an RMS eps: these families have LayerNorm's instead
      const meta = new GgufMeta(arch)
        .u32(Keys.LLM.VOCAB_SIZE, c.vocabSize)
        .u32(Keys.LLM.CONTEXT_LENGTH, c.maxPositions)
        .u32(Keys.LLM.EMBEDDING_LENGTH, c.hiddenSize)
        .u32(Keys.LLM.BLOCK_COUNT, c.numLayers)
        .u32(Keys.LLM.FEED_FORWARD_LENGTH, c.intermediateSize)
        .u32(Keys.Attention.HEAD_COUNT, c.numHeads)
        .u32(Keys.Attention.HEAD_COUNT_KV, c.numKvHeads);
      spec.metadata(c, meta);
      return meta.kv;
    },
    warnings: (c) => spec.warnings?.(c) ?? [],
    hfName: (ggufName) => mapTensorName(spec.names, ggufName, "toHf"),
    fromGguf(hfName, data, shape, heads) {
      if (!isQkv(hfName)) return data;
      const headDim = shape[0]! / 3 / heads.q;
      return gatherRows(data, invertRows(interleavedToConcatenatedRows(heads.q, headDim)), shape.length === 2 ? shape[1]! : 1);
    },
  };
}
