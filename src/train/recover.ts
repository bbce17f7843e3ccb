// Recovery by distillation: a compressed student trained against its original (the teacher).
// Each step: B windows of T tokens drawn at seeded random offsets of the training text →
// the teacher's logits (its ordinary forward) → the student's loss and gradients
// (train/model-backward.ts) → AdamW with warm-up + cosine schedule.
//   masked: every kept weight of the decoder linears trains; pruned weights stay exactly zero
//           (gradients and weights multiplied by the fixed mask), so N:M stays N:M.
//   lora:   adapters on the family's decoder linears (FamilyAdapter.linears) train, merged at the end; a sparse student's
//           merged weights are re-masked (perplexity reported before and after).
import { Rng } from "../data/rng.js";
import { OverlayWeights } from "../formats/weights.js";
import { perplexity } from "../eval/perplexity.js";
import { CausalLM, type LayerWeights } from "../models/model.js";
import { AdamW, ADAMW_DEFAULTS, clipGradients, gradNorm, learningRate, type AdamWStep, type Param } from "./adamw.js";
import type { LossKind } from "./head-loss.js";
import { usesTeacher } from "./head-loss.js";
import { initLora, loraGradients, mergedWeight, type LoraAdapter } from "./lora.js";
import { headWeights, modelGradients } from "./model-backward.js";
import { RollbackFile } from "./rollback.js";

export type RecoverMode = "masked" | "lora";

export interface RecoverOptions {
  mode: RecoverMode;
  steps: number;
  batch: number;
  seqlen: number;
  lr: number;
  warmup: number;
  weightDecay: number;
  /** global gradient-norm bound; 0 = no clipping */
  clip: number;
  seed: number;
  loss: LossKind;
  temperature: number;
  /** LoRA rank and alpha */
  rank: number;
  alpha: number;
  /** evaluation text (token ids) and window; evaluated every `evalEvery` steps (0: at the end only) */
  evalIds: Int32Array | null;
  evalSeqlen: number;
  evalEvery: number;
  /** cap on evaluation windows (tests) */
  evalLimitWindows?: number;
}

export interface StepInfo {
  step: number;
  steps: number;
  loss: number;
  lr: number;
  gradNorm: number;
  seconds: number;
  tokensPerSecond: number;
}

export interface EvalPoint {
  step: number;
  perplexity: number;
}

export interface RecoverResult {
  /** loss per step (index 0 = step 1) */
  losses: number[];
  evals: EvalPoint[];
  /** LoRA on a sparse student: perplexity of the merged weights before re-masking */
  beforeRemask: EvalPoint | null;
  /** the final weight of every trained linear, by full name ("model.layers.0.mlp.up_proj.weight") */
  weights: Map<string, Float32Array>;
  /** set when training stopped early (a non-finite loss) */
  stopped: { step: number; reason: string; keptStep: number } | null;
  trainSeconds: number;
  tokensPerSecond: number;
  /** trainable parameters */
  trainable: number;
}

/** The whole state of a run after `step` steps: resuming from it gives the uninterrupted run's weights. */
export interface RecoverCheckpoint {
  step: number;
  rng: number[];
  losses: number[];
  evals: EvalPoint[];
  /** per param (the mode's order): values, AdamW moments, and the values before the last update (NaN rollback) */
  values: Float32Array[];
  adam: { t: number; m: Float32Array[]; v: Float32Array[] };
  /** param k's values before the last update, read one param at a time (they live on disk: train/rollback.ts) */
  previous: (k: number) => Float32Array;
}

export interface RecoverCheckpointing {
  /** save every this many steps (never after the last) */
  every: number;
  save(c: RecoverCheckpoint): void;
  /** the checkpoint to resume from, given each param's length; null: start afresh */
  restore: ((lengths: number[]) => RecoverCheckpoint) | null;
}

/** Sparse linears: masked training keeps their zeros; a linear with fewer zeros than this trains whole. */
const SPARSE_FRACTION = 0.01;

function zeroMask(w: Float32Array): Uint8Array | null {
  let zeros = 0;
  for (let i = 0; i < w.length; i++) if (w[i] === 0) zeros++;
  if (zeros < SPARSE_FRACTION * w.length) return null;
  const m = new Uint8Array(w.length);
  for (let i = 0; i < w.length; i++) m[i] = w[i] === 0 ? 0 : 1;
  return m;
}

/** What a mode trains and how its weights reach the forward. */
interface Trainable {
  params: Param[];
  /** before each step (LoRA: merge the adapters into the weights the step runs) */
  prepare(): Promise<void>;
  weightsOf(layer: number): LayerWeights;
  /** layer `i`'s weight gradients as its params' gradients: [index in params, gradient] */
  collect(layer: number, grads: Map<string, Float32Array>): Promise<[number, Float32Array][]>;
  /** final linear weights by full name */
  final(): Promise<Map<string, Float32Array>>;
}

function maskedTrainable(student: CausalLM): Trainable {
  const layers: LayerWeights[] = [];
  const params: Param[] = [];
  const index = new Map<string, number>();
  for (let i = 0; i < student.numLayers; i++) {
    const base = student.layerWeights(i);
    const w: LayerWeights = new Map(base);
    for (const l of student.linears(i)) {
      const value = base.get(`${l.suffix}.weight`)!.slice();
      w.set(`${l.suffix}.weight`, value);
      index.set(`${i}:${l.suffix}.weight`, params.length);
      params.push({ name: `${l.name}.weight`, value, mask: zeroMask(value) });
    }
    layers.push(w);
  }
  return {
    params,
    prepare: async () => {},
    weightsOf: (i) => layers[i]!,
    collect: async (i, g) => {
      const out: [number, Float32Array][] = [];
      for (const [suffix, grad] of g) {
        const k = index.get(`${i}:${suffix}`);
        if (k === undefined) continue;
        const mask = params[k]!.mask;
        if (mask) for (let j = 0; j < grad.length; j++) if (mask[j] === 0) grad[j] = 0;
        out.push([k, grad]);
      }
      return out;
    },
    final: async () => new Map(params.map((p) => [p.name, p.value])),
  };
}

function loraTrainable(student: CausalLM, rank: number, alpha: number, seed: number): Trainable & { masks: Map<string, Uint8Array | null> } {
  const rng = new Rng(seed ^ 0x10a);
  const adapters: { layer: number; suffix: string; name: string; W: Float32Array; a: LoraAdapter }[] = [];
  const layers: LayerWeights[] = [];
  const masks = new Map<string, Uint8Array | null>();
  for (let i = 0; i < student.numLayers; i++) {
    const base = student.layerWeights(i);
    layers.push(new Map(base));
    for (const l of student.linears(i)) {
      const W = base.get(`${l.suffix}.weight`)!;
      adapters.push({ layer: i, suffix: l.suffix, name: l.name, W, a: initLora(l.outFeatures, l.inFeatures, rank, alpha, rng) });
      masks.set(`${l.name}.weight`, zeroMask(W));
    }
  }
  const params: Param[] = adapters.flatMap((d) => [
    { name: `${d.name}.lora_A`, value: d.a.A, mask: null },
    { name: `${d.name}.lora_B`, value: d.a.B, mask: null },
  ]);
  const merge = async () => {
    for (const d of adapters) layers[d.layer]!.set(`${d.suffix}.weight`, await mergedWeight(d.W, d.a));
  };
  return {
    params,
    masks,
    prepare: merge,
    weightsOf: (i) => layers[i]!,
    collect: async (i, g) => {
      const out: [number, Float32Array][] = [];
      for (const [k, d] of adapters.entries()) {
        if (d.layer !== i) continue;
        const { dA, dB } = await loraGradients(g.get(`${d.suffix}.weight`)!, d.a);
        out.push([2 * k, dA], [2 * k + 1, dB]);
      }
      return out;
    },
    final: async () => {
      await merge();
      return new Map(adapters.map((d) => [`${d.name}.weight`, layers[d.layer]!.get(`${d.suffix}.weight`)!]));
    },
  };
}

/** The student with some linear weights replaced (for evaluation and writing). */
export function studentWith(student: CausalLM, weights: Map<string, Float32Array>): CausalLM {
  const overlay = new OverlayWeights(student.weights);
  for (const [name, w] of weights) overlay.set(name, w);
  return new CausalLM(student.config, overlay, student.dir);
}

/** Windows at seeded uniform offsets of the training text, as-is (no BOS inserted). */
export function sampleWindows(ids: Int32Array, B: number, T: number, rng: Rng): Int32Array {
  const out = new Int32Array(B * T);
  for (let b = 0; b < B; b++) {
    const start = rng.int(ids.length - T + 1);
    out.set(ids.subarray(start, start + T), b * T);
  }
  return out;
}

export async function recover(
  student: CausalLM,
  teacher: CausalLM | null,
  trainIds: Int32Array,
  o: RecoverOptions,
  hooks: {
    onStep?: (s: StepInfo) => void;
    onEval?: (e: EvalPoint) => void;
    checkpoint?: RecoverCheckpointing;
    /** where the values before the last update are kept (default: a temporary folder; removed at the end) */
    rollbackFile?: string;
  } = {},
): Promise<RecoverResult> {
  if (usesTeacher(o.loss) && !teacher) throw new Error(`loss ${o.loss} needs a teacher`);
  if (trainIds.length < o.seqlen) throw new Error(`the training text has ${trainIds.length} tokens, fewer than one window of ${o.seqlen}`);
  const tr = o.mode === "lora" ? loraTrainable(student, o.rank, o.alpha, o.seed) : maskedTrainable(student);
  const opt = new AdamW({ ...ADAMW_DEFAULTS, weightDecay: o.weightDecay });
  const head = headWeights(student);
  const rng = new Rng(o.seed);
  const losses: number[] = [];
  const evals: EvalPoint[] = [];
  const evaluate = async (step: number, weights: Map<string, Float32Array>) => {
    if (!o.evalIds) return;
    const r = await perplexity(studentWith(student, weights), o.evalIds, { seqlen: o.evalSeqlen, limitWindows: o.evalLimitWindows });
    const e = { step, perplexity: r.perplexity };
    evals.push(e);
    hooks.onEval?.(e);
  };
  let stopped: RecoverResult["stopped"] = null;
  const tokens = o.batch * o.seqlen;
  const t0 = performance.now();
  let evalSeconds = 0;
  let first = 1;
  const ck = hooks.checkpoint;
  const K = tr.params.length;
  // the values before the last update, on disk: what is kept when a step's loss is not finite
  const rollback = RollbackFile.create(tr.params.map((p) => p.value.length), hooks.rollbackFile);
  try {
    if (ck?.restore) {
      const c = ck.restore(tr.params.map((p) => p.value.length));
      tr.params.forEach((p, k) => p.value.set(c.values[k]!));
      for (let k = 0; k < K; k++) rollback.save(k, c.previous(k));
      opt.restore(tr.params, c.adam);
      rng.state = c.rng;
      losses.push(...c.losses);
      evals.push(...c.evals);
      first = c.step + 1;
    } else tr.params.forEach((p, k) => rollback.save(k, p.value));
    // Without clipping (clip 0: the default and the reference recipe) AdamW updates a layer's params
    // as soon as the backward has produced their gradients, and the gradients are dropped: one
    // layer's gradients in memory instead of the whole model's. AdamW is element-wise, and the
    // backward never reads a layer's weights again after its gradients, so the weights are the
    // ones updating after the whole backward gives, bit for bit. Clipping needs the global norm
    // before any update: then every gradient is kept until the backward ends.
    const fused = !(o.clip > 0);
    for (let s = first; s <= o.steps; s++) {
      const ids = sampleWindows(trainIds, o.batch, o.seqlen, rng);
      await tr.prepare();
      const teacherLogits = usesTeacher(o.loss) ? await teacher!.forward(ids, o.batch, o.seqlen) : undefined;
      const lr = learningRate(s, o.lr, o.steps, o.warmup);
      const squares = new Float64Array(K);
      const kept: Float32Array[] = [];
      const updated: number[] = [];
      let received = 0;
      let adamStep: AdamWStep | null = null;
      let badGradient = false;
      const onGrads = async (i: number, g: Map<string, Float32Array>) => {
        const pg = await tr.collect(i, g);
        for (const [k, grad] of pg) squares[k] = sumOfSquares(grad);
        received += pg.length;
        if (pg.some(([k]) => !Number.isFinite(squares[k]!))) {
          badGradient = true;
          return false;
        }
        for (const [k, grad] of pg) {
          if (!fused) {
            kept[k] = grad;
            continue;
          }
          adamStep ??= opt.begin(lr);
          rollback.save(k, tr.params[k]!.value);
          opt.update(adamStep, tr.params[k]!, grad);
          updated.push(k);
        }
        return true;
      };
      const r = await modelGradients(
        student,
        head,
        ids,
        { loss: o.loss, temperature: o.temperature, teacherLogits, B: o.batch, T: o.seqlen },
        (i) => tr.weightsOf(i),
        onGrads,
        (loss) => Number.isFinite(loss),
      );
      if (!Number.isFinite(r.loss) || badGradient) {
        // the loss of step s was computed with the weights after step s−1; if it is not finite those
        // weights are bad, and the last good ones are the weights before that update (no param was
        // updated in step s: the backward did not run). A gradient that is not finite stops the
        // step: the params it already updated go back to their values after step s−1.
        const lossBad = !Number.isFinite(r.loss);
        for (const k of lossBad ? tr.params.keys() : updated) rollback.restore(k, tr.params[k]!.value);
        const norm = Math.sqrt(squares.reduce((a, x) => a + x, 0));
        stopped = { step: s, reason: lossBad ? `loss is ${r.loss}` : `gradient norm is ${norm}`, keptStep: lossBad ? s - 2 : s - 1 };
        break;
      }
      if (received !== K) throw new Error(`recover: step ${s} produced gradients for ${received} of ${K} params`);
      losses.push(r.loss);
      let norm: number;
      if (fused) {
        // the per-param sums in param order: the norm of the unfused path to within rounding (reported only)
        norm = Math.sqrt(squares.reduce((a, x) => a + x, 0));
      } else {
        norm = gradNorm(kept);
        clipGradients(kept, norm, o.clip);
        tr.params.forEach((p, k) => rollback.save(k, p.value));
        opt.step(tr.params, kept, lr);
      }
      kept.length = 0;
      const seconds = (performance.now() - t0) / 1000 - evalSeconds;
      hooks.onStep?.({ step: s, steps: o.steps, loss: r.loss, lr, gradNorm: norm, seconds, tokensPerSecond: ((s - first + 1) * tokens) / seconds });
      if (o.evalEvery > 0 && s % o.evalEvery === 0 && s < o.steps) {
        const e0 = performance.now();
        await evaluate(s, await tr.final());
        evalSeconds += (performance.now() - e0) / 1000;
      }
      if (ck && ck.every > 0 && s % ck.every === 0 && s < o.steps) {
        ck.save({ step: s, rng: rng.state, losses: [...losses], evals: [...evals], values: tr.params.map((p) => p.value), adam: opt.moments(tr.params), previous: (k) => rollback.read(k) });
      }
    }
  } finally {
    rollback.close();
  }
  const trainSeconds = (performance.now() - t0) / 1000 - evalSeconds;
  const done = stopped ? Math.max(0, stopped.keptStep) : o.steps;
  let weights = await tr.final();
  let beforeRemask: EvalPoint | null = null;
  if ("masks" in tr) {
    const masks = (tr as ReturnType<typeof loraTrainable>).masks;
    if ([...masks.values()].some((m) => m !== null)) {
      if (o.evalIds) {
        const r = await perplexity(studentWith(student, weights), o.evalIds, { seqlen: o.evalSeqlen, limitWindows: o.evalLimitWindows });
        beforeRemask = { step: done, perplexity: r.perplexity };
      }
      const remasked = new Map<string, Float32Array>();
      for (const [name, w] of weights) {
        const m = masks.get(name);
        const out = w.slice();
        if (m) for (let i = 0; i < out.length; i++) if (m[i] === 0) out[i] = 0;
        remasked.set(name, out);
      }
      weights = remasked;
    }
  }
  await evaluate(done, weights);
  const trained = (stopped ? losses.length : o.steps) - (first - 1);
  return {
    losses,
    evals,
    beforeRemask,
    weights,
    stopped,
    trainSeconds,
    tokensPerSecond: (trained * tokens) / Math.max(trainSeconds, 1e-9),
    trainable: tr.params.reduce((a, p) => a + (p.mask ? p.mask.reduce((x, y) => x + y, 0) : p.value.length), 0),
  };
}

function sumOfSquares(g: Float32Array): number {
  let s = 0;
  for (let i = 0; i < g.length; i++) s += g[i]! * g[i]!;
  return s;
}
