// The one place that maps an HF architecture name to a model family (models/family.ts). A new
// family is one adapter file plus one line here; nothing else in topiary switches on the
// architecture.
import { FormatError } from "../formats/errors.js";
import type { ModelConfig } from "./config.js";
import type { FamilyAdapter } from "./family.js";
import { llamaFamily, llamaGguf } from "./llama.js";
import { phi3Family } from "./phi3.js";

const FAMILIES: Record<string, FamilyAdapter<any>> = {
  LlamaForCausalLM: llamaFamily("llama", {}, llamaGguf("llama", true)),
  // Mistral: Llama plus a sliding attention window; llama.cpp runs it as "llama"
  MistralForCausalLM: llamaFamily("mistral", { slidingWindowField: true }, llamaGguf("llama", true)),
  // Qwen2: Llama plus biases on q/k/v (its config has no attention_bias field), optional window
  Qwen2ForCausalLM: llamaFamily("qwen2", { qkvBias: true, slidingWindowField: true }, null),
  // Qwen3: Llama plus per-head q/k RMSNorm (no biases), optional window
  Qwen3ForCausalLM: llamaFamily("qwen3", { qkNorm: true, slidingWindowField: true }, llamaGguf("qwen3", false)),
  Phi3ForCausalLM: phi3Family,
};

export const SUPPORTED_ARCHITECTURES = Object.keys(FAMILIES);

/** The adapter of an HF architecture name, or undefined. */
export function familyOf(architecture: string): FamilyAdapter | undefined {
  return FAMILIES[architecture];
}

/** The adapter of a parsed config (its architecture is always registered). */
export function adapterFor(config: ModelConfig): FamilyAdapter {
  const family = FAMILIES[config.architecture];
  if (!family) throw new Error(`no model family for architecture "${config.architecture}"`);
  return family;
}

/** The adapter whose GGUF files use llama.cpp architecture `arch` (for reading a GGUF back). */
export function familyOfGgufArch(arch: string): FamilyAdapter | undefined {
  return Object.values(FAMILIES).find((f) => f.gguf?.archName === arch);
}

export function parseModelConfig(file: string, json: Record<string, unknown>): ModelConfig {
  const archs = json.architectures;
  if (!Array.isArray(archs) || archs.length === 0 || typeof archs[0] !== "string") {
    throw new FormatError(file, `field "architectures" is missing or not a list of names`);
  }
  const family = FAMILIES[archs[0]];
  if (!family) {
    throw new FormatError(file, `unknown architecture "${archs[0]}" (supported: ${SUPPORTED_ARCHITECTURES.join(", ")})`);
  }
  return family.parseConfig(file, json);
}
