// Which students the training engine can differentiate: those whose family adapter has a `train`
// hook (models/train-hooks.ts: the backward of its block and head).
import type { ModelConfig } from "../models/config.js";
import type { TrainHooks } from "../models/train-hooks.js";
import { adapterFor } from "../models/registry.js";

export function trainHooks(c: ModelConfig): TrainHooks {
  const family = adapterFor(c);
  if (!family.train) throw new Error(`recovery training is not available for the ${family.name} family yet (${c.architecture}: its adapter has no backward)`);
  return family.train;
}
