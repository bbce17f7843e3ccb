// `compress --recipe` with recover stages: the recipe's segments run in order, each on the previous
// one's output (intermediate folders in a temporary directory, removed at the end); the last
// segment writes --out. Compression segments are calibrated as usual; a recover stage distils from
// the model the recipe started from, on its `data` file or else the --calib file.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { denseWriter } from "../compress/job.js";
import { loadModel } from "../models/load.js";
import { TextTokenizer } from "../tokenizer/tokenizer.js";
import { runRecovery } from "../train/job.js";
import { readRecipeSegments } from "../train/recipe.js";
import { loadCalibration, type CalibrationFlags } from "./calibration.js";
import { UsageError } from "./errors.js";
import { writerFromFlags, type OutputFlags } from "./output-flags.js";
import { runJobWithProgress } from "./run-job.js";

interface Flags extends CalibrationFlags, OutputFlags {
  recipe: string;
  out: string;
  overwrite?: boolean;
  json?: boolean;
}

export async function runRecipeWithRecovery(original: string, o: Flags): Promise<void> {
  const segments = readRecipeSegments(o.recipe);
  const writer = writerFromFlags(o);
  const needsCalibration = segments.some((s) => s.kind === "compress" && s.stages.some((st) => st.compressor.needs !== "none"));
  const base = loadModel(original);
  const calibration = needsCalibration ? loadCalibration(o, base, TextTokenizer.load(original)) : null;
  base.close();
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "topiary-recipe-"));
  // what the earlier segments did, recorded in the final topiary.json (their folders are temporary)
  const history: Record<string, unknown>[] = [];
  try {
    let input = original;
    for (const [k, seg] of segments.entries()) {
      const last = k === segments.length - 1;
      const out = last ? o.out : path.join(work, `segment-${k + 1}`);
      const record = last && history.length ? { source: path.resolve(original), recipe_segments: history } : undefined;
      if (seg.kind === "compress") {
        const job = { modelDir: input, outDir: out, overwrite: last ? o.overwrite : false, stages: seg.stages, calibration, writer: last ? writer : denseWriter(), record };
        await runJobWithProgress(job, seg.stages.map((s) => s.method), Boolean(o.json));
      } else {
        const s = seg.stage;
        const data = s.data ?? o.calib;
        if (!data) throw new UsageError(`${o.recipe}: stage ${k + 1} (recover) needs a "data" file or --calib`);
        const r = await runRecovery({
          studentDir: input,
          teacherDir: original,
          dataFile: data,
          evalFile: null,
          outDir: out,
          overwrite: last ? o.overwrite : false,
          mode: s.mode,
          record,
          options: {
            steps: s.steps,
            batch: s.batch,
            seqlen: s.seqlen,
            lr: s.lr,
            warmup: s.warmup,
            weightDecay: s.weight_decay,
            clip: s.clip,
            seed: s.seed,
            loss: s.loss as "kl" | "ce" | "kl+ce",
            temperature: s.temperature,
            rank: s.rank,
            alpha: s.alpha,
            evalSeqlen: 0,
            evalEvery: 0,
          },
        });
        const losses = r.record.loss_curve as number[];
        const line = { stage: k + 1, method: "recover", mode: s.mode, steps: losses.length, finalLoss: losses.at(-1) };
        console.log(o.json ? JSON.stringify(line) : `recover (${s.mode}, ${s.loss}): ${losses.length} steps, final loss ${losses.at(-1)?.toFixed(4)}`);
      }
      if (!last) history.push(segmentSummary(k + 1, seg.kind, out));
      input = out;
    }
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

/** The parts of a segment's topiary.json worth keeping in the final one. */
function segmentSummary(segment: number, kind: "compress" | "recover", dir: string): Record<string, unknown> {
  const r = JSON.parse(fs.readFileSync(path.join(dir, "topiary.json"), "utf8")) as Record<string, unknown>;
  const sparsity = r.sparsity as { zeros: number; student_zeros: number; same_zeros_every_linear: boolean } | undefined;
  return {
    segment,
    kind,
    recipe: r.recipe,
    ...(kind === "compress"
      ? { totals: r.totals }
      : {
          steps_run: (r.loss_curve as number[]).length,
          final_loss: (r.loss_curve as number[]).at(-1) ?? null,
          sparsity: sparsity && { zeros: sparsity.zeros, student_zeros: sparsity.student_zeros, same_zeros_every_linear: sparsity.same_zeros_every_linear },
        }),
  };
}
