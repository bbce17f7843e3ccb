import { loadModel } from "../src/models/load.js";
import { STORIES } from "./helpers.js";
import { tinystoriesTest } from "./compress/reference-helpers.js";
const cpu = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1e6; };
const ids = tinystoriesTest();
const model = loadModel(STORIES);
const seqlen = 512; const windows = 96;
const res: Record<number, number[]> = {};
for (const batch of [24, 1, 2, 4, 8, 16, 24, 1, 2, 4, 8, 16, 24, 4, 8, 16]) {
  let t = performance.now(), c = cpu(); let nll = 0;
  for (let w0 = 0; w0 < windows; w0 += batch) {
    const B = Math.min(batch, windows - w0);
    const chunk = ids.subarray(w0 * seqlen, (w0 + B) * seqlen);
    const targets = new Int32Array(B * seqlen);
    for (let b = 0; b < B; b++) for (let p = 0; p + 1 < seqlen; p++) targets[b * seqlen + p] = chunk[b * seqlen + p + 1]!;
    const rowNll = await model.tokenNll(await model.hidden(chunk, B, seqlen), targets);
    for (let b = 0; b < B; b++) for (let p = 0; p + 1 < seqlen; p++) nll += rowNll[b * seqlen + p]!;
  }
  (res[batch] ??= []).push(cpu() - c);
  console.log(batch, nll.toFixed(3), ((performance.now() - t) / 1000).toFixed(2), "wall", (cpu() - c).toFixed(2), "cpu");
}
console.log(JSON.stringify(Object.fromEntries(Object.entries(res).map(([k, v]) => [k, v.map((x) => x.toFixed(2)).join(" ")]))));
