// One training step's gradients for a whole student, with activation checkpointing:
//   forward  — every block through the model's own forward graph, keeping only each block's input
//   head     — final norm + LM head + loss (train/head-loss.ts): the loss and d loss / d hidden
//   backward — blocks in reverse; each block's backward graph recomputes its forward from the kept
//              input (the family's `train.blockBackward` hook), so memory is one block's activations plus the block
//              boundaries, never the whole model's.
import type { ModelConfig } from "../models/config.js";
import { causalMask, maskName } from "../models/runtime-graphs.js";
import type { CausalLM, LayerWeights } from "../models/model.js";
import { adapterFor } from "../models/registry.js";
import { rotaryTables } from "../models/rope.js";
import type { BlockBackwardGraph } from "../models/train-hooks.js";
import { cachedSession, type NumericArray, type RtTensor } from "../runtime/ort.js";
import type { FloatType } from "./graph-ops.js";
import { headLossGraph, usesTargets, usesTeacher, type LossKind } from "./head-loss.js";
import { trainHooks } from "./trainable.js";

type Floats = Float32Array | Float64Array;

const t = (data: NumericArray, dims: readonly number[]): RtTensor => ({ data, dims });

const cast = (a: Float32Array, type: FloatType): Floats => (type === "float64" ? Float64Array.from(a) : a);

export interface BlockBackwardResult<A extends Floats> {
  /** the block's output (recomputed) */
  out: A;
  gradHidden: A;
  /** by suffix, e.g. "self_attn.q_proj.weight" */
  grads: Map<string, A>;
}

/** Built backward graphs by session key: the host inputs a graph declares are needed at every run. */
const builtGraphs = new Map<string, BlockBackwardGraph>();

/**
 * Backward of decoder block `layer` for input `hidden` [B·T, D], the layer's weights by suffix and
 * the gradient of its output `gradOut` [B·T, D], through the family's `train.blockBackward` hook.
 * float64 arrays run the float64 graph (finite-difference checks).
 */
export async function blockBackward<A extends Floats>(
  config: ModelConfig,
  layer: number,
  B: number,
  T: number,
  hidden: A,
  weights: Map<string, A>,
  gradOut: A,
  opts: { normGrads?: boolean } = {},
): Promise<BlockBackwardResult<A>> {
  const hooks = trainHooks(config);
  const family = adapterFor(config);
  const type: FloatType = hidden instanceof Float64Array ? "float64" : "float32";
  const normGrads = opts.normGrads ?? false;
  const key = `train:block:${family.name}:${type}:${B}:${T}:${normGrads}:${JSON.stringify(family.layerKey(config, layer))}`;
  let built = builtGraphs.get(key);
  if (!built) {
    built = hooks.blockBackward(config, layer, { type, B, T, normGrads });
    builtGraphs.set(key, built);
  }
  const bytes = built.bytes;
  const session = await cachedSession(key, () => bytes);
  const D = config.hiddenSize;
  const N = B * T;
  const feeds: Record<string, RtTensor> = { hidden: t(hidden, [N, D]), grad_out: t(gradOut, [N, D]) };
  const { inputs } = built;
  for (const [name, dim] of inputs.rotary) {
    const table = family.rotary(config)[name];
    if (!table) throw new Error(`block backward: no rotary table "${name}"`);
    const { cos, sin } = rotaryTables(table.invFreq, 0, T, table.attentionScaling ?? 1);
    feeds[`cos_${name}`] = t(cast(cos, type), [T, 1, dim]);
    feeds[`sin_${name}`] = t(cast(sin, type), [T, 1, dim]);
  }
  for (const w of inputs.windows) feeds[maskName(w)] = t(cast(causalMask(0, T, w), type), [T, T]);
  if (inputs.alibiSlopes) {
    const H = inputs.alibiSlopes.length;
    const a = new Float32Array(H * T);
    inputs.alibiSlopes.forEach((slope, h) => {
      for (let s = 0; s < T; s++) a[h * T + s] = slope * s;
    });
    feeds.alibi = t(cast(a, type), [H, 1, T]);
  }
  if (inputs.positions) feeds.positions = t(BigInt64Array.from({ length: N }, (_, i) => BigInt(i % T)), [N]);
  const shapes = family.layerTensors(config, layer);
  for (const name of session.inputNames) {
    if (name in feeds) continue;
    const shape = shapes.get(name);
    if (!shape) throw new Error(`block backward of layer ${layer}: graph input "${name}" is neither a host input nor a layer tensor`);
    const w = weights.get(name);
    if (!w) throw new Error(`block backward of layer ${layer}: weight "${name}" was not supplied`);
    feeds[name] = t(w, shape);
  }
  const gradNames = session.outputNames.filter((n) => n.startsWith("grad."));
  const out = await session.run(feeds, ["out", "grad_hidden", ...gradNames]);
  const grads = new Map<string, A>();
  for (const n of gradNames) grads.set(n.slice("grad.".length), out[n]!.data as A);
  return { out: out.out!.data as A, gradHidden: out.grad_hidden!.data as A, grads };
}

/** The student's frozen global tensors (final norm, LM head, …), read when the head graph asks for them. */
export interface HeadWeights {
  has(name: string): boolean;
  read(name: string): Float32Array;
  /** the head + loss graphs built for this student, by shape and loss */
  graphs: Map<string, ReturnType<typeof headLossGraph>>;
}

export function headWeights(model: CausalLM): HeadWeights {
  const cache = new Map<string, Float32Array>();
  return {
    graphs: new Map(),
    has: (name) => model.weights.has(name),
    read(name) {
      let w = cache.get(name);
      if (!w) cache.set(name, (w = model.weights.read(name)));
      return w;
    },
  };
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
  const c = config;
  const N = l.B * l.T;
  const opts = { type: "float32" as const, N, loss: l.loss, temperature: l.temperature };
  const key = `${N}:${l.loss}:${l.temperature}`;
  let built = head.graphs.get(key);
  if (!built) head.graphs.set(key, (built = headLossGraph(c, opts, (n) => head.has(n))));
  // the graph is a function of the key's fields, the config and which tensors the checkpoint has
  const bytes = built.bytes;
  const session = await cachedSession(`train:head:${adapterFor(c).name}:${JSON.stringify(c.raw)}:${[...built.weights.keys()]}:${key}`, () => bytes);
  const feeds: Record<string, RtTensor> = { hidden: t(hidden, [N, c.hiddenSize]) };
  for (const [name, shape] of built.weights) feeds[name] = t(head.read(name), shape);
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
 * `onGrads(i, grads)` receives layer i's gradients by suffix, last layer first; layer i's weights
 * are not read again in this call once it has (so it may update them); when it returns false the
 * backward stops there. `backwardIf(loss)` false: no backward at all (a loss that is not finite).
 * (Stopped early, `gradInput` is the gradient where it stopped, not layer 0's.)
 */
export async function modelGradients(
  student: CausalLM,
  head: HeadWeights,
  ids: Int32Array,
  l: LossInputs,
  weightsOf: (layer: number) => LayerWeights,
  onGrads: (layer: number, grads: Map<string, Float32Array>) => void | boolean | Promise<void | boolean>,
  backwardIf: (loss: number) => boolean = () => true,
): Promise<ModelGradients> {
  const { B, T } = l;
  const inputs: Float32Array[] = [];
  // B windows of T tokens: learned positions (GPT-2, OPT) restart at 0 in every window
  let h = await student.embed(ids, B, T);
  for (let i = 0; i < student.numLayers; i++) {
    inputs.push(h);
    h = (await student.runLayer(i, h, B, T, { weights: weightsOf(i) })).hidden;
  }
  const hl = await headLoss(student.config, head, h, { ...l, ids });
  let g = hl.gradHidden;
  if (!backwardIf(hl.loss)) return { loss: hl.loss, gradInput: g };
  for (let i = student.numLayers - 1; i >= 0; i--) {
    const r = await blockBackward(student.config, i, B, T, inputs[i]!, weightsOf(i), g);
    inputs[i] = new Float32Array(0); // the boundary is no longer needed
    g = r.gradHidden;
    if ((await onGrads(i, r.grads)) === false) break;
  }
  return { loss: hl.loss, gradInput: g };
}

