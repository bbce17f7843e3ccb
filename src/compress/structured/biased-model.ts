// The same model with a bias on every decoder linear (zeros where the checkpoint has none), so a
// layer can be run with the compensation biases structured pruning adds to o_proj/down_proj
// while its removed rows and columns are zeroed: an exact stand-in for the smaller layer.
import { OverlayWeights, type WeightSource } from "../../formats/weights.js";
import { CausalLM } from "../../models/model.js";
import { layerWeightsAfter, shapeOf } from "./plan.js";
import type { LayerSelection } from "./select.js";
import { llamaUnits } from "./units.js";

export function withLinearBiases(model: CausalLM): CausalLM {
  const src = model.weights;
  const zeros = new Map<string, number>();
  for (let i = 0; i < model.numLayers; i++) {
    for (const l of model.linears(i)) if (!src.has(`${l.name}.bias`)) zeros.set(`${l.name}.bias`, l.outFeatures);
  }
  const weights: WeightSource = {
    location: src.location,
    names: () => [...src.names(), ...zeros.keys()],
    has: (n) => zeros.has(n) || src.has(n),
    shape: (n) => (zeros.has(n) ? [zeros.get(n)!] : src.shape(n)),
    read: (n) => (zeros.has(n) ? new Float32Array(zeros.get(n)!) : src.read(n)),
    storedBytes: (n) => (zeros.has(n) ? 4 : src.storedBytes(n)),
    dtype: (n) => (zeros.has(n) ? "F32" : src.dtype(n)),
    close: () => src.close(),
  };
  return new CausalLM({ ...model.config, qkvBias: true, oBias: true, mlpBias: true }, weights, model.dir);
}

/**
 * The structurally pruned model at its original shapes — removed rows and columns zero, the
 * consumers refitted, the biases added — as an in-memory model: exactly the smaller model's
 * function, for evaluating a plan before (or without) writing it.
 */
export function prunedStandIn(model: CausalLM, selections: LayerSelection[]): CausalLM {
  const biased = withLinearBiases(model);
  const overlay = new OverlayWeights(biased.weights);
  const groups = llamaUnits(model.config);
  selections.forEach((sel, i) => {
    for (const [suffix, data] of layerWeightsAfter(biased.layerWeights(i), groups, sel, shapeOf(model))) overlay.set(`model.layers.${i}.${suffix}`, data);
    biased.forgetLayer(i);
  });
  return new CausalLM(biased.config, overlay, model.dir);
}
