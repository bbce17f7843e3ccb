// A tiny ONNX graph builder. Models in topiary are ONNX graphs written in TypeScript (see
// models/family.ts and its adapters) and run by onnxruntime; the same builder serialises exported models.
// Field numbers are those of onnx/onnx.proto (ModelProto, GraphProto, NodeProto, ...).
import { ProtoWriter } from "./protobuf.js";

/** ONNX TensorProto.DataType */
const OnnxType = {
  float32: 1,
  uint8: 2,
  int8: 3,
  uint16: 4,
  int16: 5,
  int32: 6,
  int64: 7,
  bool: 9,
  float16: 10,
  float64: 11,
  uint32: 12,
  uint64: 13,
  bfloat16: 16,
} as const;
export type ElemType = keyof typeof OnnxType;

/** A dimension: a fixed size or a symbolic name ("batch", "seq"). */
export type Dim = number | string;

/** An attribute value. Plain integers become INT, other numbers FLOAT; use `float()` for an integral float. */
export type AttrValue = number | string | number[] | FloatAttr | FloatsAttr | TensorAttr;
interface FloatAttr {
  kind: "float";
  value: number;
}
interface FloatsAttr {
  kind: "floats";
  value: number[];
}
interface TensorAttr {
  kind: "tensor";
  value: InitTensor;
}
export const float = (value: number): FloatAttr => ({ kind: "float", value });

/** A constant tensor stored in the model (or, for export, in an external data file). */
export interface InitTensor {
  name: string;
  type: ElemType;
  dims: readonly number[];
  data: Uint8Array;
  /** When set, raw bytes live in an external file at this offset instead of raw_data. */
  external?: { location: string; offset: number };
}

interface Node {
  op: string;
  inputs: string[];
  outputs: string[];
  attrs: Record<string, AttrValue>;
  domain: string;
  name: string;
}

interface ValueInfo {
  name: string;
  type: ElemType;
  dims: readonly Dim[];
}

export function typedBytes(a: Float32Array | Int32Array | Uint8Array | Uint16Array | BigInt64Array | Int8Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

export class GraphBuilder {
  private nodes: Node[] = [];
  private inputs: ValueInfo[] = [];
  private outputs: ValueInfo[] = [];
  private inits: InitTensor[] = [];
  private counter = 0;
  private readonly usedDomains = new Set<string>();

  constructor(readonly name: string) {}

  input(name: string, type: ElemType, dims: readonly Dim[]): string {
    this.inputs.push({ name, type, dims });
    return name;
  }

  output(value: string, name: string, type: ElemType, dims: readonly Dim[]): void {
    const out = value === name ? value : this.op("Identity", [value], {}, { name });
    this.outputs.push({ name: out, type, dims });
  }

  initializer(t: InitTensor): string {
    this.inits.push(t);
    return t.name;
  }

  /** Adds a node with one output; returns the output's name. */
  op(op: string, inputs: string[], attrs: Record<string, AttrValue> = {}, opts: { domain?: string; name?: string } = {}): string {
    return this.opN(op, inputs, 1, attrs, opts)[0]!;
  }

  /** Adds a node with `n` outputs. An empty input name ("") marks an omitted optional input. */
  opN(op: string, inputs: string[], n: number, attrs: Record<string, AttrValue> = {}, opts: { domain?: string; name?: string } = {}): string[] {
    const id = this.counter++;
    const base = opts.name ?? `${op.toLowerCase()}_${id}`;
    const outputs = n === 1 ? [base] : Array.from({ length: n }, (_, i) => `${base}_${i}`);
    const domain = opts.domain ?? "";
    if (domain) this.usedDomains.add(domain);
    this.nodes.push({ op, inputs, outputs, attrs, domain, name: `${op}_${id}` });
    return outputs;
  }

  constInt64(values: readonly number[], name?: string): string {
    const data = typedBytes(BigInt64Array.from(values.map((v) => BigInt(v))));
    return this.initializer({ name: name ?? `const_i64_${this.counter++}`, type: "int64", dims: [values.length], data });
  }

  /** An int64 scalar (dims []), e.g. for Range. */
  constInt64Scalar(value: number): string {
    const data = typedBytes(BigInt64Array.of(BigInt(value)));
    return this.initializer({ name: `const_i64s_${this.counter++}`, type: "int64", dims: [], data });
  }

  constFloat(values: readonly number[], dims: readonly number[] = [values.length], name?: string): string {
    return this.initializer({ name: name ?? `const_f32_${this.counter++}`, type: "float32", dims, data: typedBytes(Float32Array.from(values)) });
  }

  /** Serialises to a ModelProto. `opset` is the default-domain opset; com.microsoft is version 1. */
  toProto(opts: { opset?: number; irVersion?: number; producer?: string; metadata?: Record<string, string> } = {}): ProtoWriter {
    const opset = opts.opset ?? 17;
    const m = new ProtoWriter();
    m.int(1, opts.irVersion ?? 8);
    m.string(2, opts.producer ?? "topiary");
    m.message(7, this.graphProto());
    m.message(8, new ProtoWriter().string(1, "").int(2, opset));
    for (const d of this.usedDomains) m.message(8, new ProtoWriter().string(1, d).int(2, 1));
    for (const [k, v] of Object.entries(opts.metadata ?? {})) m.message(14, new ProtoWriter().string(1, k).string(2, v));
    return m;
  }

  toBytes(opts: Parameters<GraphBuilder["toProto"]>[0] = {}): Uint8Array {
    return this.toProto(opts).finish();
  }

  private graphProto(): ProtoWriter {
    const g = new ProtoWriter();
    for (const n of this.nodes) g.message(1, nodeProto(n));
    g.string(2, this.name);
    for (const t of this.inits) g.message(5, tensorProto(t));
    for (const v of this.inputs) g.message(11, valueInfoProto(v));
    for (const v of this.outputs) g.message(12, valueInfoProto(v));
    return g;
  }
}

function nodeProto(n: Node): ProtoWriter {
  const p = new ProtoWriter();
  for (const i of n.inputs) p.string(1, i);
  for (const o of n.outputs) p.string(2, o);
  p.string(3, n.name);
  p.string(4, n.op);
  for (const [k, v] of Object.entries(n.attrs)) p.message(5, attributeProto(k, v));
  if (n.domain) p.string(7, n.domain);
  return p;
}

// AttributeProto.AttributeType
const AttrType = { FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, FLOATS: 6, INTS: 7 } as const;

function attributeProto(name: string, v: AttrValue): ProtoWriter {
  const a = new ProtoWriter().string(1, name);
  if (typeof v === "number") {
    if (Number.isInteger(v)) a.int(3, v).int(20, AttrType.INT);
    else a.float(2, v).int(20, AttrType.FLOAT);
  } else if (typeof v === "string") {
    a.string(4, v).int(20, AttrType.STRING);
  } else if (Array.isArray(v)) {
    a.packedInts(8, v).int(20, AttrType.INTS);
  } else if (v.kind === "float") {
    a.float(2, v.value).int(20, AttrType.FLOAT);
  } else if (v.kind === "floats") {
    a.packedFloats(7, v.value).int(20, AttrType.FLOATS);
  } else {
    a.message(5, tensorProto(v.value)).int(20, AttrType.TENSOR);
  }
  return a;
}

function tensorProto(t: InitTensor): ProtoWriter {
  const p = new ProtoWriter();
  if (t.dims.length > 0) p.packedInts(1, t.dims);
  p.int(2, OnnxType[t.type]);
  p.string(8, t.name);
  if (t.external) {
    const entry = (k: string, v: string) => new ProtoWriter().string(1, k).string(2, v);
    p.message(13, entry("location", t.external.location));
    p.message(13, entry("offset", String(t.external.offset)));
    p.message(13, entry("length", String(t.data.byteLength)));
    p.int(14, 1); // DataLocation.EXTERNAL
  } else {
    p.bytes(9, t.data);
  }
  return p;
}

function valueInfoProto(v: ValueInfo): ProtoWriter {
  const shape = new ProtoWriter();
  for (const d of v.dims) {
    const dim = new ProtoWriter();
    if (typeof d === "number") dim.int(1, d);
    else dim.string(2, d);
    shape.message(1, dim);
  }
  const tensorType = new ProtoWriter().int(1, OnnxType[v.type]).message(2, shape);
  const type = new ProtoWriter().message(1, tensorType);
  return new ProtoWriter().string(1, v.name).message(2, type);
}
