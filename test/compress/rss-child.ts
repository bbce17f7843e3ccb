// Child process of pipeline-memory.test.ts: prunes one model folder and prints its peak RSS.
import { runCompression } from "../../src/compress/job.js";
import { buildStage } from "../../src/compress/registry.js";
import { calibrationWindows } from "../../src/data/calibration.js";

const [modelDir, outDir] = process.argv.slice(2) as [string, string];
const T = 64;
const n = 4;
const ids = Int32Array.from({ length: n * T }, (_, i) => (i * 7919) % 500 + 3);
const batch = calibrationWindows(ids, { nsamples: n, seqlen: T, sampling: "first", seed: 0 });
const info = { file: "synthetic", sha256: "", tokens: ids.length, nsamples: n, seqlen: T, sampling: "first", seed: 0 };
const t0 = performance.now();
await runCompression({ modelDir, outDir, stages: [buildStage({ method: "wanda", sparsity: 0.5 }, "test")], calibration: { batch, info } });
process.stderr.write(`${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
console.log(JSON.stringify({ maxRssBytes: process.resourceUsage().maxRSS * 1024 }));
