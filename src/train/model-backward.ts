// One training step's gradients for a whole student, with activation checkpointing:
//   forward  — every block through the model's own forward graph, keeping only each block's input
//   head     — final norm + LM head + loss (train/head-loss.ts): the loss and d loss / d hidden
//   backward — blocks in reverse; each block's backward graph recomputes its forward from the kept
//              input (train/llama-block.ts), so memory is one block's activations plus the block
//              boundaries, never the whole model's.
import type { ModelConfig } from "../models/config.js";
import { EMBED_TOKENS, FINAL_NORM, layerTensorShapes, LM_HEAD, ropeTables, type LlamaConfig } from "../models/llama.js";
import { causalMask } from "../models/runtime-graphs.js";
import type { CausalLM, LayerWeights } from "../models/model.js";
import { cachedSession, type NumericArray, type RtTensor } from "../runtime/ort.js";
import type { FloatType } from "./graph-ops.js";
import { headLossGraph, usesTargets, usesTeacher, type LossKind } from "./head-loss.js";
import { llamaBlockBackwardGraph } from "./llama-block.js";
import { trainableConfig } from "./trainable.js";

type Floats = Float32Array | Float64Array;

const t = (data: NumericArray, dims: readonly number[]): RtTensor => ({ data, dims });

/** Additive attention mask [T, T]: causal, and the sliding window when the model has one. */
function trainingMask(c: LlamaConfig, T: number): Float32Array {
  const m = causalMask(0, T);
  const w = c.slidingWindow;
  if (w !== null) for (let q = 0; q < T; q++) for (let k = 0; k <= q - w; k++) m[q * T + k] = -Infinity;
  return m;
}

const cast = (a: Float32Array, type: FloatType): Floats => (type === "float64" ? Float64Array.from(a) : a);

export interface BlockBackwardResult<A extends Floats> {
  /** the block's output (recomputed) */
  out: A;
  gradHidden: A;
  /** by HF suffix, e.g. "self_attn.q_proj.weight" */
  grads: Map<string, A>;
}

/**
 * Backward of decoder block for input `hidden` [B·T, D], weights by suffix and the gradient of its
 * output `gradOut` [B·T, D]. float64 arrays run the float64 graph (finite-difference checks).
 */
export async function blockBackward<A extends Floats>(
  config: ModelConfig,
  B: number,
  T: number,
  hidden: A,
  weights: Map<string, A>,
  gradOut: A,
  opts: { normGrads?: boolean } = {},
): Promise<BlockBackwardResult<A>> {
  const c = trainableConfig(config);
  const type: FloatType = hidden instanceof Float64Array ? "float64" : "float32";
  const normGrads = opts.normGrads ?? false;
  const key = `train:block:${type}:${B}:${T}:${normGrads}:${JSON.stringify([c.hiddenSize, c.numHeads, c.numKvHeads, c.headDim, c.intermediateSize, c.rmsNormEps, c.qkvBias, c.oBias, c.mlpBias])}`;
  const session = await cachedSession(key, () => llamaBlockBackwardGraph(c, { type, B, T, normGrads }));
  const { cos, sin } = ropeTables(c, 0, T);
  const D = c.hiddenSize;
  const feeds: Record<string, RtTensor> = {
    hidden: t(hidden, [B * T, D]),
    cos: t(cast(cos, type), [T, 1, c.headDim]),
    sin: t(cast(sin, type), [T, 1, c.headDim]),
    mask: t(cast(trainingMask(c, T), type), [T, T]),
    grad_out: t(gradOut, [B * T, D]),
  };
  for (const [suffix, shape] of layerTensorShapes(c, 0)) {
    const w = weights.get(suffix);
    if (!w) throw new Error(`block backward: weight "${suffix}" was not supplied`);
    feeds[suffix] = t(w, shape);
  }
  const gradNames = session.outputNames.filter((n) => n.startsWith("grad."));
  const out = await session.run(feeds, ["out", "grad_hidden", ...gradNames]);
  const grads = new Map<string, A>();
  for (const n of gradNames) grads.set(n.slice("grad.".length), out[n]!.data as A);
  return { out: out.out!.data as A, gradHidden: out.grad_hidden!.data as A, grads };
}

export interface HeadWeights {
  norm: Float32Array;
  head: Float32Array;
}

/** The student's final norm and LM head (the embedding table when tied). */
export function headWeights(model: CausalLM): HeadWeights {
  const c = model.config;
  const tied = c.tieWordEmbeddings && !model.weights.has(LM_HEAD);
  return { norm: model.weights.read(FINAL_NORM), head: model.weights.read(tied ? EMBED_TOKENS : LM_HEAD) };
}

export interface LossInputs {
  loss: LossKind;
  temperature: number;
  /** [N, V] (kl, kl+ce) */
  teacherLogits?: Float32Array;
  /** the token ids of the windows, [B, T] (ce, kl+ce): row t predicts ids[t + 1] */
  ids?: Int32Array;
  B: number;
  T: number;
}

/** Loss, d loss / d hidden and the student's logits for the final hidden states [N, D]. */
export async function headLoss(config: ModelConfig, head: HeadWeights, hidden: Float32Array, l: LossInputs): Promise<{ loss: number; gradHidden: Float32Array }> {
  const c = trainableConfig(config);
  const N = l.B * l.T;
  const session = await cachedSession(`train:head:${c.hiddenSize}:${c.vocabSize}:${c.rmsNormEps}:${N}:${l.loss}:${l.temperature}`, () =>
    headLossGraph(c, { type: "float32", N, loss: l.loss, temperature: l.temperature }),
  );
  const feeds: Record<string, RtTensor> = {
    hidden: t(hidden, [N, c.hiddenSize]),
    norm: t(head.norm, [c.hiddenSize]),
    lm_head: t(head.head, [c.vocabSize, c.hiddenSize]),
  };
  if (usesTeacher(l.loss)) {
    if (!l.teacherLogits) throw new Error(`loss ${l.loss} needs the teacher's logits`);
    feeds.teacher_logits = t(l.teacherLogits, [N, c.vocabSize]);
  }
  if (usesTargets(l.loss)) {
    if (!l.ids) throw new Error(`loss ${l.loss} needs the token ids`);
    const targets = new BigInt64Array(N);
    const w = new Float32Array(N);
    const count = l.B * (l.T - 1);
    for (let b = 0; b < l.B; b++) {
      for (let p = 0; p + 1 < l.T; p++) {
        targets[b * l.T + p] = BigInt(l.ids[b * l.T + p + 1]!);
        w[b * l.T + p] = 1 / count;
      }
    }
    feeds.targets = t(targets, [N]);
    feeds.ce_weight = t(w, [N]);
  }
  const out = await session.run(feeds, ["loss", "grad_hidden"]);
  return { loss: (out.loss!.data as Float32Array)[0]!, gradHidden: out.grad_hidden!.data as Float32Array };
}

export interface ModelGradients {
  loss: number;
  /** d loss / d (layer-0 input), [N, D] */
  gradInput: Float32Array;
}

/**
 * Loss and gradients of `student` for B windows of T tokens (`ids` [B·T]). `weightsOf(i)` gives
 * the weights the step uses for layer i (the trainable arrays, or base + merged LoRA);
 * `onGrads(i, grads)` receives layer i's gradients by suffix, last layer first.
 */
export async function modelGradients(
  student: CausalLM,
  head: HeadWeights,
  ids: Int32Array,
  l: LossInputs,
  weightsOf: (layer: number) => LayerWeights,
  onGrads: (layer: number, grads: Map<string, Float32Array>) => void | Promise<void>,
): Promise<ModelGradients> {
  const { B, T } = l;
  const inputs: Float32Array[] = [];
  let h = await student.embed(ids);
  for (let i = 0; i < student.numLayers; i++) {
    inputs.push(h);
    h = (await student.runLayer(i, h, B, T, { weights: weightsOf(i) })).hidden;
  }
  const hl = await headLoss(student.config, head, h, { ...l, ids });
  let g = hl.gradHidden;
  for (let i = student.numLayers - 1; i >= 0; i--) {
    const r = await blockBackward(student.config, B, T, inputs[i]!, weightsOf(i), g);
    inputs[i] = new Float32Array(0); // the boundary is no longer needed
    await onGrads(i, r.grads);
    g = r.gradHidden;
  }
  return { loss: hl.loss, gradInput: g };
}

