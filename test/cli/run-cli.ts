// Runs the real command line (`node bin/topiary.js …`) in a child process, as a user would.
import { execFile } from "node:child_process";
import path from "node:path";
import { REPO } from "../helpers.js";

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI; a run that takes over `timeoutMs` (a hang) rejects. */
export function topiary(args: string[], timeoutMs = 120_000, env: Record<string, string> = {}): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const fullEnv = { ...process.env, CI: "1", TOPIARY_DEBUG: "", ...env };
    execFile(
      process.execPath,
      [path.join(REPO, "bin", "topiary.js"), ...args],
      { cwd: REPO, env: fullEnv, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err && (err as { killed?: boolean }).killed) reject(new Error(`topiary ${args.join(" ")}: no exit after ${timeoutMs} ms`));
        else resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
      },
    );
  });
}

/** Asserts the failure shape every bad input must have: one line, "topiary: …", non-zero exit. */
export function oneLineError(r: CliRun): string {
  if (r.code !== 1) throw new Error(`expected exit 1, got ${r.code} (stdout: ${r.stdout.slice(0, 200)})`);
  const lines = r.stderr.trimEnd().split("\n");
  if (lines.length !== 1 || !lines[0]!.startsWith("topiary: ")) throw new Error(`expected one "topiary: …" line on stderr, got:\n${r.stderr}`);
  return lines[0]!;
}
