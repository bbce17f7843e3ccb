// Opening a model folder: config.json → family config, weights → WeightSource, → CausalLM.
import fs from "node:fs";
import path from "node:path";
import { openCompressedTensors } from "../formats/compressed-tensors/reader.js";
import { FormatError } from "../formats/errors.js";
import { readJsonFile } from "../formats/json.js";
import { SafetensorsWeights, type WeightSource } from "../formats/weights.js";
import { readRawConfig } from "./config.js";
import { CausalLM } from "./model.js";
import { adapterFor, parseModelConfig } from "./registry.js";

/**
 * Opens the weights of a model folder. Hooks for other storage layouts (compressed-tensors,
 * sparse bitmasks) register here so every command reads them the same way.
 */
export type WeightOpener = (dir: string, rawConfig: Record<string, unknown>) => WeightSource | null;
const openers: WeightOpener[] = [openCompressedTensors];

export function openWeights(dir: string, rawConfig: Record<string, unknown>): WeightSource {
  for (const open of openers) {
    const w = open(dir, rawConfig);
    if (w) return w;
  }
  return SafetensorsWeights.open(dir);
}

/** Loads a Hugging Face model folder (a local path: topiary never downloads). */
export function loadModel(dir: string): CausalLM {
  const stat = fs.statSync(dir, { throwIfNoEntry: false });
  if (!stat) throw new FormatError(dir, "no such model folder (topiary reads local Hugging Face folders; it does not download)");
  if (!stat.isDirectory()) throw new FormatError(dir, "is not a folder (expected a Hugging Face model folder with config.json)");
  const { file, json } = readRawConfig(dir);
  const config = parseModelConfig(file, json);
  // generation stops at generation_config.json's EOS ids when it has them (as transformers does)
  const genFile = path.join(dir, "generation_config.json");
  if (fs.existsSync(genFile)) {
    const eos = (readJsonFile(genFile, "generation settings") as { eos_token_id?: unknown }).eos_token_id;
    if (typeof eos === "number") config.eosTokenIds = [eos];
    else if (Array.isArray(eos) && eos.every((e) => typeof e === "number")) config.eosTokenIds = eos;
  }
  const opened = openWeights(dir, json);
  // the family may present the checkpoint in topiary's names and layouts (models/family.ts checkpointView)
  const view = adapterFor(config).checkpointView;
  const weights = view ? view.toTopiary(config, opened) : opened;
  try {
    return new CausalLM(config, weights, dir);
  } catch (e) {
    weights.close();
    throw e;
  }
}
