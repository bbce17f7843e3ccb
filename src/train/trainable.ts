// Which students the training engine can differentiate today. The block backward
// (train/llama-block.ts) is written for the Llama block — RMSNorm, rotate-half rope, GQA, SwiGLU,
// optional q/k/v, o and MLP biases, one sliding window — so recovery takes the families whose
// adapter is models/llama.ts without per-head q/k norms (Llama, Llama 3, Mistral, Qwen2) and
// equal widths in every layer. Other families need their ops' backward pieces (LayerNorm, GELU,
// ALiBi, softcapping) composed the same way; until then they are refused in one line.
import type { ModelConfig } from "../models/config.js";
import type { LlamaConfig } from "../models/llama.js";
import { adapterFor } from "../models/registry.js";

const TRAINABLE = ["llama", "mistral", "qwen2"];

export function trainableConfig(c: ModelConfig): LlamaConfig {
  const family = adapterFor(c).name;
  if (!TRAINABLE.includes(family)) {
    throw new Error(`recovery training supports the Llama family (${TRAINABLE.join(", ")}) for now; this model is ${c.architecture}`);
  }
  const l = c as LlamaConfig;
  if (l.qkNorm) throw new Error(`recovery training does not support per-head q/k norms yet (${c.architecture})`);
  if (c.layerWidths) throw new Error("recovery training needs equal widths in every layer (prune with --uniform)");
  const w0 = l.layerWindows[0] ?? null;
  if (l.layerWindows.some((w) => (w ?? null) !== w0)) throw new Error("recovery training needs one attention window for every layer");
  return l;
}
