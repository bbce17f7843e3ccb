// Text in, text out: encode the prompt, run the decoding loop (eval/decode.ts) on any Decoder —
// topiary's own CausalLM or an exported ONNX folder — and decode the ids back to text.
import type { TextTokenizer } from "../tokenizer/tokenizer.js";
import { decode, type Decoder } from "./decode.js";
import type { SamplingOptions } from "./sampling.js";

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
  /** the prompt followed by its continuation */
  text: string;
  prefillSeconds: number;
  decodeSeconds: number;
  /** generated tokens per second, after the prefill */
  tokensPerSecond: number;
}

export async function generate(model: Decoder, tok: TextTokenizer, prompt: string, opts: GenerateOptions): Promise<GenerateResult> {
  const promptIds = tok.encode(prompt);
  const r = await decode(model, promptIds, opts);
  return { promptIds: Array.from(promptIds), ...r, text: tok.decode([...promptIds, ...r.ids]) };
}
