// Layer-wise distillation inside the sequential pipeline: one block at a time, the student's block
// i is trained to reproduce the teacher's block i on calibration activations, then the trained
// block's outputs become the next block's inputs (as compress/pipeline.ts hands compressed
// outputs on). Loss: normalized MSE ‖f_S(X_S) − f_T(X_T)‖² / ‖f_T(X_T)‖² over the batch, where X_S
// are the student's own inputs and X_T the teacher's. Memory: one block + the activations.
import { Rng } from "../data/rng.js";
import { FormatError } from "../formats/errors.js";
import { perplexity } from "../eval/perplexity.js";
import type { CausalLM } from "../models/model.js";
import { AdamW, ADAMW_DEFAULTS, clipGradients, gradNorm, learningRate, type Param } from "./adamw.js";
import { blockBackward } from "./model-backward.js";
import { sampleWindows, studentWith, type EvalPoint, type RecoverOptions, type StepInfo } from "./recover.js";

export interface LayerwiseResult {
  /** every block's losses in order (block 0's steps first) */
  losses: number[];
  evals: EvalPoint[];
  weights: Map<string, Float32Array>;
  /** set when training stopped early; `kept` says which weights were kept, in words */
  stopped: { step: number; reason: string; keptStep: number; kept: string } | null;
  trainSeconds: number;
  tokensPerSecond: number;
  trainable: number;
}

/** The state between two blocks: resuming from it gives the uninterrupted run's weights. */
export interface LayerwiseCheckpoint {
  /** blocks done */
  block: number;
  rng: number[];
  losses: number[];
  trainable: number;
  /** the trained linears of blocks < block, by full name */
  weights: Map<string, Float32Array>;
  /** the student's and the teacher's activations entering `block` */
  xs: Float32Array;
  xt: Float32Array;
}

export interface LayerwiseCheckpointing {
  /** > 0: save after every block */
  every: number;
  save(c: LayerwiseCheckpoint): void;
  /** the checkpoint to resume from, given the activations' length; null: start afresh */
  restore: ((activations: number) => LayerwiseCheckpoint) | null;
}

/** Calibration windows by default (the pruning papers' 128); each block trains on batches drawn from them. */
const CALIBRATION_WINDOWS = 128;

async function runAll(model: CausalLM, layer: number, x: Float32Array, windows: number, T: number, B: number, weights?: Map<string, Float32Array>): Promise<Float32Array> {
  const D = model.config.hiddenSize;
  const out = new Float32Array(x.length);
  for (let w = 0; w < windows; w += B) {
    const n = Math.min(B, windows - w);
    const r = await model.runLayer(layer, x.subarray(w * T * D, (w + n) * T * D), n, T, weights ? { weights } : {});
    out.set(r.hidden, w * T * D);
  }
  return out;
}

/** Which weights a stop keeps, in words: blocks before `block` trained, `block` after `updates` updates. */
function keptWords(block: number, updates: number): string {
  if (block === 0 && updates <= 0) return "the student's own weights";
  const before = block === 0 ? "" : block === 1 ? "block 0 trained, " : `blocks 0–${block - 1} trained, `;
  const self = updates <= 0 ? `block ${block} as the student's` : `block ${block} after ${updates} update${updates === 1 ? "" : "s"} (its last finite loss)`;
  return `the weights with ${before}${self}, the rest the student's own,`;
}

function gather(x: Float32Array, picks: number[], rowSize: number): Float32Array {
  const out = new Float32Array(picks.length * rowSize);
  picks.forEach((p, k) => out.set(x.subarray(p * rowSize, (p + 1) * rowSize), k * rowSize));
  return out;
}

export async function layerwiseDistill(
  student: CausalLM,
  teacher: CausalLM,
  trainIds: Int32Array,
  o: Omit<RecoverOptions, "mode"> & { calibrationWindows?: number },
  hooks: { onStep?: (s: StepInfo & { layer?: number }) => void; onEval?: (e: EvalPoint) => void; checkpoint?: LayerwiseCheckpointing } = {},
): Promise<LayerwiseResult> {
  if (teacher.numLayers !== student.numLayers) {
    throw new FormatError(teacher.dir, `has ${teacher.numLayers} blocks, the student ${student.numLayers}; layer-wise distillation pairs block i with block i`);
  }
  const c = student.config;
  const D = c.hiddenSize;
  const T = o.seqlen;
  const B = o.batch;
  const rng = new Rng(o.seed);
  const windows = Math.max(B, o.calibrationWindows ?? CALIBRATION_WINDOWS);
  const ids = sampleWindows(trainIds, windows, T, rng);
  const losses: number[] = [];
  const weights = new Map<string, Float32Array>();
  let trainable = 0;
  let xs: Float32Array;
  let xt: Float32Array;
  let first = 0;
  const ck = hooks.checkpoint;
  if (ck?.restore) {
    const r = ck.restore(windows * T * D);
    rng.state = r.rng;
    losses.push(...r.losses);
    for (const [n, w] of r.weights) weights.set(n, w);
    trainable = r.trainable;
    ({ xs, xt } = r);
    first = r.block;
  } else {
    // `windows` windows of T tokens: learned positions (GPT-2, OPT) restart at 0 in every window
    xs = await student.embed(ids, windows, T);
    xt = await teacher.embed(ids, windows, T);
  }
  const t0 = performance.now();
  const rowSize = T * D;
  let stopped: LayerwiseResult["stopped"] = null;
  let trained = 0;
  blocks: for (let i = first; i < student.numLayers; i++) {
    const yt = await runAll(teacher, i, xt, windows, T, B);
    const layer = new Map(student.layerWeights(i));
    const params: Param[] = student.linears(i).map((l) => {
      const value = layer.get(`${l.suffix}.weight`)!.slice();
      layer.set(`${l.suffix}.weight`, value);
      let zeros = 0;
      for (let k = 0; k < value.length; k++) if (value[k] === 0) zeros++;
      const mask = zeros >= 0.01 * value.length ? Uint8Array.from(value, (v) => (v === 0 ? 0 : 1)) : null;
      return { name: `${l.suffix}.weight`, value, mask };
    });
    const keep = () => {
      for (const l of student.linears(i)) weights.set(`${l.name}.weight`, layer.get(`${l.suffix}.weight`)!);
    };
    trainable += params.reduce((a, p) => a + (p.mask ? p.mask.reduce((x, y) => x + y, 0) : p.value.length), 0);
    const opt = new AdamW({ ...ADAMW_DEFAULTS, weightDecay: o.weightDecay });
    // the block's weights before the last update: what is kept when the next loss is not finite
    const previous = params.map((p) => p.value.slice());
    const rollBack = () => params.forEach((p, k) => p.value.set(previous[k]!));
    for (let s = 1; s <= o.steps; s++) {
      const done = i * o.steps + s;
      const picks = Array.from({ length: B }, () => rng.int(windows));
      const x = gather(xs, picks, rowSize);
      const y = gather(yt, picks, rowSize);
      const out = (await student.runLayer(i, x, B, T, { weights: layer })).hidden;
      let err = 0;
      let ref = 0;
      for (let k = 0; k < out.length; k++) {
        const d = out[k]! - y[k]!;
        err += d * d;
        ref += y[k]! * y[k]!;
      }
      const loss = err / ref;
      if (!Number.isFinite(loss)) {
        // step s ran the weights after update s−1; the last good ones are those before it (the
        // student's own at s = 1, where only the inputs can be at fault: they are checked below)
        rollBack();
        keep();
        stopped = { step: done, reason: `block ${i}: loss is ${loss}`, keptStep: done - 2, kept: keptWords(i, s - 2) };
        break blocks;
      }
      const gradOut = new Float32Array(out.length);
      for (let k = 0; k < out.length; k++) gradOut[k] = (2 * (out[k]! - y[k]!)) / ref;
      const r = await blockBackward(c, i, B, T, x, layer, gradOut);
      const grads = params.map((p) => {
        const g = r.grads.get(p.name)!;
        if (p.mask) for (let k = 0; k < g.length; k++) if (p.mask[k] === 0) g[k] = 0;
        return g;
      });
      const norm = gradNorm(grads);
      if (!Number.isFinite(norm)) {
        // the weights that gave this finite loss are kept
        keep();
        stopped = { step: done, reason: `block ${i}: gradient norm is ${norm}`, keptStep: done - 1, kept: keptWords(i, s - 1) };
        break blocks;
      }
      losses.push(loss);
      trained++;
      clipGradients(grads, norm, o.clip);
      params.forEach((p, k) => previous[k]!.set(p.value));
      const lr = learningRate(s, o.lr, o.steps, o.warmup);
      opt.step(params, grads, lr);
      const seconds = (performance.now() - t0) / 1000;
      hooks.onStep?.({ step: done, steps: o.steps * student.numLayers, loss, lr, gradNorm: norm, seconds, tokensPerSecond: (trained * B * T) / seconds, layer: i });
    }
    xs = await runAll(student, i, xs, windows, T, B, layer);
    if (!xs.every(Number.isFinite)) {
      // no loss ever saw the block's last update: it is the one at fault
      rollBack();
      keep();
      const done = (i + 1) * o.steps;
      stopped = { step: done, reason: `block ${i}: its outputs are not finite after its last update`, keptStep: done - 1, kept: keptWords(i, o.steps - 1) };
      break;
    }
    keep();
    xt = yt;
    if (ck && ck.every > 0 && i + 1 < student.numLayers) ck.save({ block: i + 1, rng: rng.state, losses: [...losses], trainable, weights, xs, xt });
  }
  const trainSeconds = (performance.now() - t0) / 1000;
  const evals: EvalPoint[] = [];
  if (o.evalIds && !stopped) {
    const r = await perplexity(studentWith(student, weights), o.evalIds, { seqlen: o.evalSeqlen, limitWindows: o.evalLimitWindows });
    evals.push({ step: o.steps * student.numLayers, perplexity: r.perplexity });
    hooks.onEval?.(evals[0]!);
  }
  return { losses, evals, weights, stopped, trainSeconds, tokensPerSecond: (trained * B * T) / trainSeconds, trainable };
}
