import type { Command } from "commander";
import { generate } from "../../eval/generate.js";
import { loadModel } from "../../models/load.js";
import { TextTokenizer } from "../../tokenizer/tokenizer.js";
import { int, num } from "../options.js";
import { interactive } from "../progress.js";

interface GenerateFlags {
  prompt: string;
  maxNewTokens: number;
  temperature: number;
  topK: number;
  topP: number;
  seed?: number;
  json?: boolean;
}

export function registerGenerate(program: Command): void {
  program
    .command("generate")
    .description("continue a prompt (greedy with --temperature 0, else sampled)")
    .argument("<model>", "Hugging Face model folder (local path)")
    .option("--prompt <text>", "text to continue (default: start from BOS)", "")
    .option("--max-new-tokens <n>", "tokens to generate", int("--max-new-tokens", 0), 128)
    .option("--temperature <t>", "0 = greedy; higher = more random", num("--temperature", 0), 1)
    .option("--top-k <k>", "sample among the k most likely tokens (0 = all)", int("--top-k", 0), 0)
    .option("--top-p <p>", "sample among the smallest set reaching probability p", num("--top-p", 0, 1), 1)
    .option("--seed <s>", "random seed (default: a fresh one each run)", int("--seed", 0))
    .option("--json", "print one JSON object")
    .action(async (dir: string, opts: GenerateFlags) => {
      const model = loadModel(dir);
      const tok = TextTokenizer.load(dir);
      const seed = opts.seed ?? Math.floor(Math.random() * 2 ** 31);
      const stream = interactive() && !opts.json;
      let shown = "";
      const streamed: number[] = [];
      const promptIds = Array.from(tok.encode(opts.prompt));
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
      model.close();
      if (opts.json) {
        console.log(JSON.stringify({ text: r.text, ids: r.ids, promptIds: r.promptIds, seed, tokensPerSecond: r.tokensPerSecond, prefillSeconds: r.prefillSeconds }));
        return;
      }
      if (stream) {
        process.stdout.write(r.text.slice(shown.length) + "\n");
        process.stderr.write(`(${r.ids.length} tokens, ${r.tokensPerSecond.toFixed(1)} tokens/s)\n`);
      } else {
        process.stdout.write(r.text + "\n");
      }
    });
}
