// The pipeline holds one decoder layer (plus activations), not the model: peak memory must grow
// with the size of a layer, not with the number of layers.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import path from "node:path";
import { describe, it } from "node:test";
import { REPO, syntheticFolder, tempDir } from "../helpers.js";

function peakRss(dir: string): number {
  const out = execFileSync(process.execPath, ["--import", "tsx", path.join(REPO, "test/compress/rss-child.ts"), dir, path.join(tempDir(), "out")], {
    cwd: REPO,
    encoding: "utf8",
  });
  return JSON.parse(out.trim().split("\n").pop()!).maxRssBytes;
}

describe("pipeline memory", () => {
  it("peak RSS grows with layer size, not with depth", async (t) => {
    const shallow = await syntheticFolder(768, 2);
    const deep = await syntheticFolder(768, 12);
    const wide = await syntheticFolder(1536, 2);
    const rShallow = peakRss(shallow.dir);
    const rDeep = peakRss(deep.dir);
    const rWide = peakRss(wide.dir);
    const mb = (b: number) => (b / 2 ** 20).toFixed(0);
    t.diagnostic(`peak RSS MB: 768×2 layers ${mb(rShallow)}, 768×12 layers ${mb(rDeep)} (+10 layers = ${mb(10 * deep.layerBytes)} MB of weights), 1536×2 layers ${mb(rWide)} (layer ${mb(wide.layerBytes)} MB)`);
    // 10 more layers would add ~270 MB if the model were held. Some growth is allowed: V8 frees
    // large arrays lazily, which measured as a plateau of ~20–50 MB, not a per-layer slope
    assert.ok(rDeep - rShallow < 0.25 * 10 * deep.layerBytes, `depth grew RSS by ${mb(rDeep - rShallow)} MB`);
    // a 4× larger layer must show up: weights, Hessians and their factors scale with it
    assert.ok(rWide - rShallow > wide.layerBytes, `layer size grew RSS by only ${mb(rWide - rShallow)} MB`);
  });
});
