import assert from "node:assert/strict";
import { test } from "node:test";
import { TensorWarnings } from "../../src/export/tensor-warnings.js";

test("tensor warnings: one line per reason, first three tensors named, the rest counted", () => {
  const w = new TensorWarnings();
  for (let i = 0; i < 5; i++) w.add(`t${i}`, "re-quantized");
  w.add("u", "overflowed");
  w.add("v", "overflowed");
  assert.deepEqual(w.lines(), ['re-quantized: "t0", "t1", "t2" and 2 more', 'overflowed: "u", "v"']);
  assert.deepEqual(new TensorWarnings().lines(), []);
});
