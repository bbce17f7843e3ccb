// A whole structured-pruning run, as `topiary prune --method flap|wanda-sp|obs-sp` performs it:
// (drop the most redundant blocks) → choose units per layer → write a smaller dense model.
// As a compression job (compress/job.ts), it builds its output in a work folder beside the final
// one and keeps its progress there after every layer of every pass, so a killed run rerun with
// the same inputs resumes where it stopped (structured/job-state.ts).
import type { CalibrationInfo } from "../job.js";
import { TOPIARY_VERSION } from "../job.js";
import type { CalibrationBatch } from "../../data/calibration.js";
import type { FloatDtype } from "../../formats/hf-folder.js";
import { loadModel } from "../../models/load.js";
import { ResumableOutput } from "../resume.js";
import { blockSimilarity, layersToDrop, withoutLayers } from "./drop-layers.js";
import { StructuredState, structuredManifest, type PassName, type StructuredProgress } from "./job-state.js";
import { keptFraction, planStructured, type StructuredMethod } from "./plan.js";
import type { LayerSelection } from "./select.js";
import { unitsOf, type UnitGroup } from "./units.js";
import { uniformWidths, writeStructuredInto } from "./write.js";

export const STRUCTURED_METHODS: readonly StructuredMethod[] = ["flap", "wanda-sp", "obs-sp"];

export interface StructuredJob {
  modelDir: string;
  outDir: string;
  overwrite?: boolean;
  method: StructuredMethod;
  ratio: number;
  reconstruct?: boolean;
  uniform?: boolean;
  dropLayers?: number;
  /** kept widths rounded to multiples of this (plan.ts StructuredOptions.multipleOf) */
  multipleOf?: number;
  dampening?: number;
  dtype?: FloatDtype;
  calibration: { batch: CalibrationBatch; info: CalibrationInfo };
  onLayer?: (phase: string, layer: number, layers: number) => void;
  /** discard the saved progress of an interrupted run of this output instead of resuming it */
  restart?: boolean;
  /**
   * called once when the job resumes: `layer` of the `layers` layers of pass `pass` were done,
   * and the passes `before` it are complete
   */
  onResume?: (r: { pass: PassName; layer: number; layers: number; before: PassName[] }) => void;
}

export interface StructuredSummary {
  outDir: string;
  keptFraction: number;
  droppedLayers: number[];
  widths: { kvGroups: number[]; mlpChannels: number[] };
  uniform: boolean;
  seconds: number;
}

/** Everything kept: the selection of a layer that is only renumbered, not pruned. */
function keepAll(groups: UnitGroup[]): LayerSelection {
  const kept = Object.fromEntries(groups.map((g) => [g.kind, Array.from({ length: g.count }, (_, u) => u)]));
  return { kept: kept as LayerSelection["kept"], biases: new Map() };
}

export async function runStructured(job: StructuredJob): Promise<StructuredSummary> {
  const t0 = performance.now();
  if (!(job.ratio >= 0 && job.ratio < 1)) throw new Error(`--sparsity ${job.ratio} must be in [0, 1) for structured pruning`);
  if (job.uniform && job.method === "wanda-sp") throw new Error("--uniform: wanda-sp already removes the same units from every layer");
  if (job.multipleOf !== undefined && !(Number.isInteger(job.multipleOf) && job.multipleOf >= 1)) throw new Error(`--multiple-of ${job.multipleOf} must be a positive integer`);
  const base = loadModel(job.modelDir);
  let out: ResumableOutput<StructuredProgress>;
  try {
    if (job.dropLayers && (!Number.isInteger(job.dropLayers) || job.dropLayers < 0 || job.dropLayers >= base.numLayers)) {
      throw new Error(`--drop-layers ${job.dropLayers} must be an integer below the number of layers (${base.numLayers})`);
    }
    out = ResumableOutput.open<StructuredProgress>(job.outDir, structuredManifest(job), { overwrite: job.overwrite, restart: job.restart });
  } catch (e) {
    base.close();
    throw e;
  }
  try {
    const calib = job.calibration.batch;
    const state = new StructuredState(out, base.config.hiddenSize, calib.nsamples * calib.seqlen);
    const keptLayers = base.numLayers - (job.dropLayers ?? 0);
    // the passes this job runs, in order (job-state.ts)
    const passes: { pass: PassName; layers: number }[] = [
      ...(job.dropLayers ? [{ pass: "similarity" as const, layers: base.numLayers }] : []),
      ...(job.ratio > 0 && job.method === "flap" ? [{ pass: "statistics" as const, layers: keptLayers }] : []),
      ...(job.ratio > 0 && (job.method !== "flap" || job.reconstruct) ? [{ pass: "selection" as const, layers: keptLayers }] : []),
    ];
    if (out.restored && passes.length > 0) {
      const at = StructuredState.where(out.restored, passes);
      job.onResume?.({ ...at, before: passes.slice(0, passes.findIndex((p) => p.pass === at.pass)).map((p) => p.pass) });
    }
    let dropped: number[] = [];
    let similarity: number[] | null = null;
    if (job.dropLayers) {
      similarity = await blockSimilarity(base, calib, state.similarity(base.numLayers));
      dropped = layersToDrop(similarity, job.dropLayers);
    }
    const model = withoutLayers(base, dropped);
    const selections =
      job.ratio > 0
        ? await planStructured(model, calib, {
            method: job.method,
            ratio: job.ratio,
            reconstruct: job.reconstruct,
            uniform: job.uniform,
            multipleOf: job.multipleOf,
            dampening: job.dampening,
            onLayer: (i, n) => job.onLayer?.(job.method, i, n),
            checkpoints: {
              statistics: job.method === "flap" ? state.statistics(model) : undefined,
              selection: job.method !== "flap" || job.reconstruct ? state.selection(model) : undefined,
            },
          })
        : Array.from({ length: model.numLayers }, (_, i) => keepAll(unitsOf(model, i)));
    const kept = keptFraction(model, selections) * (model.numLayers / base.numLayers);
    const widths = { kvGroups: selections.map((s) => s.kept.attention.length), mlpChannels: selections.map((s) => s.kept.mlp.length) };
    const uniform = uniformWidths(selections);
    const record = {
      topiary: TOPIARY_VERSION,
      created: new Date().toISOString(),
      source: job.modelDir,
      structured: {
        method: job.method,
        ratio: job.ratio,
        reconstruct: job.method === "obs-sp" || Boolean(job.reconstruct),
        uniform,
        multipleOf: job.multipleOf ?? 1,
        droppedLayers: dropped,
        blockSimilarity: similarity,
        keptFraction: kept,
        widths,
      },
      calibration: job.calibration.info,
      resumed: out.restored && passes.length > 0 ? StructuredState.where(out.restored, passes) : null,
      seconds: (performance.now() - t0) / 1000,
    };
    writeStructuredInto(out.dir, model, selections, { dtype: job.dtype, record });
    out.finish();
    return { outDir: job.outDir, keptFraction: kept, droppedLayers: dropped, widths, uniform, seconds: (performance.now() - t0) / 1000 };
  } catch (e) {
    out.abandon();
    throw e;
  } finally {
    base.close();
  }
}
