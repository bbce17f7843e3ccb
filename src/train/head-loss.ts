// The head and the distillation loss with their backward, as one graph:
// hidden → the family's final norm + LM head (frozen; its `train.headBackward` hook) → student
// logits → loss, and d loss / d hidden.
//
//   kl:  τ² · mean_n KL(p_T ‖ p_S) at temperature τ, p = softmax(logits / τ), over every position
//        (the last one too: it predicts a token outside the window, the teacher still knows it).
//        The τ² keeps the gradient's scale independent of τ (Hinton et al., 2015); τ = 1 is the
//        plain mean KL of ../shared/reference/recovery. d/d logits_S = τ·(p_S − p_T) / N.
//   ce:  mean over the predicted positions of −log p_S(next token) (τ = 1; weights w_n = 1/count on
//        the rows that have a next token, 0 on the last row of each window).
//        d/d logits_S = w_n·(p_S − onehot).
//   kl+ce: their sum.
import type { ModelConfig } from "../models/config.js";
import { OPSET } from "../models/graph-ops.js";
import { adapterFor } from "../models/registry.js";
import { trainHooks } from "./trainable.js";
import { Ops, type FloatType } from "./graph-ops.js";

export type LossKind = "kl" | "ce" | "kl+ce";
export const LOSS_KINDS: readonly LossKind[] = ["kl", "ce", "kl+ce"];

export interface HeadLossOptions {
  type: FloatType;
  /** rows (B·T) */
  N: number;
  loss: LossKind;
  temperature: number;
}

export const usesTeacher = (l: LossKind): boolean => l !== "ce";
export const usesTargets = (l: LossKind): boolean => l !== "kl";

/**
 * Inputs: `hidden` [N, D], the head's global tensors under their names (returned in `weights` with
 * their shapes); `teacher_logits` [N, V] (kl); `targets` int64 [N] and `ce_weight` [N] (ce).
 * Outputs: `loss` [1], `grad_hidden` [N, D], `logits` [N, V]. `has` tells whether the student's
 * checkpoint stores a tensor (tied embeddings).
 */
export function headLossGraph(c: ModelConfig, opts: HeadLossOptions, has: (name: string) => boolean): { bytes: Uint8Array; weights: Map<string, number[]> } {
  const hooks = trainHooks(c);
  const { N, type } = opts;
  const D = c.hiddenSize;
  const V = c.vocabSize;
  const o = new Ops("head_loss", type);
  const g = o.g;
  const x = g.input("hidden", type, [N, D]);
  const shapes = new Map(adapterFor(c).globalTensors(c).map((t) => [t.name, t.shape]));
  const weights = new Map<string, number[]>();
  const head = hooks.headBackward(o, c, x, {
    param(name) {
      if (!weights.has(name)) {
        const shape = shapes.get(name);
        if (!shape) throw new Error(`head reads tensor "${name}", which the adapter does not list`);
        weights.set(name, shape);
        g.input(name, type, shape);
      }
      return name;
    },
    has,
  });
  const logits = head.logits; //                                                            (N, V)
  const parts: string[] = [];
  const dLogits: string[] = [];
  if (usesTeacher(opts.loss)) {
    const tau = opts.temperature;
    const invTau = o.scalar(1 / tau);
    const lpS = o.op("LogSoftmax", [o.mul(logits, invTau)], { axis: -1 });
    const lpT = o.op("LogSoftmax", [o.mul(g.input("teacher_logits", type, [N, V]), invTau)], { axis: -1 });
    const pT = o.op("Exp", [lpT]);
    const klRows = o.sum(o.mul(pT, o.sub(lpT, lpS)), [-1], false); //                       (N)
    parts.push(o.mul(o.mean(klRows, [0], true), o.scalar(tau * tau)));
    dLogits.push(o.mul(o.sub(o.op("Exp", [lpS]), pT), o.scalar(tau / N)));
  }
  if (usesTargets(opts.loss)) {
    const targets = g.input("targets", "int64", [N]);
    const w = o.reshape(g.input("ce_weight", type, [N]), [N, 1]);
    // OneHot has float32 values only in onnxruntime; cast for the float64 checks
    const onehot32 = o.op("OneHot", [targets, o.ints([V]), g.constFloat([0, 1])], { axis: -1 });
    const onehot = type === "float64" ? o.op("Cast", [onehot32], { to: 11 }) : onehot32;
    const lp = o.op("LogSoftmax", [logits], { axis: -1 });
    const nll = o.sum(o.mul(onehot, o.op("Neg", [lp])), [-1], true); //                     (N, 1)
    parts.push(o.sum(o.mul(nll, w), [0, 1], false));
    dLogits.push(o.mul(o.sub(o.op("Exp", [lp]), onehot), w));
  }
  const loss = parts.length === 1 ? parts[0]! : o.add(parts[0]!, parts[1]!);
  const dl = dLogits.length === 1 ? dLogits[0]! : o.add(dLogits[0]!, dLogits[1]!);
  const dx = head.backward(dl);
  g.output(o.reshape(loss, [1]), "loss", type, [1]);
  g.output(dx, "grad_hidden", type, [N, D]);
  g.output(logits, "logits", type, [N, V]);
  return { bytes: g.toBytes({ opset: OPSET, irVersion: 10 }), weights };
}
