// Runs the real command line (`node bin/topiary.js …`) in a child process, as a user would, or
// its parser in this process (`topiaryInProcess`) where the command's work or its refusal is what
// a test checks: a spawned run costs ~1.7 s of CPU in start-up alone (node, tsx, every command's
// modules), which dozens of bad-input cases would pay again and again.
import { execFile } from "node:child_process";
import path from "node:path";
import { REPO } from "../helpers.js";

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** The environment every test run of the CLI gets: no progress bars, no stack traces. */
const CLI_ENV = { CI: "1", TOPIARY_DEBUG: "" };

/** Runs the CLI; a run that takes over `timeoutMs` (a hang) rejects. */
export function topiary(args: string[], timeoutMs = 120_000, env: Record<string, string> = {}): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const fullEnv = { ...process.env, ...CLI_ENV, ...env };
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

let inProcessRuns: Promise<unknown> = Promise.resolve();

/**
 * The same command line parsed and run in this process (src/cli/main.ts's program, with main()'s
 * failure handling: a commander error exits with its code, anything else prints
 * `topiary: <line>` and exits 1), its stdout and stderr captured. What it does not cover is
 * bin/topiary.js and the real exit, so every command keeps spawned tests too.
 * Runs one at a time (stdout/stderr and process.env are this process's).
 */
export function topiaryInProcess(args: string[], env: Record<string, string> = {}): Promise<CliRun> {
  const run = inProcessRuns.then(() => runInProcess(args, env));
  inProcessRuns = run.catch(() => {});
  return run;
}

async function runInProcess(args: string[], env: Record<string, string>): Promise<CliRun> {
  const { buildProgram } = await import("../../src/cli/main.js");
  const { failureLine } = await import("../../src/cli/errors.js");
  const { CommanderError } = await import("commander");
  const savedEnv = { ...process.env };
  const writes = { out: process.stdout.write, err: process.stderr.write };
  let stdout = "";
  let stderr = "";
  // Only text is captured: node's test runner sends its own events (Buffers) through this
  // process's stdout while a test runs, and they must still reach it.
  const capture = (stream: NodeJS.WriteStream, original: typeof process.stdout.write, append: (s: string) => void) =>
    ((chunk: string | Uint8Array, ...rest: unknown[]): boolean => {
      if (typeof chunk !== "string") return (original as (...a: unknown[]) => boolean).call(stream, chunk, ...rest);
      append(chunk);
      (rest.find((x) => typeof x === "function") as (() => void) | undefined)?.();
      return true;
    }) as typeof process.stdout.write;
  Object.assign(process.env, CLI_ENV, env);
  process.stdout.write = capture(process.stdout, writes.out, (s) => (stdout += s));
  process.stderr.write = capture(process.stderr, writes.err, (s) => (stderr += s));
  let code = 0;
  try {
    await buildProgram().parseAsync(["node", "topiary", ...args]);
  } catch (e) {
    if (e instanceof CommanderError) code = e.exitCode;
    else {
      stderr += `topiary: ${failureLine(e)}\n`;
      code = 1;
    }
  } finally {
    process.stdout.write = writes.out;
    process.stderr.write = writes.err;
    for (const k of Object.keys(process.env)) if (!(k in savedEnv)) delete process.env[k];
    Object.assign(process.env, savedEnv);
  }
  return { code, stdout, stderr };
}

/** Asserts the failure shape every bad input must have: one line, "topiary: …", non-zero exit. */
export function oneLineError(r: CliRun): string {
  if (r.code !== 1) throw new Error(`expected exit 1, got ${r.code} (stdout: ${r.stdout.slice(0, 200)})`);
  const lines = r.stderr.trimEnd().split("\n");
  if (lines.length !== 1 || !lines[0]!.startsWith("topiary: ")) throw new Error(`expected one "topiary: …" line on stderr, got:\n${r.stderr}`);
  return lines[0]!;
}
