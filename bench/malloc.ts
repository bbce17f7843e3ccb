// What the glibc malloc settings of scripts/malloc-env.mjs buy: the time to allocate a large
// Float32Array and touch each of its pages (what every activation, GEMM result and weight copy
// costs before its first use), under glibc's defaults and under topiary's settings, each in a
// fresh child process. 12 allocations per size, two kept alive at a time (as a layer's working
// arrays are), median printed; the first allocation, which must grow the heap in any setting, is
// left out of the median.
//
//   node --import tsx bench/malloc.ts [--sizes 45,180,485] (MB)
import { spawnSync } from "node:child_process";
import os from "node:os";

// a plain .mjs (bin/topiary.js reads it before any TypeScript loads): typed here by hand
const MALLOC_MODULE: string = "../scripts/malloc-env.mjs";
const { MALLOC_ENV } = (await import(MALLOC_MODULE)) as { MALLOC_ENV: Record<string, string> };

const args = process.argv.slice(2);
const ROUNDS = 12;

if (args[0] === "--child") {
  const n = Math.round((Number(args[1]) * 1e6) / 4);
  const times: number[] = [];
  const alive: Float32Array[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const t0 = performance.now();
    const a = new Float32Array(n);
    for (let j = 0; j < n; j += 1024) a[j] = 1; // one write per 4 KB page
    times.push(performance.now() - t0);
    alive.push(a);
    if (alive.length > 2) alive.shift();
  }
  const rest = times.slice(1).sort((x, y) => x - y);
  console.log(JSON.stringify({ median: rest[rest.length >> 1], first: times[0] }));
  process.exit(0);
}

const sizes = (args.includes("--sizes") ? args[args.indexOf("--sizes") + 1]! : "45,180,485").split(",").map(Number);
const base: NodeJS.ProcessEnv = { ...process.env };
for (const k of Object.keys(MALLOC_ENV)) delete base[k];
const settings: [string, NodeJS.ProcessEnv][] = [
  ["glibc defaults", base],
  ["topiary (scripts/malloc-env.mjs)", { ...base, ...MALLOC_ENV }],
];
console.log(`allocate + touch a Float32Array, median of ${ROUNDS - 1} (first left out); load average ${os.loadavg()[0]!.toFixed(1)}`);
console.log("| MB | " + settings.map(([s]) => s).join(" | ") + " |\n| ---: | " + settings.map(() => "---:").join(" | ") + " |");
for (const mb of sizes) {
  const cells = settings.map(([, env]) => {
    const r = spawnSync(process.execPath, ["--import", "tsx", import.meta.filename, "--child", String(mb)], { env, encoding: "utf8" });
    if (r.status !== 0) throw new Error(r.stderr);
    const { median, first } = JSON.parse(r.stdout.trim().split("\n").pop()!) as { median: number; first: number };
    return `${median.toFixed(0)} ms (first ${first.toFixed(0)} ms)`;
  });
  console.log(`| ${mb} | ${cells.join(" | ")} |`);
}
