// Resumable `topiary recover` (compress/resume.ts is the general mechanism): every N steps the
// whole training state — the trained values, AdamW's moments and step count, the values before the
// last update (what a NaN rolls back to), the sampler's RNG state, the losses and eval points so
// far — goes into the work folder's state; a layer-wise run saves after every block (the trained
// blocks, the student's and teacher's activations entering the next one, the RNG, the losses). The float arrays go to one file per checkpoint, named by
// its step, written before progress.json names it (so a kill between the two leaves the previous,
// complete checkpoint); the older file is removed after the commit. A rerun of the same command
// resumes after the checkpoint's step and gives the uninterrupted run's weights byte for byte: the
// steps are deterministic functions of this state.
import fs from "node:fs";
import { killPoint } from "../formats/kill-point.js";
import { FormatError } from "../formats/errors.js";
import { writeAll, writeFileAtomic } from "../formats/atomic.js";
import type { ResumableOutput } from "../compress/resume.js";
import type { LayerwiseCheckpoint, LayerwiseCheckpointing } from "./layerwise.js";
import type { EvalPoint, RecoverCheckpoint, RecoverCheckpointing } from "./recover.js";

export interface RecoverProgress {
  /** masked / LoRA: steps done; layer-wise: blocks done */
  step: number;
  /** the state file holding the float arrays */
  file: string;
  rng: number[];
  adamSteps: number;
  losses: number[];
  evals: EvalPoint[];
  /** layer-wise: the trained linears in the file (after the two activation arrays), and the trainable count */
  linears?: { name: string; length: number }[];
  trainable?: number;
}

/**
 * Float arrays written back to back (one write each: no concatenated copy of a large model); an
 * array given as a function is read only when its turn comes (the rollback values, from disk).
 */
function writeArrays(file: string, arrays: readonly (Float32Array | (() => Float32Array))[]): void {
  writeFileAtomic(file, (fd) => {
    for (const x of arrays) {
      const a = typeof x === "function" ? x() : x;
      writeAll(fd, new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
    }
  });
}

/** The first `count` (default: all) of the arrays of these lengths stored back to back in `file`. */
function readArrays(file: string, lengths: readonly number[], count = lengths.length): Float32Array[] {
  const total = lengths.reduce((a, n) => a + 4 * n, 0);
  const size = fs.statSync(file).size;
  if (size !== total) throw new FormatError(file, `is ${size} bytes, the resumed run expects ${total}`);
  let pos = 0;
  return lengths.slice(0, count).map((n) => {
    const a = readAt(file, pos, n);
    pos += 4 * n;
    return a;
  });
}

/** `n` float32 values at byte `pos` of `file`. */
function readAt(file: string, pos: number, n: number): Float32Array {
  const fd = fs.openSync(file, "r");
  try {
    const a = new Float32Array(n);
    const bytes = new Uint8Array(a.buffer);
    for (let off = 0; off < bytes.length; ) {
      const k = fs.readSync(fd, bytes, off, Math.min(bytes.length - off, 1 << 30), pos + off);
      if (k === 0) throw new FormatError(file, "ended early");
      off += k;
    }
    return a;
  } finally {
    fs.closeSync(fd);
  }
}

/** Writes a checkpoint's file, commits the progress that names it, removes the previous file. */
function committer(out: ResumableOutput<RecoverProgress>) {
  let current = out.restored?.file ?? null;
  return (step: number, arrays: readonly (Float32Array | (() => Float32Array))[], progress: Omit<RecoverProgress, "step" | "file">) => {
    const file = `recover-step-${step}.f32`;
    writeArrays(out.statePath(file), arrays);
    out.commit({ ...progress, step, file });
    killPoint("recover-checkpoint");
    if (current && current !== file) fs.rmSync(out.statePath(current), { force: true });
    current = file;
  };
}

/** Checkpointing of a layer-wise run into `out`'s state after every block (`every` > 0), or never. */
export function layerwiseCheckpointing(out: ResumableOutput<RecoverProgress>, every: number): LayerwiseCheckpointing {
  const commit = committer(out);
  const saved = out.restored;
  return {
    every,
    save(c: LayerwiseCheckpoint) {
      const linears = [...c.weights].map(([name, w]) => ({ name, length: w.length }));
      commit(c.block, [c.xs, c.xt, ...c.weights.values()], { rng: c.rng, adamSteps: 0, losses: c.losses, evals: [], linears, trainable: c.trainable });
    },
    restore: saved
      ? (activations) => {
          const linears = saved.linears ?? [];
          const a = readArrays(out.statePath(saved.file), [activations, activations, ...linears.map((l) => l.length)]);
          return {
            block: saved.step,
            rng: saved.rng,
            losses: saved.losses,
            trainable: saved.trainable ?? 0,
            xs: a[0]!,
            xt: a[1]!,
            weights: new Map(linears.map((l, k) => [l.name, a[k + 2]!])),
          };
        }
      : null,
  };
}

/** Checkpointing of a recover run into `out`'s state, every `every` steps (0: never). */
export function recoverCheckpointing(out: ResumableOutput<RecoverProgress>, every: number): RecoverCheckpointing {
  const commit = committer(out);
  const saved = out.restored;
  return {
    every,
    save(c: RecoverCheckpoint) {
      commit(c.step, [...c.values, ...c.adam.m, ...c.adam.v, ...c.values.map((_, k) => () => c.previous(k))], { rng: c.rng, adamSteps: c.adam.t, losses: c.losses, evals: c.evals });
    },
    restore: saved
      ? (lengths) => {
          const n = lengths.length;
          const file = out.statePath(saved.file);
          // the rollback values (the file's last quarter) are read one param at a time, when asked
          const a = readArrays(file, [...lengths, ...lengths, ...lengths, ...lengths], 3 * n);
          const offsets: number[] = [];
          let pos = 3 * lengths.reduce((x, y) => x + 4 * y, 0);
          for (const len of lengths) {
            offsets.push(pos);
            pos += 4 * len;
          }
          return {
            step: saved.step,
            rng: saved.rng,
            losses: saved.losses,
            evals: saved.evals,
            values: a.slice(0, n),
            adam: { t: saved.adamSteps, m: a.slice(n, 2 * n), v: a.slice(2 * n, 3 * n) },
            previous: (k) => readAt(file, offsets[k]!, lengths[k]!),
          };
        }
      : null,
  };
}
