// `npm run fuzz`: every generated bad input through the CLI, then the tally. Exit 1 when any input
// is not refused with a one-line error.
//   npm run fuzz [-- --seed S] [--filter SUBSTRING] [--spawn] [--limit N] [--verbose]
// By default each case runs through the CLI's parser in this process (all 400+ in about a
// minute). --spawn runs each in its own `node bin/topiary.js` process, two at a time: the real
// exit code, peak RSS and CPU time per input (~1.5 s of CPU each for start-up alone).
// --limit N runs a seeded sample of N.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Rng } from "../../src/data/rng.js";
import { fuzzCases } from "./cases.js";
import { inProcessCli, prepareBases, runAll, spawnCli, tally } from "./harness.js";

const argv = process.argv.slice(2);
const flag = (name: string) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
};
const seed = Number(flag("--seed") ?? 1);
const filter = flag("--filter");
const limit = flag("--limit") === undefined ? Infinity : Number(flag("--limit"));
const spawned = argv.includes("--spawn");
const verbose = argv.includes("--verbose");

const root = fs.mkdtempSync(path.join(os.tmpdir(), "topiary-fuzz-"));
try {
  const bases = await prepareBases(path.join(root, "bases"), (args) => inProcessCli(args, { CI: "1" }));
  let cases = fuzzCases(bases, seed).filter((c) => !filter || c.id.includes(filter));
  if (cases.length > limit) {
    const rng = new Rng(seed);
    cases = cases.map((c) => ({ c, k: rng.next() })).sort((a, b) => a.k - b.k).slice(0, limit).map((x) => x.c);
  }
  const t0 = performance.now();
  const results = await runAll(cases, root, spawned ? spawnCli : inProcessCli, spawned ? 2 : 1, (j, i) => {
    const bad = j.verdict !== "one-line error";
    if (bad || verbose) console.log(`${bad ? "FAIL" : "ok  "} [${i + 1}/${cases.length}] ${j.fuzzCase.id} (${j.result.ms.toFixed(0)} ms): ${j.verdict}${j.why ? ` (${j.why})` : ""}\n       ${j.line.split("\n").slice(0, 3).join("\n       ")}`);
  });
  const byCategory = new Map<string, number>();
  for (const c of cases) byCategory.set(c.category, (byCategory.get(c.category) ?? 0) + 1);
  console.log(`\nseed ${seed}, ${spawned ? "one process per input" : "in process"}; ${[...byCategory].map(([k, v]) => `${k} ${v}`).join(", ")}`);
  const slowest = Math.max(...results.map((r) => r.result.ms));
  if (spawned) {
    const cpu = Math.max(...results.map((r) => r.result.cpuMs ?? 0));
    const rss = Math.max(...results.map((r) => r.result.maxRssBytes ?? 0));
    console.log(`slowest ${(cpu / 1000).toFixed(1)} s of CPU (${(slowest / 1000).toFixed(1)} s wall), largest peak RSS ${(rss / 2 ** 20).toFixed(0)} MB`);
  } else {
    console.log(`slowest ${(slowest / 1000).toFixed(2)} s; this process's peak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MB`);
  }
  console.log(`${((performance.now() - t0) / 1000).toFixed(0)} s in all`);
  const { counts, line } = tally(results);
  console.log(line);
  process.exitCode = counts["one-line error"] === results.length ? 0 : 1;
} finally {
  fs.rmSync(root, { recursive: true, force: true });
}
