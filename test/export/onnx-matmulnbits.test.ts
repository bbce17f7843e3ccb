// MatMulNBits packing: literal bytes for a hand-sized grid, block-size choice, and the op itself
// in onnxruntime against A·dequant(W)ᵀ computed here (K not a multiple of the block size).
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { rtnQuantize } from "../../src/compress/quant/grid.js";
import { quantizeToCodes, dequantize } from "../../src/formats/compressed-linear.js";
import type { QuantGrid } from "../../src/formats/compressed-linear.js";
import { blockSizeFor, packMatMulNBits } from "../../src/formats/onnx/matmulnbits.js";
import { MS_DOMAIN } from "../../src/formats/onnx/names.js";
import { GraphBuilder, typedBytes } from "../../src/runtime/onnx-graph.js";
import { releaseSessions, Session } from "../../src/runtime/ort.js";
import { Rng } from "../../src/data/rng.js";
import { Tensor } from "../../src/tensor/tensor.js";

after(releaseSessions);

test("packMatMulNBits: 4-bit codes low nibble first, partial block padded with its zero point", () => {
  // 2 rows × 20 columns, groups of 16: block 0 is full, block 1 holds 4 columns + 12 padding
  const row0 = [...Array.from({ length: 16 }, (_, i) => i), 1, 2, 3, 4];
  const row1 = [...Array.from({ length: 16 }, (_, i) => 15 - i), 5, 6, 7, 8];
  const grid: QuantGrid = { bits: 4, sym: false, groupSize: 16, scale: Float32Array.of(0.5, 0.25, 1, 2), zero: Float32Array.of(8, 3, 0, 15) };
  const p = packMatMulNBits(Uint8Array.from([...row0, ...row1]), grid, 2, 20);
  assert.deepEqual([p.K, p.N, p.bits, p.blockSize, p.kBlocks, p.blobSize], [20, 2, 4, 16, 2, 8]);
  assert.deepEqual(Array.from(p.B.subarray(0, 8)), [0x10, 0x32, 0x54, 0x76, 0x98, 0xba, 0xdc, 0xfe]);
  assert.deepEqual(Array.from(p.B.subarray(8, 16)), [0x21, 0x43, 0x33, 0x33, 0x33, 0x33, 0x33, 0x33]); // pad = zero 3
  assert.deepEqual(Array.from(p.B.subarray(16, 24)), [0xef, 0xcd, 0xab, 0x89, 0x67, 0x45, 0x23, 0x01]);
  assert.deepEqual(Array.from(p.B.subarray(24, 32)), [0x65, 0x87, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]); // pad = zero 15
  assert.deepEqual(Array.from(p.scales), [0.5, 0.25, 1, 2]);
  assert.deepEqual(Array.from(p.zeroPoints!), [0x38, 0xf0]); // [8, 3] and [0, 15], one byte per row
});

test("packMatMulNBits: a symmetric grid at the default zero 2^(bits−1) omits zero_points; 8-bit is one code a byte", () => {
  const sym: QuantGrid = { bits: 4, sym: true, groupSize: 16, scale: Float32Array.of(1), zero: Float32Array.of(8) };
  assert.equal(packMatMulNBits(new Uint8Array(16).fill(8), sym, 1, 16).zeroPoints, null);
  const q8: QuantGrid = { bits: 8, sym: false, groupSize: 32, scale: Float32Array.of(1, 1), zero: Float32Array.of(3, 200) };
  const p = packMatMulNBits(Uint8Array.from({ length: 40 }, (_, i) => i * 5), q8, 1, 40);
  assert.deepEqual([p.kBlocks, p.blobSize, p.B.length], [2, 32, 64]);
  assert.deepEqual(Array.from(p.B.subarray(30, 34)), [150, 155, 160, 165]);
  assert.equal(p.B[40], 200); // padding of block 1 = its zero point
  assert.deepEqual(Array.from(p.zeroPoints!), [3, 200]);
});

test("blockSizeFor: blocks must lie inside one group", () => {
  const cases: [number, number, number | null][] = [
    [32, 4096, 32],
    [128, 4096, 128],
    [48, 4096, 16], // 48 = 3 blocks of 16
    [24, 4096, null], // no power of two ≥ 16 divides 24
    [172, 172, 128], // per channel: any block size, padded
    [64, 64, 64],
  ];
  for (const [groupSize, cols, want] of cases) {
    const got = blockSizeFor({ groupSize }, cols);
    if (want === null) assert.equal(typeof got, "string", `group ${groupSize}`);
    else assert.equal(got, want, `group ${groupSize}, ${cols} columns`);
  }
  const actOrder = Int32Array.from({ length: 64 }, (_, j) => (j % 2 === 0 ? 0 : 1));
  assert.match(String(blockSizeFor({ groupSize: 32, gIdx: actOrder }, 64)), /act-order/);
  const inOrder = Int32Array.from({ length: 64 }, (_, j) => Math.floor(j / 32));
  assert.equal(blockSizeFor({ groupSize: 32, gIdx: inOrder }, 64), 32);
});

test("MatMulNBits in onnxruntime = A · dequant(W)ᵀ (K = 40, blocks of 16 and 32, asym and sym, 2, 4 and 8 bits)", async () => {
  const rng = new Rng(3);
  const [M, N, K] = [3, 24, 40];
  const A = Float32Array.from({ length: M * K }, () => rng.next() * 2 - 1);
  const W = new Tensor(Float32Array.from({ length: N * K }, () => rng.next() * 2 - 1), [N, K]);
  for (const opt of [
    { bits: 4, sym: false, groupSize: 16 },
    { bits: 4, sym: true, groupSize: 32 },
    { bits: 8, sym: false, groupSize: 16 },
    { bits: 2, sym: false, groupSize: 32 },
  ]) {
    const { quant } = rtnQuantize(W, opt);
    const codes = quantizeToCodes(W, quant);
    const Wq = dequantize(codes, quant, K);
    const p = packMatMulNBits(codes, quant, N, K);
    const g = new GraphBuilder("mmnb");
    const a = g.input("A", "float32", [M, K]);
    const inputs = [
      a,
      g.initializer({ name: "B", type: "uint8", dims: [N, p.kBlocks, p.blobSize], data: p.B }),
      g.initializer({ name: "scales", type: "float32", dims: [N * p.kBlocks], data: typedBytes(p.scales) }),
    ];
    if (p.zeroPoints) inputs.push(g.initializer({ name: "zp", type: "uint8", dims: [p.zeroPoints.length], data: p.zeroPoints }));
    g.output(g.op("MatMulNBits", inputs, { K, N, bits: p.bits, block_size: p.blockSize }, { domain: MS_DOMAIN }), "Y", "float32", [M, N]);
    const s = await Session.create("mmnb", g.toBytes({ opset: 21, irVersion: 10 }));
    const Y = (await s.run({ A: { data: A, dims: [M, K] } })).Y!.data as Float32Array;
    await s.release();
    let maxDiff = 0;
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let ref = 0;
        for (let k = 0; k < K; k++) ref += A[m * K + k]! * Wq[n * K + k]!;
        maxDiff = Math.max(maxDiff, Math.abs(ref - Y[m * N + n]!));
      }
    }
    assert.ok(maxDiff < 1e-4, `${JSON.stringify(opt)}: max |diff| ${maxDiff}`);
  }
});
