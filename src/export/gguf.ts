// Export a model to GGUF for llama.cpp, the way convert_hf_to_gguf.py does: the family's adapter
// (models/family.ts `gguf`) gives the llama.cpp architecture, tensor names and layouts (Llama:
// q/k rows permuted to ggml's rope layout) and architecture metadata; this file writes general
// and tokenizer metadata, chooses each tensor's type and writes the file. Tied embeddings are left
// to llama.cpp (no output.weight: it reuses token_embd).
// Weights are quantized by ggml's reference quantizers (formats/gguf/quants.ts), except weights
// topiary already quantized on a grid Q4_0/Q8_0 holds exactly, which keep their codes and scales
// (export/gguf-tensors.ts). One tensor is in memory at a time; the file appears only when complete.
import fs from "node:fs";
import path from "node:path";
import { FormatError } from "../formats/errors.js";
import { archKey, FileType, GGML_QUANT_VERSION, GGUF_DEFAULT_ALIGNMENT, Keys, QuantType, ValueType } from "../formats/gguf/constants.js";
import { quantize, type PackableType } from "../formats/gguf/quants.js";
import { writeGguf, type GgufTensorToWrite, type MetadataValue } from "../formats/gguf/writer.js";
import type { WeightSource } from "../formats/weights.js";
import type { ModelConfig } from "../models/config.js";
import type { GgufFamily, GgufTensorPlan } from "../models/family.js";
import { gatherRows } from "../models/fused-layout.js";
import { familyOf, SUPPORTED_ARCHITECTURES } from "../models/registry.js";
import { chooseType, isOutputTensor, packSourceCodes, permuteRows } from "./gguf-tensors.js";
import { TensorWarnings } from "./tensor-warnings.js";
import { ggufVocab, vocabMetadata, type GgufVocab } from "./gguf-vocab.js";

/** `--type` values → the ggml type 2-D weights aim at, and the file type that names the mix. */
export const GGUF_TYPES = {
  f32: { type: QuantType.F32, fileType: FileType.ALL_F32 },
  f16: { type: QuantType.F16, fileType: FileType.MOSTLY_F16 },
  q8_0: { type: QuantType.Q8_0, fileType: FileType.MOSTLY_Q8_0 },
  q4_0: { type: QuantType.Q4_0, fileType: FileType.MOSTLY_Q4_0 },
  q4_k: { type: QuantType.Q4_K, fileType: FileType.MOSTLY_Q4_K_S },
} as const satisfies Record<string, { type: PackableType; fileType: FileType }>;
export type GgufTypeName = keyof typeof GGUF_TYPES;

export interface ExportSource {
  config: ModelConfig;
  weights: WeightSource;
  /** the model folder: tokenizer.json and tokenizer_config.json are read from it */
  dir: string;
}

export interface GgufTensorReport {
  name: string;
  /** the checkpoint tensor it came from (null for generated ones: rope_freqs) */
  source: string | null;
  shape: number[];
  type: string;
  /** why it is not the requested type (llama.cpp's fallback rule), or null */
  fallback: string | null;
  /** other reasons for its type (the output tensor kept at Q6_K or Q8_0), or null */
  note: string | null;
  /** stored from the checkpoint's own integer codes and scales (no re-quantization) */
  fromCodes: boolean;
  /** for fromCodes tensors: worst relative change of a scale rounded to f16 (0 = exact) */
  scaleRelError?: number;
  bytes: number;
}

export interface GgufExportReport {
  file: string;
  bytes: number;
  fileType: string;
  tensors: GgufTensorReport[];
  warnings: string[];
}

type PlannedTensor = GgufTensorPlan;

/** The family's GGUF side and llama.cpp architecture for a config, or an error naming what is not supported. */
function ggufFamily(c: ModelConfig): { gguf: GgufFamily; arch: string } {
  const gguf = familyOf(c.architecture)?.gguf;
  if (!gguf) {
    const supported = SUPPORTED_ARCHITECTURES.filter((a) => familyOf(a)?.gguf);
    throw new Error(`GGUF export supports ${supported.join(", ")}; this model is ${c.architecture}`);
  }
  return { gguf, arch: gguf.arch(c) };
}

function planTensors(c: ModelConfig, w: WeightSource, gguf: GgufFamily): PlannedTensor[] {
  const plan = gguf.tensors(c, w);
  for (const t of plan) {
    if (!t.source || w.quantized?.(t.source)) continue;
    const dtype = w.dtype(t.source);
    if (!["F32", "F16", "BF16", "F64"].includes(dtype)) {
      throw new FormatError(w.location, `tensor "${t.source}" has dtype ${dtype}; GGUF export reads F32, F16, BF16 or topiary-quantized tensors`);
    }
  }
  return plan;
}

function metadata(c: ModelConfig, gguf: GgufFamily, arch: string, name: string, fileType: FileType, vocab: GgufVocab): [string, MetadataValue][] {
  const kv: [string, MetadataValue][] = [];
  const u32 = (key: string, value: number) => kv.push([archKey(key, arch), { type: ValueType.UINT32, value }]);
  const str = (key: string, value: string) => kv.push([archKey(key, arch), { type: ValueType.STRING, value }]);
  str(Keys.General.ARCHITECTURE, arch);
  str(Keys.General.TYPE, "model");
  str(Keys.General.NAME, name);
  u32(Keys.General.FILE_TYPE, fileType);
  u32(Keys.General.QUANTIZATION_VERSION, GGML_QUANT_VERSION);
  u32(Keys.General.ALIGNMENT, GGUF_DEFAULT_ALIGNMENT);
  kv.push(...gguf.metadata(c, arch));
  kv.push(...vocabMetadata(vocab));
  return kv;
}

/** Writes `src` as a GGUF file at `opts.out` (atomically) and reports what each tensor became. */
export function exportGguf(src: ExportSource, opts: { type: GgufTypeName; out: string; name?: string; onTensor?: (done: number, total: number) => void }): GgufExportReport {
  const c = src.config;
  const w = src.weights;
  const spec = GGUF_TYPES[opts.type];
  if (!spec) throw new Error(`unknown GGUF type "${opts.type}" (supported: ${Object.keys(GGUF_TYPES).join(", ")})`);
  const { gguf, arch } = ggufFamily(c);
  const warnings: string[] = [...(gguf.warnings?.(c) ?? [])];
  const vocab = ggufVocab(src.dir, c.vocabSize, { bos: c.bosTokenId, eos: c.eosTokenIds[0] ?? null });
  const plan = planTensors(c, w, gguf);
  const exported = new Set(plan.map((t) => t.source));
  const skipped = w.names().filter((n) => !exported.has(n) && !n.endsWith("rotary_emb.inv_freq"));
  const tensorWarnings = new TensorWarnings();
  for (const name of skipped) tensorWarnings.add(name, "left out: no place in the GGUF");

  const reports: GgufTensorReport[] = [];
  const hasOutput = plan.some((t) => t.name === "output.weight");
  const tensors: GgufTensorToWrite[] = plan.map((t, index) => {
    const { type, fallback, note } = chooseType(spec.type, t.shape, isOutputTensor(t.name, hasOutput));
    const report: GgufTensorReport = { name: t.name, source: t.source, shape: t.shape, type: QuantType[type], fallback, note, fromCodes: false, bytes: 0 };
    reports.push(report);
    return {
      name: t.name,
      shape: t.shape,
      type,
      data: () => {
        const bytes = tensorData(t, type, w, report, tensorWarnings);
        report.bytes = bytes.length;
        opts.onTensor?.(index + 1, plan.length);
        return bytes;
      },
    };
  });
  writeGguf(opts.out, metadata(c, gguf, arch, opts.name ?? path.basename(path.resolve(src.dir)), spec.fileType, vocab), tensors);
  warnings.push(...tensorWarnings.lines());
  return { file: path.resolve(opts.out), bytes: fs.statSync(opts.out).size, fileType: FileType[spec.fileType], tensors: reports, warnings };
}

/** One tensor's bytes: from the checkpoint's codes when they fit the type, else quantized floats. */
function tensorData(t: PlannedTensor, type: PackableType, w: WeightSource, report: GgufTensorReport, warnings: TensorWarnings): Uint8Array {
  const cols = t.shape[t.shape.length - 1]!;
  if (t.generated) return quantize(type, t.generated, cols);
  const source = t.source!;
  const q = w.quantized?.(source) ?? null;
  if (q && q.shape.join() !== t.shape.join()) throw new FormatError(w.location, `"${source}": quantized codes have shape [${q.shape.join(", ")}], the tensor [${t.shape.join(", ")}]`);
  if (q && t.transform) {
    warnings.add(source, `re-quantized to ${QuantType[type]}, as llama.cpp stores it transformed`);
  } else if (q && (type === QuantType.Q4_0 || type === QuantType.Q8_0)) {
    const r = packSourceCodes(type, q, t.permuteHeads, t.rowOrder);
    if (typeof r !== "string") {
      report.fromCodes = true;
      report.scaleRelError = r.scaleRelError;
      return r.bytes;
    }
    warnings.add(source, `re-quantized to ${QuantType[type]}, as its grid does not fit (${r})`);
  } else if (q && type !== QuantType.F16 && type !== QuantType.F32) {
    warnings.add(source, `re-quantized to ${QuantType[type]}, which cannot hold a ${q.grid.bits}-bit grid (Q4_0 or Q8_0 keep the codes)`);
  }
  let data = w.read(source);
  if (t.transform) data = t.transform(data);
  if (t.permuteHeads !== null) data = permuteRows(data, t.shape[0]!, t.permuteHeads);
  if (t.rowOrder) data = gatherRows(data, t.rowOrder, t.shape.length === 2 ? cols : 1);
  if (type === QuantType.F16) {
    let over = 0;
    for (const v of data) if (Math.abs(v) > 65504) over++;
    if (over > 0) warnings.add(source, `${over} values exceed f16's range and became ±inf`);
  }
  return quantize(type, data, cols);
}
