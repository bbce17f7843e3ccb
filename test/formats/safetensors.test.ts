import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";
import { FormatError } from "../../src/formats/errors.js";
import { float32ToBytes, SafetensorsFile, SafetensorsModel, writeSafetensors, type TensorToWrite } from "../../src/formats/safetensors.js";
import { SafetensorsWeights } from "../../src/formats/weights.js";
import { STORIES, tempDir } from "../helpers.js";
import { rawSafetensors, SAFETENSORS_CASES } from "./broken-models.js";

const bytesOf = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** Asserts that `fn` throws a FormatError naming `file` whose message matches `message`. */
function throwsFormat(fn: () => unknown, file: string, message: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof FormatError, `expected FormatError, got ${String(e)}`);
    assert.equal(e.file, file);
    assert.ok(e.message.startsWith(`${file}: `), e.message);
    assert.match(e.message, message);
    assert.ok(!e.message.includes("\n"), "one line");
    return true;
  });
}

describe("safetensors round trip", () => {
  const dir = tempDir();
  const values = Float32Array.of(1, -2.5, 0.1, 65504, 1e-7, 3.14159);
  const tensors: TensorToWrite[] = [
    { name: "f32", dtype: "F32", shape: [2, 3], data: bytesOf(values) },
    { name: "f16", dtype: "F16", shape: [3, 2], data: () => float32ToBytes(values, "F16") },
    { name: "bf16", dtype: "BF16", shape: [6], data: float32ToBytes(values, "BF16") },
    { name: "f64", dtype: "F64", shape: [2], data: bytesOf(Float64Array.of(0.5, -1e300)) },
    { name: "i64", dtype: "I64", shape: [2], data: bytesOf(BigInt64Array.of(-1n, 2n ** 40n)) },
    { name: "i32", dtype: "I32", shape: [1, 3], data: bytesOf(Int32Array.of(-7, 0, 2 ** 31 - 1)) },
    { name: "i16", dtype: "I16", shape: [2], data: bytesOf(Int16Array.of(-300, 300)) },
    { name: "i8", dtype: "I8", shape: [3], data: bytesOf(Int8Array.of(-128, 0, 127)) },
    { name: "u8", dtype: "U8", shape: [4], data: Uint8Array.of(0, 1, 254, 255) },
    { name: "bool", dtype: "BOOL", shape: [2], data: Uint8Array.of(1, 0) },
    { name: "scalar", dtype: "F32", shape: [], data: bytesOf(Float32Array.of(42)) },
    { name: "empty", dtype: "F32", shape: [2, 0], data: new Uint8Array(0) },
  ];
  const file = path.join(dir, "rt.safetensors");
  writeSafetensors(file, tensors, { format: "pt", note: "round trip" });

  test("header, dtypes, shapes and bytes survive", () => {
    const st = SafetensorsFile.open(file);
    try {
      assert.deepEqual(st.metadata, { format: "pt", note: "round trip" });
      assert.deepEqual([...st.tensors.keys()].sort(), tensors.map((t) => t.name).sort());
      const headerLen = Number(fs.readFileSync(file).readBigUInt64LE(0));
      assert.equal(headerLen % 8, 0, "header padded to 8 bytes");
      for (const t of tensors) {
        const info = st.info(t.name);
        assert.equal(info.dtype, t.dtype, t.name);
        assert.deepEqual(info.shape, t.shape, t.name);
        const want = typeof t.data === "function" ? t.data() : t.data;
        assert.deepEqual(st.readBytes(t.name), new Uint8Array(want), t.name);
      }
      assert.equal(st.info("f32").begin % 8, 0, "first tensor 8-byte aligned");
    } finally {
      st.close();
    }
  });

  test("readFloat32 converts F16 / BF16 / F64 with round-to-nearest-even", () => {
    const m = SafetensorsModel.open(file);
    try {
      assert.deepEqual(m.readFloat32("f32"), values);
      // expected values from numpy astype(float16) / a bf16 round-to-nearest-even cast:
      // 0.1 → f16 0x2e66 = 0.0999755859375; 3.14159 → 0x4248 = 3.140625; 1e-7 → subnormal 0x0002 = 2·2^-24
      assert.deepEqual(Array.from(m.readFloat32("f16")), [1, -2.5, 0.0999755859375, 65504, 1.1920928955078125e-7, 3.140625]);
      // bf16 keeps 8 bits of mantissa: 65504 → 65536, 0.1 → 0.10009765625
      assert.deepEqual(Array.from(m.readFloat32("bf16")), [1, -2.5, 0.10009765625, 65536, 1.0011717677116394e-7, 3.140625]);
      assert.deepEqual(Array.from(m.readFloat32("f64")), [0.5, -Infinity]); // -1e300 overflows float32
      assert.deepEqual(m.readFloat32("scalar"), Float32Array.of(42));
      assert.equal(m.readFloat32("empty").length, 0);
      const w = SafetensorsWeights.open(file);
      throwsFormat(() => w.read("i32"), file, /tensor "i32" has dtype I32; expected a floating type/);
      assert.equal(w.storedBytes("f16"), 12);
      w.close();
      throwsFormat(() => m.info("nope"), file, /no tensor named "nope"/);
    } finally {
      m.close();
    }
  });

  test("writer refuses duplicate names and wrong byte counts, leaving no file behind", () => {
    const bad = path.join(dir, "bad.safetensors");
    assert.throws(
      () => writeSafetensors(bad, [tensors[0]!, tensors[0]!]),
      /bad\.safetensors: duplicate tensor name "f32"/,
    );
    assert.throws(
      () => writeSafetensors(bad, [{ name: "x", dtype: "F32", shape: [3], data: new Uint8Array(8) }]),
      /bad\.safetensors: tensor "x" has 8 bytes, shape and dtype need 12/,
    );
    assert.deepEqual(fs.readdirSync(dir).sort(), ["rt.safetensors"]);
  });
});

describe("sharded checkpoints (model.safetensors.index.json)", () => {
  const dir = tempDir();
  const a = Float32Array.from({ length: 6 }, (_, i) => i + 0.5);
  const b = Float32Array.of(-1, -2);
  const c = Float32Array.of(7);
  writeSafetensors(path.join(dir, "model-00001-of-00002.safetensors"), [
    { name: "a", dtype: "F32", shape: [2, 3], data: bytesOf(a) },
    { name: "b", dtype: "F16", shape: [2], data: float32ToBytes(b, "F16") },
  ], { format: "pt" });
  writeSafetensors(path.join(dir, "model-00002-of-00002.safetensors"), [{ name: "c", dtype: "BF16", shape: [1], data: float32ToBytes(c, "BF16") }]);
  const index = path.join(dir, "model.safetensors.index.json");
  const weightMap = { a: "model-00001-of-00002.safetensors", b: "model-00001-of-00002.safetensors", c: "model-00002-of-00002.safetensors" };
  fs.writeFileSync(index, JSON.stringify({ metadata: { total_size: 34 }, weight_map: weightMap }));

  test("a folder with an index reads tensors from both shards", () => {
    const m = SafetensorsModel.open(dir);
    try {
      assert.equal(m.files.length, 2);
      assert.deepEqual(m.names().sort(), ["a", "b", "c"]);
      assert.deepEqual(m.readFloat32("a"), a);
      assert.deepEqual(m.readFloat32("b"), b);
      assert.deepEqual(m.readFloat32("c"), c);
      assert.deepEqual(m.info("c").shape, [1]);
      assert.equal(path.basename(m.info("c").file), "model-00002-of-00002.safetensors");
      assert.deepEqual(m.metadata(), { format: "pt" });
    } finally {
      m.close();
    }
    const w = SafetensorsWeights.open(dir);
    assert.deepEqual(w.shape("a"), [2, 3]);
    assert.equal(w.dtype("b"), "F16");
    w.close();
  });

  test("index errors name the index or the shard", () => {
    const bad = tempDir();
    for (const f of fs.readdirSync(dir)) fs.copyFileSync(path.join(dir, f), path.join(bad, f));
    const badIndex = path.join(bad, "model.safetensors.index.json");
    const put = (json: unknown) => fs.writeFileSync(badIndex, typeof json === "string" ? json : JSON.stringify(json));

    put({ weight_map: { ...weightMap, d: "model-00002-of-00002.safetensors" } });
    throwsFormat(() => SafetensorsModel.open(bad), badIndex, /weight_map puts "d" in model-00002-of-00002\.safetensors, which has no such tensor/);
    put({ weight_map: { ...weightMap, c: "model-00003-of-00003.safetensors" } });
    throwsFormat(() => SafetensorsModel.open(bad), badIndex, /weight_map puts "c" in model-00003-of-00003\.safetensors, which is not in this folder/);
    put({ weight_map: { a: "../elsewhere.safetensors" } });
    throwsFormat(() => SafetensorsModel.open(bad), badIndex, /weight_map\["a"\] is not a shard file name/);
    put({ metadata: {} });
    throwsFormat(() => SafetensorsModel.open(bad), badIndex, /missing "weight_map" object/);
    put("{ not json");
    throwsFormat(() => SafetensorsModel.open(bad), badIndex, /not valid JSON/);
  });

  test("a folder without weights, and a missing path", () => {
    const empty = tempDir();
    throwsFormat(() => SafetensorsModel.open(empty), empty, /no model\.safetensors or model\.safetensors\.index\.json in this folder/);
    const missing = path.join(empty, "nope");
    throwsFormat(() => SafetensorsModel.open(missing), missing, /no such file or folder/);
  });
});

describe("corrupt files are refused with the file and the problem", () => {
  test("small hand-built files", () => {
    const dir = tempDir();
    const file = path.join(dir, "x.safetensors");
    const cases: [string, Buffer, RegExp][] = [
      ["empty file", Buffer.alloc(0), /file is 0 bytes, too short/],
      ["entry not an object", rawSafetensors({ w: 5 }, Buffer.alloc(0)), /tensor "w": entry is not an object/],
      ["shape not integers", rawSafetensors({ w: { dtype: "F32", shape: [1.5], data_offsets: [0, 4] } }, Buffer.alloc(4)), /shape \[1\.5\] is not a list/],
      ["begin > end", rawSafetensors({ w: { dtype: "F32", shape: [1], data_offsets: [4, 0] } }, Buffer.alloc(4)), /data_offsets \[4,0\] is not \[begin, end\] with begin <= end/],
      ["metadata not strings", rawSafetensors({ __metadata__: { n: 1 } }, Buffer.alloc(0)), /__metadata__ must map strings to strings/],
    ];
    for (const [name, bytes, message] of cases) {
      fs.writeFileSync(file, bytes);
      assert.doesNotThrow(() => throwsFormat(() => SafetensorsFile.open(file), file, message), name);
    }
    const missing = path.join(dir, "missing.safetensors");
    throwsFormat(() => SafetensorsFile.open(missing), missing, /cannot open \(ENOENT\)/);
  });

  describe("corrupted copies of stories260K's model.safetensors", () => {
    const dir = tempDir();
    const good = fs.readFileSync(path.join(STORIES, "model.safetensors"));
    for (const c of SAFETENSORS_CASES) {
      test(c.name, () => {
        const file = path.join(dir, `${c.name.replaceAll(" ", "-")}.safetensors`);
        fs.writeFileSync(file, c.make(good));
        throwsFormat(() => SafetensorsFile.open(file), file, c.message);
      });
    }

    test("the untouched file opens: 47 float32 tensors, 8-byte aligned", () => {
      const st = SafetensorsFile.open(path.join(STORIES, "model.safetensors"));
      assert.equal(st.tensors.size, 47);
      assert.deepEqual(st.metadata, { format: "pt" });
      for (const t of st.tensors.values()) assert.equal(t.begin % 8, 0, t.name);
      st.close();
    });
  });
});
