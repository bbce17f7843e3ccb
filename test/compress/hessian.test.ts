import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { upperCholeskyOfInverse } from "../../src/compress/cholesky.js";
import { InputStatistics, inverseFactor } from "../../src/compress/hessian.js";
import { Rng } from "../../src/data/rng.js";

describe("Hessian statistics", () => {
  it("H = (2/n)·ΣXᵀX over samples, accumulated batch by batch", async () => {
    const s = new InputStatistics(2, "hessian", "test");
    // sample 1: rows (1,2),(3,4); sample 2: (0,1); sample 3: (2,0)
    await s.add(Float32Array.of(1, 2, 3, 4), 1);
    await s.add(Float32Array.of(0, 1, 2, 0), 2);
    // ΣXᵀX = [[1+9+0+4, 2+12+0+0], [.., 4+16+1+0]] = [[14, 14], [14, 21]]; ×2/3
    const H = s.hessian();
    const want = [28 / 3, 28 / 3, 28 / 3, 14];
    H.forEach((v, i) => assert.ok(Math.abs(v - want[i]!) < 1e-5, `H[${i}] = ${v}`));
    const d = new InputStatistics(2, "diag", "test");
    await d.add(Float32Array.of(1, 2, 3, 4), 1);
    await d.add(Float32Array.of(0, 1, 2, 0), 2);
    assert.deepEqual(Array.from(d.diag()).map((v) => +v.toFixed(5)), [+(28 / 3).toFixed(5), 14]);
  });

  it("NaN activations are a clear error", async () => {
    const s = new InputStatistics(2, "hessian", "layer 3 mlp_act (down_proj)");
    await s.add(Float32Array.of(1, NaN), 1);
    assert.throws(() => s.checkFinite(), /calibration activations entering layer 3 mlp_act \(down_proj\) contain NaN or Inf/);
  });

  it("dead inputs: H_jj = 0 → reported, H_jj = 1, and Hinv stays finite", async () => {
    const H = Float32Array.of(2, 0, 0, 0, 0, 0, 0, 0, 3);
    const f = await inverseFactor(H, 3, 0.01, undefined, () => {});
    assert.deepEqual(Array.from(f.dead), [1]);
    assert.ok(f.hinv.every(Number.isFinite));
  });

  it("a non-positive-definite H raises dampening ×10 and warns", async () => {
    // eigenvalues 3 and −0.2 (mean diag 1.4): λ = 0.01 fails, 0.1·1.4 = 0.14 fails, 1·1.4 works
    const H = Float32Array.of(1.4, 1.6, 1.6, 1.4);
    const warnings: string[] = [];
    const f = await inverseFactor(H, 2, 0.01, undefined, (m) => warnings.push(m));
    assert.equal(f.dampening, 1);
    assert.match(warnings[0]!, /Cholesky failed at dampening 0\.01; succeeded with 1/);
  });

  it("upperCholeskyOfInverse: UᵀU = H⁻¹ and U upper, on the blocked path too (n = 700)", async () => {
    const rng = new Rng(9);
    for (const n of [5, 700]) {
      const t = n + 50;
      const X = Float32Array.from({ length: t * n }, () => rng.next() - 0.5);
      const H = new Float32Array(n * n);
      for (let r = 0; r < t; r++) for (let i = 0; i < n; i++) { const xi = X[r * n + i]!; for (let j = 0; j < n; j++) H[i * n + j]! += xi * X[r * n + j]!; }
      for (let i = 0; i < n; i++) H[i * n + i]! += 1;
      const U = await upperCholeskyOfInverse(H, n);
      // check H·UᵀU ≈ I on a few columns
      for (const c of [0, n >> 1, n - 1]) {
        const v = new Float64Array(n); // UᵀU e_c
        for (let k = 0; k < n; k++) { const ukc = U[k * n + c]!; if (ukc) for (let i = 0; i < n; i++) v[i]! += U[k * n + i]! * ukc; }
        for (let i = 0; i < n; i++) {
          let s = 0;
          for (let k = 0; k < n; k++) s += H[i * n + k]! * v[k]!;
          assert.ok(Math.abs(s - (i === c ? 1 : 0)) < 1e-3, `n=${n} (H·H⁻¹)[${i},${c}] = ${s}`);
        }
      }
      for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) assert.equal(U[i * n + j], 0);
    }
  });
});
