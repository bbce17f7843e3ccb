// Calibration batches: windows of token ids the pipeline runs through the model.
//   first:  the first n consecutive non-overlapping windows of the whole tokenized text
//           (BOS at the start only) — the setup of ../shared/reference (calib_ids.json).
//   random: n windows at seeded random offsets of the token stream, as the papers draw C4
//           samples (GPTQ get_c4: a random document, a random seqlen span inside it). Here the
//           stream is the whole text (a .jsonl file's texts joined by blank lines).
import { Rng } from "./rng.js";

export type CalibrationSampling = "first" | "random";

export interface CalibrationOptions {
  nsamples: number;
  seqlen: number;
  sampling: CalibrationSampling;
  seed: number;
}

export interface CalibrationBatch {
  /** nsamples × seqlen ids, row-major */
  ids: Int32Array;
  nsamples: number;
  seqlen: number;
  /** set when the text held fewer windows than asked for */
  warning?: string;
}

export function calibrationWindows(tokens: Int32Array, opts: CalibrationOptions, source = "calibration text"): CalibrationBatch {
  const { seqlen } = opts;
  if (tokens.length < seqlen) {
    throw new Error(`${source}: ${tokens.length} tokens is shorter than one calibration window of ${seqlen} (--calib-seqlen)`);
  }
  let n = opts.nsamples;
  let warning: string | undefined;
  if (opts.sampling === "first") {
    const available = Math.floor(tokens.length / seqlen);
    if (available < n) {
      warning = `${source}: only ${available} windows of ${seqlen} tokens, fewer than --nsamples ${n}; using ${available}`;
      n = available;
    }
    return { ids: tokens.slice(0, n * seqlen), nsamples: n, seqlen, warning };
  }
  const rng = new Rng(opts.seed);
  const ids = new Int32Array(n * seqlen);
  for (let s = 0; s < n; s++) {
    const start = rng.int(tokens.length - seqlen + 1);
    ids.set(tokens.subarray(start, start + seqlen), s * seqlen);
  }
  return { ids, nsamples: n, seqlen };
}
