// Runs fuzz cases against the CLI and judges each outcome. A case passes when the command exits 1
// with exactly one stderr line "topiary: …" that names the case's file (or flag), nothing on
// stdout beyond that, no internal-error text, and its workspace unchanged: no output, no
// temporary file or folder (TMPDIR points into the workspace), within the time limit and, when
// spawned, within the memory bound.
//
// Two ways to run: spawned (`node bin/topiary.js`, one process per case: real exit codes, peak
// RSS, a hard timeout) for `npm run fuzz`, and in-process (the CLI's own parser called once per
// case) for the test's sample, where process start-up would dominate.
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { REPO, STORIES, DATA } from "../helpers.js";
import type { Bases, FileSpec, FuzzCase } from "./cases.js";

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
  timedOut: boolean;
  /** peak resident memory of the process (spawned runs only) */
  maxRssBytes: number | null;
  /** CPU time of the process (spawned runs only): on a shared machine wall time says little */
  cpuMs: number | null;
}

export type Verdict = "one-line error" | "crash" | "hang" | "wrote files" | "memory" | "accepted";

/** Peak RSS a refused input may take: the CLI's own start-up (node, tsx, onnxruntime) is ~250 MB. */
export const RSS_LIMIT_BYTES = 1.5 * 2 ** 30;
/** CPU time a refusal may take (spawned: the child's user + system time; in process: wall time). */
export const TIME_LIMIT_MS = 10_000;
/** Wall time after which a spawned run is killed as a hang (other jobs share this machine's cores). */
export const WALL_LIMIT_MS = 60_000;

/** Error text that means the code failed, not the input was judged: never acceptable. */
const INTERNAL = /Cannot read propert|is not a function|is not iterable|Maximum call stack|Invalid array length|Array buffer allocation failed|Invalid typed array length|out of memory|RangeError|TypeError|ReferenceError|\[object Object\]|\bat .*\(.*:\d+:\d+\)/;

/** Good files the cases start from, built once under `dir` from stories260K with the CLI itself. */
export async function prepareBases(dir: string, run: (args: string[]) => Promise<RunResult>): Promise<Bases> {
  fs.mkdirSync(dir, { recursive: true });
  const bases: Bases = {
    model: STORIES,
    ctPack: path.join(dir, "ct-pack"),
    ctBitmask: path.join(dir, "ct-bitmask"),
    gguf: path.join(dir, "model.gguf"),
    data: path.join(dir, "data.txt"),
  };
  fs.writeFileSync(bases.data, fs.readFileSync(path.join(DATA, "tinystories", "test.txt"), "utf8").slice(0, 6000));
  const steps = [
    ["quantize", STORIES, "--method", "rtn", "--bits", "4", "--group-size", "32", "--out", bases.ctPack],
    ["prune", STORIES, "--method", "magnitude", "--sparsity", "0.5", "--format", "sparse-bitmask", "--out", bases.ctBitmask],
    ["export", STORIES, "--to", "gguf", "--type", "q4_0", "--out", bases.gguf],
  ];
  for (const args of steps) {
    const r = await run(args);
    if (r.code !== 0) throw new Error(`fuzz bases: topiary ${args.join(" ")} failed: ${r.stderr}`);
  }
  return bases;
}

function writeSpec(file: string, spec: FileSpec): void {
  if (spec === null) return;
  fs.mkdirSync(path.dirname(file), { recursive: true });
  if (typeof spec === "string" || Buffer.isBuffer(spec)) fs.writeFileSync(file, spec);
  else fs.symlinkSync(spec.link, file);
}

/** Every path under `dir` with its size (links as links), for the "nothing written" check. */
function listing(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      // tsx's transpile cache (TMPDIR/tsx-<uid>), kept across runs by design: the loader's, not topiary's
      if (d.endsWith(`${path.sep}tmp`) && /^tsx-\d+$/.test(e.name)) continue;
      if (e.isDirectory()) {
        out.push(`${p}/`);
        walk(p);
      } else out.push(`${p} ${e.isSymbolicLink() ? "link" : fs.statSync(p).size}`);
    }
  };
  walk(dir);
  return out.sort();
}

export interface Judged {
  fuzzCase: FuzzCase;
  verdict: Verdict;
  line: string;
  why: string;
  result: RunResult;
}

/**
 * Lays the case out in `workspace` (created fresh), runs it through `run` with TMPDIR and the
 * token cache inside the workspace, judges the outcome and removes the workspace.
 */
export async function runCase(
  c: FuzzCase,
  workspace: string,
  run: (args: string[], env: Record<string, string>) => Promise<RunResult>,
): Promise<Judged> {
  fs.rmSync(workspace, { recursive: true, force: true });
  fs.mkdirSync(path.join(workspace, "tmp"), { recursive: true });
  for (const [rel, spec] of Object.entries(c.files)) writeSpec(path.join(workspace, rel), spec);
  const before = listing(workspace);
  const args = c.args.map((a) => a.replaceAll("$W", workspace));
  const env = { TMPDIR: path.join(workspace, "tmp"), TOPIARY_CACHE_DIR: path.join(workspace, "tmp", "token-cache"), CI: "1", TOPIARY_DEBUG: "" };
  const result = await run(args, env);
  // the token cache is a cache (keyed by content, reused by any later run), not an output
  fs.rmSync(env.TOPIARY_CACHE_DIR, { recursive: true, force: true });
  const after = listing(workspace);
  const judged = (verdict: Verdict, why: string): Judged => ({ fuzzCase: c, verdict, why, line: result.stderr.trimEnd(), result });
  let out: Judged;
  const lines = result.stderr.trimEnd().split("\n");
  const written = after.filter((p) => !before.includes(p));
  if (result.timedOut) out = judged("hang", `no exit after ${result.ms} ms`);
  else if (result.code === 0) out = judged("accepted", "exit 0");
  else if (written.length > 0) out = judged("wrote files", written.slice(0, 3).join(", ") + (written.length > 3 ? `, … (${written.length})` : ""));
  else if (result.maxRssBytes !== null && result.maxRssBytes > RSS_LIMIT_BYTES) out = judged("memory", `peak RSS ${(result.maxRssBytes / 2 ** 20).toFixed(0)} MB`);
  else if (result.code !== 1) out = judged("crash", `exit ${result.code}`);
  else if (lines.length !== 1 || !lines[0]!.startsWith("topiary: ")) out = judged("crash", `${lines.length} stderr lines`);
  else if (INTERNAL.test(lines[0]!)) out = judged("crash", "internal error text");
  else if (!c.names.some((n) => lines[0]!.includes(n.replaceAll("$W", workspace)))) out = judged("crash", `does not name ${c.names.join(" or ")}`);
  else if ((result.cpuMs ?? result.ms) > TIME_LIMIT_MS) out = judged("hang", `took ${(result.cpuMs ?? result.ms).toFixed(0)} ms of CPU`);
  else out = judged("one-line error", "");
  fs.rmSync(workspace, { recursive: true, force: true });
  return out;
}

/** `node bin/topiary.js args` in a child process, with a hard timeout and its peak RSS. */
export function spawnCli(args: string[], env: Record<string, string>, timeoutMs = WALL_LIMIT_MS): Promise<RunResult> {
  const rssFile = path.join(path.dirname(env.TMPDIR ?? "/tmp"), `..rss-${process.pid}-${Math.random().toString(36).slice(2)}`);
  return new Promise((resolve) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, ["--import", path.join(REPO, "test", "fuzz", "rss-hook.mjs"), path.join(REPO, "bin", "topiary.js"), ...args], {
      cwd: REPO,
      env: { ...process.env, ...env, TOPIARY_NO_MALLOC_ENV: "1", TOPIARY_FUZZ_RSS_FILE: rssFile },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutMs);
    child.on("close", (code) => {
      clearTimeout(timer);
      let maxRssBytes: number | null = null;
      let cpuMs: number | null = null;
      try {
        const u = JSON.parse(fs.readFileSync(rssFile, "utf8")) as { maxRssKiB: number; cpuMicros: number };
        maxRssBytes = u.maxRssKiB * 1024;
        cpuMs = u.cpuMicros / 1000;
        fs.rmSync(rssFile);
      } catch {
        // killed before it could write: the timeout says so
      }
      resolve({ code, stdout, stderr, ms: performance.now() - t0, timedOut, maxRssBytes, cpuMs });
    });
  });
}

/**
 * The CLI's parser called in this process (src/cli/main.ts's buildProgram, with main()'s
 * failure handling minus the exit). A case that hangs here hangs the caller: the test's timeout
 * catches it.
 */
export async function inProcessCli(args: string[], env: Record<string, string>): Promise<RunResult> {
  const { buildProgram } = await import("../../src/cli/main.js");
  const { failureLine } = await import("../../src/cli/errors.js");
  const { CommanderError } = await import("commander");
  const saved = { ...process.env };
  const writes = { out: process.stdout.write, err: process.stderr.write };
  let stdout = "";
  let stderr = "";
  Object.assign(process.env, env);
  // text is the CLI's; Buffers are node's test runner reporting through this process's stdout
  // while a test runs, and must still reach it
  const capture = (stream: NodeJS.WriteStream, original: typeof process.stdout.write, append: (s: string) => void) =>
    ((chunk: string | Uint8Array, ...rest: unknown[]) =>
      typeof chunk === "string" ? (append(chunk), true) : (original as (...a: unknown[]) => boolean).call(stream, chunk, ...rest)) as typeof process.stdout.write;
  process.stdout.write = capture(process.stdout, writes.out, (s) => (stdout += s));
  process.stderr.write = capture(process.stderr, writes.err, (s) => (stderr += s));
  const t0 = performance.now();
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
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
  }
  return { code, stdout, stderr, ms: performance.now() - t0, timedOut: false, maxRssBytes: null, cpuMs: null };
}

/** Runs `cases` with `concurrency` at a time; `onDone` sees each verdict as it comes. */
export async function runAll(
  cases: FuzzCase[],
  root: string,
  run: (args: string[], env: Record<string, string>) => Promise<RunResult>,
  concurrency: number,
  onDone: (j: Judged, i: number) => void = () => {},
): Promise<Judged[]> {
  const results: Judged[] = new Array(cases.length);
  let next = 0;
  let done = 0;
  const worker = async (w: number) => {
    while (next < cases.length) {
      const i = next++;
      results[i] = await runCase(cases[i]!, path.join(root, `w${w}`), run);
      onDone(results[i]!, done++);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, (_, w) => worker(w)));
  return results;
}

/** Counts per verdict, and the tally line `npm run fuzz` prints. */
export function tally(results: Judged[]): { counts: Record<Verdict, number>; line: string } {
  const counts: Record<Verdict, number> = { "one-line error": 0, crash: 0, hang: 0, "wrote files": 0, memory: 0, accepted: 0 };
  for (const r of results) counts[r.verdict]++;
  const pct = ((100 * counts["one-line error"]) / results.length).toFixed(1);
  const line =
    `${results.length} inputs: ${counts["one-line error"]} one-line errors (${pct} %), ${counts.crash} crashes, ${counts.hang} hangs, ` +
    `${counts["wrote files"]} wrote files, ${counts.memory} over ${RSS_LIMIT_BYTES / 2 ** 30} GiB, ${counts.accepted} accepted`;
  return { counts, line };
}
