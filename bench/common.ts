// Pieces shared by bench/deploy.ts and bench/structured.ts: the synthetic TinyLlama-shaped
// checkpoint and the decode / prefill speed of an exported model in llama.cpp and onnxruntime.
import { execFile } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import type { Llama, Token } from "node-llama-cpp";
import { decode } from "../src/eval/decode.js";
import { OnnxDecoder } from "../src/eval/onnx-decoder.js";
import { writeDenseSafetensors } from "../src/formats/hf-folder.js";
import { syntheticModel, tinyLlamaShape, type SyntheticShape } from "../src/models/synthetic.js";
import { syntheticTokenizer } from "../src/tokenizer/synthetic.js";

/** Writes the TinyLlama-shaped model with `layers` layers as an fp16 Hugging Face folder. */
export function writeSyntheticCheckpoint(dir: string, layers: number): void {
  writeSyntheticFolder(dir, tinyLlamaShape(layers));
}

/** Writes a synthetic model of `shape` as an fp16 Hugging Face folder with a tokenizer of its vocabulary size. */
export function writeSyntheticFolder(dir: string, shape: SyntheticShape): void {
  const { weights } = syntheticModel(shape, 1);
  fs.mkdirSync(dir);
  writeDenseSafetensors(dir, weights, () => "F16");
  const { tokenizer, config } = syntheticTokenizer(shape.vocab_size);
  fs.writeFileSync(path.join(dir, "tokenizer.json"), JSON.stringify(tokenizer));
  fs.writeFileSync(path.join(dir, "tokenizer_config.json"), JSON.stringify(config, null, 2) + "\n");
  fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify({ ...shape, torch_dtype: "float16" }, null, 2) + "\n");
}

/** Parameters of the TinyLlama shape with `layers` layers. */
export function tinyLlamaParameters(layers: number): number {
  const { weights } = syntheticModel(tinyLlamaShape(layers));
  return weights.names().reduce((a, n) => a + weights.shape(n).reduce((x, y) => x * y, 1), 0);
}

/** The decode prompt of bench/onnx-decode.ts (BOS first, then a fixed spread of ids); `length` 8 there. */
export const promptFor = (vocabSize: number, length: number) => Int32Array.from({ length }, (_, i) => 1 + ((i * 37) % (vocabSize - 1)));

const GREEDY = { temperature: 0, topK: 0, topP: 1, seed: 0, stopIds: [] };

/** Greedy decode tokens/s of an ONNX export after `prompt`, counted as eval/decode.ts counts them. */
export async function onnxTokensPerSecond(dir: string, prompt: Int32Array, tokens: number): Promise<number> {
  return (await onnxSpeeds(dir, { prompt, tokens })).decode;
}

/**
 * Decode tokens/s after `prompt` (`tokens` new tokens) and, given `prefill`, prefill tokens/s of
 * that longer prompt (its length over the time to its first logits) — one load, one warm-up.
 */
export async function onnxSpeeds(dir: string, opts: { prompt: Int32Array; tokens: number; prefill?: Int32Array }): Promise<{ decode: number; prefill: number | null }> {
  const dec = await OnnxDecoder.open(dir);
  try {
    await decode(dec, opts.prompt, { ...GREEDY, maxNewTokens: 4 }); // warm-up
    const tps = (await decode(dec, opts.prompt, { ...GREEDY, maxNewTokens: opts.tokens })).tokensPerSecond;
    const prefill = opts.prefill ? opts.prefill.length / (await decode(dec, opts.prefill, { ...GREEDY, maxNewTokens: 1 })).prefillSeconds : null;
    return { decode: tps, prefill };
  } finally {
    await dec.close();
  }
}

/** Greedy tokens/s after the prefill, counted as eval/decode.ts counts them: (n − 1) steps after the first token. */
export async function llamaCppTokensPerSecond(llama: Llama, file: string, prompt: Int32Array, tokens: number, threads: number): Promise<number> {
  return (await llamaCppSpeeds(llama, file, { prompt, tokens, threads })).decode;
}

/** As onnxSpeeds, in llama.cpp (prefill: the prompt's length over the time to its first token). */
export async function llamaCppSpeeds(
  llama: Llama,
  file: string,
  opts: { prompt: Int32Array; tokens: number; threads: number; prefill?: Int32Array },
): Promise<{ decode: number; prefill: number | null }> {
  const model = await llama.loadModel({ modelPath: file, gpuLayers: 0 });
  try {
    const longest = Math.max(opts.prompt.length + opts.tokens, (opts.prefill?.length ?? 0) + 1);
    const contextSize = Math.max(256, 2 ** Math.ceil(Math.log2(longest + 1)));
    // batchSize ≥ the prefill prompt, so the whole prompt goes through in one batch as in onnxruntime
    const ctx = await model.createContext({ contextSize, batchSize: Math.min(contextSize, Math.max(512, opts.prefill?.length ?? 0)), sequences: 1, threads: opts.threads });
    try {
      const seq = ctx.getSequence();
      const run = async (ids: Int32Array, n: number) => {
        await seq.clearHistory();
        let count = 0;
        let first = 0;
        const start = performance.now();
        for await (const _ of seq.evaluate(Array.from(ids) as Token[], { temperature: 0 })) {
          if (++count === 1) first = performance.now();
          if (count >= n) break;
        }
        return { decode: (count - 1) / ((performance.now() - first) / 1000), prefill: ids.length / ((first - start) / 1000) };
      };
      await run(opts.prompt, 4); // warm-up
      const tps = (await run(opts.prompt, opts.tokens)).decode;
      const prefill = opts.prefill ? (await run(opts.prefill, 1)).prefill : null;
      return { decode: tps, prefill };
    } finally {
      await ctx.dispose();
    }
  } finally {
    await model.dispose();
  }
}

/**
 * Decode and prefill tokens/s of a GGUF file in llama.cpp's own `llama-bench` (a binary built from
 * llama.cpp; `bin` is its path): `-n tokens` generated from an empty context and, when `prefill` is
 * given, `-p prefill` prompt tokens in one batch (else prefill is null, as in llamaCppSpeeds),
 * 3 repetitions after its warm-up, at each of `threads`; the fastest
 * repetition counts (as the best of rounds elsewhere: a shared CPU only ever slows one down), the
 * thread count with the fastest decode counts, prefill is the best over thread counts (as llamaCppSpeeds).
 * Unlike node-llama-cpp, llama-bench attaches one ggml thread pool to the context for the run.
 */
export async function llamaBenchSpeeds(
  bin: string,
  file: string,
  opts: { tokens: number; prefill?: number; threads: number[] },
): Promise<{ decode: number; prefill: number | null; threads: number }> {
  const args = ["-m", file, "-n", String(opts.tokens), "-p", String(opts.prefill ?? 0), "-t", opts.threads.join(","), "-r", "3", "-ngl", "0", "-o", "json"];
  const { stdout } = await promisify(execFile)(bin, args, { maxBuffer: 1 << 24 });
  const tests = (JSON.parse(stdout) as { n_prompt: number; n_gen: number; n_threads: number; samples_ts: number[] }[]).map((t) => ({ ...t, ts: Math.max(...t.samples_ts) }));
  const gen = tests.filter((t) => t.n_gen > 0 && t.n_prompt === 0);
  const pp = tests.filter((t) => t.n_prompt > 0 && t.n_gen === 0);
  if (!gen.length || (opts.prefill && !pp.length)) throw new Error(`${bin}: no decode or prefill result for ${file} in its JSON output`);
  const best = gen.reduce((a, t) => (t.ts > a.ts ? t : a));
  return { decode: best.ts, prefill: opts.prefill ? Math.max(...pp.map((t) => t.ts)) : null, threads: best.n_threads };
}
