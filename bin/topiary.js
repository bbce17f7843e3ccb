#!/usr/bin/env node
// topiary's command-line entry. The sources are TypeScript, run through tsx's loader:
// no build step, so `npm ci` is all an install needs.
// malloc reads its tuning only at start-up, so without it the CLI re-runs itself once with it
// (see scripts/malloc-env.mjs; TOPIARY_NO_MALLOC_ENV=1 skips this).
import { spawn } from "node:child_process";
import { hasMallocEnv, withMallocEnv } from "../scripts/malloc-env.mjs";

if (!hasMallocEnv() && process.env.TOPIARY_NO_MALLOC_ENV !== "1" && process.platform === "linux") {
  const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], { stdio: "inherit", env: withMallocEnv() });
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(signal, () => child.kill(signal));
  child.on("exit", (code, signal) => {
    if (signal) process.kill(process.pid, signal);
    else process.exit(code ?? 1);
  });
} else {
  const { register } = await import("tsx/esm/api");
  register();
  const { main } = await import("../src/cli/main.ts");
  await main(process.argv);
}
