import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";
import { FormatError } from "../../../src/formats/errors.js";
import { GGUF_MAGIC, Keys, QuantType, ValueType } from "../../../src/formats/gguf/constants.js";
import { mapTensorName } from "../../../src/formats/gguf/names.js";
import { LLAMA_GGUF_NAMES } from "../../../src/models/llama.js";

const ggufTensorName = (name: string) => mapTensorName(LLAMA_GGUF_NAMES, name, "toGguf");
const hfTensorName = (name: string) => mapTensorName(LLAMA_GGUF_NAMES, name, "toHf");
import { dequantize, quantize } from "../../../src/formats/gguf/quants.js";
import { GgufFile } from "../../../src/formats/gguf/reader.js";
import { GgufWriter, writeGguf, type GgufTensorToWrite, type MetadataValue } from "../../../src/formats/gguf/writer.js";
import { REPO, tempDir } from "../../helpers.js";

const dir = tempDir("topiary-gguf-");

function ramp(n: number, scale = 0.01): Float32Array {
  return new Float32Array(n).map((_, i) => Math.sin(i * 0.37) * scale * (1 + (i % 7)));
}

const METADATA: [string, MetadataValue][] = [
  [Keys.General.ARCHITECTURE, { type: ValueType.STRING, value: "llama" }],
  [Keys.General.ALIGNMENT, { type: ValueType.UINT32, value: 32 }],
  ["test.u8", { type: ValueType.UINT8, value: 255 }],
  ["test.i8", { type: ValueType.INT8, value: -128 }],
  ["test.u16", { type: ValueType.UINT16, value: 65535 }],
  ["test.i16", { type: ValueType.INT16, value: -32768 }],
  ["test.i32", { type: ValueType.INT32, value: -5 }],
  ["test.f32", { type: ValueType.FLOAT32, value: 1e-5 }],
  ["test.bool", { type: ValueType.BOOL, value: true }],
  ["test.u64", { type: ValueType.UINT64, value: 2n ** 60n }],
  ["test.i64", { type: ValueType.INT64, value: -3 }],
  ["test.f64", { type: ValueType.FLOAT64, value: Math.PI }],
  ["test.unicode", { type: ValueType.STRING, value: "▁héllo <0x0A>" }],
  ["test.tokens", { type: ValueType.ARRAY, itemType: ValueType.STRING, value: ["<unk>", "▁a", ""] }],
  ["test.scores", { type: ValueType.ARRAY, itemType: ValueType.FLOAT32, value: [0, -1.5, -1000] }],
  ["test.empty", { type: ValueType.ARRAY, itemType: ValueType.INT32, value: [] }],
];

function sampleTensors(): GgufTensorToWrite[] {
  const a = ramp(3 * 5);
  const b = ramp(2 * 64);
  const c = ramp(4 * 256);
  const d = ramp(2 * 3 * 32);
  return [
    { name: "a.weight", shape: [3, 5], type: QuantType.F32, data: () => quantize(QuantType.F32, a, 5) },
    { name: "b.weight", shape: [2, 64], type: QuantType.F16, data: () => quantize(QuantType.F16, b, 64) },
    { name: "c.weight", shape: [4, 256], type: QuantType.Q4_K, data: () => quantize(QuantType.Q4_K, c, 256) },
    { name: "d.weight", shape: [2, 3, 32], type: QuantType.Q8_0, data: () => quantize(QuantType.Q8_0, d, 32) },
    { name: "e.weight", shape: [1, 64], type: QuantType.Q4_0, data: () => quantize(QuantType.Q4_0, b.subarray(0, 64), 64) },
  ];
}

describe("GGUF writer → reader", () => {
  test("round trip: every metadata type, tensor shapes, types, aligned offsets and bytes", () => {
    const file = path.join(dir, "round.gguf");
    const tensors = sampleTensors();
    writeGguf(file, METADATA, tensors);
    const g = GgufFile.open(file);
    try {
      assert.equal(g.version, 3);
      assert.equal(g.alignment, 32);
      assert.equal(g.dataOffset % 32, 0);
      assert.deepEqual([...g.metadata.keys()], METADATA.map(([k]) => k));
      for (const [k, v] of METADATA) {
        const got = g.metadata.get(k)!;
        assert.equal(got.type, v.type, k);
        const want = v.type === ValueType.FLOAT32 ? Math.fround(Number(v.value)) : v.value;
        if (v.type === ValueType.ARRAY) assert.deepEqual(got.value, v.value, k);
        else assert.equal(got.value, want, k);
      }
      assert.deepEqual(
        g.tensors.map((t) => [t.name, t.shape, t.ne, t.type]),
        tensors.map((t) => [t.name, t.shape, [...t.shape].reverse(), t.type]),
      );
      for (const t of tensors) {
        const info = g.tensor(t.name);
        assert.equal(info.offset % 32, 0);
        assert.deepEqual(g.readBytes(t.name), t.data());
        assert.deepEqual(g.readFloat32(t.name), dequantize(t.type, t.data()));
      }
    } finally {
      g.close();
    }
  });

  test("the writer refuses writing out of order, duplicates, and wrong sizes", () => {
    const file = path.join(dir, "order.gguf");
    const fd = fs.openSync(file, "w");
    try {
      const w = new GgufWriter(fd, file);
      w.addString("k", "v");
      assert.throws(() => w.addString("k", "again"), /duplicate key "k"/);
      w.addTensorInfo("t", [2, 32], QuantType.Q8_0);
      assert.throws(() => w.addTensorInfo("t", [32], QuantType.F32), /duplicate tensor name "t"/);
      assert.throws(() => w.addTensorInfo("odd", [3, 48], QuantType.Q4_0), /tensor "odd": row of 48 values is not a multiple of Q4_0's block size 32/);
      assert.throws(() => w.writeKvData(), /cannot write key\/values before the header: expected state HEADER, got EMPTY/);
      w.writeHeader();
      assert.throws(() => w.addString("late", "x"), /cannot add key "late" after writing started/);
      assert.throws(() => w.writeTensorInfos(), /expected state KV_DATA, got HEADER/);
      w.writeKvData();
      w.writeTensorInfos();
      assert.throws(() => w.writeTensorData("other", new Uint8Array(68)), /expected data of tensor "t" next, got "other"/);
      assert.throws(() => w.writeTensorData("t", new Uint8Array(10)), /tensor "t" has 10 bytes; Q8_0 \[2, 32\] needs 68/);
      assert.throws(() => w.finish(), /1 of 1 tensors were not written \(next: "t"\)/);
      w.writeTensorData("t", new Uint8Array(68));
      w.finish();
    } finally {
      fs.closeSync(fd);
    }
    assert.equal(GgufFile.open(file).tensors.length, 1);
  });

  test("a failure while writing leaves no file and no temporary file behind", () => {
    const sub = path.join(dir, "atomic");
    fs.mkdirSync(sub);
    const file = path.join(sub, "broken.gguf");
    const tensors = sampleTensors();
    tensors[2] = { ...tensors[2]!, data: () => { throw new Error("cannot produce c.weight"); } };
    assert.throws(() => writeGguf(file, METADATA, tensors), /cannot produce c.weight/);
    assert.deepEqual(fs.readdirSync(sub), []);
  });

  test("llama.cpp names map both ways", () => {
    assert.equal(ggufTensorName("model.layers.12.self_attn.q_proj.weight"), "blk.12.attn_q.weight");
    assert.equal(ggufTensorName("model.layers.0.mlp.down_proj.weight"), "blk.0.ffn_down.weight");
    assert.equal(ggufTensorName("model.layers.3.post_attention_layernorm.weight"), "blk.3.ffn_norm.weight");
    assert.equal(ggufTensorName("model.embed_tokens.weight"), "token_embd.weight");
    assert.equal(ggufTensorName("lm_head.weight"), "output.weight");
    assert.equal(ggufTensorName("model.norm.weight"), "output_norm.weight");
    assert.equal(ggufTensorName("model.layers.x.self_attn.q_proj.weight"), null);
    assert.equal(hfTensorName("blk.4.attn_output.weight"), "model.layers.4.self_attn.o_proj.weight");
    assert.equal(hfTensorName("blk.4.attn_k.bias"), "model.layers.4.self_attn.k_proj.bias");
  });
});

describe("GGUF reader validation", () => {
  const good = path.join(dir, "good.gguf");
  writeGguf(good, METADATA.slice(0, 3), sampleTensors().slice(0, 3));
  const bytes = fs.readFileSync(good);

  function broken(name: string, edit: (b: Buffer) => Buffer): string {
    const file = path.join(dir, name);
    fs.writeFileSync(file, edit(Buffer.from(bytes)));
    return file;
  }

  function expectError(file: string, pattern: RegExp): void {
    assert.throws(
      () => GgufFile.open(file),
      (e: unknown) => e instanceof FormatError && e.file === file && pattern.test(e.problem),
    );
  }

  test("wrong magic, unsupported version, too short", () => {
    expectError(broken("magic.gguf", (b) => (b.writeUInt32LE(0x12345678, 0), b)), /not a GGUF file \(magic 0x12345678, expected 0x46554747 "GGUF"\)/);
    expectError(broken("v1.gguf", (b) => (b.writeUInt32LE(1, 4), b)), /GGUF version 1 is not supported/);
    expectError(broken("short.gguf", (b) => b.subarray(0, 10)), /10 bytes is too short/);
    assert.equal(bytes.readUInt32LE(0), GGUF_MAGIC);
  });

  test("truncated key/values and data", () => {
    expectError(broken("trunc-info.gguf", (b) => b.subarray(0, 140)), /truncated: .* at byte \d+ needs \d+ bytes, the file has 140/);
    expectError(broken("trunc-data.gguf", (b) => b.subarray(0, b.length - 100)), /tensor "c.weight" ends at byte \d+, past the end of the file/);
  });

  test("counts the file cannot hold, unknown types, bad offsets", () => {
    expectError(broken("count.gguf", (b) => (b.writeBigUInt64LE(1n << 40n, 16), b)), /header claims 1099511627776 key\/values/);
    // first key is general.architecture: 8-byte length + 20 bytes of name, then its type
    expectError(broken("vtype.gguf", (b) => (b.writeUInt32LE(99, 24 + 8 + 20), b)), /key "general.architecture" has unknown value type 99/);
    const infoAt = bytes.indexOf(Buffer.from("a.weight")) + 8;
    // a.weight: n_dims (4), 2 dims (16), type (4), offset (8)
    expectError(broken("ttype.gguf", (b) => (b.writeUInt32LE(77, infoAt + 4 + 16), b)), /tensor "a.weight" has unknown type 77/);
    expectError(broken("ndims.gguf", (b) => (b.writeUInt32LE(5, infoAt), b)), /tensor "a.weight" has 5 dimensions/);
    const bAt = bytes.indexOf(Buffer.from("b.weight")) + 8;
    expectError(broken("offset2.gguf", (b) => (b.writeBigUInt64LE(96n, bAt + 4 + 16 + 4), b)), /tensor "b.weight" starts at data offset 96; ggml expects 64 \(tensors packed in order, each padded to 32 bytes\)/);
  });

  test("a missing file is named", () => {
    expectError(path.join(dir, "nope.gguf"), /no such file/);
  });
});

describe("GGUF interop with ggml's own gguf.cpp (libggml-base.so from node-llama-cpp)", () => {
  const lib = path.join(REPO, "node_modules/@node-llama-cpp/linux-x64/bins/linux-x64");
  const gcc = spawnSync("gcc", ["--version"]).status === 0;
  const skip = !gcc ? "gcc is not installed" : !fs.existsSync(path.join(lib, "libggml-base.so")) ? `${lib}/libggml-base.so is missing` : false;
  const exe = path.join(dir, "ggml-gguf");
  const build = () => {
    if (fs.existsSync(exe)) return;
    const src = path.join(import.meta.dirname, "fixtures", "ggml-gguf.c");
    const cc = spawnSync("gcc", ["-O1", "-o", exe, src, `-L${lib}`, "-l:libggml-base.so", `-Wl,-rpath,${lib}`], { encoding: "utf8" });
    assert.equal(cc.status, 0, cc.stderr);
  };

  test("a file ggml writes reads back here: keys, types, values, tensors, offsets, bytes", { skip }, () => {
    build();
    const file = path.join(dir, "by-ggml.gguf");
    assert.equal(spawnSync(exe, ["write", file]).status, 0);
    const listing = spawnSync(exe, ["read", file], { encoding: "utf8" }).stdout;
    const g = GgufFile.open(file);
    try {
      assert.equal(g.dataOffset, Number(/data_offset (\d+)/.exec(listing)![1]));
      assert.deepEqual(
        [...g.metadata].map(([k, v]) => `key ${k} ${v.type}`),
        listing.split("\n").filter((l) => l.startsWith("key ")),
      );
      assert.equal(g.get("llama.block_count"), 5);
      assert.equal(g.get("test.i8"), -128);
      assert.equal(g.get("test.u64"), 2n ** 60n);
      assert.equal(g.get("test.f64"), 3.141592653589793);
      assert.deepEqual(g.get("tokenizer.ggml.tokens"), ["<unk>", "▁a", ""]);
      assert.deepEqual(g.get("tokenizer.ggml.scores"), [0, -1.5, -1000]);
      assert.deepEqual(
        g.tensors.map((t) => `tensor ${t.name} ${t.type} ${t.offset}`),
        listing.split("\n").filter((l) => l.startsWith("tensor ")),
      );
      assert.deepEqual(g.tensor("b.weight").shape, [2, 64]);
      assert.deepEqual([...g.readFloat32("a.weight")], Array.from({ length: 15 }, (_, i) => i * 0.5));
      assert.deepEqual([...g.readFloat32("b.weight")], new Array(128).fill(1));
      assert.deepEqual([...g.readBytes("c.weight")], Array.from({ length: 68 }, (_, i) => i));
    } finally {
      g.close();
    }
  });

  test("a file written here reads in ggml: same data offset, keys and tensor offsets", { skip }, () => {
    build();
    const file = path.join(dir, "for-ggml.gguf");
    writeGguf(file, METADATA, sampleTensors());
    const r = spawnSync(exe, ["read", file], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stdout);
    const g = GgufFile.open(file);
    try {
      const ours = [`data_offset ${g.dataOffset}`, ...[...g.metadata].map(([k, v]) => `key ${k} ${v.type}`), ...g.tensors.map((t) => `tensor ${t.name} ${t.type} ${t.offset}`)];
      assert.deepEqual(r.stdout.trim().split("\n"), ours);
    } finally {
      g.close();
    }
  });
});
