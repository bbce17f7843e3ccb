// config.json → a typed, validated model configuration: the fields every family has. Each
// family's adapter (models/family.ts) parses its own config.json fields with its own zod schema
// and extends ModelConfig with them.
import path from "node:path";
import { z } from "zod";
import { FormatError } from "../formats/errors.js";
import { readJsonFile } from "../formats/json.js";

/**
 * The most decoder layers a config may declare. Families build per-layer tables from the count
 * before any weight is read, so an absurd count (a corrupt or hostile config.json) must be refused
 * first; the deepest published models have a few hundred layers.
 */
export const layerCount = z.number().int().positive().max(100_000);

/** token id fields: one id, a list, or null */
export const tokenIds = z.union([z.number().int(), z.array(z.number().int())]).nullish();

/**
 * What every family's normalized config has; a family's adapter extends it with its own fields
 * (models/llama.ts: LlamaConfig). Only the adapter reads those.
 */
export interface ModelConfig {
  /** HF architecture name, e.g. "LlamaForCausalLM" (models/registry.ts maps it to its adapter) */
  architecture: string;
  /** model width (d_model): the residual stream the decoder layers read and write */
  hiddenSize: number;
  /** MLP inner width (sizes activation buffers) */
  intermediateSize: number;
  numLayers: number;
  /** query heads */
  numHeads: number;
  /** key/value heads (< numHeads: grouped-query attention); the KV cache is [B, numKvHeads, P, headDim] */
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
  /** longest sequence the model was trained for */
  maxPositions: number;
  /**
   * Per-layer widths when they differ between layers (after structured pruning with a per-layer
   * allocation); absent: every layer has the widths above. The KV cache of layer i is
   * [B, layerWidths[i].numKvHeads, P, headDim].
   */
  layerWidths?: LayerWidths[];
  /** LM head shares the embedding matrix */
  tieWordEmbeddings: boolean;
  bosTokenId: number | null;
  eosTokenIds: number[];
  /** dtype the checkpoint says it was saved in */
  torchDtype: string | null;
  /** the parsed config.json, for writing it back out unchanged */
  raw: Record<string, unknown>;
}

export interface LayerWidths {
  numHeads: number;
  numKvHeads: number;
  intermediateSize: number;
}

/** KV heads of layer i. */
export function kvHeadsOf(c: ModelConfig, i: number): number {
  return c.layerWidths?.[i]?.numKvHeads ?? c.numKvHeads;
}

/** Formats the first zod issue as `field "a.b": problem`. */
export function describeZodError(err: z.ZodError): string {
  const issue = err.issues[0]!;
  const where = issue.path.length ? `field "${issue.path.join(".")}"` : "value";
  const missing = issue.code === "invalid_type" && /received undefined/.test(issue.message);
  return missing ? `${where} is missing` : `${where}: ${issue.message}`;
}

export function readRawConfig(dir: string): { file: string; json: Record<string, unknown> } {
  const file = path.join(dir, "config.json");
  const json = readJsonFile(file, "every Hugging Face model folder has a config.json");
  if (typeof json !== "object" || json === null || Array.isArray(json)) throw new FormatError(file, "is not a JSON object");
  return { file, json: json as Record<string, unknown> };
}

/** eos_token_id (a number or a list) → a list. */
export function eosList(eos: number | number[] | null | undefined): number[] {
  return eos == null ? [] : Array.isArray(eos) ? eos : [eos];
}
