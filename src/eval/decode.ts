// The decoding loop over anything with a KV-cache `step`: topiary's own CausalLM or an exported
// ONNX folder (eval/onnx-decoder.ts): one prefill over the prompt,
// then one token per step; tokens/s counts the steps after the prefill.
import { Rng } from "../data/rng.js";
import type { ModelConfig } from "../models/config.js";
import type { KvCache } from "../models/model.js";
import type { GenerateOptions } from "./generate.js";
import { sampleToken } from "./sampling.js";

export interface Decoder {
  readonly config: ModelConfig;
  /** Appends T tokens per sequence; logits of (at least) the last position of each. `keepLast` is a hint. */
  step(ids: Int32Array, B: number, T: number, cache: KvCache | null, keepLast?: number): Promise<{ logits: Float32Array; cache: KvCache }>;
}

export interface DecodeResult {
  ids: number[];
  prefillSeconds: number;
  decodeSeconds: number;
  /** generated tokens per second, after the prefill */
  tokensPerSecond: number;
}

export async function decode(model: Decoder, promptIds: Int32Array, opts: GenerateOptions): Promise<DecodeResult> {
  if (promptIds.length === 0) throw new Error("the prompt is empty and the model has no BOS token to start from");
  const V = model.config.vocabSize;
  const maxNew = Math.max(0, Math.min(opts.maxNewTokens, model.config.maxPositions - promptIds.length));
  const stop = new Set(opts.stopIds ?? model.config.eosTokenIds);
  const rng = new Rng(opts.seed);

  const t0 = performance.now();
  let { logits, cache } = await model.step(promptIds, 1, promptIds.length, null, 1);
  const t1 = performance.now();
  const ids: number[] = [];
  for (let n = 0; n < maxNew; n++) {
    const id = sampleToken(logits.subarray(logits.length - V), opts, rng);
    if (stop.has(id)) break;
    ids.push(id);
    opts.onToken?.(id);
    if (n + 1 === maxNew) break;
    ({ logits, cache } = await model.step(Int32Array.of(id), 1, 1, cache, 1));
  }
  const decodeSeconds = (performance.now() - t1) / 1000;
  return {
    ids,
    prefillSeconds: (t1 - t0) / 1000,
    decodeSeconds,
    tokensPerSecond: ids.length > 1 ? (ids.length - 1) / decodeSeconds : 0,
  };
}
