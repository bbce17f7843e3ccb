import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { calibrationWindows } from "../../src/data/calibration.js";
import { REFERENCE } from "../helpers.js";
import { referenceCalibration } from "../compress/reference-helpers.js";

describe("calibration windows", () => {
  it("first: the first n consecutive windows equal ../shared/reference/calib_ids.json", () => {
    const batch = referenceCalibration();
    const ref = JSON.parse(fs.readFileSync(path.join(REFERENCE, "calib_ids.json"), "utf8")) as { ids: number[][] };
    assert.equal(batch.nsamples, 128);
    assert.deepEqual(Array.from(batch.ids), ref.ids.flat());
    const sha = crypto.createHash("sha256").update(new Uint8Array(batch.ids.buffer)).digest("hex");
    assert.equal(sha, "8754ff660b354b936b1482a54aefc831fef6c3f85f4f59f7e3d08571e8e8c6ec");
  });

  it("random: reproducible from the seed, different across seeds, inside the stream", () => {
    const tokens = Int32Array.from({ length: 1000 }, (_, i) => i);
    const a = calibrationWindows(tokens, { nsamples: 5, seqlen: 10, sampling: "random", seed: 7 });
    const b = calibrationWindows(tokens, { nsamples: 5, seqlen: 10, sampling: "random", seed: 7 });
    const c = calibrationWindows(tokens, { nsamples: 5, seqlen: 10, sampling: "random", seed: 8 });
    assert.deepEqual(a.ids, b.ids);
    assert.notDeepEqual(a.ids, c.ids);
    for (let s = 0; s < 5; s++) {
      const start = a.ids[s * 10]!;
      assert.deepEqual(Array.from(a.ids.subarray(s * 10, s * 10 + 10)), Array.from({ length: 10 }, (_, i) => start + i));
    }
  });

  it("a text shorter than one window is an error naming the file", () => {
    assert.throws(
      () => calibrationWindows(new Int32Array(100), { nsamples: 4, seqlen: 512, sampling: "first", seed: 0 }, "short.txt"),
      /short\.txt: 100 tokens is shorter than one calibration window of 512/,
    );
  });

  it("first: fewer windows than asked uses them all and says so", () => {
    const b = calibrationWindows(new Int32Array(1050), { nsamples: 4, seqlen: 512, sampling: "first", seed: 0 }, "c.txt");
    assert.equal(b.nsamples, 2);
    assert.match(b.warning!, /c\.txt: only 2 windows of 512 tokens, fewer than --nsamples 4/);
  });
});
