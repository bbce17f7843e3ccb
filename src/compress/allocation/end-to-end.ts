// End-to-end sensitivity (`topiary sensitivity --end-to-end`): the KL divergence of the model's
// next-token distributions from the original's when only one linear is compressed — OBC's
// database "loss" mode (database.py: every layer swapped in alone, the model's loss measured),
// with the KL to the original instead of the task loss so that it is ≥ 0 and needs no labels.
//
// The dense model's input to every decoder layer and its final log-probabilities are computed once
// on a few calibration windows; compressing a linear of layer i then costs layers i..L−1 and the
// head on those windows. Memory: layers × tokens × hidden + tokens × vocab floats.
import type { CausalLM, LayerWeights } from "../../models/model.js";

export class EndToEnd {
  private constructor(
    private readonly model: CausalLM,
    /** dense input of every decoder layer [tokens × hidden] */
    private readonly inputs: Float32Array[],
    /** dense log-probabilities [tokens × vocab] */
    private readonly logp: Float32Array,
    private readonly B: number,
    private readonly T: number,
  ) {}

  /** `ids`: B windows of T tokens. */
  static async prepare(model: CausalLM, ids: Int32Array, B: number, T: number): Promise<EndToEnd> {
    const inputs: Float32Array[] = [];
    let h = await model.embed(ids, B, T);
    for (let i = 0; i < model.numLayers; i++) {
      inputs.push(h);
      h = (await model.runLayer(i, h, B, T, {})).hidden;
    }
    return new EndToEnd(model, inputs, logSoftmaxRows(await model.logits(h), model.config.vocabSize), B, T);
  }

  get tokens(): number {
    return this.B * this.T;
  }

  /** Mean KL(original ‖ model) per token when linear `name` of `layer` has weight `W`. */
  async kl(layer: number, name: string, W: Float32Array): Promise<number> {
    const spec = this.model.linears(layer).find((l) => l.name === name);
    if (!spec) throw new Error(`end-to-end: ${name} is not a linear of layer ${layer}`);
    const weights: LayerWeights = new Map(this.model.layerWeights(layer));
    weights.set(`${spec.suffix}.weight`, W);
    let h = (await this.model.runLayer(layer, this.inputs[layer]!, this.B, this.T, { weights })).hidden;
    for (let i = layer + 1; i < this.model.numLayers; i++) h = (await this.model.runLayer(i, h, this.B, this.T, {})).hidden;
    const logq = logSoftmaxRows(await this.model.logits(h), this.model.config.vocabSize);
    let sum = 0;
    for (let k = 0; k < logq.length; k++) {
      const lp = this.logp[k]!;
      sum += Math.exp(lp) * (lp - logq[k]!);
    }
    return Math.max(0, sum / this.tokens);
  }
}

/** Row-wise log-softmax, accumulated in float64. */
function logSoftmaxRows(logits: Float32Array, V: number): Float32Array {
  const out = new Float32Array(logits.length);
  for (let r = 0; r < logits.length; r += V) {
    let max = -Infinity;
    for (let v = 0; v < V; v++) max = Math.max(max, logits[r + v]!);
    let s = 0;
    for (let v = 0; v < V; v++) s += Math.exp(logits[r + v]! - max);
    const lse = max + Math.log(s);
    for (let v = 0; v < V; v++) out[r + v] = logits[r + v]! - lse;
  }
  return out;
}
