import path from "node:path";
import type { Command } from "commander";
import { DATASETS, loadEvalText, type DatasetKind } from "../../data/text.js";
import { fidelity, type FidelityResult } from "../../eval/fidelity.js";
import { defaultSeqlen, perplexity } from "../../eval/perplexity.js";
import { loadModel } from "../../models/load.js";
import { TextTokenizer } from "../../tokenizer/tokenizer.js";
import { UsageError } from "../errors.js";
import { FormatError } from "../../formats/errors.js";
import { int } from "../options.js";
import { progress } from "../progress.js";

interface EvalFlags {
  data: string;
  reference?: string;
  dataset: string;
  seqlen?: number;
  limitWindows?: number;
  json?: boolean;
}

export function registerEval(program: Command): void {
  program
    .command("eval")
    .description("perplexity on a text, with the papers' protocol (non-overlapping windows, BOS at the start only)")
    .argument("<model>", "Hugging Face model folder (local path)")
    .requiredOption("--data <file>", "text to score (UTF-8; .jsonl: its \"text\" fields)")
    .option("--dataset <kind>", `how to read --data: ${DATASETS.join(", ")} (wikitext2: the papers' "\\n\\n".join of a raw wiki.*.raw)`, "plain")
    .option("--seqlen <n>", "window length (default: the model's max length, capped at 2048)", int("--seqlen", 2))
    .option("--limit-windows <k>", "score only the first k windows", int("--limit-windows", 1))
    .option("--reference <model>", "also measure fidelity to this (original) model: mean KL(original ‖ model) and top-1 agreement over every position")
    .option("--json", "print one JSON object")
    .action(async (dir: string, opts: EvalFlags) => {
      if (!(DATASETS as readonly string[]).includes(opts.dataset)) {
        throw new UsageError(`--dataset must be one of ${DATASETS.join(", ")}, got "${opts.dataset}"`);
      }
      const model = loadModel(dir);
      const tok = TextTokenizer.load(dir);
      const text = loadEvalText(opts.data, opts.dataset as DatasetKind);
      const ids = tok.encode(text);
      const seqlen = opts.seqlen ?? defaultSeqlen(model);
      if (ids.length < seqlen) throw new FormatError(opts.data, `has ${ids.length} tokens, fewer than one window of ${seqlen} (--seqlen)`);
      const t0 = performance.now();
      const bar = progress(1, "eval {bar} {value}/{total} windows | {rate} tok/s | ETA {eta_formatted}");
      const r = await perplexity(model, ids, {
        seqlen,
        limitWindows: opts.limitWindows,
        onProgress: (p) => {
          const secs = (performance.now() - t0) / 1000;
          (bar as { total?: number }).total = p.total;
          bar.update(p.done, { total: p.total, rate: Math.round(p.tokens / secs) });
        },
      });
      bar.stop();
      let fid: FidelityResult | undefined;
      if (opts.reference) {
        const original = loadModel(opts.reference);
        const fbar = progress(1, "fidelity {bar} {value}/{total} windows | ETA {eta_formatted}");
        fid = await fidelity(original, model, ids, {
          seqlen,
          limitWindows: opts.limitWindows,
          onProgress: (p) => {
            (fbar as { total?: number }).total = p.total;
            fbar.update(p.done, { total: p.total });
          },
        });
        fbar.stop();
        original.close();
      }
      const seconds = (performance.now() - t0) / 1000;
      model.close();
      if (opts.json) {
        console.log(
          JSON.stringify({
            model: path.resolve(dir),
            data: path.resolve(opts.data),
            dataset: opts.dataset,
            ...r,
            ...(fid ? { klMean: fid.klMean, top1Agree: fid.top1Agree, reference: path.resolve(opts.reference!) } : {}),
            seconds,
            tokensPerSecond: (r.windows * r.seqlen) / seconds,
          }),
        );
        return;
      }
      console.log(
        `perplexity ${r.perplexity.toPrecision(6)}  (${r.windows} windows × ${r.seqlen} tokens, ${r.predicted.toLocaleString("en-US")} predicted, ` +
          `${r.tokens.toLocaleString("en-US")} tokens in the text; ${seconds.toFixed(1)} s)`,
      );
      if (fid) {
        console.log(`fidelity to ${opts.reference}: KL ${fid.klMean.toPrecision(4)} nats/token, top-1 agreement ${(100 * fid.top1Agree).toFixed(2)} % (${fid.positions.toLocaleString("en-US")} positions)`);
      }
    });
}
