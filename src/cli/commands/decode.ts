// `topiary generate` and `topiary run`: the same decoding loop (eval/decode.ts) on topiary's own
// model or on an ONNX export. generate is greedy only when asked (--temperature 0) and prints the
// text; run is greedy by default and always reports its speed on stderr.
import type { Command } from "commander";
import type { Decoder } from "../../eval/decode.js";
import { generate } from "../../eval/generate.js";
import { isOnnxExport, OnnxDecoder } from "../../eval/onnx-decoder.js";
import { DTYPE_SUFFIX, type ExportDtype } from "../../formats/onnx/names.js";
import { loadModel } from "../../models/load.js";
import { TextTokenizer } from "../../tokenizer/tokenizer.js";
import { UsageError } from "../errors.js";
import { int, num } from "../options.js";
import { interactive } from "../progress.js";

interface DecodeFlags {
  prompt: string;
  maxNewTokens: number;
  temperature: number;
  topK: number;
  topP: number;
  seed?: number;
  dtype?: string;
  json?: boolean;
}

interface Variant {
  name: string;
  description: string;
  defaultTemperature: number;
  /** print prefill time and tokens/s on stderr even when not on a terminal */
  reportSpeed: boolean;
}

function registerDecodeCommand(program: Command, v: Variant): void {
  program
    .command(v.name)
    .description(v.description)
    .argument("<model>", "Hugging Face model folder, or a folder written by `export --to onnx`")
    .option("--prompt <text>", "text to continue (default: start from BOS)", "")
    .option("--max-new-tokens <n>", "tokens to generate", int("--max-new-tokens", 0), 128)
    .option("--temperature <t>", "0 = greedy; higher = more random", num("--temperature", 0), v.defaultTemperature)
    .option("--top-k <k>", "sample among the k most likely tokens (0 = all)", int("--top-k", 0), 0)
    .option("--top-p <p>", "sample among the smallest set reaching probability p", num("--top-p", 0, 1), 1)
    .option("--seed <s>", "random seed (default: a fresh one each run)", int("--seed", 0))
    .option("--dtype <d>", `ONNX export: which file to run (${Object.keys(DTYPE_SUFFIX).join(", ")})`)
    .option("--json", "print one JSON object")
    .action(async (dir: string, opts: DecodeFlags) => {
      if (opts.dtype !== undefined && !(opts.dtype in DTYPE_SUFFIX)) {
        throw new UsageError(`--dtype must be one of ${Object.keys(DTYPE_SUFFIX).join(", ")}, got "${opts.dtype}"`);
      }
      const model: Decoder & { close(): unknown } = isOnnxExport(dir) ? await OnnxDecoder.open(dir, opts.dtype as ExportDtype | undefined) : loadModel(dir);
      const backend = model instanceof OnnxDecoder ? `onnx ${model.dtype}` : "topiary";
      const tok = TextTokenizer.load(dir);
      const seed = opts.seed ?? Math.floor(Math.random() * 2 ** 31);
      const stream = interactive() && !opts.json;
      const promptIds = Array.from(tok.encode(opts.prompt));
      const streamed: number[] = [];
      let shown = "";
      const r = await generate(model, tok, opts.prompt, {
        maxNewTokens: opts.maxNewTokens,
        temperature: opts.temperature,
        topK: opts.topK,
        topP: opts.topP,
        seed,
        onToken: stream
          ? (id) => {
              streamed.push(id);
              const text = tok.decode([...promptIds, ...streamed]);
              // print only complete characters (a byte-fallback sequence may be mid-character)
              if (text.startsWith(shown) && !text.endsWith("\uFFFD")) {
                process.stdout.write(text.slice(shown.length));
                shown = text;
              }
            }
          : undefined,
      });
      await model.close();
      if (opts.json) {
        const { text, ids, tokensPerSecond, prefillSeconds } = r;
        console.log(JSON.stringify({ text, ids, promptIds: r.promptIds, backend, seed, tokensPerSecond, prefillSeconds }));
        return;
      }
      process.stdout.write(r.text.slice(shown.length) + "\n");
      if (stream || v.reportSpeed) {
        process.stderr.write(`(${backend}: ${r.ids.length} tokens, prefill ${(r.prefillSeconds * 1000).toFixed(0)} ms, ${r.tokensPerSecond.toFixed(1)} tokens/s)\n`);
      }
    });
}

export function registerGenerate(program: Command): void {
  registerDecodeCommand(program, {
    name: "generate",
    description: "continue a prompt (greedy with --temperature 0, else sampled)",
    defaultTemperature: 1,
    reportSpeed: false,
  });
}

export function registerRun(program: Command): void {
  registerDecodeCommand(program, {
    name: "run",
    description: "decode with a KV cache through topiary's model (HF folder) or an ONNX export, greedy by default, and report tokens/s",
    defaultTemperature: 0,
    reportSpeed: true,
  });
}
