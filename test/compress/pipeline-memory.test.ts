// The pipeline holds one decoder layer (plus activations), not the model: peak memory must grow
// with the size of a layer, not with the number of layers.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { writeDenseSafetensors } from "../../src/formats/hf-folder.js";
import { syntheticModel } from "../../src/models/synthetic.js";
import { REPO, tempDir } from "../helpers.js";

function writeSynthetic(hidden: number, layers: number): { dir: string; layerBytes: number } {
  const dir = path.join(tempDir(), `h${hidden}-l${layers}`);
  fs.mkdirSync(dir);
  const shape = {
    hidden_size: hidden,
    intermediate_size: Math.round((hidden * 8) / 3),
    num_hidden_layers: layers,
    num_attention_heads: hidden / 64,
    num_key_value_heads: hidden / 64,
    vocab_size: 512,
    max_position_embeddings: 512,
    bos_token_id: 1,
    eos_token_id: 2,
  };
  const { weights } = syntheticModel(shape, 1);
  writeDenseSafetensors(dir, weights, () => "F32");
  fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify({ architectures: ["LlamaForCausalLM"], model_type: "llama", ...shape }));
  const F = shape.intermediate_size;
  return { dir, layerBytes: (4 * hidden * hidden + 3 * hidden * F) * 4 };
}

function peakRss(dir: string): number {
  const out = execFileSync(process.execPath, ["--import", "tsx", path.join(REPO, "test/compress/rss-child.ts"), dir, path.join(tempDir(), "out")], {
    cwd: REPO,
    encoding: "utf8",
  });
  return JSON.parse(out.trim().split("\n").pop()!).maxRssBytes;
}

describe("pipeline memory", () => {
  it("peak RSS grows with layer size, not with depth", (t) => {
    const shallow = writeSynthetic(512, 2);
    const deep = writeSynthetic(512, 10);
    const wide = writeSynthetic(1024, 2);
    const rShallow = peakRss(shallow.dir);
    const rDeep = peakRss(deep.dir);
    const rWide = peakRss(wide.dir);
    const mb = (b: number) => (b / 2 ** 20).toFixed(0);
    t.diagnostic(`peak RSS MB: 512×2 layers ${mb(rShallow)}, 512×10 layers ${mb(rDeep)} (+8 layers = ${mb(8 * deep.layerBytes)} MB of weights), 1024×2 layers ${mb(rWide)} (layer ${mb(wide.layerBytes)} MB)`);
    // 8 more layers would add ~100 MB if the model were held; allow a fraction of one layer's worth per layer
    assert.ok(rDeep - rShallow < 0.25 * 8 * deep.layerBytes, `depth grew RSS by ${mb(rDeep - rShallow)} MB`);
    // a 4× larger layer must show up: weights, Hessians and their factors scale with it
    assert.ok(rWide - rShallow > wide.layerBytes, `layer size grew RSS by only ${mb(rWide - rShallow)} MB`);
  });
});
