import assert from "node:assert/strict";
import { test } from "node:test";
import { Rng } from "../../src/data/rng.js";
import { argmax, sampleToken } from "../../src/eval/sampling.js";

const row = Float32Array.of(1, 3, 3, -2, 0.5);

test("argmax: first index on ties", () => {
  assert.equal(argmax(row), 1);
  assert.equal(argmax(Float32Array.of(-1)), 0);
});

test("temperature 0, top-k 1 and a tiny top-p are all greedy", () => {
  const rng = new Rng(1);
  for (let i = 0; i < 20; i++) {
    assert.equal(sampleToken(row, { temperature: 0, topK: 0, topP: 1 }, rng), 1);
    assert.equal(sampleToken(row, { temperature: 1, topK: 1, topP: 1 }, rng), 1);
    assert.equal(sampleToken(row, { temperature: 1, topK: 0, topP: 1e-6 }, rng), 1);
  }
});

test("sampling follows softmax(logits / T), reproducibly from the seed", () => {
  const opts = { temperature: 1, topK: 0, topP: 1 };
  const draw = (seed: number) => {
    const rng = new Rng(seed);
    return Array.from({ length: 20_000 }, () => sampleToken(row, opts, rng));
  };
  const a = draw(42);
  assert.deepEqual(a.slice(0, 50), draw(42).slice(0, 50));
  const p = Array.from(row, (v) => Math.exp(v));
  const z = p.reduce((x, y) => x + y, 0);
  for (let v = 0; v < row.length; v++) {
    const freq = a.filter((id) => id === v).length / a.length;
    assert.ok(Math.abs(freq - p[v]! / z) < 0.015, `token ${v}: ${freq} vs ${p[v]! / z}`);
  }
  // top-k 2 keeps the two 3s only
  const rng = new Rng(7);
  for (let i = 0; i < 200; i++) assert.ok([1, 2].includes(sampleToken(row, { temperature: 1, topK: 2, topP: 1 }, rng)));
});
