// Reading a compressed-tensors folder as float32 weights (a WeightSource): each compressed linear
// `<name>` appears as `<name>.weight`, decoded on read; everything else passes through.
//   pack-quantized: codes unpacked, w = scale · (code − zero), computed in the scale's dtype as
//     compressed-tensors' `dequantize` does ((x_q − zp) · scale); `quantized(name)` hands the codes
//     and grid to exporters. Zero points packed along the output dim (≥ 0.9.4) or plain int8
//     (older writers) are both read; 3/5/6/7-bit codes use the word-aligned layout for files written
//     by compressed-tensors < 0.18, the dense one from 0.18 on (pack.ts).
//   sparse-bitmask / sparse-24-bitmask: values scattered back through the bitmask.
import path from "node:path";
import { type QuantGrid, dequantize } from "../compressed-linear.js";
import { packedWords, unpackInt32, type PackLayout } from "../pack.js";
import { floatArrayToBf16, floatArrayToHalf, bf16ArrayToFloat, halfArrayToFloat } from "../../tensor/dtype.js";
import { FormatError } from "../errors.js";
import { bytesToFloat32, SafetensorsModel, type TensorInfo } from "../safetensors.js";
import type { WeightSource } from "../weights.js";
import { bitmaskDecompress } from "./bitmask.js";
import { parseQuantizationConfig, schemeFor, type ParsedQuantizationConfig, type WeightScheme } from "./config.js";
import { codeOffset, Packed, QUANT_METHOD, Sparse } from "./constants.js";

export function isCompressedTensorsConfig(config: Record<string, unknown>): boolean {
  const qc = config.quantization_config as Record<string, unknown> | undefined;
  return typeof qc === "object" && qc !== null && qc.quant_method === QUANT_METHOD;
}

/** For registerWeightOpener: this reader for compressed-tensors folders, null for others. */
export function openCompressedTensors(dir: string, config: Record<string, unknown>): WeightSource | null {
  const qc = config.quantization_config;
  if (qc === undefined || qc === null) return null;
  // a quantization_config topiary cannot read would otherwise surface as "missing tensor …weight"
  const file = path.join(dir, "config.json");
  if (typeof qc !== "object" || Array.isArray(qc)) throw new FormatError(file, "quantization_config is not an object");
  const method = (qc as Record<string, unknown>).quant_method;
  if (method !== QUANT_METHOD) throw new FormatError(file, `quantization_config.quant_method ${JSON.stringify(method)} is not supported (topiary reads "${QUANT_METHOD}" checkpoints)`);
  return CompressedTensorsWeights.open(dir, config);
}

interface PackedLinear {
  kind: "packed";
  scheme: WeightScheme;
  shape: [number, number];
  layout: PackLayout;
  parts: string[];
}

interface SparseLinear {
  kind: "sparse";
  shape: [number, number];
  rowOffsets: boolean;
  parts: string[];
}

type Linear = PackedLinear | SparseLinear;

export class CompressedTensorsWeights implements WeightSource {
  /** `<name>.weight` → how it is stored */
  private readonly linears = new Map<string, Linear>();
  /** tensors read as they are */
  private readonly plain = new Set<string>();

  private constructor(
    readonly location: string,
    private readonly st: SafetensorsModel,
    private readonly qc: ParsedQuantizationConfig,
  ) {
    const names = new Set(st.names());
    const consumed = new Set<string>();
    for (const n of names) {
      if (n.endsWith(`.${Packed.PACKED}`)) {
        const prefix = n.slice(0, -Packed.PACKED.length - 1);
        this.linears.set(`${prefix}.weight`, this.packedLinear(prefix, names));
      } else if (n.endsWith(`.${Sparse.BITMASK}`)) {
        const prefix = n.slice(0, -Sparse.BITMASK.length - 1);
        if (!names.has(`${prefix}.${Sparse.COMPRESSED}`) || !names.has(`${prefix}.${Sparse.SHAPE}`)) continue;
        this.linears.set(`${prefix}.weight`, this.sparseLinear(prefix, names));
      }
    }
    for (const l of this.linears.values()) for (const p of l.parts) consumed.add(p);
    for (const n of names) if (!consumed.has(n)) this.plain.add(n);
    for (const n of this.linears.keys()) {
      if (this.plain.has(n)) throw new FormatError(this.fileOf(n), `"${n}" is stored both compressed and plain`);
    }
  }

  static open(dir: string, config: Record<string, unknown>): CompressedTensorsWeights {
    const qc = parseQuantizationConfig(`${dir}/config.json`, config.quantization_config as Record<string, unknown>);
    const st = SafetensorsModel.open(dir);
    if (qc.sparsityFormat === null && st.names().some((n) => n.endsWith(`.${Sparse.BITMASK}`))) {
      st.close();
      throw new FormatError(`${dir}/config.json`, "model.safetensors holds sparse bitmasks but quantization_config.sparsity_config.format names no sparse format");
    }
    try {
      return new CompressedTensorsWeights(st.location, st, qc);
    } catch (e) {
      st.close();
      throw e;
    }
  }

  names(): string[] {
    return [...this.plain, ...this.linears.keys()];
  }

  has(name: string): boolean {
    return this.plain.has(name) || this.linears.has(name);
  }

  shape(name: string): readonly number[] {
    const l = this.linears.get(name);
    return l ? l.shape : this.st.info(name).shape;
  }

  /** Stored dtype: "INT4" etc. for packed weights, the values' dtype for sparse ones. */
  dtype(name: string): string {
    const l = this.linears.get(name);
    if (!l) return this.st.info(name).dtype;
    return l.kind === "packed" ? `INT${l.scheme.bits}` : this.st.info(l.parts[1]!).dtype;
  }

  /** Bytes of all tensors that store `name`. */
  storedBytes(name: string): number {
    const l = this.linears.get(name);
    const parts = l ? l.parts : [name];
    return parts.reduce((a, p) => a + this.st.info(p).end - this.st.info(p).begin, 0);
  }

  read(name: string): Float32Array {
    const l = this.linears.get(name);
    if (!l) {
      const t = this.st.info(name);
      if (!["F32", "F16", "BF16", "F64"].includes(t.dtype)) {
        throw new FormatError(t.file, `tensor "${name}" has dtype ${t.dtype}; expected a floating type (F32, F16, BF16)`);
      }
      return this.st.readFloat32(name);
    }
    if (l.kind === "sparse") {
      const maskInfo = this.st.info(l.parts[2]!);
      if (maskInfo.dtype !== "U8" && maskInfo.dtype !== "I8" && maskInfo.dtype !== "BOOL") throw new FormatError(maskInfo.file, `"${maskInfo.name}" is ${maskInfo.dtype}, expected U8 (packed bits)`);
      const [values, bitmask, offsets] = [this.floats(l.parts[1]!), this.st.readBytes(l.parts[2]!), l.rowOffsets ? this.ints(l.parts[3]!) : null];
      const [rows, cols] = l.shape;
      try {
        return bitmaskDecompress(values, bitmask, rows, cols, offsets, `tensor "${name}"`);
      } catch (e) {
        throw new FormatError(this.fileOf(name), (e as Error).message);
      }
    }
    const { grid, codes } = this.quantized(name)!;
    const w = dequantize(codes, grid, l.shape[1]);
    // compressed-tensors computes (x_q − zp) · scale in the scale's dtype
    const scaleDtype = this.st.info(l.parts[1]!).dtype;
    if (scaleDtype === "F16") return halfArrayToFloat(floatArrayToHalf(w));
    if (scaleDtype === "BF16") return bf16ArrayToFloat(floatArrayToBf16(w));
    return w;
  }

  quantized(name: string): { grid: QuantGrid; codes: Uint8Array; shape: readonly number[] } | null {
    const l = this.linears.get(name);
    if (!l || l.kind !== "packed") return null;
    const [rows, cols] = l.shape;
    const { bits, sym } = l.scheme;
    const prefix = name.slice(0, -".weight".length);
    const file = this.fileOf(name);
    const scaleInfo = this.st.info(`${prefix}.${Packed.SCALE}`);
    let scale = this.floats(scaleInfo.name);
    if (scale.length === 1) scale = new Float32Array(rows).fill(scale[0]!); // strategy "tensor"
    const groups = scale.length / rows;
    if (!Number.isInteger(groups) || groups < 1) throw new FormatError(file, `"${scaleInfo.name}" has ${scale.length} values for ${rows} rows`);
    const grid: QuantGrid = {
      bits,
      sym,
      groupSize: groups === 1 ? cols : l.scheme.groupSize ?? Math.ceil(cols / groups),
      scale,
      zero: this.zeroPoints(prefix, rows, groups, l.scheme),
    };
    const gIdxName = `${prefix}.${Packed.G_IDX}`;
    if (this.st.has(gIdxName) && groups > 1) {
      const g = this.ints(gIdxName);
      if (g.length !== cols) throw new FormatError(file, `"${gIdxName}" has ${g.length} entries for ${cols} columns`);
      if (!g.includes(-1)) grid.gIdx = Int32Array.from(g); // -1: never initialised, column order
    }
    const want = grid.gIdx ? Math.max(...grid.gIdx) + 1 : Math.ceil(cols / grid.groupSize);
    if (want !== groups) throw new FormatError(file, `"${scaleInfo.name}" has ${groups} groups per row; ${cols} columns in groups of ${grid.groupSize} need ${want}`);
    const packed = this.int32(`${prefix}.${Packed.PACKED}`);
    const codes = unpackInt32(packed, rows, cols, bits, { layout: l.layout });
    return { grid, codes, shape: l.shape };
  }

  close(): void {
    this.st.close();
  }

  private packedLinear(prefix: string, names: Set<string>): PackedLinear {
    const file = this.st.info(`${prefix}.${Packed.PACKED}`).file;
    const need = (suffix: string) => {
      const n = `${prefix}.${suffix}`;
      if (!names.has(n)) throw new FormatError(file, `"${prefix}.${Packed.PACKED}" has no "${n}"`);
      return n;
    };
    const scheme = schemeFor(this.qc, prefix);
    if (!scheme) throw new FormatError(file, `no quantization_config.config_groups entry targets "${prefix}"`);
    const parts = [need(Packed.PACKED), need(Packed.SCALE), need(Packed.SHAPE)];
    if (!scheme.sym) parts.push(need(Packed.ZERO_POINT));
    else if (names.has(`${prefix}.${Packed.ZERO_POINT}`)) parts.push(`${prefix}.${Packed.ZERO_POINT}`);
    if (names.has(`${prefix}.${Packed.G_IDX}`)) parts.push(`${prefix}.${Packed.G_IDX}`);
    const shape = this.shape2(parts[2]!);
    const packed = this.st.info(parts[0]!);
    if (packed.dtype !== "I32" || packed.shape.length !== 2 || packed.shape[0] !== shape[0]) {
      throw new FormatError(file, `"${parts[0]}" is ${packed.dtype} [${packed.shape.join(", ")}], expected I32 [${shape[0]}, words]`);
    }
    return { kind: "packed", scheme, shape, layout: this.layoutOf(file, parts[0]!, packed.shape[1]!, shape[1], scheme.bits), parts };
  }

  /** dense vs word-aligned packing (they differ for 3, 5, 6, 7 bits): by width, then by version. */
  private layoutOf(file: string, name: string, words: number, cols: number, bits: number): PackLayout {
    const dense = packedWords(cols, bits, "dense");
    const aligned = packedWords(cols, bits, "word-aligned");
    if (words === dense && (words !== aligned || !this.qc.version || this.qc.version[0] > 0 || this.qc.version[1] >= 18)) return "dense";
    if (words === aligned) return "word-aligned";
    throw new FormatError(file, `"${name}" has ${words} words per row; ${cols} ${bits}-bit codes need ${dense}`);
  }

  private sparseLinear(prefix: string, names: Set<string>): SparseLinear {
    const parts = [`${prefix}.${Sparse.SHAPE}`, `${prefix}.${Sparse.COMPRESSED}`, `${prefix}.${Sparse.BITMASK}`];
    const rowOffsets = names.has(`${prefix}.${Sparse.ROW_OFFSETS}`);
    if (rowOffsets) parts.push(`${prefix}.${Sparse.ROW_OFFSETS}`);
    return { kind: "sparse", shape: this.shape2(parts[0]!), rowOffsets, parts };
  }

  /** A stored [out, in] shape tensor (I64/I32, [2] or [2, 1]). */
  private shape2(name: string): [number, number] {
    const v = this.ints(name);
    if (v.length !== 2 || !v.every((d) => Number.isSafeInteger(d) && d > 0)) {
      throw new FormatError(this.st.info(name).file, `"${name}" should hold a 2-D shape, got [${v.join(", ")}]`);
    }
    return [v[0]!, v[1]!];
  }

  private zeroPoints(prefix: string, rows: number, groups: number, scheme: WeightScheme): Float32Array {
    const offset = codeOffset(scheme.bits);
    if (scheme.sym) return new Float32Array(rows * groups).fill(offset);
    const t = this.st.info(`${prefix}.${Packed.ZERO_POINT}`);
    if (t.dtype === "I32" && t.shape[0] === packedWords(rows, scheme.bits) && numel(t) === packedWords(rows, scheme.bits) * groups) {
      return Float32Array.from(unpackInt32(this.int32(t.name), rows, groups, scheme.bits, { dim: 0 }));
    }
    if (t.dtype === "I8" && numel(t) === rows * groups) {
      return Float32Array.from(new Int8Array(this.raw(t.name)), (z) => z + offset);
    }
    if (numel(t) === 1) return new Float32Array(rows * groups).fill(this.ints(t.name)[0]! + offset); // strategy "tensor"
    throw new FormatError(t.file, `"${t.name}" is ${t.dtype} [${t.shape.join(", ")}]; expected I32 packed [${packedWords(rows, scheme.bits)}, ${groups}] or I8 [${rows}, ${groups}]`);
  }

  private raw(name: string): ArrayBuffer {
    const b = this.st.readBytes(name);
    return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
  }

  private int32(name: string): Int32Array {
    const t = this.st.info(name);
    if (t.dtype !== "I32") throw new FormatError(t.file, `"${name}" is ${t.dtype}, expected I32`);
    return new Int32Array(this.raw(name));
  }

  /** An integer tensor (I64, I32, I16, I8, U8) as numbers. */
  private ints(name: string): number[] {
    const t = this.st.info(name);
    const buf = this.raw(name);
    switch (t.dtype) {
      case "I64":
        return Array.from(new BigInt64Array(buf), Number);
      case "I32":
        return Array.from(new Int32Array(buf));
      case "I16":
        return Array.from(new Int16Array(buf));
      case "I8":
        return Array.from(new Int8Array(buf));
      case "U8":
        return Array.from(new Uint8Array(buf));
      default:
        throw new FormatError(t.file, `"${name}" is ${t.dtype}, expected an integer type`);
    }
  }

  private floats(name: string): Float32Array {
    const t = this.st.info(name);
    return bytesToFloat32(this.st.readBytes(name), t.dtype, `${t.file}: tensor "${name}"`);
  }

  private fileOf(name: string): string {
    const l = this.linears.get(name);
    return this.st.info(l ? l.parts[0]! : name).file;
  }
}

const numel = (t: TensorInfo) => t.shape.reduce((a, b) => a * b, 1);
