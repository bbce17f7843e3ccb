import type { Command } from "commander";
import { decode, type Decoder } from "../../eval/decode.js";
import { isOnnxExport, OnnxDecoder } from "../../eval/onnx-decoder.js";
import { DTYPE_SUFFIX, type ExportDtype } from "../../formats/onnx/names.js";
import { loadModel } from "../../models/load.js";
import { TextTokenizer } from "../../tokenizer/tokenizer.js";
import { UsageError } from "../errors.js";
import { int, num } from "../options.js";

interface RunFlags {
  prompt: string;
  maxNewTokens: number;
  temperature: number;
  topK: number;
  topP: number;
  seed?: number;
  dtype?: string;
  json?: boolean;
}

export function registerRun(program: Command): void {
  program
    .command("run")
    .description("decode with a KV cache through topiary's model (HF folder) or an ONNX export, and report tokens/s")
    .argument("<model>", "Hugging Face model folder, or a folder written by `export --to onnx`")
    .option("--prompt <text>", "text to continue (default: start from BOS)", "")
    .option("--max-new-tokens <n>", "tokens to generate", int("--max-new-tokens", 0), 128)
    .option("--temperature <t>", "0 = greedy; higher = more random", num("--temperature", 0), 0)
    .option("--top-k <k>", "sample among the k most likely tokens (0 = all)", int("--top-k", 0), 0)
    .option("--top-p <p>", "sample among the smallest set reaching probability p", num("--top-p", 0, 1), 1)
    .option("--seed <s>", "random seed (default: a fresh one each run)", int("--seed", 0))
    .option("--dtype <d>", `ONNX export: which file to run (${Object.keys(DTYPE_SUFFIX).join(", ")})`)
    .option("--json", "print one JSON object")
    .action(async (dir: string, opts: RunFlags) => {
      if (opts.dtype !== undefined && !(opts.dtype in DTYPE_SUFFIX)) {
        throw new UsageError(`--dtype must be one of ${Object.keys(DTYPE_SUFFIX).join(", ")}, got "${opts.dtype}"`);
      }
      const model: Decoder & { close(): unknown } = isOnnxExport(dir) ? await OnnxDecoder.open(dir, opts.dtype as ExportDtype | undefined) : loadModel(dir);
      const tok = TextTokenizer.load(dir);
      const seed = opts.seed ?? Math.floor(Math.random() * 2 ** 31);
      const promptIds = tok.encode(opts.prompt);
      const r = await decode(model, promptIds, { ...opts, seed });
      await model.close();
      const text = tok.decode([...promptIds, ...r.ids]);
      const backend = model instanceof OnnxDecoder ? `onnx ${model.dtype}` : "topiary";
      if (opts.json) {
        console.log(JSON.stringify({ text, ids: r.ids, backend, seed, tokensPerSecond: r.tokensPerSecond, prefillSeconds: r.prefillSeconds }));
        return;
      }
      process.stdout.write(text + "\n");
      process.stderr.write(`(${backend}: ${r.ids.length} tokens, prefill ${(r.prefillSeconds * 1000).toFixed(0)} ms, ${r.tokensPerSecond.toFixed(1)} tokens/s)\n`);
    });
}
