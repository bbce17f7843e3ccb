// The model with a bias slot on every structured-pruning consumer (o_proj, down_proj: zeros where
// the checkpoint has none), so a layer can run with the compensation or refitted biases while its
// removed rows and columns are zeroed — an exact stand-in for the smaller layer. The family's
// `structure.prune` says which tensors such a model has; the missing biases read as zeros.
import { OverlayWeights, type WeightSource } from "../../formats/weights.js";
import { CausalLM } from "../../models/model.js";
import type { PrunedLayer } from "../../models/structure.js";
import { layerWeightsAfter } from "./apply.js";
import type { LayerSelection } from "./select.js";
import { unitsOf } from "./units.js";

/** Everything kept, with consumer biases: the unpruned model in the pruned model's form. */
export function withConsumerBiases(model: CausalLM): CausalLM {
  const layers: PrunedLayer[] = Array.from({ length: model.numLayers }, (_, i) => {
    const kept = Object.fromEntries(unitsOf(model, i).map((g) => [g.kind, Array.from({ length: g.count }, (_, u) => u)]));
    return { kept: kept as PrunedLayer["kept"], consumerBias: true };
  });
  const config = model.family.structure!.prune(model.config, layers);
  const src = model.weights;
  const zeros = new Map<string, number[]>();
  for (let i = 0; i < config.numLayers; i++) {
    const p = model.family.layerPrefix(i);
    for (const [suffix, shape] of model.family.layerTensors(config, i)) {
      if (suffix.endsWith(".bias") && !src.has(p + suffix)) zeros.set(p + suffix, shape);
    }
  }
  const weights: WeightSource = {
    location: src.location,
    names: () => [...src.names(), ...zeros.keys()],
    has: (n) => zeros.has(n) || src.has(n),
    shape: (n) => zeros.get(n) ?? src.shape(n),
    read: (n) => (zeros.has(n) ? new Float32Array(zeros.get(n)!.reduce((a, b) => a * b, 1)) : src.read(n)),
    storedBytes: (n) => (zeros.has(n) ? 4 : src.storedBytes(n)),
    dtype: (n) => (zeros.has(n) ? "F32" : src.dtype(n)),
    quantized: src.quantized?.bind(src),
    close: () => src.close(),
  };
  return new CausalLM(config, weights, model.dir);
}

/**
 * The structurally pruned model at its original shapes — removed rows and columns zero, the
 * consumers refitted, the biases added — as an in-memory model: exactly the smaller model's
 * function, for evaluating a plan before (or without) writing it.
 */
export function prunedStandIn(model: CausalLM, selections: LayerSelection[]): CausalLM {
  const biased = withConsumerBiases(model);
  const overlay = new OverlayWeights(biased.weights);
  selections.forEach((sel, i) => {
    const p = model.family.layerPrefix(i);
    const after = layerWeightsAfter(biased.layerWeights(i), unitsOf(model, i), sel, (suffix) => model.weights.shape(p + suffix));
    for (const [suffix, data] of after) overlay.set(p + suffix, data);
    biased.forgetLayer(i);
  });
  return new CausalLM(biased.config, overlay, model.dir);
}
