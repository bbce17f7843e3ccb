import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { kthSmallest, nmMask, rowMask, thresholdMask } from "../../../src/compress/prune/select.js";

describe("pruning selection", () => {
  it("kthSmallest equals sorting", () => {
    const v = Float32Array.from({ length: 1001 }, (_, i) => Math.sin(i * 12.9898) * 43758.5453 % 1);
    const sorted = Array.from(v).sort((a, b) => a - b);
    for (const k of [0, 1, 500, 999, 1000]) assert.equal(kthSmallest(v, k), sorted[k]);
    assert.equal(kthSmallest(Float32Array.of(3, 3, 3, 1), 2), 3);
  });

  it("layer threshold prunes score <= the floor(n·s)-th smallest, like the reference", () => {
    // scores 0.1..0.8; s = 0.5 → k = 4 → thresh = 0.5 → five pruned (0.1..0.5)
    const m = thresholdMask(Float32Array.of(0.8, 0.1, 0.5, 0.3, 0.7, 0.2, 0.6, 0.4), 0.5);
    assert.deepEqual(Array.from(m), [1, 0, 0, 0, 1, 0, 1, 0]);
    assert.deepEqual(Array.from(thresholdMask(Float32Array.of(1, 2), 0)), [1, 1], "sparsity 0 prunes nothing");
  });

  it("row scope prunes floor(cols·s) per row, earlier column first on ties", () => {
    const score = Float32Array.of(4, 1, 3, 2, /* row 2 */ 5, 5, 5, 1);
    assert.deepEqual(Array.from(rowMask(score, 2, 4, 0.5)), [1, 0, 1, 0, 0, 1, 1, 0]);
  });

  it("N:M prunes N per group of M; a short last group prunes min(N, width)", () => {
    // 1 row, 10 columns, 2:4 → groups [0,4) [4,8) [8,10)
    const score = Float32Array.of(1, 2, 3, 4, 8, 7, 6, 5, 9, 0);
    assert.deepEqual(Array.from(nmMask(score, 1, 10, { n: 2, m: 4 })), [0, 0, 1, 1, 1, 1, 0, 0, 0, 0]);
    // 4:8 on 12 columns: the last group (8..11) has 4 columns and loses all four
    const s12 = Float32Array.from({ length: 12 }, (_, i) => 12 - i);
    const m12 = nmMask(s12, 1, 12, { n: 4, m: 8 });
    assert.deepEqual(Array.from(m12), [1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
  });
});
