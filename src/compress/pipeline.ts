// The sequential layer-wise pipeline (SparseGPT §4 / GPTQ §5 "sequential", llm-compressor's
// sequential pipeline). For each decoder layer, in order:
//   1. capture   run the calibration batch through the layer, capturing every linear's input
//   2. stats     accumulate what the methods need: H = (2/n)·ΣXᵀX, or only ‖X_j‖² (Wanda)
//   3. compress  each targeted linear against its statistics
//   4. re-run    run the batch through the *compressed* layer; its outputs are the next layer's
//                inputs, so every layer is fitted to what its compressed predecessors produce
// Memory: one layer's weights, its statistics, and the calibration activations (two buffers of
// nsamples × seqlen × hidden). Compressed layers go to a CompressedStore on disk.
// With true_sequential, steps 1–3 repeat per group (the family's groups; Llama: q/k/v, o, gate/up, down).
// Methods that need no statistics (magnitude) skip the forward passes entirely.
import type { CalibrationBatch } from "../data/calibration.js";
import type { CaptureName, CausalLM, LayerWeights } from "../models/model.js";
import { gemm } from "../runtime/kernels.js";
import { killPoint } from "../formats/kill-point.js";
import { assertFinite, Tensor } from "../tensor/tensor.js";
import { InputStatistics } from "./hessian.js";
import { stageTargets, type Stage } from "./registry.js";
import type { CompressedStore } from "./store.js";
import type { CompressedLinear } from "../formats/compressed-linear.js";

export interface LinearReport {
  name: string;
  shape: [number, number];
  /** exact zeros after compression */
  zeros: number;
  sparsity: number;
  /**
   * ‖WX − ŴX‖² / ‖WX‖² on the calibration inputs: all of them when the method collected H,
   * the first ERROR_SAMPLE_TOKENS (2048) when it collected only diag(H) (Wanda); null when it
   * used no calibration data (magnitude, RTN)
   */
  relativeError: number | null;
  /** the algorithm's own loss (SparseGPT/GPTQ), when it has one */
  loss: number | null;
  /** quantized linears: bits and input columns per group (-1: one grid per output row); else null */
  bits: number | null;
  groupSize: number | null;
  seconds: number;
}

export interface LayerProgress {
  layer: number;
  layers: number;
  seconds: number;
}

export interface PipelineOptions {
  stage: Stage;
  calibration: CalibrationBatch | null;
  store: CompressedStore;
  /** called after every decoder layer */
  onLayer?: (p: LayerProgress) => void;
  /** numerical fallbacks and other notes for the user */
  warn?: (message: string) => void;
  /** resuming: the layers before this one are done (default 0) */
  startLayer?: number;
  /** resuming: the calibration inputs of `startLayer` (required when it is past 0 and calibration is used) */
  startInputs?: Float32Array | null;
  /** after each layer's results are in the store: the next layer's inputs (null after the last) and the layer's reports */
  afterLayer?: (layer: number, nextInputs: Float32Array | null, reports: LinearReport[]) => void | Promise<void>;
}

/**
 * Tokens per forward run of the calibration batch: enough to keep the GEMMs (and the Hessian's)
 * efficient, few enough that one run's activations — ~4 hidden-wide and 3 MLP-wide float32
 * tensors per token, captures included — stay near ACTIVATION_BYTES (8192 tokens for stories260K,
 * ~2600 for TinyLlama-1.1B).
 */
const MAX_TOKENS_PER_RUN = 8192;
const ACTIVATION_BYTES = 256 * 1024 ** 2;

export async function compressModel(model: CausalLM, opts: PipelineOptions): Promise<LinearReport[]> {
  const { stage, calibration } = opts;
  const warn = opts.warn ?? (() => {});
  const needs = stage.compressor.needs;
  if (needs !== "none" && !calibration) throw new Error(`method ${stage.method} needs calibration data (--calib)`);
  const useCalibration = needs !== "none" && calibration !== null;
  const D = model.config.hiddenSize;
  const reports: LinearReport[] = [];

  // layer-0 inputs: the token embeddings of the calibration batch (resuming: the saved ones)
  const startLayer = opts.startLayer ?? 0;
  if (startLayer > 0 && useCalibration && !opts.startInputs) throw new Error(`resuming at layer ${startLayer} needs that layer's calibration inputs`);
  let inputs = useCalibration ? (startLayer > 0 ? opts.startInputs! : await model.embed(calibration!.ids, calibration!.nsamples, calibration!.seqlen)) : null;
  model.releaseGlobals(); // the embedding table is not needed again here
  const nsamples = calibration?.nsamples ?? 0;
  const T = calibration?.seqlen ?? 0;
  const bytesPerToken = (4 * D + 3 * model.config.intermediateSize) * 4;
  const tokensPerRun = Math.min(MAX_TOKENS_PER_RUN, Math.floor(ACTIVATION_BYTES / bytesPerToken));
  const perRun = Math.max(1, Math.floor(tokensPerRun / Math.max(T, 1)));

  /** Runs the whole calibration batch through layer i, handing each run's captures to `sink`. */
  const runBatch = async (
    i: number,
    weights: LayerWeights,
    capture: CaptureName[],
    sink: ((captures: Partial<Record<CaptureName, Float32Array>>, samples: number) => Promise<void>) | null,
    collectOutputs: boolean,
  ): Promise<Float32Array | null> => {
    const outputs = collectOutputs ? new Float32Array(nsamples * T * D) : null;
    for (let s0 = 0; s0 < nsamples; s0 += perRun) {
      const B = Math.min(perRun, nsamples - s0);
      const h = inputs!.subarray(s0 * T * D, (s0 + B) * T * D);
      const r = await model.runLayer(i, h, B, T, { weights, capture });
      if (sink) await sink(r.captures, B);
      outputs?.set(r.hidden, s0 * T * D);
    }
    return outputs;
  };

  for (let i = startLayer; i < model.numLayers; i++) {
    const t0 = performance.now();
    const firstReport = reports.length;
    const weights: LayerWeights = new Map(model.layerWeights(i));
    // the pipeline visits each layer once and replaces its linears: a cached copy of the original
    // weights (models that fit the cache budget) would only sit beside the compressed ones
    model.forgetLayer(i);
    const linears = model.linears(i).filter((l) => stageTargets(stage, l.name));
    const groups = stage.trueSequential
      ? model.trueSequentialGroups(i).map((g) => linears.filter((l) => g.includes(l.suffix)))
      : [linears];
    const results: CompressedLinear[] = [];

    for (const group of groups.filter((g) => g.length > 0)) {
      // 1–2. capture the group's inputs and accumulate their statistics
      const stats = new Map<CaptureName, InputStatistics>();
      if (useCalibration) {
        for (const l of group) {
          if (!stats.has(l.input)) {
            const readers = group.filter((o) => o.input === l.input).map((o) => o.suffix.split(".").pop()).join(", ");
            stats.set(l.input, new InputStatistics(model.captureWidth(i, l.input), needs as "diag" | "hessian", `layer ${i} ${l.input} (${readers})`));
          }
        }
        const capture = [...stats.keys()];
        await runBatch(i, weights, capture, async (captures, B) => {
          for (const [name, s] of stats) await s.add(captures[name]!, B);
        }, false);
        for (const s of stats.values()) s.checkFinite();
      }

      // 3. compress each linear of the group
      for (const l of group) {
        const t1 = performance.now();
        const key = `${l.suffix}.weight`;
        const W = new Tensor(weights.get(key)!, [l.outFeatures, l.inFeatures]);
        assertFinite(W.data, `${model.weights.location}: ${l.name}.weight`);
        const s = stats.get(l.input);
        const result = await stage.compressor.compress(l.name, W, s ? s.view(l.name, warn) : null);
        weights.set(key, result.weight.data);
        results.push(result);
        const relativeError = s ? await relativeOutputError(W, result.weight, s.errorGram()) : null;
        reports.push(linearReport(result, relativeError, (performance.now() - t1) / 1000));
        // the last reader of this input is done: its H and Hinv need not sit beside the next ones
        if (s && !group.slice(group.indexOf(l) + 1).some((o) => o.input === l.input)) s.release();
        killPoint("linear-compressed");
      }
    }
    opts.store.put(results);

    // 4. the compressed layer's outputs feed the next layer
    if (useCalibration && i + 1 < model.numLayers) inputs = await runBatch(i, weights, [], null, true);
    await opts.afterLayer?.(i, useCalibration && i + 1 < model.numLayers ? inputs : null, reports.slice(firstReport));
    opts.onLayer?.({ layer: i + 1, layers: model.numLayers, seconds: (performance.now() - t0) / 1000 });
  }
  return reports;
}

function linearReport(c: CompressedLinear, relativeError: number | null, seconds: number): LinearReport {
  let zeros = 0;
  for (const v of c.weight.data) if (v === 0) zeros++;
  return {
    name: c.name,
    shape: [c.weight.shape[0]!, c.weight.shape[1]!],
    zeros,
    sparsity: zeros / c.weight.size,
    relativeError,
    loss: c.loss ?? null,
    bits: c.quant?.bits ?? null,
    groupSize: c.quant ? (c.quant.groupSize >= c.weight.shape[1]! && !c.quant.gIdx ? -1 : c.quant.groupSize) : null,
    seconds,
  };
}

/**
 * ‖WX − ŴX‖² / ‖WX‖² from H ∝ XᵀX: tr(ΔW·H·ΔWᵀ) / tr(W·H·Wᵀ) (the constant factor cancels).
 * One GEMM each for ΔW·H and W·H.
 */
export async function relativeOutputError(W: Tensor, What: Tensor, H: Float32Array): Promise<number> {
  const rows = W.rows;
  const cols = W.cols;
  const dW = new Float32Array(W.size);
  for (let i = 0; i < W.size; i++) dW[i] = W.data[i]! - What.data[i]!;
  const quad = async (A: Float32Array) => {
    const AH = await gemm(A, [rows, cols], H, [cols, cols]);
    let s = 0;
    for (let i = 0; i < A.length; i++) s += AH[i]! * A[i]!;
    return s;
  };
  const denom = await quad(W.data);
  return denom > 0 ? (await quad(dW)) / denom : 0;
}
