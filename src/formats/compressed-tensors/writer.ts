// Writing a model folder in the compressed-tensors layout (constants.ts lists the tensors):
//
//   await writeCompressedTensors(outDir, {
//     format: "pack-quantized",        // | "dense" | "sparse-bitmask" | "sparse-24-bitmask"
//     sourceModelDir,                  // config.json and tokenizer files are copied from here
//     compressed,                      // Map<linear name, CompressedLinear> (or anything with keys/get)
//     linears,                         // optional: every linear of the model, to list the rest in `ignore`
//   });
//
//   pack-quantized     quantized linears → weight_packed / weight_scale / weight_zero_point /
//                      weight_g_idx / weight_shape; other linears stay `.weight` and go to `ignore`
//   sparse-bitmask     pruned (masked), unquantized linears → shape / compressed / bitmask / row_offsets
//   sparse-24-bitmask  the same for 2:4-sparse linears → shape / compressed [rows, cols/2] / bitmask
//   dense              every weight as a plain float tensor; no quantization_config
//
// Everything else in the source (embeddings, norms, untouched linears) is copied. Float tensors
// keep their stored dtype; compressed weights, sparse values and scales are written in the source
// dtype when every value survives the conversion, else float32 — so reading the folder back gives
// the CompressedLinear weights bit for bit (`dtype` / `scaleDtype` override, rounding if needed).
// model.safetensors is streamed one tensor at a time; `compressed.get` is called twice per linear.
import fs from "node:fs";
import path from "node:path";
import { type CompressedLinear, type QuantGrid, dequantize, maxQ, quantizeToCodes } from "../compressed-linear.js";
import { packedWords, packInt32 } from "../pack.js";
import { bf16ToFloat, floatToBf16, floatToHalf, halfToFloat } from "../../tensor/dtype.js";
import { numel } from "../../tensor/tensor.js";
import { writeDirAtomic } from "../atomic.js";
import { copyModelFiles, storedFloatDtype, type FloatDtype } from "../hf-folder.js";
import { DTYPE_BYTES, float32ToBytes, writeSafetensors, type Dtype, type TensorToWrite } from "../safetensors.js";
import { SafetensorsWeights, type WeightSource } from "../weights.js";
import { bitmask24Compress, bitmaskBytesPerRow, bitmaskCompress, type BitmaskTensors } from "./bitmask.js";
import { packQuantizedConfig, sparseConfig, type SparsityInfo, type WeightScheme } from "./config.js";
import { CONFIG_DTYPE, Format, Packed, Sparse, TORCH_DTYPE, type CompressedTensorsFormat } from "./constants.js";
import { CompressedTensorsWeights, isCompressedTensorsConfig } from "./reader.js";

/** The compressed linears by name (without ".weight"); a Map satisfies it. */
export interface CompressedLinears {
  keys(): Iterable<string>;
  get(name: string): CompressedLinear | undefined;
}

export interface CompressedTensorsOptions {
  format: CompressedTensorsFormat;
  /** the model the linears were compressed from */
  sourceModelDir: string;
  compressed: CompressedLinears;
  /** the source's tensors (default: opened from sourceModelDir and closed again) */
  weights?: WeightSource;
  /** config.json to amend (default: sourceModelDir/config.json) */
  config?: Record<string, unknown>;
  /** every linear of the model (default: the compressed ones); those left dense are listed in `ignore` */
  linears?: readonly string[];
  /** dtype of every float tensor written (weights, sparse values, untouched tensors) */
  dtype?: FloatDtype;
  /** dtype of weight_scale */
  scaleDtype?: FloatDtype;
}

export interface CompressedTensorsReport {
  format: CompressedTensorsFormat;
  /** bytes of model.safetensors */
  bytes: number;
  /** bytes of the compressed linears' tensors in it, and of the same weights dense in the source dtype */
  linearBytes: number;
  linearDenseBytes: number;
  /** things a reader other than topiary may trip over (e.g. group sizes vLLM rejects) */
  warnings: string[];
}

/** Writes outDir atomically: nothing is left under outDir unless everything was written. */
export async function writeCompressedTensors(
  outDir: string,
  opts: CompressedTensorsOptions & { overwrite?: boolean },
): Promise<CompressedTensorsReport> {
  let report: CompressedTensorsReport | undefined;
  await writeDirAtomic(outDir, (tmp) => {
    report = fillCompressedTensors(tmp, opts);
  }, { overwrite: opts.overwrite });
  return report!;
}

type Kind = "packed" | "bitmask" | "bitmask24" | "dense";

interface LinearPlan {
  name: string;
  kind: Kind;
  rows: number;
  cols: number;
  /** dtype of dense weights / sparse values */
  valueDtype: FloatDtype;
  scaleDtype: FloatDtype;
  scheme?: WeightScheme;
  nnz: number;
  masked: boolean;
  /** at most 2 non-zeros in every 4 consecutive inputs */
  is24: boolean;
}

/** Writes model.safetensors, config.json and the tokenizer files into an existing folder `dir`. */
export function fillCompressedTensors(dir: string, opts: CompressedTensorsOptions): CompressedTensorsReport {
  const config = opts.config ?? JSON.parse(fs.readFileSync(path.join(opts.sourceModelDir, "config.json"), "utf8"));
  const weights = opts.weights ?? openSource(opts.sourceModelDir, config);
  try {
    return fill(dir, opts, config, weights);
  } finally {
    if (!opts.weights) weights.close();
  }
}

function openSource(dir: string, config: Record<string, unknown>): WeightSource {
  return isCompressedTensorsConfig(config) ? CompressedTensorsWeights.open(dir, config) : SafetensorsWeights.open(dir);
}

function fill(dir: string, opts: CompressedTensorsOptions, config: Record<string, unknown>, weights: WeightSource): CompressedTensorsReport {
  const { format } = opts;
  const warnings: string[] = [];
  const plans = new Map<string, LinearPlan>();
  let zeros = 0;
  for (const name of [...opts.compressed.keys()].sort()) {
    const c = getLinear(opts.compressed, name);
    const plan = planLinear(c, format, weights, opts);
    for (const v of c.weight.data) if (v === 0) zeros++;
    plans.set(`${name}.weight`, plan);
  }
  // one scale dtype for the whole model: the source dtype only when it holds every scale exactly
  const packed = [...plans.values()].filter((p) => p.kind === "packed");
  const scaleDtype = opts.scaleDtype ?? (packed.every((p) => p.scaleDtype === packed[0]?.scaleDtype) ? packed[0]?.scaleDtype : "F32") ?? "F32";
  for (const p of packed) p.scaleDtype = scaleDtype;

  const tensors: TensorToWrite[] = [];
  let linearBytes = 0;
  let linearDenseBytes = 0;
  let params = 0;
  let cache: { name: string; parts: Map<string, Uint8Array> } | null = null;
  const encoded = (plan: LinearPlan, part: string) => {
    if (cache?.name !== plan.name) cache = { name: plan.name, parts: encodeLinear(getLinear(opts.compressed, plan.name), plan) };
    return cache.parts.get(part)!;
  };
  for (const tensorName of weights.names().sort()) {
    const shape = weights.shape(tensorName);
    params += numel(shape);
    const plan = plans.get(tensorName);
    if (!plan) {
      const dtype = opts.dtype ?? storedFloatDtype(weights, tensorName);
      tensors.push({
        name: tensorName,
        dtype,
        shape,
        data: () => {
          const data = weights.read(tensorName);
          for (const v of data) if (v === 0) zeros++;
          return float32ToBytes(data, dtype);
        },
      });
      continue;
    }
    linearDenseBytes += numel(shape) * DTYPE_BYTES[storedFloatDtype(weights, tensorName)];
    for (const t of linearTensors(plan)) {
      linearBytes += numel(t.shape) * DTYPE_BYTES[t.dtype];
      tensors.push({ ...t, data: () => encoded(plan, t.name) });
    }
  }
  for (const name of plans.keys()) if (!weights.has(name)) throw new Error(`${weights.location}: compressed linear "${name}" is not a tensor of the source model`);

  const file = path.join(dir, "model.safetensors");
  writeSafetensors(
    file,
    tensors.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)),
    { format: "pt" },
  );

  const out: Record<string, unknown> = { ...config };
  if (opts.dtype) out.torch_dtype = CONFIG_DTYPE[opts.dtype];
  delete out.quantization_config;
  const linears = [...plans.values()];
  const universe = opts.linears ?? linears.map((p) => p.name);
  const sparsity = sparsityInfo(format, linears, universe, zeros / params);
  if (format === Format.PACK_QUANTIZED) {
    const groups = quantGroups(linears);
    const modelDtype = (opts.dtype ? CONFIG_DTYPE[opts.dtype] : config.torch_dtype) ?? "float32";
    out.quantization_config = packQuantizedConfig(
      groups,
      ignoreList(universe, new Set(packed.map((p) => p.name))),
      CONFIG_DTYPE[scaleDtype] === modelDtype ? null : TORCH_DTYPE[scaleDtype], // null: the model's dtype
      sparsity,
    );
    warnings.push(...groupSizeWarnings(linears));
  } else if (format !== Format.DENSE && sparsity) {
    out.quantization_config = sparseConfig(sparsity);
  }
  copyModelFiles(opts.sourceModelDir, dir, out);
  return { format, bytes: fs.statSync(file).size, linearBytes, linearDenseBytes, warnings };
}

function getLinear(compressed: CompressedLinears, name: string): CompressedLinear {
  const c = compressed.get(name);
  if (!c) throw new Error(`compressed linear "${name}" is listed but has no result`);
  if (c.name !== name) throw new Error(`compressed linear listed as "${name}" is named "${c.name}"`);
  if (c.weight.shape.length !== 2) throw new Error(`${name}: expected a 2-D weight, got [${c.weight.shape.join(", ")}]`);
  return c;
}

/**
 * Bytes of the tensors `c` is written as in `format` (every scale, zero point, g_idx, bitmask,
 * row offset and shape tensor counted), from a source checkpoint whose weights are `source`.
 * Scales are counted in the dtype this linear alone needs; when a model mixes linears whose
 * scales need different dtypes the writer stores them all as float32 (see `fill`).
 */
export function storedLinearBytes(c: CompressedLinear, format: CompressedTensorsFormat, source: FloatDtype): number {
  const plan = planFromSource(c, format, source, {});
  return linearTensors(plan).reduce((n, t) => n + numel(t.shape) * DTYPE_BYTES[t.dtype], 0);
}

function planLinear(c: CompressedLinear, format: CompressedTensorsFormat, weights: WeightSource, opts: CompressedTensorsOptions): LinearPlan {
  const tensor = `${c.name}.weight`;
  if (weights.storedTransposed?.(tensor)) {
    throw new Error(`${c.name}: the checkpoint stores this linear [in, out] (a Conv1D); compressed-tensors holds [out, in] linears only (use --format dense)`);
  }
  if (weights.has(tensor) && weights.shape(tensor).join() !== c.weight.shape.join()) {
    throw new Error(`${c.name}: compressed weight is [${c.weight.shape.join(", ")}], the source has [${weights.shape(tensor).join(", ")}]`);
  }
  return planFromSource(c, format, weights.has(tensor) ? storedFloatDtype(weights, tensor) : "F32", opts);
}

function planFromSource(
  c: CompressedLinear,
  format: CompressedTensorsFormat,
  source: FloatDtype,
  opts: Pick<CompressedTensorsOptions, "dtype" | "scaleDtype">,
): LinearPlan {
  const [rows, cols] = c.weight.shape as [number, number];
  const plan: LinearPlan = {
    name: c.name,
    kind: "dense",
    rows,
    cols,
    valueDtype: opts.dtype ?? losslessDtype(c.weight.data, source),
    scaleDtype: "F32",
    nnz: 0,
    masked: Boolean(c.mask),
    is24: c.mask ? isTwoFour(c.weight.data, rows, cols) : false,
  };
  const sparse = format === Format.SPARSE_BITMASK || format === Format.SPARSE_24_BITMASK;
  if (sparse && c.quant) {
    throw new Error(`${c.name}: ${format} stores pruned float weights; this linear is quantized (use --format pack-quantized)`);
  }
  if (format === Format.PACK_QUANTIZED && c.quant) {
    plan.kind = "packed";
    plan.scheme = schemeOf(c.quant, cols);
    plan.scaleDtype = opts.scaleDtype ?? losslessDtype(c.quant.scale, source);
  } else if (sparse && c.mask) {
    plan.kind = format === Format.SPARSE_BITMASK ? "bitmask" : "bitmask24";
    plan.nnz = plan.kind === "bitmask" ? c.weight.data.reduce((n, v) => n + (v !== 0 ? 1 : 0), 0) : (rows * cols) / 2;
    if (plan.kind === "bitmask24") bitmask24Compress(c.weight.data, rows, cols, c.name); // validates 2:4 now, not mid-write
  }
  return plan;
}

function isTwoFour(w: Float32Array, rows: number, cols: number): boolean {
  if (cols % 4 !== 0) return false;
  for (let i = 0; i < rows * cols; i += 4) {
    if ((w[i] !== 0 ? 1 : 0) + (w[i + 1] !== 0 ? 1 : 0) + (w[i + 2] !== 0 ? 1 : 0) + (w[i + 3] !== 0 ? 1 : 0) > 2) return false;
  }
  return true;
}

/** The smallest of source dtype / float32 that holds every value exactly. */
function losslessDtype(values: Float32Array, source: FloatDtype): FloatDtype {
  if (source === "F32") return "F32";
  const back = source === "F16" ? (v: number) => halfToFloat(floatToHalf(v)) : (v: number) => bf16ToFloat(floatToBf16(v));
  for (const v of values) if (back(v) !== v && !Number.isNaN(v)) return "F32";
  return source;
}

function schemeOf(q: QuantGrid, cols: number): WeightScheme {
  if (q.groupSize >= cols) return { bits: q.bits, sym: q.sym, strategy: "channel", groupSize: null, actorder: null };
  return { bits: q.bits, sym: q.sym, strategy: "group", groupSize: q.groupSize, actorder: q.gIdx ? "group" : null };
}

/** Names, dtypes and shapes of the tensors a linear is stored as. */
function linearTensors(p: LinearPlan): { name: string; dtype: Dtype; shape: number[] }[] {
  const n = p.name;
  switch (p.kind) {
    case "dense":
      return [{ name: `${n}.weight`, dtype: p.valueDtype, shape: [p.rows, p.cols] }];
    case "packed": {
      const s = p.scheme!;
      const groups = s.strategy === "channel" ? 1 : Math.ceil(p.cols / s.groupSize!);
      const out = [
        { name: `${n}.${Packed.PACKED}`, dtype: "I32" as Dtype, shape: [p.rows, packedWords(p.cols, s.bits)] },
        { name: `${n}.${Packed.SCALE}`, dtype: p.scaleDtype, shape: [p.rows, groups] },
        { name: `${n}.${Packed.SHAPE}`, dtype: "I64" as Dtype, shape: [2] },
      ];
      if (!s.sym) out.push({ name: `${n}.${Packed.ZERO_POINT}`, dtype: "I32", shape: [packedWords(p.rows, s.bits), groups] });
      if (s.actorder === "group") out.push({ name: `${n}.${Packed.G_IDX}`, dtype: "I32", shape: [p.cols] });
      return out;
    }
    case "bitmask":
    case "bitmask24": {
      const is24 = p.kind === "bitmask24";
      const out = [
        { name: `${n}.${Sparse.SHAPE}`, dtype: "I64" as Dtype, shape: is24 ? [2, 1] : [2] },
        { name: `${n}.${Sparse.COMPRESSED}`, dtype: p.valueDtype as Dtype, shape: is24 ? [p.rows, p.cols / 2] : [p.nnz] },
        { name: `${n}.${Sparse.BITMASK}`, dtype: "U8" as Dtype, shape: [p.rows, bitmaskBytesPerRow(p.cols)] },
      ];
      if (!is24) out.push({ name: `${n}.${Sparse.ROW_OFFSETS}`, dtype: "I64", shape: [p.rows] });
      return out;
    }
  }
}

/** The bytes of each tensor of one linear, keyed by full tensor name. */
function encodeLinear(c: CompressedLinear, p: LinearPlan): Map<string, Uint8Array> {
  const n = p.name;
  const parts = new Map<string, Uint8Array>();
  const shape = i64([p.rows, p.cols]);
  switch (p.kind) {
    case "dense":
      parts.set(`${n}.weight`, float32ToBytes(c.weight.data, p.valueDtype));
      break;
    case "packed": {
      const q = c.quant!;
      const s = p.scheme!;
      const codes = codesOnGrid(c, q);
      parts.set(`${n}.${Packed.PACKED}`, bytes(packInt32(codes, p.rows, p.cols, s.bits)));
      parts.set(`${n}.${Packed.SCALE}`, float32ToBytes(q.scale, p.scaleDtype));
      parts.set(`${n}.${Packed.SHAPE}`, shape);
      const groups = q.scale.length / p.rows;
      if (!s.sym) parts.set(`${n}.${Packed.ZERO_POINT}`, bytes(packInt32(Uint8Array.from(q.zero), p.rows, groups, s.bits, { dim: 0 })));
      if (s.actorder === "group") parts.set(`${n}.${Packed.G_IDX}`, bytes(q.gIdx!));
      break;
    }
    case "bitmask":
    case "bitmask24": {
      const b: BitmaskTensors = p.kind === "bitmask" ? bitmaskCompress(c.weight.data, p.rows, p.cols) : bitmask24Compress(c.weight.data, p.rows, p.cols, n);
      parts.set(`${n}.${Sparse.SHAPE}`, shape);
      parts.set(`${n}.${Sparse.COMPRESSED}`, float32ToBytes(b.values, p.valueDtype));
      parts.set(`${n}.${Sparse.BITMASK}`, b.bitmask);
      if (p.kind === "bitmask") parts.set(`${n}.${Sparse.ROW_OFFSETS}`, i64(Array.from(b.rowOffsets)));
      break;
    }
  }
  return parts;
}

/**
 * The codes of a quantized weight, checked to give back exactly the weight: a CompressedLinear
 * whose weight left its grid (e.g. pruned after quantizing) must not be written as something else.
 */
function codesOnGrid(c: CompressedLinear, q: QuantGrid): Uint8Array {
  const [rows, cols] = c.weight.shape as [number, number];
  const groups = q.scale.length / rows;
  const maxq = maxQ(q.bits);
  for (let k = 0; k < q.zero.length; k++) {
    const z = q.zero[k]!;
    if (!Number.isInteger(z) || z < 0 || z > maxq || (q.sym && z !== (maxq + 1) / 2)) {
      throw new Error(`${c.name}: zero point ${z} (row ${Math.floor(k / groups)}) is not a ${q.sym ? "symmetric" : ""} ${q.bits}-bit grid point`);
    }
  }
  const codes = quantizeToCodes(c.weight, q);
  const back = dequantize(codes, q, cols);
  for (let i = 0; i < back.length; i++) {
    if (back[i] !== c.weight.data[i]) {
      throw new Error(
        `${c.name}: weight [${Math.floor(i / cols)}, ${i % cols}] = ${c.weight.data[i]} is not on its ${q.bits}-bit grid (nearest ${back[i]})`,
      );
    }
  }
  return codes;
}

function sparsityInfo(format: CompressedTensorsFormat, linears: LinearPlan[], universe: readonly string[], globalSparsity: number): SparsityInfo | null {
  const sparse = linears.filter((p) => (format === Format.PACK_QUANTIZED ? p.masked : p.kind === "bitmask" || p.kind === "bitmask24"));
  if (sparse.length === 0) return null;
  const names = new Set(sparse.map((p) => p.name));
  const all = universe.every((n) => names.has(n) || isHead(n));
  return {
    format: format === Format.PACK_QUANTIZED ? Format.DENSE : format,
    globalSparsity,
    structure: sparse.every((p) => p.is24) ? "2:4" : "unstructured",
    targets: all ? ["Linear"] : [...names].sort(),
    ignore: ["lm_head"],
  };
}

/** One config group per distinct scheme; targets "Linear" when a single scheme covers them all. */
function quantGroups(linears: LinearPlan[]): { targets: string[]; scheme: WeightScheme }[] {
  const byScheme = new Map<string, { targets: string[]; scheme: WeightScheme }>();
  for (const p of linears) {
    if (p.kind !== "packed") continue;
    const key = JSON.stringify(p.scheme);
    if (!byScheme.has(key)) byScheme.set(key, { targets: [], scheme: p.scheme! });
    byScheme.get(key)!.targets.push(p.name);
  }
  const groups = [...byScheme.values()];
  if (groups.length === 1) groups[0]!.targets = ["Linear"]; // the rest of the linears are in `ignore`
  if (groups.length === 0) throw new Error("pack-quantized: no linear is quantized (use --format dense or sparse-bitmask)");
  return groups;
}

function ignoreList(universe: readonly string[], quantized: Set<string>): string[] {
  return ["lm_head", ...universe.filter((n) => !quantized.has(n) && !isHead(n)).sort()];
}

const isHead = (name: string) => name === "lm_head" || name.endsWith(".lm_head");

function groupSizeWarnings(linears: LinearPlan[]): string[] {
  const bad = linears.filter((p) => p.scheme?.strategy === "group" && p.cols % p.scheme.groupSize! !== 0);
  if (bad.length === 0) return [];
  const first = bad[0]!;
  return [
    `${bad.length} linear(s) (e.g. ${first.name}, ${first.cols} inputs) have a partial last group of ${first.cols % first.scheme!.groupSize!} columns: ` +
      `compressed-tensors and vLLM require in_features divisible by group_size ${first.scheme!.groupSize}; topiary reads the folder fine`,
  ];
}

function i64(values: number[]): Uint8Array {
  return new Uint8Array(BigInt64Array.from(values.map((v) => BigInt(v))).buffer);
}

function bytes(a: Int32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

