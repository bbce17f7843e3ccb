// The one place that maps an HF architecture name to a model family. A new family is one
// adapter file plus one line here; nothing else in topiary switches on the architecture.
import { FormatError } from "../formats/errors.js";
import { parseLlamaConfig, type ModelConfig } from "./config.js";

interface Family {
  /** config.json → validated config */
  parseConfig(file: string, json: Record<string, unknown>): ModelConfig;
}

const llama: Family = { parseConfig: (file, json) => parseLlamaConfig(file, json) };
// Mistral: Llama plus a sliding attention window (see models/llama.ts).
const mistral: Family = { parseConfig: (file, json) => parseLlamaConfig(file, json, { slidingWindowField: true }) };
// Qwen2: Llama plus biases on q/k/v (its config has no attention_bias field), optional window.
const qwen2: Family = { parseConfig: (file, json) => parseLlamaConfig(file, json, { qkvBias: true, slidingWindowField: true }) };

const FAMILIES: Record<string, Family> = {
  LlamaForCausalLM: llama,
  MistralForCausalLM: mistral,
  Qwen2ForCausalLM: qwen2,
};

export const SUPPORTED_ARCHITECTURES = Object.keys(FAMILIES);

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
