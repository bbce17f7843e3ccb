import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { magnitudePrune } from "../../../src/compress/prune/magnitude.js";
import { wandaPrune } from "../../../src/compress/prune/wanda.js";
import { Tensor } from "../../../src/tensor/tensor.js";

const W = new Tensor(Float32Array.of(1, -2, 3, -4, /**/ -0.5, 6, 0.1, 7), [2, 4]);

describe("magnitude", () => {
  it("layer scope: one threshold over the matrix (|w| <= 4th smallest = 2)", () => {
    const r = magnitudePrune("w", W, { sparsity: 0.5, scope: "layer" });
    // |W| sorted: 0.1 0.5 1 2 3 4 6 7 → k = 4 → thresh = 3 → prune 0.1 0.5 1 2 3
    assert.deepEqual(Array.from(r.weight.data), [0, 0, 0, -4, 0, 6, 0, 7]);
    assert.deepEqual(Array.from(r.mask!), [0, 0, 0, 1, 0, 1, 0, 1]);
  });

  it("row scope: the smallest half of each row", () => {
    const r = magnitudePrune("w", W, { sparsity: 0.5, scope: "row" });
    assert.deepEqual(Array.from(r.weight.data), [0, 0, 3, -4, 0, 6, 0, 7]);
  });

  it("2:4: two of every four inputs", () => {
    const r = magnitudePrune("w", W, { sparsity: 0, scope: "layer", nm: { n: 2, m: 4 } });
    assert.deepEqual(Array.from(r.weight.data), [0, 0, 3, -4, 0, 6, 0, 7]);
  });
});

describe("wanda", () => {
  it("scores |W_ij|·‖X_j‖ and prunes per output row", () => {
    // ‖X_j‖² ∝ diag: column 0 is very active, column 3 silent
    const diag = Float32Array.of(100, 1, 1, 0.0001);
    const r = wandaPrune("w", W, diag, { sparsity: 0.5 });
    // row 0 scores: 10, 2, 3, 0.04 → prune cols 3, 1;  row 1: 5, 6, 0.1, 0.07 → prune 3, 2
    assert.deepEqual(Array.from(r.weight.data), [1, 0, 3, 0, -0.5, 6, 0, 0]);
  });
});
