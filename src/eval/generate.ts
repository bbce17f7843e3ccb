// Autoregressive generation with a KV cache: one prefill over the prompt, then one token per step.
import { Rng } from "../data/rng.js";
import type { CausalLM } from "../models/model.js";
import type { TextTokenizer } from "../tokenizer/tokenizer.js";
import { sampleToken, type SamplingOptions } from "./sampling.js";

export interface GenerateOptions extends SamplingOptions {
  maxNewTokens: number;
  seed: number;
  /** token ids that end generation (default: the model's EOS ids) */
  stopIds?: readonly number[];
  /** called with every new token id */
  onToken?: (id: number) => void;
}

export interface GenerateResult {
  promptIds: number[];
  ids: number[];
  text: string;
  prefillSeconds: number;
  decodeSeconds: number;
  /** generated tokens per second, after the prefill */
  tokensPerSecond: number;
}

export async function generate(model: CausalLM, tok: TextTokenizer, prompt: string, opts: GenerateOptions): Promise<GenerateResult> {
  const promptIds = tok.encode(prompt);
  if (promptIds.length === 0) throw new Error("the prompt is empty and the model has no BOS token to start from");
  const limit = model.config.maxPositions;
  const maxNew = Math.max(0, Math.min(opts.maxNewTokens, limit - promptIds.length));
  const stop = new Set(opts.stopIds ?? model.config.eosTokenIds);
  const rng = new Rng(opts.seed);
  const V = model.config.vocabSize;

  const t0 = performance.now();
  let { logits, cache } = await model.step(promptIds, 1, promptIds.length, null);
  const t1 = performance.now();
  let row = logits.subarray((promptIds.length - 1) * V, promptIds.length * V);
  const ids: number[] = [];
  for (let n = 0; n < maxNew; n++) {
    const id = sampleToken(row, opts, rng);
    if (stop.has(id)) break;
    ids.push(id);
    opts.onToken?.(id);
    if (n + 1 === maxNew) break;
    ({ logits, cache } = await model.step(Int32Array.of(id), 1, 1, cache));
    row = logits;
  }
  const t2 = performance.now();
  const decodeSeconds = (t2 - t1) / 1000;
  return {
    promptIds: Array.from(promptIds),
    ids,
    text: tok.decode([...promptIds, ...ids]),
    prefillSeconds: (t1 - t0) / 1000,
    decodeSeconds,
    tokensPerSecond: ids.length > 1 ? (ids.length - 1) / decodeSeconds : 0,
  };
}
