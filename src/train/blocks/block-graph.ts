// What every family's block backward graph shares (train/blocks/<family>.ts): its inputs — the
// block input `hidden` [N, D], the output gradient `grad_out` [N, D], the additive mask `mask`
// [T, T] (causal, with the layer's sliding window), the layer's rotary table `cos`/`sin`
// [T, 1, dim] when it has one, and every tensor of the layer under its HF suffix (in topiary's
// layout: what FamilyAdapter.layerTensors lists) — and its outputs: `out` (the recomputed
// forward), `grad_hidden`, and `grad.<suffix>` for every linear weight and bias, plus the norms'
// parameters when asked. The family file writes the forward with the op pieces of
// train/graph-ops.ts and calls `backLinear` / `paramGrad` on the way back.
import { OPSET } from "../../models/graph-ops.js";
import { dLinear, fLinear, Ops, type FloatType, type LinearSaved } from "../graph-ops.js";

export interface BlockBackwardOptions {
  type: FloatType;
  /** sequences and tokens per sequence (the graph is specialised on them) */
  B: number;
  T: number;
  /** also return the gradients of the norms' parameters */
  normGrads: boolean;
}

export interface BlockLinear {
  suffix: string;
  y: string;
  saved: LinearSaved;
  hasBias: boolean;
}

export class BlockGraph {
  readonly o: Ops;
  readonly N: number;
  readonly x: string;
  readonly dOut: string;
  readonly mask: string;
  private readonly grads = new Map<string, string>();
  private readonly declared = new Set<string>();

  constructor(
    readonly opts: BlockBackwardOptions,
    readonly hiddenSize: number,
    /** the layer's tensors (FamilyAdapter.layerTensors) */
    private readonly shapes: Map<string, number[]>,
  ) {
    const { type, B, T } = opts;
    this.N = B * T;
    this.o = new Ops("decoder_layer_backward", type);
    const g = this.o.g;
    this.x = g.input("hidden", type, [this.N, hiddenSize]);
    this.mask = g.input("mask", type, [T, T]);
    this.dOut = g.input("grad_out", type, [this.N, hiddenSize]);
  }

  /** A layer tensor by suffix (declared as an input on first use). */
  param(suffix: string): string {
    if (!this.declared.has(suffix)) {
      const shape = this.shapes.get(suffix);
      if (!shape) throw new Error(`block backward reads "${suffix}", which the layer does not have`);
      this.o.g.input(suffix, this.opts.type, shape);
      this.declared.add(suffix);
    }
    return suffix;
  }

  /** The rotary table's cos/sin inputs, [T, 1, dim]. */
  rope(dim: number): { cos: string; sin: string } {
    const g = this.o.g;
    if (!this.declared.has("cos")) {
      g.input("cos", this.opts.type, [this.opts.T, 1, dim]);
      g.input("sin", this.opts.type, [this.opts.T, 1, dim]);
      this.declared.add("cos");
    }
    return { cos: "cos", sin: "sin" };
  }

  /** y = x·Wᵀ (+ b) for linear `suffix`. */
  linear(suffix: string, x: string, hasBias: boolean): BlockLinear {
    const r = fLinear(this.o, x, this.param(`${suffix}.weight`), hasBias ? this.param(`${suffix}.bias`) : null);
    return { suffix, y: r.y, saved: r.saved, hasBias };
  }

  /** The linear's backward: records dW (and db), returns dX. */
  backLinear(l: BlockLinear, dY: string): string {
    const r = dLinear(this.o, l.saved, dY, { weight: true, bias: l.hasBias, input: true });
    this.grads.set(`${l.suffix}.weight`, r.dW!);
    if (r.db) this.grads.set(`${l.suffix}.bias`, r.db);
    return r.dX!;
  }

  /** Records the gradient of a norm parameter (kept only with `normGrads`). */
  paramGrad(suffix: string, value: string | null): void {
    if (this.opts.normGrads && value) this.grads.set(suffix, value);
  }

  /** The graph, with outputs `out`, `grad_hidden` and `grad.<suffix>`. */
  finish(out: string, dx: string): Uint8Array {
    const { type } = this.opts;
    const g = this.o.g;
    g.output(out, "out", type, [this.N, this.hiddenSize]);
    g.output(dx, "grad_hidden", type, [this.N, this.hiddenSize]);
    for (const [suffix, value] of this.grads) g.output(value, `grad.${suffix}`, type, this.shapes.get(suffix)!);
    return g.toBytes({ opset: OPSET, irVersion: 10 });
  }
}

/** ALiBi scores bias [H, 1, T]: slope_h · key position (softmax ignores the per-query constant). */
export function alibiBias(o: Ops, slopes: readonly number[], T: number): string {
  const H = slopes.length;
  const values = new Float64Array(H * T);
  for (let h = 0; h < H; h++) for (let s = 0; s < T; s++) values[h * T + s] = Math.fround(slopes[h]! * s);
  const data = o.type === "float64" ? values : Float32Array.from(values);
  return o.g.initializer({ name: "alibi_bias", type: o.type, dims: [H, 1, T], data: new Uint8Array(data.buffer) });
}
