// What a structured-pruning job saves to resume, with the general mechanism of compress/resume.ts
// (the manifest, progress.json committed after every layer, the work folder `.<out>.partial`).
// A job runs up to three layer-by-layer passes (pass.ts), in this order:
//   block similarity   --drop-layers: one number per layer of the dense model (kept in progress.json)
//   flap statistics    flap: each consumer's mean and fluctuation per layer (statistics-layer<i>)
//   selection          wanda-sp, obs-sp, flap --reconstruct: each layer's kept units, consumer
//                      biases and refitted consumer weights (selection-layer<i>)
// and, for the pass in progress, the next layer's calibration inputs. What comes after the passes
// is recomputed from them on resume: the dropped layers (from the similarities), FLAP's global
// threshold (from every layer's statistics), and the output files, rewritten from the start.
import fs from "node:fs";
import { SafetensorsFile, writeSafetensors, type TensorToWrite } from "../../formats/safetensors.js";
import { killPoint } from "../../formats/kill-point.js";
import type { CausalLM } from "../../models/model.js";
import { jobInputs, jobVersions } from "../job-state.js";
import { readFloat32File, writeFloat32Atomic, type JobManifest, type ResumableOutput } from "../resume.js";
import type { StructuredJob } from "./job.js";
import type { PassCheckpoint } from "./pass.js";
import type { LayerSelection } from "./select.js";
import { FluctuationStats } from "./stats.js";
import { unitsOf, type KeptUnits } from "./units.js";

export type PassName = "similarity" | "statistics" | "selection";

export interface StructuredProgress {
  /** block similarity of the dense model's layers done so far (--drop-layers; else empty) */
  similarity: number[];
  /** layers of FLAP's statistics pass done (files statistics-layer<i>.safetensors) */
  statistics: number;
  /** layers of the selection pass done (files selection-layer<i>.safetensors) */
  selection: number;
  /** state file with the calibration inputs of the next layer of the pass in progress, or null */
  inputs: string | null;
}

export function structuredManifest(job: StructuredJob): JobManifest {
  return {
    job: "structured pruning",
    versions: jobVersions(),
    inputs: jobInputs(job.modelDir, job.calibration.batch),
    // what changes the numbers; --dtype only changes how the output is written, which is redone
    recipe: {
      method: job.method,
      ratio: job.ratio,
      reconstruct: Boolean(job.reconstruct),
      uniform: Boolean(job.uniform),
      dropLayers: job.dropLayers ?? 0,
      multipleOf: job.multipleOf ?? 1,
      dampening: job.dampening ?? 0.01,
    },
  };
}

const bytesOf = (a: Float64Array | Float32Array | Int32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/**
 * The job's saved progress and the checkpoints that extend it: each pass restarts after the layers
 * it saved, and every layer a pass completes is written, then committed.
 */
export class StructuredState {
  readonly progress: StructuredProgress;

  constructor(
    private readonly out: ResumableOutput<StructuredProgress>,
    /** the model the statistics and selection passes run on (after any dropped layers) */
    private readonly hidden: number,
    private readonly calibrationTokens: number,
  ) {
    this.progress = out.restored ? structuredClone(out.restored) : { similarity: [], statistics: 0, selection: 0, inputs: null };
  }

  /** The block-similarity pass's checkpoint (the dense model has `layers` layers). */
  similarity(layers: number): PassCheckpoint<number> {
    const done = this.progress.similarity;
    return {
      start: { done: [...done], inputs: this.inputsFor(done.length, layers) },
      after: (i, s, next) => this.commit("similarity", i, next, () => this.progress.similarity.push(s)),
    };
  }

  /** FLAP's statistics pass on `model`. */
  statistics(model: CausalLM): PassCheckpoint<Map<string, FluctuationStats>> {
    const n = this.progress.statistics;
    return {
      start: { done: Array.from({ length: n }, (_, i) => this.readStatistics(model, i)), inputs: this.inputsFor(n, model.numLayers) },
      after: (i, stats, next) => {
        const samples = [...stats.values()][0]?.samples ?? 0;
        const tensors: TensorToWrite[] = [...stats].flatMap(([consumer, s]) => [
          { name: `${consumer}.mean`, dtype: "F64" as const, shape: [s.width], data: bytesOf(s.mean) },
          { name: `${consumer}.fluctuation`, dtype: "F64" as const, shape: [s.width], data: bytesOf(s.fluctuation) },
        ]);
        writeSafetensors(this.out.statePath(`statistics-layer${i}.safetensors`), tensors, { samples: String(samples) });
        return this.commit("statistics", i, next, () => (this.progress.statistics = i + 1));
      },
    };
  }

  /** The selection pass on `model`. */
  selection(model: CausalLM): PassCheckpoint<LayerSelection> {
    const n = this.progress.selection;
    return {
      start: { done: Array.from({ length: n }, (_, i) => this.readSelection(model, i)), inputs: this.inputsFor(n, model.numLayers) },
      after: (i, sel, next) => {
        const tensors: TensorToWrite[] = [];
        for (const [kind, units] of Object.entries(sel.kept)) tensors.push({ name: `kept.${kind}`, dtype: "I32", shape: [units.length], data: bytesOf(Int32Array.from(units)) });
        for (const [consumer, b] of sel.biases) tensors.push({ name: `bias.${consumer}`, dtype: "F32", shape: [b.length], data: bytesOf(b) });
        for (const [consumer, W] of sel.consumers ?? []) tensors.push({ name: `weight.${consumer}`, dtype: "F32", shape: [W.length], data: bytesOf(W) });
        writeSafetensors(this.out.statePath(`selection-layer${i}.safetensors`), tensors, { consumers: sel.consumers ? "refitted" : "none" });
        return this.commit("selection", i, next, () => (this.progress.selection = i + 1));
      },
    };
  }

  /** The pass in progress when the job was interrupted, and its layers done. */
  static where(p: StructuredProgress, passes: { pass: PassName; layers: number }[]): { pass: PassName; layer: number; layers: number } {
    const doneOf = (pass: PassName) => (pass === "similarity" ? p.similarity.length : pass === "statistics" ? p.statistics : p.selection);
    const current = passes.find((x) => doneOf(x.pass) < x.layers) ?? passes[passes.length - 1]!;
    return { pass: current.pass, layer: doneOf(current.pass), layers: current.layers };
  }

  /** After layer i of `pass`: save the next layer's inputs, record the layer, commit, drop the old inputs. */
  private commit(pass: PassName, i: number, next: Float32Array | null, record: () => void): void {
    killPoint("layer-stored");
    const previous = this.progress.inputs;
    this.progress.inputs = next ? `inputs-${pass}-layer${i + 1}.f32` : null;
    if (next) writeFloat32Atomic(this.out.statePath(this.progress.inputs!), next);
    record();
    this.out.commit(this.progress);
    if (previous && previous !== this.progress.inputs) fs.rmSync(this.out.statePath(previous), { force: true });
    killPoint("layer-committed");
  }

  /** The saved inputs of layer `done` of a pass of `layers` (null when the pass has not started or is complete). */
  private inputsFor(done: number, layers: number): Float32Array | null {
    if (done === 0 || done >= layers) return null;
    return readFloat32File(this.out.statePath(this.progress.inputs!), this.calibrationTokens * this.hidden);
  }

  private readStatistics(model: CausalLM, i: number): Map<string, FluctuationStats> {
    const file = SafetensorsFile.open(this.out.statePath(`statistics-layer${i}.safetensors`));
    try {
      const samples = Number(file.metadata.samples);
      const read = (name: string) => new Float64Array(file.readBytes(name).buffer);
      return new Map(unitsOf(model, i).map((g) => [g.consumer, FluctuationStats.restore(read(`${g.consumer}.mean`), read(`${g.consumer}.fluctuation`), samples)]));
    } finally {
      file.close();
    }
  }

  private readSelection(model: CausalLM, i: number): LayerSelection {
    const file = SafetensorsFile.open(this.out.statePath(`selection-layer${i}.safetensors`));
    try {
      const groups = unitsOf(model, i);
      const kept = Object.fromEntries(groups.map((g) => [g.kind, [...new Int32Array(file.readBytes(`kept.${g.kind}`).buffer)]])) as KeptUnits;
      const floats = (prefix: string) =>
        new Map(groups.filter((g) => file.tensors.has(prefix + g.consumer)).map((g) => [g.consumer, new Float32Array(file.readBytes(prefix + g.consumer).buffer)]));
      const sel: LayerSelection = { kept, biases: floats("bias.") };
      if (file.metadata.consumers === "refitted") sel.consumers = floats("weight.");
      return sel;
    } finally {
      file.close();
    }
  }
}
