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
  stopped: { step: number; reason: string; keptStep: number } | null;
  trainSeconds: number;
  tokensPerSecond: number;
  trainable: number;
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
  hooks: { onStep?: (s: StepInfo & { layer?: number }) => void; onEval?: (e: EvalPoint) => void } = {},
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
  let xs = await student.embed(ids);
  let xt = await teacher.embed(ids);
  const losses: number[] = [];
  const weights = new Map<string, Float32Array>();
  let trainable = 0;
  const t0 = performance.now();
  const rowSize = T * D;
  for (let i = 0; i < student.numLayers; i++) {
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
    trainable += params.reduce((a, p) => a + (p.mask ? p.mask.reduce((x, y) => x + y, 0) : p.value.length), 0);
    const opt = new AdamW({ ...ADAMW_DEFAULTS, weightDecay: o.weightDecay });
    for (let s = 1; s <= o.steps; s++) {
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
        return { losses, evals: [], weights, stopped: { step: s, reason: `block ${i}: loss is ${loss}`, keptStep: 0 }, trainSeconds: (performance.now() - t0) / 1000, tokensPerSecond: 0, trainable };
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
      clipGradients(grads, norm, o.clip);
      const lr = learningRate(s, o.lr, o.steps, o.warmup);
      opt.step(params, grads, lr);
      losses.push(loss);
      const seconds = (performance.now() - t0) / 1000;
      const done = i * o.steps + s;
      hooks.onStep?.({ step: done, steps: o.steps * student.numLayers, loss, lr, gradNorm: norm, seconds, tokensPerSecond: (done * B * T) / seconds, layer: i });
    }
    for (const l of student.linears(i)) weights.set(`${l.name}.weight`, layer.get(`${l.suffix}.weight`)!);
    xs = await runAll(student, i, xs, windows, T, B, layer);
    xt = yt;
  }
  const trainSeconds = (performance.now() - t0) / 1000;
  const evals: EvalPoint[] = [];
  if (o.evalIds) {
    const r = await perplexity(studentWith(student, weights), o.evalIds, { seqlen: o.evalSeqlen, limitWindows: o.evalLimitWindows });
    evals.push({ step: o.steps * student.numLayers, perplexity: r.perplexity });
    hooks.onEval?.(evals[0]!);
  }
  return { losses, evals, weights, stopped: null, trainSeconds, tokensPerSecond: (o.steps * student.numLayers * B * T) / trainSeconds, trainable };
}
