// Calibration flags shared by prune, quantize and compress.
import type { Command } from "commander";
import { calibrationWindows, type CalibrationSampling } from "../data/calibration.js";
import { loadEvalText } from "../data/text.js";
import { sha256File, type CompressionJob } from "../compress/job.js";
import type { CausalLM } from "../models/model.js";
import type { TextTokenizer } from "../tokenizer/tokenizer.js";
import { UsageError } from "./errors.js";
import { int } from "./options.js";

export interface CalibrationFlags {
  calib?: string;
  nsamples: number;
  calibSeqlen?: number;
  calibSampling: string;
  seed: number;
}

export function addCalibrationOptions(cmd: Command): Command {
  return cmd
    .option("--calib <file>", "calibration text (UTF-8; .jsonl: its \"text\" fields)")
    .option("--nsamples <n>", "calibration windows", int("--nsamples", 1), 128)
    .option("--calib-seqlen <n>", "tokens per calibration window (default: the model's length, capped at 2048)", int("--calib-seqlen", 2))
    .option("--calib-sampling <how>", "random (seeded windows anywhere) | first (the first n consecutive windows)", "random")
    .option("--seed <s>", "seed for random calibration windows", int("--seed", 0), 0);
}

export function loadCalibration(flags: CalibrationFlags, model: CausalLM, tok: TextTokenizer): CompressionJob["calibration"] {
  if (!flags.calib) return null;
  if (flags.calibSampling !== "random" && flags.calibSampling !== "first") {
    throw new UsageError(`--calib-sampling must be random or first, got "${flags.calibSampling}"`);
  }
  const seqlen = flags.calibSeqlen ?? Math.min(model.config.maxPositions, 2048);
  const tokens = tok.encode(loadEvalText(flags.calib));
  const batch = calibrationWindows(
    tokens,
    { nsamples: flags.nsamples, seqlen, sampling: flags.calibSampling as CalibrationSampling, seed: flags.seed },
    flags.calib,
  );
  return {
    batch,
    info: {
      file: flags.calib,
      sha256: sha256File(flags.calib),
      tokens: tokens.length,
      nsamples: batch.nsamples,
      seqlen,
      sampling: flags.calibSampling,
      seed: flags.seed,
    },
  };
}
