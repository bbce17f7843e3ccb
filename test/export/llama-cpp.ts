// node-llama-cpp as the reference runtime for GGUF files: loads its prebuilt CPU binary offline
// (never builds, never downloads) and exposes the two measurements the export tests compare with
// topiary's own: per-token NLL with the papers' protocol, and greedy continuations.
import type { ControlledEvaluateInputItem, Llama, LlamaContextSequence, LlamaModel, Token } from "node-llama-cpp";

let cached: Promise<Llama | string> | null = null;

/** The Llama runtime, or the reason it cannot load here (the tests fail with it). */
export function loadLlama(): Promise<Llama | string> {
  cached ??= (async () => {
    try {
      const { getLlama, LlamaLogLevel } = await import("node-llama-cpp");
      return await getLlama({ gpu: false, build: "never", usePrebuiltBinaries: true, progressLogs: false, logLevel: LlamaLogLevel.error });
    } catch (e) {
      return `node-llama-cpp's prebuilt CPU binary does not load here (${(e as Error).message.split("\n")[0]})`;
    }
  })();
  return cached;
}

async function withContext<T>(llama: Llama, file: string, contextSize: number, fn: (model: LlamaModel, seq: LlamaContextSequence) => Promise<T>): Promise<T> {
  const model = await llama.loadModel({ modelPath: file, gpuLayers: 0 });
  try {
    // f32 KV cache: the comparison is about the weights, not about f16 rounding of keys and values
    const ctx = await model.createContext({
      contextSize,
      batchSize: contextSize,
      sequences: 1,
      threads: 1,
      experimentalKvCacheKeyType: "F32",
      experimentalKvCacheValueType: "F32",
    });
    try {
      return await fn(model, ctx.getSequence());
    } finally {
      await ctx.dispose();
    }
  } finally {
    await model.dispose();
  }
}

/**
 * Perplexity as topiary's eval/perplexity.ts computes it: `windows` non-overlapping windows of
 * `seqlen` tokens from `ids`, each evaluated from an empty context; position p's next-token
 * distribution scores token p+1; NLL = −log p(target), summed in float64. (node-llama-cpp 3.21
 * returns probabilities, not logits: float32 softmax inside llama.cpp.)
 */
export async function llamaCppPerplexity(llama: Llama, file: string, ids: Int32Array, seqlen: number, windows: number): Promise<{ meanNll: number; perplexity: number; predicted: number }> {
  return withContext(llama, file, seqlen, async (_model, seq) => {
    let nll = 0;
    let predicted = 0;
    for (let w = 0; w < windows; w++) {
      await seq.clearHistory();
      const window = Array.from(ids.subarray(w * seqlen, (w + 1) * seqlen)) as Token[];
      // the last token predicts nothing: evaluate seqlen − 1 tokens, each asking for the full
      // next-token distribution, unfiltered (temperature 1, no top-k/top-p/min-p cut)
      const all = { temperature: 1, topK: 1 << 30, topP: 1, minP: 0 };
      const input: ControlledEvaluateInputItem[] = window.slice(0, -1).map((t) => [t, { generateNext: { probabilities: true, options: all } }]);
      const out = await seq.controlledEvaluate(input);
      for (let p = 0; p + 1 < seqlen; p++) {
        const probabilities = out[p]?.next.probabilities;
        if (!probabilities) throw new Error(`no probabilities at position ${p} of window ${w}`);
        const target = probabilities.get(window[p + 1]!);
        if (target === undefined) throw new Error(`no probability for token ${window[p + 1]}`);
        nll -= Math.log(target);
        predicted++;
      }
    }
    return { meanNll: nll / predicted, perplexity: Math.exp(nll / predicted), predicted };
  });
}

/** Greedy continuation (temperature 0) of `promptIds` (which include BOS), `n` new tokens. */
export async function llamaCppGreedy(llama: Llama, file: string, promptIds: readonly number[], n: number, contextSize = 512): Promise<number[]> {
  return withContext(llama, file, contextSize, async (_model, seq) => {
    const out: number[] = [];
    if (n === 0) return out;
    for await (const t of seq.evaluate(promptIds.map((id) => id as Token), { temperature: 0 })) {
      out.push(t);
      if (out.length >= n) break;
    }
    return out;
  });
}

/** node-llama-cpp's own tokenization of `text` (no BOS; the model's tokenizer from the GGUF). */
export async function llamaCppTokenize(llama: Llama, file: string, text: string): Promise<number[]> {
  const model = await llama.loadModel({ modelPath: file, gpuLayers: 0 });
  try {
    return model.tokenize(text, false).map(Number);
  } finally {
    await model.dispose();
  }
}

/** What llama.cpp's tokenizer makes of a GGUF's vocabulary: each text's ids (no BOS), and its BOS policy. */
export async function llamaCppTokenizeAll(llama: Llama, file: string, texts: readonly string[]): Promise<{ ids: number[][]; bos: number | null; addsBos: boolean }> {
  const model = await llama.loadModel({ modelPath: file, gpuLayers: 0 });
  try {
    const ids = texts.map((text) => model.tokenize(text, false).map(Number));
    return { ids, bos: model.tokens.bos === null ? null : Number(model.tokens.bos), addsBos: model.tokens.shouldPrependBosToken };
  } finally {
    await model.dispose();
  }
}
