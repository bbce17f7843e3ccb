// `npm run fuzz`: every generated bad input through the real CLI, one process each (two at a
// time), then the tally. Exit 1 when any input is not refused with a one-line error.
//   npm run fuzz [-- --seed S] [--filter SUBSTRING] [--verbose]
import os from "node:os";
import fs from "node:fs";
import path from "node:path";
import { fuzzCases } from "./cases.js";
import { prepareBases, runAll, spawnCli, tally } from "./harness.js";

const argv = process.argv.slice(2);
const flag = (name: string) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
};
const seed = Number(flag("--seed") ?? 1);
const filter = flag("--filter");
const verbose = argv.includes("--verbose");

const root = fs.mkdtempSync(path.join(os.tmpdir(), "topiary-fuzz-"));
try {
  const bases = await prepareBases(path.join(root, "bases"), (args) => spawnCli(args, { TMPDIR: os.tmpdir(), CI: "1" }, 300_000));
  const cases = fuzzCases(bases, seed).filter((c) => !filter || c.id.includes(filter));
  const t0 = performance.now();
  const results = await runAll(cases, root, spawnCli, 2, (j, i) => {
    const bad = j.verdict !== "one-line error";
    if (bad || verbose) console.log(`${bad ? "FAIL" : "ok  "} [${i + 1}/${cases.length}] ${j.fuzzCase.id} (${j.result.ms.toFixed(0)} ms): ${j.verdict}${j.why ? ` (${j.why})` : ""}\n       ${j.line.split("\n").slice(0, 3).join("\n       ")}`);
  });
  const slowest = Math.max(...results.map((r) => r.result.ms));
  const slowestCpu = Math.max(...results.map((r) => r.result.cpuMs ?? 0));
  const rss = Math.max(...results.map((r) => r.result.maxRssBytes ?? 0));
  const { counts, line } = tally(results);
  const byCategory = new Map<string, number>();
  for (const c of cases) byCategory.set(c.category, (byCategory.get(c.category) ?? 0) + 1);
  console.log(`\nseed ${seed}; ${[...byCategory].map(([k, v]) => `${k} ${v}`).join(", ")}`);
  console.log(`slowest ${(slowestCpu / 1000).toFixed(1)} s of CPU (${(slowest / 1000).toFixed(1)} s wall), largest peak RSS ${(rss / 2 ** 20).toFixed(0)} MB, ${((performance.now() - t0) / 1000).toFixed(0)} s in all`);
  console.log(line);
  process.exitCode = counts["one-line error"] === results.length ? 0 : 1;
} finally {
  fs.rmSync(root, { recursive: true, force: true });
}
