import type { Command } from "commander";
import { LOSS_KINDS, type LossKind } from "../../train/head-loss.js";
import { runRecovery, type RecoverJobMode } from "../../train/job.js";
import { UsageError } from "../errors.js";
import { int, num } from "../options.js";
import { progress } from "../progress.js";

interface RecoverFlags {
  teacher?: string;
  data: string;
  out: string;
  mode: string;
  steps: number;
  batch: number;
  seqlen: number;
  lr: number;
  warmup: number;
  weightDecay: number;
  clip: number;
  seed: number;
  loss: string;
  temperature: number;
  rank: number;
  alpha: number;
  eval?: string;
  evalEvery: number;
  evalSeqlen?: number;
  overwrite?: boolean;
  restart?: boolean;
  checkpointEvery: number;
  json?: boolean;
}

const MODES: readonly RecoverJobMode[] = ["masked", "lora", "layerwise"];

export function registerRecover(program: Command): void {
  program
    .command("recover")
    .description("recover a compressed model by distillation from its original (masked fine-tuning that keeps sparsity, LoRA, or layer-wise)")
    .argument("<student>", "the compressed model folder")
    .option("--teacher <model>", "the original model (needed by --loss kl, kl+ce and --mode layerwise)")
    .requiredOption("--data <file>", "training text (UTF-8; .jsonl: its \"text\" fields)")
    .requiredOption("--out <dir>", "output model folder")
    .option("--mode <m>", "masked (kept weights of the decoder linears train, pruned ones stay 0) | lora | layerwise", "masked")
    .option("--steps <n>", "optimizer steps (layerwise: per block)", int("--steps", 1), 300)
    .option("--batch <n>", "windows per step", int("--batch", 1), 8)
    .option("--seqlen <n>", "tokens per window", int("--seqlen", 2), 256)
    .option("--lr <f>", "peak learning rate (AdamW)", num("--lr", 0), 1e-3)
    .option("--warmup <n>", "linear warm-up steps, then cosine decay to 0", int("--warmup", 0), 10)
    .option("--weight-decay <f>", "AdamW decoupled weight decay", num("--weight-decay", 0), 0)
    .option("--clip <f>", "clip the global gradient norm to this (0: off)", num("--clip", 0), 0)
    .option("--seed <s>", "seed of the window sampling (and LoRA init)", int("--seed", 0), 0)
    .option("--loss <l>", "kl (KL(teacher ‖ student)) | ce (cross-entropy on the text) | kl+ce", "kl")
    .option("--temperature <t>", "softmax temperature of the KL term (the loss is scaled by t²)", num("--temperature", 1e-6), 1)
    .option("--rank <r>", "LoRA rank", int("--rank", 1), 8)
    .option("--alpha <a>", "LoRA alpha (the update is scaled by alpha / rank)", num("--alpha", 0), 16)
    .option("--eval <file>", "evaluation text: perplexity at the end (and every --eval-every steps)")
    .option("--eval-every <n>", "evaluate every n steps (0: at the end only)", int("--eval-every", 0), 0)
    .option("--eval-seqlen <n>", "evaluation window (default: the model's length, capped at 2048)", int("--eval-seqlen", 2))
    .option("--checkpoint-every <n>", "save the training state every n steps (layerwise: after every block), so a rerun of an interrupted run resumes (0: never)", int("--checkpoint-every", 0), 50)
    .option("--restart", "discard the state an interrupted run of this --out saved, instead of resuming it")
    .option("--overwrite", "replace --out if it exists")
    .option("--json", "print a JSON summary")
    .action(async (student: string, opts: RecoverFlags) => {
      if (!(MODES as readonly string[]).includes(opts.mode)) throw new UsageError(`--mode must be one of ${MODES.join(", ")}, got "${opts.mode}"`);
      if (!(LOSS_KINDS as readonly string[]).includes(opts.loss)) throw new UsageError(`--loss must be one of ${LOSS_KINDS.join(", ")}, got "${opts.loss}"`);
      const bar = progress(opts.steps, "recover {bar} step {value}/{total} | loss {loss} | {rate} tok/s | ETA {eta_formatted} | eval ppl {ppl}");
      let ppl = "–";
      let loss = "";
      let rate = "";
      const summary = await runRecovery({
        studentDir: student,
        teacherDir: opts.teacher ?? null,
        dataFile: opts.data,
        evalFile: opts.eval ?? null,
        outDir: opts.out,
        overwrite: opts.overwrite,
        restart: opts.restart,
        checkpointEvery: opts.checkpointEvery,
        mode: opts.mode as RecoverJobMode,
        options: {
          steps: opts.steps,
          batch: opts.batch,
          seqlen: opts.seqlen,
          lr: opts.lr,
          warmup: opts.warmup,
          weightDecay: opts.weightDecay,
          clip: opts.clip,
          seed: opts.seed,
          loss: opts.loss as LossKind,
          temperature: opts.temperature,
          rank: opts.rank,
          alpha: opts.alpha,
          evalSeqlen: opts.evalSeqlen ?? 0,
          evalEvery: opts.evalEvery,
        },
        onStep: (s) => {
          loss = s.loss.toFixed(4);
          rate = s.tokensPerSecond.toFixed(0);
          (bar as { total?: number }).total = s.steps;
          bar.update(s.step, { loss, rate, ppl });
        },
        onResume: (where) => process.stderr.write(`topiary: resumed after ${where} from the interrupted run's checkpoint (--restart discards it)\n`),
        onEval: (e) => {
          ppl = e.perplexity.toFixed(3);
          bar.update(e.step, { loss, rate, ppl });
        },
      }).finally(() => bar.stop());
      const r = summary.record as {
        eval: { perplexity: number | null; perplexity_before_remask: number | null } | null;
        train_seconds: number;
        tokens_per_second: number;
        loss_curve: number[];
        sparsity: { zeros: number; student_zeros: number; same_zeros_every_linear: boolean };
      };
      if (opts.json) {
        console.log(
          JSON.stringify({
            out: summary.outDir,
            perplexity: r.eval?.perplexity ?? null,
            perplexityBeforeRemask: r.eval?.perplexity_before_remask ?? null,
            finalLoss: r.loss_curve.at(-1),
            trainSeconds: r.train_seconds,
            tokensPerSecond: r.tokens_per_second,
            zeros: r.sparsity.zeros,
            sameZeros: r.sparsity.same_zeros_every_linear,
          }),
        );
        return;
      }
      const ev = r.eval?.perplexity != null ? `, eval perplexity ${r.eval.perplexity.toFixed(3)}` : "";
      const before = r.eval?.perplexity_before_remask != null ? ` (${r.eval.perplexity_before_remask.toFixed(3)} before re-masking)` : "";
      const zeros = r.sparsity.same_zeros_every_linear ? "the student's zeros kept exactly" : `${r.sparsity.zeros} zeros (the student had ${r.sparsity.student_zeros})`;
      console.log(
        `recover (${opts.mode}, ${opts.loss}): ${r.loss_curve.length} steps, final loss ${r.loss_curve.at(-1)?.toFixed(4)}${ev}${before}; ${zeros}; ` +
          `${r.train_seconds.toFixed(1)} s, ${r.tokens_per_second.toFixed(0)} tok/s; wrote ${summary.outDir}`,
      );
    });
}
