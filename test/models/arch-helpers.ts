// The tiny transformers-written checkpoints of ../shared/reference/architectures/<name> and their
// golden outputs (made by ../shared/reference/tools/make_arch_golden.py with transformers 5.18).
import fs from "node:fs";
import path from "node:path";
import { decode } from "../../src/eval/decode.js";
import { SafetensorsFile } from "../../src/formats/safetensors.js";
import type { CausalLM } from "../../src/models/model.js";
import { REFERENCE } from "../helpers.js";


/** The families checked against transformers' golden outputs (../shared/reference/architectures). */
export const FAMILIES: { name: string }[] = [{ name: "llama3" }, { name: "qwen3" }, { name: "phi3" }, { name: "gemma2" }, { name: "gemma3" }];

/** Every family folder of ../shared/reference/architectures (the tests that run all nine). */
export const ALL_FAMILIES = ["llama3", "qwen3", "phi3", "gemma2", "gemma3", "opt", "gpt2", "bloom", "gpt_neox"];

export const ARCHITECTURES = path.join(REFERENCE, "architectures");
export const archDir = (name: string): string => path.join(ARCHITECTURES, name);

export interface ArchGolden {
  inputIds: Int32Array;
  B: number;
  T: number;
  logits: Float32Array;
  firstIds: number[];
  greedyPromptIds: number[];
  greedyNewIds: number[];
  ppl128First16: number;
}

export function readGolden(name: string): ArchGolden {
  const json = JSON.parse(fs.readFileSync(path.join(archDir(name), "golden.json"), "utf8"));
  const f = SafetensorsFile.open(path.join(archDir(name), "golden.safetensors"));
  try {
    const [B, T] = f.info("input_ids").shape as [number, number];
    const ids64 = new BigInt64Array(f.readBytes("input_ids").slice().buffer);
    const lb = f.readBytes("logits").slice();
    return {
      inputIds: Int32Array.from(ids64, Number),
      B,
      T,
      logits: new Float32Array(lb.buffer, lb.byteOffset, lb.byteLength / 4),
      firstIds: json.first_ids,
      greedyPromptIds: json.greedy_prompt_ids,
      greedyNewIds: json.greedy_new_ids,
      ppl128First16: json.ppl_128_first16,
    };
  } finally {
    f.close();
  }
}

/** max |a − b| */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`lengths differ: ${a.length} vs ${b.length}`);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

/** Greedy continuation with the KV cache, not stopping at EOS (as the golden's 24 tokens). */
export async function greedy(model: CausalLM, prompt: number[], n: number): Promise<number[]> {
  const r = await decode(model, Int32Array.from(prompt), { maxNewTokens: n, temperature: 0, topK: 0, topP: 1, stopIds: [], seed: 0 });
  return r.ids;
}

/**
 * The prompt the golden's generate() really saw: it was called with pad_token_id=0, so leading
 * 0 ids (llama3's BOS is 0) were treated as left padding — masked out, positions starting after
 * them. Dropping them is the same computation.
 */
export function goldenPrompt(ids: number[]): number[] {
  let i = 0;
  while (i < ids.length && ids[i] === 0) i++;
  return ids.slice(i);
}
