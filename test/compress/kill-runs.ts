// Shared by the resume tests (resume.test.ts, structured/resume.test.ts): a topiary command run in
// a fresh process that SIGKILLs itself at a kill point (TOPIARY_TEST_KILL_AT, formats/kill-point.ts),
// the same command run to the end in this process, and the digests that compare their outputs.
import { execFile } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { REPO } from "../helpers.js";
import { topiaryInProcess } from "../cli/run-cli.js";

export interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

/** A spawned run, SIGKILLed by itself at `killAt` (or not). */
export function topiary(args: string[], killAt?: string): Promise<Run> {
  const env: NodeJS.ProcessEnv = { ...process.env, CI: "1", TOPIARY_DEBUG: "" };
  delete env.TOPIARY_TEST_KILL_AT;
  if (killAt) env.TOPIARY_TEST_KILL_AT = killAt;
  return new Promise((resolve) => {
    execFile(process.execPath, [path.join(REPO, "bin", "topiary.js"), ...args], { cwd: REPO, env, timeout: 300_000 }, (err, _stdout, stderr) => {
      const e = err as (Error & { code?: number; signal?: NodeJS.Signals }) | null;
      resolve({ code: e ? (typeof e.code === "number" ? e.code : null) : 0, signal: e?.signal ?? null, stderr });
    });
  });
}

/**
 * A run that is not killed: the same command line in this process, without ~1.7 s of CPU of
 * start-up per run. What it resumes from is on disk; that a fresh process resumes is what the
 * killed runs (all spawned) show, each resuming before its kill point.
 */
export async function topiaryToEnd(args: string[]): Promise<Run> {
  const r = await topiaryInProcess(args);
  return { code: r.code, signal: null, stderr: r.stderr };
}

/** sha256 of every file of a folder (topiary.json apart: it records times), by name. */
export function digests(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of fs.readdirSync(dir).sort()) {
    if (f !== "topiary.json") out[f] = crypto.createHash("sha256").update(fs.readFileSync(path.join(dir, f))).digest("hex");
  }
  return out;
}
