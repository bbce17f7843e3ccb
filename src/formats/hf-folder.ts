// Writing a Hugging Face model folder: the weights as safetensors (streamed one tensor at a
// time, so memory holds one tensor, not the model) plus the files a loader needs next to them.
import fs from "node:fs";
import path from "node:path";
import { float32ToBytes, writeSafetensors, type Dtype } from "./safetensors.js";
import type { WeightSource } from "./weights.js";

/**
 * Files copied unchanged from the source folder when present: generation settings, the
 * tokenizer (tokenizer.json, and the slow tokenizers' files: sentencepiece's tokenizer.model,
 * GPT-2-style vocab.json + merges.txt, added_tokens.json) and the chat template wherever the
 * checkpoint keeps it — inside tokenizer_config.json (older transformers), chat_template.jinja
 * (transformers ≥ 4.51) or chat_template.json (processors).
 */
export const AUX_FILES = [
  "generation_config.json",
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "tokenizer.model",
  "vocab.json",
  "merges.txt",
  "added_tokens.json",
  "chat_template.jinja",
  "chat_template.json",
] as const;

/** Folder of named chat templates besides the default one (transformers writes NAME.jinja there). */
export const CHAT_TEMPLATES_DIR = "additional_chat_templates";

/** Copies AUX_FILES and the additional chat templates from srcDir to dstDir (those present). */
export function copyAuxFiles(srcDir: string, dstDir: string): void {
  const copy = (name: string) => {
    fs.copyFileSync(path.join(srcDir, name), path.join(dstDir, name));
    fs.chmodSync(path.join(dstDir, name), 0o644); // the source may be read-only; the copy is the user's
  };
  for (const f of AUX_FILES) if (fs.existsSync(path.join(srcDir, f))) copy(f);
  const templates = path.join(srcDir, CHAT_TEMPLATES_DIR);
  if (fs.existsSync(templates) && fs.statSync(templates).isDirectory()) {
    fs.mkdirSync(path.join(dstDir, CHAT_TEMPLATES_DIR), { recursive: true });
    for (const f of fs.readdirSync(templates)) if (f.endsWith(".jinja")) copy(path.join(CHAT_TEMPLATES_DIR, f));
  }
}

/** Copies tokenizer and generation files, and writes config.json (optionally amended). */
export function copyModelFiles(srcDir: string, dstDir: string, config: Record<string, unknown>): void {
  copyAuxFiles(srcDir, dstDir);
  fs.writeFileSync(path.join(dstDir, "config.json"), JSON.stringify(config, null, 2) + "\n");
}

export type FloatDtype = "F32" | "F16" | "BF16";

/**
 * Writes every tensor of `weights` to dstDir/model.safetensors as `dtypeOf(name)` (default: the
 * dtype it is stored in; float32 for tensors that were computed). Tensor order: sorted by name.
 */
export function writeDenseSafetensors(
  dstDir: string,
  weights: WeightSource,
  dtypeOf: (name: string) => FloatDtype,
  metadata: Record<string, string> = { format: "pt" },
): void {
  const names = weights.names().sort();
  writeSafetensors(
    path.join(dstDir, "model.safetensors"),
    names.map((name) => {
      const dtype: Dtype = dtypeOf(name);
      return { name, dtype, shape: weights.shape(name), data: () => float32ToBytes(weights.read(name), dtype as FloatDtype) };
    }),
    metadata,
  );
}

/** The float dtype a tensor is stored in, or F32 when it is not a float type we write. */
export function storedFloatDtype(weights: WeightSource, name: string): FloatDtype {
  const d = weights.dtype(name);
  return d === "F16" || d === "BF16" ? d : "F32";
}
