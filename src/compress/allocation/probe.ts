// One sequential pass over the *dense* model that shows every targeted linear its weight and its
// input statistics, and compresses nothing: each layer is fed the dense outputs of the previous
// one. OWL's outlier ratios and the sensitivity database are measured this way.
//
// It is the pipeline itself (compressModel) run with a compressor that hands the weight back
// unchanged, so it captures exactly what the pipeline captures, for every model family the
// pipeline supports, knowing nothing about any of them.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { CalibrationBatch } from "../../data/calibration.js";
import type { CausalLM } from "../../models/model.js";
import type { Tensor } from "../../tensor/tensor.js";
import type { Compressor, LayerStats, StatsNeed } from "../compressor.js";
import { compressModel, type LayerProgress } from "../pipeline.js";
import type { Stage } from "../registry.js";
import { CompressedStore } from "../store.js";
import type { CompressedLinear } from "../../formats/compressed-linear.js";

export interface ProbedLinear {
  name: string;
  /** decoder layer index */
  layer: number;
  /** the dense weight [out, in] */
  W: Tensor;
  stats: LayerStats;
}

/** The pipeline's result store, minus the storing: the probe's results are the dense weights. */
class DiscardStore extends CompressedStore {
  override put(): void {}
}

class ProbeCompressor implements Compressor {
  readonly name = "probe";
  constructor(
    readonly needs: Exclude<StatsNeed, "none">,
    private readonly layerOf: Map<string, number>,
    private readonly visit: (l: ProbedLinear) => Promise<void>,
  ) {}

  async compress(name: string, W: Tensor, stats: LayerStats | null): Promise<CompressedLinear> {
    await this.visit({ name, layer: this.layerOf.get(name)!, W, stats: stats! });
    return { name, weight: W };
  }
}

/**
 * Runs `calibration` through the dense model layer by layer and calls `visit` for every linear
 * that `select` targets (its targets/ignore regexes), layer by layer, in the pipeline's order.
 */
export async function probeDenseModel(
  model: CausalLM,
  calibration: CalibrationBatch,
  select: Pick<Stage, "targets" | "ignore">,
  needs: Exclude<StatsNeed, "none">,
  visit: (l: ProbedLinear) => Promise<void>,
  opts: { warn?: (m: string) => void; onLayer?: (p: LayerProgress) => void } = {},
): Promise<void> {
  const layerOf = new Map<string, number>();
  for (let i = 0; i < model.numLayers; i++) for (const l of model.linears(i)) layerOf.set(l.name, i);
  const stage: Stage = {
    method: "probe",
    targets: select.targets,
    ignore: select.ignore,
    trueSequential: false,
    compressor: new ProbeCompressor(needs, layerOf, visit),
    options: {},
  };
  const store = new DiscardStore(fs.mkdtempSync(path.join(os.tmpdir(), "topiary-probe-")));
  try {
    await compressModel(model, { stage, calibration, store, warn: opts.warn, onLayer: opts.onLayer });
  } finally {
    store.dispose();
  }
}
