// The ONNX export loads in transformers.js (@huggingface/transformers v4, from a local folder, no
// hub) and generates what topiary generates: AutoModelForCausalLM greedy ids on 3 prompts,
// pipeline("text-generation") text, forward logits for fp32 (external data) and 4-bit MatMulNBits,
// a left-padded batch.
import assert from "node:assert/strict";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { AutoModelForCausalLM, env, pipeline, Tensor, type PreTrainedModel } from "@huggingface/transformers";
import { generate } from "../../src/eval/generate.js";
import { exportOnnx } from "../../src/export/onnx.js";
import { loadModel } from "../../src/models/load.js";
import { CausalLM } from "../../src/models/model.js";
import { releaseSessions } from "../../src/runtime/ort.js";
import { TextTokenizer } from "../../src/tokenizer/tokenizer.js";
import { STORIES, tempDir } from "../helpers.js";
import { maxAbsDiff, PROMPTS, quantizedCheckpoint } from "./onnx-helpers.js";

env.allowRemoteModels = false;
env.allowLocalModels = true;

const greedy = { maxNewTokens: 40, temperature: 0, topK: 0, topP: 1, seed: 0 };
const ids64 = (ids: Int32Array) => new Tensor("int64", BigInt64Array.from(ids, BigInt), [1, ids.length]);
const ones64 = (n: number) => new Tensor("int64", new BigInt64Array(n).fill(1n), [1, n]);

/** transformers.js forward logits [T·V] for one prompt (empty cache, all positions). */
async function forwardLogits(model: PreTrainedModel, ids: Int32Array): Promise<Float32Array> {
  const out = (await model({ input_ids: ids64(ids), attention_mask: ones64(ids.length) })) as { logits: Tensor };
  return out.logits.data as Float32Array;
}

describe("transformers.js runs topiary's ONNX export of stories260K", () => {
  let own: CausalLM;
  let tok: TextTokenizer;
  const tmp = tempDir("topiary-onnx-tjs-");

  before(() => {
    own = loadModel(STORIES);
    tok = TextTokenizer.load(STORIES);
  });
  after(async () => {
    own.close();
    await releaseSessions();
  });

  test("fp32 (external data): greedy ids on 3 prompts, pipeline text and logits equal topiary's", async (t) => {
    const dir = path.join(tmp, "fp32");
    await exportOnnx(own.config, own.weights, dir, { dtype: "fp32", externalData: true, sourceDir: STORIES });
    const model = await AutoModelForCausalLM.from_pretrained(dir);
    for (const prompt of PROMPTS) {
      const ids = tok.encode(prompt);
      const ref = await generate(own, tok, prompt, greedy);
      const out = (await model.generate({ input_ids: ids64(ids), attention_mask: ones64(ids.length), max_new_tokens: greedy.maxNewTokens, do_sample: false })) as Tensor;
      let got = Array.from(out.data as BigInt64Array, Number).slice(ids.length);
      if (got.at(-1) === own.config.eosTokenIds[0]) got = got.slice(0, -1); // topiary stops before EOS
      assert.deepEqual(got, ref.ids, prompt);
      const diff = maxAbsDiff(await forwardLogits(model, ids), await own.forward(ids, 1, ids.length));
      t.diagnostic(`"${prompt}": ${got.length} tokens equal, logits max |diff| ${diff.toExponential(2)}`);
      assert.ok(diff < 2e-5, String(diff)); // README: logits within 2e-5
    }

    // a batch of two with the shorter prompt left-padded: attention_mask and position_ids do their job
    const a = tok.encode(PROMPTS[1]!);
    const b = tok.encode(PROMPTS[0]!);
    const pad = a.length - b.length;
    const batch = new Tensor("int64", BigInt64Array.from([...a, ...new Array<number>(pad).fill(0), ...b], BigInt), [2, a.length]);
    const mask = new Tensor("int64", BigInt64Array.from([...a.map(() => 1), ...new Array<number>(pad).fill(0), ...b.map(() => 1)], BigInt), [2, a.length]);
    const both = ((await model({ input_ids: batch, attention_mask: mask })) as { logits: Tensor }).logits.data as Float32Array;
    const V = own.config.vocabSize;
    assert.ok(maxAbsDiff(both.subarray(0, a.length * V), await forwardLogits(model, a)) < 1e-4);
    assert.ok(maxAbsDiff(both.subarray((a.length + pad) * V), await forwardLogits(model, b)) < 1e-4);
    await model.dispose();

    const generator = await pipeline("text-generation", dir);
    const [result] = (await generator(PROMPTS[0]!, { max_new_tokens: 30, do_sample: false })) as { generated_text: string }[];
    const ref = await generate(own, tok, PROMPTS[0]!, { ...greedy, maxNewTokens: 30 });
    assert.equal(result!.generated_text, ref.text);
    await generator.dispose();
  });

  test("q4 (model_q4.onnx, MatMulNBits): logits equal topiary's on the dequantized weights", async (t) => {
    const dir = path.join(tmp, "q4");
    const q4 = quantizedCheckpoint(own);
    await exportOnnx(own.config, q4, dir, { dtype: "fp32", accuracyLevel: 0, sourceDir: STORIES });
    const model = await AutoModelForCausalLM.from_pretrained(dir); // dtype q4 from config.json
    const deq = new CausalLM(own.config, q4, STORIES);
    const ids = tok.encode(PROMPTS[1]!);
    const diff = maxAbsDiff(await forwardLogits(model, ids), await deq.forward(ids, 1, ids.length));
    t.diagnostic(`q4 g32: logits max |diff| vs topiary on dequantized weights ${diff.toExponential(2)}`);
    assert.ok(diff < 2e-5, String(diff)); // README: 4-bit exports within 2e-5 at accuracy_level 0
    const ref = await generate(deq, tok, PROMPTS[1]!, greedy);
    const out = (await model.generate({ input_ids: ids64(ids), attention_mask: ones64(ids.length), max_new_tokens: greedy.maxNewTokens, do_sample: false })) as Tensor;
    const got = Array.from(out.data as BigInt64Array, Number).slice(ids.length, ids.length + ref.ids.length);
    assert.deepEqual(got, ref.ids);
    await model.dispose();
  });
});
