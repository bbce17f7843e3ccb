#!/usr/bin/env node
// Runs a TypeScript script (a benchmark) with tsx and topiary's malloc settings:
//   node scripts/tuned.mjs bench/prune.ts [args…]
import { spawnSync } from "node:child_process";
import { withMallocEnv } from "./malloc-env.mjs";

const r = spawnSync(process.execPath, ["--import", "tsx", ...process.argv.slice(2)], { stdio: "inherit", env: withMallocEnv() });
process.exit(r.status ?? 1);
