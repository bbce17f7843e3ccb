// The training engine's side of a family (src/train/), like `structure` for structured pruning:
// the backward of one decoder layer and of the head, as ONNX graphs composed from the op pieces of
// train/graph-ops.ts. An adapter without `train` cannot be recovered (train/trainable.ts refuses it
// in one line); everything else in src/train/ is family-agnostic.
//
// Contract of `blockBackward(c, layer, opts)` — one graph per layer shape (the host caches the
// session under FamilyAdapter.layerKey, so the graph may depend only on what layerKey names):
//   inputs   `hidden` [N, D] (N = B·T, the block's input: the graph recomputes its forward from it,
//            which is the activation checkpointing), `grad_out` [N, D] (d loss / d block output),
//            the layer's tensors under their suffixes with the shapes of `layerTensors(c, layer)`
//            (declare only those used), and the host inputs listed in the returned `inputs`.
//   outputs  `out` [N, D] (the recomputed forward, equal to `block`'s), `grad_hidden` [N, D], and
//            `grad.<suffix>` for every linear's weight and bias (`grad.self_attn.q_proj.weight`);
//            with `opts.normGrads` also for the norms' scales (and biases).
// Element type `opts.type`: float32 for training, float64 for the finite-difference tests (the same
// graph code). Shapes are fixed: the graph is specialised on B and T.
//
// `headBackward(o, c, x, w)` — the final norm + LM head inside the loss graph (train/head-loss.ts
// adds the loss and its gradient): returns the logits [N, V] of the final hidden `x` [N, D] and a
// function from d loss / d logits to d loss / d x. Weights through `w.param(name)` (global tensor
// names, frozen; the host feeds them from the student's checkpoint).
import type { FloatType, Ops } from "../train/graph-ops.js";
import type { ModelConfig } from "./config.js";

export interface BlockBackwardOptions {
  type: FloatType;
  /** sequences and tokens per sequence (the graph is specialised on them) */
  B: number;
  T: number;
  /** also return the gradients of the norms' scales (and biases) */
  normGrads: boolean;
}

/** The host inputs of a backward graph besides `hidden`, `grad_out` and the layer's tensors. */
export interface TrainInputs {
  /** rotary tables used: FamilyAdapter.rotary name → dim; inputs `cos_${name}` / `sin_${name}` [T, 1, dim] for positions 0..T−1 */
  rotary: Map<string, number>;
  /** additive attention masks [T, T] (0 / −∞): causal, with each window (null = plain causal); input `maskName(window)` of models/runtime-graphs.ts */
  windows: (number | null)[];
  /** ALiBi: input `alibi` [H, 1, T] = slope_h · key position (add it to the [B, H, T, T] scores); null when unused */
  alibiSlopes: number[] | null;
  /** input `positions` int64 [N]: each token's position 0..T−1 in its sequence (learned positions, …) */
  positions: boolean;
}

/** An empty TrainInputs, to fill while building a graph. */
export function noTrainInputs(): TrainInputs {
  return { rotary: new Map(), windows: [], alibiSlopes: null, positions: false };
}

export interface BlockBackwardGraph {
  bytes: Uint8Array;
  inputs: TrainInputs;
}

/** The frozen global weights the head reads. */
export interface HeadTrainWeights {
  /** a graph input holding global tensor `name` (shape from FamilyAdapter.globalTensors) */
  param(name: string): string;
  /** whether the student's checkpoint has tensor `name` (tied embeddings) */
  has(name: string): boolean;
}

export interface TrainHooks<C extends ModelConfig = ModelConfig> {
  blockBackward(c: C, layer: number, opts: BlockBackwardOptions): BlockBackwardGraph;
  headBackward(o: Ops, c: C, x: string, w: HeadTrainWeights): { logits: string; backward(dLogits: string): string };
}
