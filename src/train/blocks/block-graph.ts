// What every family's block backward graph shares (train/blocks/<family>.ts; the contract is in
// models/train-hooks.ts): its inputs — the block input `hidden` [N, D], the output gradient
// `grad_out` [N, D], the host inputs (the layer's additive mask, its rotary table, ALiBi) and the
// layer's tensors under their HF suffixes, in topiary's layout (FamilyAdapter.layerTensors) — and
// its outputs: `out` (the recomputed forward), `grad_hidden`, and `grad.<suffix>` for every linear
// weight and bias, plus the norms' parameters when asked. The family file writes the forward with
// the op pieces of train/graph-ops.ts and calls `backLinear` / `paramGrad` on the way back.
import { OPSET } from "../../models/graph-ops.js";
import { maskName } from "../../models/runtime-graphs.js";
import { noTrainInputs, type BlockBackwardGraph, type BlockBackwardOptions } from "../../models/train-hooks.js";
import { dLayerNorm, dLinear, fLayerNorm, fLinear, Ops, type LayerNormSaved, type LinearSaved } from "../graph-ops.js";

export interface BlockLinear {
  suffix: string;
  y: string;
  saved: LinearSaved;
  hasBias: boolean;
}

export interface BlockLayerNorm {
  name: string;
  y: string;
  saved: LayerNormSaved;
}

export class BlockGraph {
  readonly o: Ops;
  readonly N: number;
  readonly x: string;
  readonly dOut: string;
  private readonly inputs = noTrainInputs();
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
    this.x = this.o.g.input("hidden", type, [this.N, hiddenSize]);
    this.dOut = this.o.g.input("grad_out", type, [this.N, hiddenSize]);
  }

  private declare(name: string, shape: number[]): string {
    if (!this.declared.has(name)) {
      this.o.g.input(name, this.opts.type, shape);
      this.declared.add(name);
    }
    return name;
  }

  /** A layer tensor by suffix. */
  param(suffix: string): string {
    const shape = this.shapes.get(suffix);
    if (!shape) throw new Error(`block backward reads "${suffix}", which the layer does not have`);
    return this.declare(suffix, shape);
  }

  /** The additive mask [T, T]: causal, with the sliding window when not null. */
  mask(window: number | null): string {
    if (!this.inputs.windows.includes(window)) this.inputs.windows.push(window);
    return this.declare(maskName(window), [this.opts.T, this.opts.T]);
  }

  /** cos/sin [T, 1, dim] of rotary table `name` (FamilyAdapter.rotary). */
  rope(name: string, dim: number): { cos: string; sin: string } {
    this.inputs.rotary.set(name, dim);
    return { cos: this.declare(`cos_${name}`, [this.opts.T, 1, dim]), sin: this.declare(`sin_${name}`, [this.opts.T, 1, dim]) };
  }

  /** ALiBi scores bias [H, 1, T]: slope_h · key position (softmax ignores the per-query constant). */
  alibi(slopes: number[]): string {
    this.inputs.alibiSlopes = slopes;
    return this.declare("alibi", [slopes.length, 1, this.opts.T]);
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

  /** LayerNorm `name` over x; `affine` false: no weight and bias (OPT without elementwise affine). */
  layerNorm(name: string, x: string, eps: number, affine = true): BlockLayerNorm {
    const r = fLayerNorm(this.o, x, affine ? this.param(`${name}.weight`) : null, affine ? this.param(`${name}.bias`) : null, eps);
    return { name, y: r.y, saved: r.saved };
  }

  /** The LayerNorm's backward: records its weight and bias gradients (with `normGrads`), returns dX. */
  backLayerNorm(n: BlockLayerNorm, dy: string): string {
    const r = dLayerNorm(this.o, n.saved, dy, this.opts.normGrads);
    this.paramGrad(`${n.name}.weight`, r.dw);
    this.paramGrad(`${n.name}.bias`, r.db);
    return r.dx;
  }

  /** Records the gradient of a norm parameter (kept only with `normGrads`). */
  paramGrad(suffix: string, value: string | null): void {
    if (this.opts.normGrads && value) this.grads.set(suffix, value);
  }

  /** The graph, with outputs `out`, `grad_hidden` and `grad.<suffix>`, and the host inputs it reads. */
  finish(out: string, dx: string): BlockBackwardGraph {
    const { type } = this.opts;
    const g = this.o.g;
    g.output(out, "out", type, [this.N, this.hiddenSize]);
    g.output(dx, "grad_hidden", type, [this.N, this.hiddenSize]);
    for (const [suffix, value] of this.grads) g.output(value, `grad.${suffix}`, type, this.shapes.get(suffix)!);
    return { bytes: g.toBytes({ opset: OPSET, irVersion: 10 }), inputs: this.inputs };
  }
}
