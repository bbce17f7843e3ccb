// Shared test helpers: where ../shared is, temporary folders, synthetic model folders.
// The end-to-end tests need ../shared (models, data, reference outputs) and never skip without
// it: importing this file without ../shared throws, so a missing checkout fails every such test
// loudly instead of passing by skipping.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

export const REPO = path.resolve(import.meta.dirname, "..");
export const SHARED = path.resolve(REPO, "..", "shared");
if (!fs.existsSync(path.join(SHARED, "models", "stories260K", "config.json"))) {
  throw new Error(`${SHARED} is missing (models, data and reference outputs the tests compare against): put the shared folder beside the repository`);
}
export const STORIES = path.join(SHARED, "models", "stories260K");
export const DATA = path.join(SHARED, "data");
export const REFERENCE = path.join(SHARED, "reference");

const tempDirs: string[] = [];
process.on("exit", () => {
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
});

/** A fresh temporary folder, removed when the process exits. */
export function tempDir(prefix = "topiary-test-"): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

/** reference.json parsed. */
export function referenceResults(): {
  results: Record<string, Record<string, unknown> & { ppl_exact: Record<string, number> }>;
  protocol: Record<string, unknown>;
} {
  return JSON.parse(fs.readFileSync(path.join(REFERENCE, "reference.json"), "utf8"));
}

/**
 * A Llama model folder with random weights (src/models/synthetic.ts), float32 safetensors and a
 * config.json; no tokenizer. `hidden` sets the widths: heads of 64, SwiGLU of ⌊8·hidden/3⌋.
 */
export async function syntheticFolder(hidden: number, layers: number, vocab = 512): Promise<{ dir: string; layerBytes: number }> {
  const { writeDenseSafetensors } = await import("../src/formats/hf-folder.js");
  const { syntheticModel } = await import("../src/models/synthetic.js");
  const dir = path.join(tempDir(), `synthetic-h${hidden}-l${layers}`);
  fs.mkdirSync(dir);
  const shape = {
    hidden_size: hidden,
    intermediate_size: Math.round((hidden * 8) / 3),
    num_hidden_layers: layers,
    num_attention_heads: hidden / 64,
    num_key_value_heads: hidden / 64,
    vocab_size: vocab,
    max_position_embeddings: 512,
    bos_token_id: 1,
    eos_token_id: 2,
  };
  writeDenseSafetensors(dir, syntheticModel(shape, 1).weights, () => "F32");
  fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify({ architectures: ["LlamaForCausalLM"], model_type: "llama", ...shape }));
  const F = shape.intermediate_size;
  return { dir, layerBytes: (4 * hidden * hidden + 3 * hidden * F) * 4 };
}
