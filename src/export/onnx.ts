// `topiary export --to onnx`: a model (any family: models/decoder-graph.ts) as one ONNX decoder with a KV cache, laid out
// as transformers.js loads it (and onnxruntime runs it):
//   out/config.json                 the source config, plus "transformers.js_config" {dtype, …}
//   out/generation_config.json, tokenizer.json, tokenizer_config.json, …   (copied)
//   out/onnx/model{,_fp16,_q4,_q4f16,_quantized,_q2}.onnx   graph (+ weights when small)
//   out/onnx/model….onnx_data                  weights, when large (or asked for)
// Float weights are float32 or float16 (cast to float32 in the graph: onnxruntime folds the casts
// when it loads the model, and the CPU kernels compute in float32). Quantized linears become
// com.microsoft.MatMulNBits, from the checkpoint's own codes (WeightSource.quantized) or from
// round-to-nearest on export (`quantize`). The folder appears whole or not at all.
import fs from "node:fs";
import path from "node:path";
import type { QuantGrid } from "../formats/compressed-linear.js";
import { writeAll, writeDirAtomic } from "../formats/atomic.js";
import { rtnQuantize } from "../compress/quant/grid.js";
import { quantizeToCodes } from "../formats/compressed-linear.js";
import { blockSizeFor, MATMULNBITS_BITS, packMatMulNBits } from "../formats/onnx/matmulnbits.js";
import { copyAuxFiles } from "../formats/hf-folder.js";
import { externalDataName, modelFileName, MS_DOMAIN, ONNX_SUBFOLDER, type ExportDtype } from "../formats/onnx/names.js";
import type { WeightSource } from "../formats/weights.js";
import type { ModelConfig } from "../models/config.js";
import { buildDecoderGraph, type StoredWeights } from "../models/decoder-graph.js";
import { OPSET } from "../models/graph-ops.js";
import { familyOf, SUPPORTED_ARCHITECTURES } from "../models/registry.js";
import { GraphBuilder, typedBytes, type ElemType } from "../runtime/onnx-graph.js";
import { floatArrayToHalf } from "../tensor/dtype.js";
import { Tensor } from "../tensor/tensor.js";
import { TensorWarnings } from "./tensor-warnings.js";

const ONNX_WEIGHT_DTYPES = ["fp32", "fp16"] as const;
export type OnnxWeightDtype = (typeof ONNX_WEIGHT_DTYPES)[number];

export interface OnnxExportOptions {
  /** storage of float (non-quantized) weights; computation is float32 either way */
  dtype: OnnxWeightDtype;
  /**
   * Round-to-nearest quantize the decoder-layer linears on export (a plain checkpoint); `head`
   * also quantizes the LM head (with tied embeddings: a quantized copy of the table).
   */
  quantize?: { bits: number; groupSize: number; sym: boolean; head?: boolean };
  /** weights in a `.onnx_data` file beside the graph; "auto": when they exceed 1 GiB */
  externalData?: boolean | "auto";
  /**
   * MatMulNBits accuracy_level: 4 (default) lets the kernel quantize activations to int8 per
   * block, ~2× faster decoding on CPU (onnxruntime-genai's CPU default); 0 computes in float32.
   */
  accuracyLevel?: number;
  /** folder to copy config/tokenizer files from (null: write config.json from `config.raw` only) */
  sourceDir?: string | null;
  overwrite?: boolean;
}

export interface OnnxExportResult {
  dir: string;
  /** path of the .onnx file */
  file: string;
  /** transformers.js dtype of the file (its name suffix) */
  dtype: ExportDtype;
  externalData: boolean;
  /** bytes of the graph and its weights */
  bytes: number;
  /** linears stored as MatMulNBits */
  quantizedLinears: number;
  /** quantized linears the op cannot express, stored dense (dequantized) instead, with why */
  warnings: string[];
}

/** Above this many bytes of weights, "auto" writes them to an external data file. */
const EXTERNAL_DATA_THRESHOLD = 1024 ** 3;
/** A protobuf message (the .onnx file without external data) cannot exceed 2 GiB. */
const PROTOBUF_LIMIT = 2 * 1024 ** 3;
/** Offsets in the external data file are aligned so onnxruntime can map tensors directly. */
const EXTERNAL_ALIGNMENT = 4096;
const IR_VERSION = 10;
/** MatMulNBits accuracy_level when not asked: int8 activations (see OnnxExportOptions). */
const DEFAULT_ACCURACY_LEVEL = 4;

/** Options for a transformers.js dtype name (`topiary export --to onnx --type …`). */
export function onnxOptionsFor(type: ExportDtype, groupSize = 32): OnnxExportOptions {
  const bits = type === "q8" ? 8 : type === "q2" ? 2 : type.startsWith("q4") ? 4 : null;
  return {
    dtype: type === "fp16" || type === "q4f16" ? "fp16" : "fp32",
    quantize: bits === null ? undefined : { bits, groupSize, sym: false },
  };
}

/** Checks that topiary can export `config` with `opts`; throws one line otherwise. */
function checkOnnxExport(config: ModelConfig, opts: OnnxExportOptions): void {
  if (!familyOf(config.architecture)) {
    throw new Error(`cannot export architecture "${config.architecture}" to ONNX (supported: ${SUPPORTED_ARCHITECTURES.join(", ")})`);
  }
  if (!(ONNX_WEIGHT_DTYPES as readonly string[]).includes(opts.dtype)) {
    throw new Error(`cannot export weights as "${opts.dtype}" to ONNX (supported: ${ONNX_WEIGHT_DTYPES.join(", ")})`);
  }
  const q = opts.quantize;
  if (q) {
    if (!(MATMULNBITS_BITS as readonly number[]).includes(q.bits)) {
      throw new Error(`ONNX export quantizes to ${MATMULNBITS_BITS.join(", ")} bits (MatMulNBits), not ${q.bits}`);
    }
    const why = blockSizeFor({ groupSize: q.groupSize }, Number.MAX_SAFE_INTEGER);
    if (typeof why === "string") throw new Error(`--group-size ${q.groupSize}: ${why}`);
  }
}

/**
 * Writes the ONNX export of a model given by its config and weights (a checkpoint, an overlay of
 * compressed weights, or synthetic weights). Nothing is left behind when it fails.
 */
export async function exportOnnx(config: ModelConfig, weights: WeightSource, outDir: string, opts: OnnxExportOptions): Promise<OnnxExportResult> {
  checkOnnxExport(config, opts);
  const plan = planLinears(config, weights, opts);
  const dtype = exportDtype(opts.dtype, plan.bits);
  const file = modelFileName(dtype);
  // bytes of the stored weights, near enough (scales and zero points left out)
  const floatBytes = opts.dtype === "fp16" ? 2 : 4;
  const approxBytes = weights.names().reduce((a, n) => a + (weights.shape(n).reduce((x, y) => x * y, 1) * (plan.quantized.get(n)?.bits ?? floatBytes * 8)) / 8, 0);
  const external = opts.externalData === "auto" || opts.externalData === undefined ? approxBytes > EXTERNAL_DATA_THRESHOLD : opts.externalData;
  if (!external && approxBytes > PROTOBUF_LIMIT) {
    throw new Error(`${(approxBytes / 1e9).toFixed(1)} GB of weights do not fit in one protobuf file (2 GiB); use external data`);
  }
  const result: OnnxExportResult = {
    dir: path.resolve(outDir),
    file: path.join(path.resolve(outDir), ONNX_SUBFOLDER, file),
    dtype,
    externalData: external,
    bytes: 0,
    quantizedLinears: 0,
    warnings: plan.warnings,
  };
  await writeDirAtomic(
    outDir,
    (tmp) => {
      const onnxDir = path.join(tmp, ONNX_SUBFOLDER);
      fs.mkdirSync(onnxDir);
      const sink = new InitializerSink(external ? path.join(onnxDir, externalDataName(file)) : null, externalDataName(file));
      try {
        const g = new GraphBuilder("topiary_decoder");
        const store = new WeightStore(g, weights, opts, plan, sink, result);
        buildDecoderGraph(g, config, store);
        const proto = g.toProto({ opset: OPSET, irVersion: IR_VERSION, producer: "topiary", metadata: { "topiary.dtype": dtype } });
        const fd = fs.openSync(path.join(onnxDir, file), "w");
        try {
          for (const part of proto.parts()) writeAll(fd, part);
        } finally {
          fs.closeSync(fd);
        }
        result.bytes = proto.length + (external ? sink.bytes : 0);
      } finally {
        sink.close();
      }
      writeConfigFiles(tmp, config, opts.sourceDir ?? null, dtype, external ? file : null);
    },
    { overwrite: opts.overwrite },
  );
  return result;
}

/** transformers.js dtype from the float storage and the quantized bit width (if any). */
function exportDtype(floats: OnnxWeightDtype, bits: number | null): ExportDtype {
  if (bits === 8) return "q8";
  if (bits === 2) return "q2";
  if (bits !== null) return floats === "fp16" ? "q4f16" : "q4";
  return floats;
}

interface LinearPlan {
  /** weight name → where its codes come from, and their width */
  quantized: Map<string, { source: "checkpoint" | "rtn"; bits: number }>;
  /** widest bit width among quantized linears (names the file), null when none */
  bits: number | null;
  /** quantized checkpoint linears MatMulNBits cannot express, stored dense (dequantized) */
  warnings: string[];
}

/** Decides, before writing anything, which linears become MatMulNBits. */
function planLinears(config: ModelConfig, weights: WeightSource, opts: OnnxExportOptions): LinearPlan {
  const quantized: LinearPlan["quantized"] = new Map();
  const warnings = new TensorWarnings();
  let bits: number | null = null;
  const family = familyOf(config.architecture)!;
  const head = family.headWeight(config, weights);
  const candidates = [head];
  for (let i = 0; i < config.numLayers; i++) for (const l of family.linears(config, i)) candidates.push(`${family.layerPrefix(i)}${l.suffix}.weight`);
  for (const name of candidates) {
    if (!weights.has(name)) continue;
    const q = weights.quantized?.(name);
    const why = q ? matMulNBitsProblem(q.grid, q.shape[1]!) : null;
    if (q && why) {
      warnings.add(name, `stored dense (dequantized) because ${why}`);
    } else if (q) {
      quantized.set(name, { source: "checkpoint", bits: q.grid.bits });
      bits = Math.max(bits ?? 0, q.grid.bits);
    } else if (opts.quantize && (name !== head || opts.quantize.head)) {
      quantized.set(name, { source: "rtn", bits: opts.quantize.bits });
      bits = Math.max(bits ?? 0, opts.quantize.bits);
    }
  }
  return { quantized, bits, warnings: warnings.lines() };
}

/** Why a grid cannot become MatMulNBits, or null when it can. */
function matMulNBitsProblem(grid: QuantGrid, cols: number): string | null {
  if (!(MATMULNBITS_BITS as readonly number[]).includes(grid.bits)) return `MatMulNBits has no ${grid.bits}-bit form (${MATMULNBITS_BITS.join(", ")} bits)`;
  const block = blockSizeFor(grid, cols);
  return typeof block === "string" ? block : null;
}

/**
 * Writes initializers inline (kept in the graph) or appends them to the external data file.
 * An external tensor's InitTensor carries only its length: `data` is a zero-length-backed view
 * of the right size (the protobuf writer reads nothing but byteLength for external tensors).
 */
class InitializerSink {
  private fd: number | null;
  private offset = 0;
  bytes = 0;
  private placeholder = new ArrayBuffer(0);

  constructor(
    dataPath: string | null,
    private readonly location: string,
  ) {
    this.fd = dataPath ? fs.openSync(dataPath, "w") : null;
  }

  add(g: GraphBuilder, name: string, type: ElemType, dims: readonly number[], data: Uint8Array): string {
    this.bytes += data.byteLength;
    if (this.fd === null) return g.initializer({ name, type, dims, data });
    const pad = (EXTERNAL_ALIGNMENT - (this.offset % EXTERNAL_ALIGNMENT)) % EXTERNAL_ALIGNMENT;
    if (pad) writeAll(this.fd, new Uint8Array(pad));
    this.offset += pad;
    const external = { location: this.location, offset: this.offset };
    writeAll(this.fd, data);
    this.offset += data.byteLength;
    // never written: untouched pages of a large ArrayBuffer take no memory
    if (this.placeholder.byteLength < data.byteLength) this.placeholder = new ArrayBuffer(data.byteLength);
    return g.initializer({ name, type, dims, data: new Uint8Array(this.placeholder, 0, data.byteLength), external });
  }

  close(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }
}

/** StoredWeights over a WeightSource: stores each tensor once, as the options ask. */
class WeightStore implements StoredWeights {
  private readonly stored = new Map<string, string>();
  private readonly asFloat = new Map<string, string>();

  constructor(
    private readonly g: GraphBuilder,
    private readonly weights: WeightSource,
    private readonly opts: OnnxExportOptions,
    private readonly plan: LinearPlan,
    private readonly sink: InitializerSink,
    private readonly result: OnnxExportResult,
  ) {}

  has(name: string): boolean {
    return this.weights.has(name);
  }

  /** The initializer of a float tensor, in the storage dtype. */
  private raw(name: string): string {
    let v = this.stored.get(name);
    if (!v) {
      const data = this.weights.read(name);
      const fp16 = this.opts.dtype === "fp16";
      const bytes = fp16 ? typedBytes(floatArrayToHalf(data)) : typedBytes(data);
      v = this.sink.add(this.g, name, fp16 ? "float16" : "float32", this.weights.shape(name), bytes);
      this.stored.set(name, v);
    }
    return v;
  }

  float(name: string): string {
    if (this.opts.dtype === "fp32") return this.raw(name);
    let v = this.asFloat.get(name);
    if (!v) {
      v = this.g.op("Cast", [this.raw(name)], { to: 1 }, { name: `${name}_f32` });
      this.asFloat.set(name, v);
    }
    return v;
  }

  shape(name: string): readonly number[] {
    return this.weights.shape(name);
  }

  gather(name: string, ids: string): string {
    // gather rows in the storage dtype, then cast: a float16 table stays float16 in memory
    const rows = this.g.op("Gather", [this.raw(name), ids], { axis: 0 });
    return this.opts.dtype === "fp32" ? rows : this.g.op("Cast", [rows], { to: 1 });
  }

  linear(x: string, prefix: string, hasBias: boolean): string {
    const name = `${prefix}.weight`;
    const q = this.quantizedWeight(name);
    const bias = hasBias ? this.float(`${prefix}.bias`) : null;
    if (!q) return this.g.op("Gemm", bias ? [x, this.float(name), bias] : [x, this.float(name)], { transB: 1 });
    const [rows, cols] = this.weights.shape(name) as [number, number];
    const p = packMatMulNBits(q.codes, q.grid, rows, cols);
    const B = this.sink.add(this.g, `${name}_Q${p.bits}`, "uint8", [p.N, p.kBlocks, p.blobSize], p.B);
    const scales = this.sink.add(this.g, `${name}_scales`, "float32", [p.N * p.kBlocks], typedBytes(p.scales));
    const inputs = [x, B, scales];
    if (p.zeroPoints) inputs.push(this.sink.add(this.g, `${name}_zero_points`, "uint8", [p.zeroPoints.length], p.zeroPoints));
    const attrs: Record<string, number> = { K: p.K, N: p.N, bits: p.bits, block_size: p.blockSize };
    const accuracyLevel = this.opts.accuracyLevel ?? DEFAULT_ACCURACY_LEVEL;
    if (accuracyLevel) attrs.accuracy_level = accuracyLevel;
    this.result.quantizedLinears++;
    const y = this.g.op("MatMulNBits", inputs, attrs, { domain: MS_DOMAIN });
    return bias ? this.g.op("Add", [y, bias]) : y;
  }

  /** The codes of a linear to store as MatMulNBits, or null to store it as floats. */
  private quantizedWeight(name: string): { grid: QuantGrid; codes: Uint8Array } | null {
    const source = this.plan.quantized.get(name)?.source;
    if (!source) return null;
    if (source === "rtn") {
      const W = new Tensor(this.weights.read(name), this.weights.shape(name));
      const { quant } = rtnQuantize(W, this.opts.quantize!);
      return { grid: quant, codes: quantizeToCodes(W, quant) };
    }
    return this.weights.quantized!(name)!;
  }
}

/** config.json (with transformers.js hints) and the tokenizer/generation files beside it. */
function writeConfigFiles(dir: string, config: ModelConfig, sourceDir: string | null, dtype: ExportDtype, externalFile: string | null): void {
  const raw: Record<string, unknown> = { ...config.raw };
  // the weights are no longer in that layout; transformers.js would not read it anyway
  delete raw.quantization_config;
  const jsConfig: Record<string, unknown> = { ...((raw["transformers.js_config"] as object | undefined) ?? {}), dtype };
  if (externalFile) jsConfig.use_external_data_format = { [externalFile]: 1 };
  else delete jsConfig.use_external_data_format;
  raw["transformers.js_config"] = jsConfig;
  fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify(raw, null, 2) + "\n");
  if (sourceDir) copyAuxFiles(sourceDir, dir);
}
