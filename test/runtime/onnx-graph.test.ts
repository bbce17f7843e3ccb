import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { float, GraphBuilder } from "../../src/runtime/onnx-graph.js";
import { releaseSessions, Session } from "../../src/runtime/ort.js";
import { ProtoWriter } from "../../src/runtime/protobuf.js";

after(() => releaseSessions());

describe("ProtoWriter", () => {
  const bytes = (w: ProtoWriter) => Array.from(w.finish());

  test("varints, including 64-bit negatives (protobuf encoding spec examples)", () => {
    assert.deepEqual(bytes(new ProtoWriter().int(1, 150)), [0x08, 0x96, 0x01]);
    assert.deepEqual(bytes(new ProtoWriter().int(1, 300)), [0x08, 0xac, 0x02]);
    assert.deepEqual(bytes(new ProtoWriter().int(2, 0)), [0x10, 0x00]);
    // int64 −1: ten bytes of two's complement
    assert.deepEqual(bytes(new ProtoWriter().int(1, -1)), [0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
    assert.deepEqual(bytes(new ProtoWriter().int(1, 2 ** 35)), [0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]);
  });

  test("strings, floats, nested and packed fields", () => {
    assert.deepEqual(bytes(new ProtoWriter().string(2, "testing")), [0x12, 0x07, ...Buffer.from("testing")]);
    assert.deepEqual(bytes(new ProtoWriter().float(2, 1)), [0x15, 0x00, 0x00, 0x80, 0x3f]);
    assert.deepEqual(bytes(new ProtoWriter().message(3, new ProtoWriter().int(1, 150))), [0x1a, 0x03, 0x08, 0x96, 0x01]);
    assert.deepEqual(bytes(new ProtoWriter().packedInts(4, [3, 270, 86942])), [0x22, 0x06, 0x03, 0x8e, 0x02, 0x9e, 0xa7, 0x05]);
    assert.deepEqual(bytes(new ProtoWriter().packedFloats(5, [1])), [0x2a, 0x04, 0x00, 0x00, 0x80, 0x3f]);
    // a large bytes field is kept by reference between buffered small fields: order must hold
    assert.deepEqual(bytes(new ProtoWriter().int(1, 1).bytes(2, Uint8Array.of(9, 9)).int(3, 2)), [0x08, 1, 0x12, 2, 9, 9, 0x18, 2]);
  });
});

describe("GraphBuilder → onnxruntime", () => {
  test("Add of two inputs", async () => {
    const g = new GraphBuilder("add");
    const a = g.input("a", "float32", [2, 3]);
    const b = g.input("b", "float32", [2, 3]);
    g.output(g.op("Add", [a, b]), "y", "float32", [2, 3]);
    const s = await Session.create("test:add", g.toBytes());
    const out = await s.run({ a: { data: Float32Array.of(1, 2, 3, 4, 5, 6), dims: [2, 3] }, b: { data: Float32Array.of(10, 20, 30, 40, 50, 60), dims: [2, 3] } });
    assert.deepEqual(out.y!.dims, [2, 3]);
    assert.deepEqual(Array.from(out.y!.data as Float32Array), [11, 22, 33, 44, 55, 66]);
    await s.release();
  });

  test("initializers, float/int attributes, symbolic dims, several outputs", async () => {
    const g = new GraphBuilder("gemm_plus");
    const x = g.input("x", "float32", ["n", 2]);
    const w = g.constFloat([1, 2, 3, 4, 5, 6], [3, 2]);
    const y = g.op("Gemm", [x, w], { transB: 1, alpha: float(2) }); // 2·x·wᵀ, (n, 3)
    g.output(y, "y", "float32", ["n", 3]);
    const [lo, hi] = g.opN("Split", [y, g.constInt64([1, 2])], 2, { axis: 1 });
    g.output(lo!, "lo", "float32", ["n", 1]);
    g.output(g.op("ReduceSum", [hi!, g.constInt64([1])], { keepdims: 0 }), "hi_sum", "float32", ["n"]);
    const s = await Session.create("test:gemm_plus", g.toBytes({ opset: 18 }));
    const out = await s.run({ x: { data: Float32Array.of(1, 0, 0, 1), dims: [2, 2] } });
    // x = I₂: rows of 2·wᵀ = [2, 6, 10] and [4, 8, 12]
    assert.deepEqual(Array.from(out.y!.data as Float32Array), [2, 6, 10, 4, 8, 12]);
    assert.deepEqual(Array.from(out.lo!.data as Float32Array), [2, 4]);
    assert.deepEqual(Array.from(out.hi_sum!.data as Float32Array), [16, 20]);
    const only = await s.run({ x: { data: Float32Array.of(3, 3), dims: [1, 2] } }, ["hi_sum"]);
    assert.deepEqual(Object.keys(only), ["hi_sum"]);
    assert.deepEqual(Array.from(only.hi_sum!.data as Float32Array), [2 * (3 * 3 + 4 * 3) + 2 * (5 * 3 + 6 * 3)]);
    await s.release();
  });
});
