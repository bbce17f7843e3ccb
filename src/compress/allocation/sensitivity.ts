// The sensitivity database: for every targeted linear and every candidate setting, the layer-wise
// loss of that setting on the calibration inputs and the exact bytes of its stored form.
//
// One sequential pass over the *dense* model (allocation/probe.ts): each layer is fed the dense
// outputs of the previous one, so every linear is measured against the same inputs whatever the
// other linears get; the budget solver then treats the losses as independent and additive.
//
//   loss     ½·tr(ΔW·H·ΔWᵀ) with H = (2/n)·ΣXᵀX (n calibration sequences), ΔW = W − Ŵ: the squared
//            output error ‖WX − ŴX‖² summed over a sequence's tokens, averaged over the sequences
//   relLoss  the same over ½·tr(W·H·Wᵀ): ‖WX − ŴX‖² / ‖WX‖² (the pipeline's relativeError)
//   bytes    what the compressed-tensors writer stores for the linear in that setting (weights or
//            packed codes, every scale, zero point, g_idx, bitmask, row offset and shape tensor):
//            sparsity settings as sparse-bitmask, quantized ones as pack-quantized, "dense" as the
//            plain weight in the source dtype (storedLinearBytes in the writer, not a formula here)
//   zeros    exact zeros of the compressed weight
//   kl       with --end-to-end only: mean KL(original ‖ model) per token on the first calibration
//            windows when only this linear is compressed (allocation/end-to-end.ts)
//
// Joint sparsity + quantization is not a setting: no writer stores a pruned *and* quantized
// linear smaller than the quantized one (pack-quantized keeps every code), so its bytes would
// equal the quantized setting's with a larger loss.
import fs from "node:fs";
import type { CalibrationBatch } from "../../data/calibration.js";
import { writeAll, writeFileAtomic } from "../../formats/atomic.js";
import { storedLinearBytes } from "../../formats/compressed-tensors/writer.js";
import type { CompressedTensorsFormat } from "../../formats/compressed-tensors/constants.js";
import { FormatError } from "../../formats/errors.js";
import { storedFloatDtype } from "../../formats/hf-folder.js";
import type { CausalLM } from "../../models/model.js";
import { gemm } from "../../runtime/kernels.js";
import type { Tensor } from "../../tensor/tensor.js";
import type { CalibrationInfo } from "../job.js";
import type { LayerProgress } from "../pipeline.js";
import { buildStage, type Stage } from "../registry.js";
import { EndToEnd } from "./end-to-end.js";
import { probeDenseModel } from "./probe.js";

const DATABASE_VERSION = 1;

export interface Setting {
  id: string;
  /** absent for "dense" (the linear left as it is) */
  method?: "sparsegpt" | "gptq";
  sparsity?: number;
  /** N:M pattern, e.g. "2:4" */
  pattern?: string;
  bits?: number;
  /** input columns per group; -1: one grid per output row */
  groupSize?: number;
  /** GPTQ: columns by decreasing H_jj (with groups: static groups, so no g_idx is stored) */
  actOrder?: boolean;
  /** GPTQ: each grid's range shrunk to the least Σ|q − w|^2.4 (quant.py `mse`) */
  mse?: boolean;
}

export interface LinearEntry {
  name: string;
  layer: number;
  shape: [number, number];
  loss: Record<string, number>;
  relLoss: Record<string, number>;
  bytes: Record<string, number>;
  zeros: Record<string, number>;
  kl?: Record<string, number>;
}

export interface SensitivityDatabase {
  topiary: string;
  version: number;
  model: string;
  calibration: CalibrationInfo | Record<string, unknown> | null;
  /** what `loss` is */
  loss: string;
  settings: Setting[];
  linears: LinearEntry[];
  /** false while the pass is still running (the file is rewritten after every layer) */
  complete: boolean;
  /** calibration tokens the end-to-end KL was measured on (absent without --end-to-end) */
  endToEndTokens?: number;
}

export interface SettingGrid {
  sparsities: number[];
  patterns: string[];
  bits: number[];
  groupSizes: number[];
  /** GPTQ variants measured for every bits × group size: "plain", "act-order", "mse", "act-order+mse" */
  gptqVariants: GptqVariant[];
}

export const GPTQ_VARIANTS = ["plain", "act-order", "mse", "act-order+mse"] as const;
export type GptqVariant = (typeof GPTQ_VARIANTS)[number];

export const DEFAULT_GRID: SettingGrid = {
  sparsities: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8],
  patterns: ["2:4", "4:8"],
  bits: [2, 3, 4, 8],
  groupSizes: [32, 128, -1],
  gptqVariants: ["plain", "act-order+mse"],
};

export function settingsOf(grid: SettingGrid): Setting[] {
  const out: Setting[] = [{ id: "dense" }];
  for (const s of grid.sparsities) out.push({ id: `sparsegpt-${s}`, method: "sparsegpt", sparsity: s });
  for (const p of grid.patterns) out.push({ id: `sparsegpt-${p}`, method: "sparsegpt", pattern: p });
  for (const v of grid.gptqVariants) {
    const actOrder = v.includes("act-order");
    const mse = v.includes("mse");
    const suffix = v === "plain" ? "" : `-${v}`;
    for (const b of grid.bits) {
      for (const g of grid.groupSizes) {
        out.push({ id: `gptq-${b}-${g === -1 ? "channel" : `g${g}`}${suffix}`, method: "gptq", bits: b, groupSize: g, ...(actOrder ? { actOrder } : {}), ...(mse ? { mse } : {}) });
      }
    }
  }
  return out;
}

/** The recipe stage (method + keys) of a setting; null for "dense". */
export function settingStage(s: Setting): Record<string, unknown> | null {
  if (!s.method) return null;
  if (s.method === "sparsegpt") return s.pattern ? { method: "sparsegpt", pattern: s.pattern } : { method: "sparsegpt", sparsity: s.sparsity };
  return {
    method: "gptq",
    bits: s.bits,
    group_size: s.groupSize,
    // static groups: the natural column groups, so the writer stores no g_idx (same bytes as without act-order)
    ...(s.actOrder ? { act_order: true, ...(s.groupSize !== -1 ? { static_groups: true } : {}) } : {}),
    ...(s.mse ? { mse: true } : {}),
  };
}

/** The compressed-tensors format a setting's linear is stored in. */
export function settingFormat(s: Setting): CompressedTensorsFormat {
  return s.method === "sparsegpt" ? "sparse-bitmask" : "pack-quantized";
}

/** ½·tr(A·H·Aᵀ) for A [rows, cols], H [cols, cols]: one GEMM. */
async function halfQuadratic(A: Float32Array, rows: number, cols: number, H: Float32Array): Promise<number> {
  const AH = await gemm(A, [rows, cols], H, [cols, cols]);
  let s = 0;
  for (let i = 0; i < A.length; i++) s += AH[i]! * A[i]!;
  return s / 2;
}

/** The loss of replacing W by Ŵ on inputs with H = (2/n)·ΣXᵀX: absolute and relative. */
export async function outputLoss(W: Tensor, What: Float32Array, H: Float32Array, denseLoss?: number): Promise<{ loss: number; relLoss: number; dense: number }> {
  const dW = new Float32Array(W.size);
  for (let i = 0; i < W.size; i++) dW[i] = W.data[i]! - What[i]!;
  const dense = denseLoss ?? (await halfQuadratic(W.data, W.rows, W.cols, H));
  const loss = await halfQuadratic(dW, W.rows, W.cols, H);
  return { loss, relLoss: dense > 0 ? loss / dense : 0, dense };
}

export interface BuildOptions {
  model: CausalLM;
  modelDir: string;
  calibration: { batch: CalibrationBatch; info: CalibrationInfo | Record<string, unknown> };
  select: Pick<Stage, "targets" | "ignore">;
  settings: Setting[];
  /** written (atomically) after every layer; a partial file from the same model, calibration and settings is resumed */
  out?: string;
  onLayer?: (p: LayerProgress) => void;
  warn?: (m: string) => void;
  version: string;
  /** also measure the end-to-end KL on the first `endToEnd` calibration windows */
  endToEnd?: number;
}

export async function buildSensitivityDatabase(o: BuildOptions): Promise<SensitivityDatabase> {
  const db: SensitivityDatabase = {
    topiary: o.version,
    version: DATABASE_VERSION,
    model: o.modelDir,
    calibration: o.calibration.info,
    loss: "½·tr(ΔW·H·ΔWᵀ), H = (2/n)·ΣXᵀX: ‖WX − ŴX‖² summed over a calibration sequence's tokens, mean over the sequences (each layer fed the dense model's outputs)",
    settings: o.settings,
    linears: [],
    complete: false,
  };
  let e2e: EndToEnd | null = null;
  if (o.endToEnd) {
    const { ids, seqlen: T, nsamples } = o.calibration.batch;
    const B = Math.min(o.endToEnd, nsamples);
    e2e = await EndToEnd.prepare(o.model, ids.subarray(0, B * T), B, T);
    db.endToEndTokens = e2e.tokens;
  }
  const done = new Map((o.out ? resumable(o.out, db) : []).map((l) => [l.name, l]));
  const compressors = new Map(o.settings.map((s) => [s.id, settingStage(s) ? buildStage(settingStage(s)!, `setting ${s.id}`).compressor : null]));
  await probeDenseModel(
    o.model,
    o.calibration.batch,
    o.select,
    "hessian",
    async ({ name, layer, W, stats }) => {
      const previous = done.get(name);
      if (previous) {
        db.linears.push(previous);
        return;
      }
      const source = storedFloatDtype(o.model.weights, `${name}.weight`);
      const H = stats.hessian();
      const entry: LinearEntry = { name, layer, shape: [W.rows, W.cols], loss: {}, relLoss: {}, bytes: {}, zeros: {}, ...(e2e ? { kl: {} } : {}) };
      let dense: number | undefined;
      for (const s of o.settings) {
        const c = compressors.get(s.id);
        const result = c ? await c.compress(name, W, stats) : { name, weight: W };
        const l = await outputLoss(W, result.weight.data, H, dense);
        dense = l.dense;
        entry.loss[s.id] = l.loss;
        entry.relLoss[s.id] = l.relLoss;
        entry.bytes[s.id] = storedLinearBytes(result, settingFormat(s), source);
        let zeros = 0;
        for (const v of result.weight.data) if (v === 0) zeros++;
        entry.zeros[s.id] = zeros;
        if (e2e) entry.kl![s.id] = c ? await e2e.kl(layer, name, result.weight.data) : 0;
      }
      db.linears.push(entry);
    },
    {
      warn: o.warn,
      onLayer: (p) => {
        if (o.out) writeDatabase(o.out, db);
        o.onLayer?.(p);
      },
    },
  );
  db.complete = true;
  if (o.out) writeDatabase(o.out, db);
  return db;
}

export function writeDatabase(file: string, db: SensitivityDatabase): void {
  const bytes = new TextEncoder().encode(JSON.stringify(db, null, 1) + "\n");
  writeFileAtomic(file, (fd) => writeAll(fd, bytes));
}

/** The finished linears of a partial database written by the same run (same model, calibration, settings). */
function resumable(file: string, fresh: SensitivityDatabase): LinearEntry[] {
  if (!fs.existsSync(file)) return [];
  let old: SensitivityDatabase;
  try {
    old = JSON.parse(fs.readFileSync(file, "utf8"));
  } catch {
    return [];
  }
  const same =
    old.complete === false &&
    old.version === fresh.version &&
    old.model === fresh.model &&
    JSON.stringify(old.calibration) === JSON.stringify(fresh.calibration) &&
    JSON.stringify(old.settings) === JSON.stringify(fresh.settings) &&
    old.endToEndTokens === fresh.endToEndTokens;
  return same ? old.linears : [];
}

/** Reads and checks a database file. */
export function readDatabase(file: string): SensitivityDatabase {
  let db: SensitivityDatabase;
  try {
    db = JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new FormatError(file, code === "ENOENT" ? "no such sensitivity database" : `not a sensitivity database (${(e as Error).message.split("\n")[0]})`);
  }
  if (typeof db !== "object" || db === null || !Array.isArray(db.settings) || !Array.isArray(db.linears)) {
    throw new FormatError(file, "not a sensitivity database (no settings/linears)");
  }
  if (db.version !== DATABASE_VERSION) throw new FormatError(file, `sensitivity database version ${String(db.version)}, expected ${DATABASE_VERSION}`);
  if (!db.complete) throw new FormatError(file, "sensitivity database is incomplete (its pass was interrupted; rerun `topiary sensitivity` to finish it)");
  for (const l of db.linears) {
    for (const s of db.settings) {
      for (const k of ["loss", "bytes", "zeros"] as const) {
        if (typeof l[k]?.[s.id] !== "number" || !Number.isFinite(l[k][s.id])) throw new FormatError(file, `linear ${l.name}: no ${k} for setting ${s.id}`);
      }
    }
  }
  return db;
}
