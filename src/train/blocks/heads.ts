// The heads' backward for the `train.headBackward` hooks of the families in train/blocks/: final
// norm → (projection) → LM head (frozen) → (final-logit softcap), with d loss / d hidden.
import type { HeadTrainWeights } from "../../models/train-hooks.js";
import { dLayerNorm, dLinear, dRmsNorm, fLayerNorm, fLinear, fRmsNorm, type Ops } from "../graph-ops.js";

/** One differentiable step of the head: its output and the map from its output's gradient to its input's. */
export interface HeadStep {
  y: string;
  back(dy: string): string;
}

/** LayerNorm `name` (`${name}.weight` / `.bias`), or without parameters when `affine` is false. */
export function layerNormStep(o: Ops, x: string, w: HeadTrainWeights, name: string, eps: number, affine = true): HeadStep {
  const n = fLayerNorm(o, x, affine ? w.param(`${name}.weight`) : null, affine ? w.param(`${name}.bias`) : null, eps);
  return { y: n.y, back: (dy) => dLayerNorm(o, n.saved, dy, false).dx };
}

/** RMSNorm by weight `name`; `offset` 1 for Gemma's (1 + w). */
export function rmsNormStep(o: Ops, x: string, w: HeadTrainWeights, name: string, eps: number, offset = 0): HeadStep {
  const scale = offset ? o.add(w.param(name), o.scalar(offset)) : w.param(name);
  const n = fRmsNorm(o, x, scale, eps);
  return { y: n.y, back: (dy) => dRmsNorm(o, n.saved, dy, false).dx };
}

/** x·Wᵀ for the frozen matrix `name` ([out, in]: an LM head or a projection). */
export function linearStep(o: Ops, x: string, w: HeadTrainWeights, name: string): HeadStep {
  const l = fLinear(o, x, w.param(name), null);
  return { y: l.y, back: (dy) => dLinear(o, l.saved, dy, { weight: false, bias: false, input: true }).dX! };
}

/** c·tanh(z / c) (Gemma 2's final-logit softcapping): d/dz = 1 − tanh². */
export function softcapStep(o: Ops, z: string, cap: number): HeadStep {
  const c = o.scalar(cap);
  const t = o.op("Tanh", [o.op("Div", [z, c])]);
  return { y: o.mul(t, c), back: (dy) => o.mul(dy, o.sub(o.scalar(1), o.mul(t, t))) };
}

/** Steps applied in order: the logits and the backward through all of them in reverse. */
export function chain(x: string, steps: ((h: string) => HeadStep)[]): { logits: string; backward(dLogits: string): string } {
  const done: HeadStep[] = [];
  let h = x;
  for (const step of steps) {
    const s = step(h);
    done.push(s);
    h = s.y;
  }
  return { logits: h, backward: (d) => done.reduceRight((g, s) => s.back(g), d) };
}
