// The head + loss graph: its gradient against finite differences in float64 for every loss kind
// (KL at a temperature ≠ 1, CE, KL + CE), and its CE against the perplexity scorer's NLL.
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { Rng } from "../../src/data/rng.js";
import { syntheticModel } from "../../src/models/synthetic.js";
import { cachedSession, releaseSessions, type RtTensor } from "../../src/runtime/ort.js";
import { headLossGraph, type LossKind } from "../../src/train/head-loss.js";
import { CausalLM } from "../../src/models/model.js";
import { FINAL_NORM, LM_HEAD } from "../../src/models/llama.js";
import { headLoss, headWeights } from "../../src/train/model-backward.js";
import { centralDifference } from "./finite-difference.js";

after(releaseSessions);

const shape = { hidden_size: 16, intermediate_size: 24, num_hidden_layers: 1, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 4, vocab_size: 32 };

for (const loss of ["kl", "ce", "kl+ce"] as LossKind[]) {
  test(`head ${loss} (τ = 2): d loss / d hidden matches finite differences (float64)`, async () => {
    const { config: c } = syntheticModel(shape, 1);
    const B = 2;
    const T = 3;
    const N = B * T;
    const rng = new Rng(5);
    const rand = (n: number, s = 1) => Float64Array.from({ length: n }, () => s * (2 * rng.next() - 1));
    const hidden = rand(N * 16);
    const feeds: Record<string, RtTensor> = {
      [FINAL_NORM]: { data: Float64Array.from(rand(16, 0.2), (v) => 1 + v), dims: [16] },
      [LM_HEAD]: { data: rand(32 * 16), dims: [32, 16] },
      teacher_logits: { data: rand(N * 32, 3), dims: [N, 32] },
      targets: { data: BigInt64Array.from({ length: N }, () => BigInt(rng.int(32))), dims: [N] },
      ce_weight: { data: Float64Array.from({ length: N }, (_, i) => (i % T === T - 1 ? 0 : 1 / (B * (T - 1)))), dims: [N] },
    };
    if (loss === "kl") {
      delete feeds.targets;
      delete feeds.ce_weight;
    }
    if (loss === "ce") delete feeds.teacher_logits;
    const s = await cachedSession(`test:head:${loss}`, () => headLossGraph(c, { type: "float64", N, loss, temperature: 2 }, (n) => n === LM_HEAD).bytes);
    const run = async (h: Float64Array) => s.run({ ...feeds, hidden: { data: h, dims: [N, 16] } }, ["loss", "grad_hidden"]);
    const g = (await run(hidden)).grad_hidden!.data as Float64Array;
    const eps = 1e-6;
    for (let k = 0; k < 8; k++) {
      const i = rng.int(hidden.length);
      const fd = await centralDifference(hidden, i, eps, async () => ((await run(hidden)).loss!.data as Float64Array)[0]!);
      assert.ok(Math.abs(fd - g[i]!) <= 1e-6 * Math.max(1e-2, Math.abs(fd)), `${loss} hidden[${i}]: fd ${fd}, backward ${g[i]}`);
    }
  });
}

test("CE of the head graph = mean NLL of the perplexity scorer on the same rows", async () => {
  const { config, weights } = syntheticModel(shape, 2);
  const model = new CausalLM(config, weights, "<synthetic>");
  const B = 2;
  const T = 8;
  const rng = new Rng(9);
  const ids = Int32Array.from({ length: B * T }, () => rng.int(32));
  const hidden = await model.hidden(ids, B, T);
  const targets = new Int32Array(B * T);
  for (let b = 0; b < B; b++) for (let p = 0; p + 1 < T; p++) targets[b * T + p] = ids[b * T + p + 1]!;
  const nll = await model.tokenNll(hidden, targets);
  let sum = 0;
  for (let b = 0; b < B; b++) for (let p = 0; p + 1 < T; p++) sum += nll[b * T + p]!;
  const r = await headLoss(config, headWeights(model), hidden, { loss: "ce", temperature: 1, ids, B, T });
  assert.ok(Math.abs(r.loss - sum / (B * (T - 1))) < 1e-5, `${r.loss} vs ${sum / (B * (T - 1))}`);
});
