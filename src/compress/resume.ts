// Resumable outputs: a long job (a compression today; a sweep or recovery training later) builds
// its output in a work folder beside the final one, `.<name>.partial`, and keeps its progress
// there in `.topiary-resume/`:
//   manifest.json   what the job is: its kind, the versions that compute it, a sha256 of every
//                   input (model files, calibration ids, …) and its recipe
//   progress.json   the last committed unit of work, in the job's own terms (e.g. stage 2,
//                   layer 17, the files that hold the results so far)
//   lock            the pid of the process working in the folder
//   …               the job's state files (compressed layers, calibration activations)
// Every file is written to a temporary name and renamed (formats/atomic.ts), and progress.json is
// renamed last, so a process killed at any moment leaves either the previous commit or the new
// one, never a mix. Rerunning the same job resumes from the last commit; a job whose manifest
// differs refuses, saying what changed, until it is rerun with `restart` (which discards the
// state). On success the state is removed and the work folder renamed to the final name. A job
// that fails with an error (bad input) removes the work folder: only a killed job leaves one.
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { moveDirIntoPlace, writeAll, writeFileAtomic } from "../formats/atomic.js";
import { FormatError } from "../formats/errors.js";

export interface JobManifest {
  /** the kind of job ("compression"); another kind never resumes from this state */
  job: string;
  /** versions that change the numbers (topiary, onnxruntime) */
  versions: Record<string, string>;
  /** a checksum per input, by a label that names it in messages ("model file config.json") */
  inputs: Record<string, string>;
  /** the job's settings, as data */
  recipe: unknown;
}

const STATE_DIR = ".topiary-resume";
const MANIFEST = "manifest.json";
const PROGRESS = "progress.json";
const LOCK = "lock";

export class ResumableOutput<P> {
  private constructor(
    readonly finalDir: string,
    /** the work folder: the output is written here, and renamed to finalDir by finish() */
    readonly dir: string,
    /** progress restored from an interrupted run of the same job, or null */
    readonly restored: P | null,
  ) {}

  /**
   * Opens the work folder of `finalDir`: resumes when it holds committed progress of the same job,
   * refuses (FormatError) when it holds another job's, starts empty otherwise.
   */
  static open<P>(finalDir: string, manifest: JobManifest, opts: { overwrite?: boolean; restart?: boolean } = {}): ResumableOutput<P> {
    const resolved = path.resolve(finalDir);
    if (fs.existsSync(resolved) && !opts.overwrite) {
      const entries = fs.statSync(resolved).isDirectory() ? fs.readdirSync(resolved) : ["x"];
      if (entries.length > 0) throw new Error(`${finalDir}: output already exists (pass --overwrite to replace it)`);
    }
    const dir = workFolderOf(resolved);
    const state = path.join(dir, STATE_DIR);
    let restored: P | null = null;
    if (fs.existsSync(dir)) {
      const owner = lockOwner(path.join(state, LOCK));
      if (owner !== null) throw new FormatError(dir, `another topiary process (pid ${owner}) is writing this output`);
      const previous = readJson(path.join(state, MANIFEST)) as JobManifest | null;
      const progress = readJson(path.join(state, PROGRESS)) as P | null;
      if (previous && progress && !opts.restart) {
        const change = manifestChange(previous, manifest);
        if (change) {
          throw new FormatError(finalDir, `cannot resume the interrupted run saved in ${path.basename(dir)}: ${change}; rerun with --restart to discard it`);
        }
        restored = progress;
      }
      if (!restored) fs.rmSync(dir, { recursive: true, force: true });
    }
    fs.mkdirSync(state, { recursive: true });
    fs.writeFileSync(path.join(state, LOCK), String(process.pid));
    // what the killed run wrote outside its state (output files, temporaries) is redone
    for (const f of fs.readdirSync(dir)) if (f !== STATE_DIR) fs.rmSync(path.join(dir, f), { recursive: true, force: true });
    if (!restored) writeJsonAtomic(path.join(state, MANIFEST), manifest);
    return new ResumableOutput<P>(resolved, dir, restored);
  }

  /** A path for a state file or folder (removed with the state when the job finishes). */
  statePath(name: string): string {
    return path.join(this.dir, STATE_DIR, name);
  }

  /** Records `progress` as the point to resume from; every file it refers to must be written already. */
  commit(progress: P): void {
    writeJsonAtomic(this.statePath(PROGRESS), progress);
    syncDir(this.statePath("."));
  }

  /** The output is complete: removes the state and renames the work folder to the final name. */
  finish(): void {
    // progress first: from here on a killed process leaves nothing that resumes
    fs.rmSync(this.statePath(PROGRESS), { force: true });
    fs.rmSync(this.statePath("."), { recursive: true, force: true });
    moveDirIntoPlace(this.dir, this.finalDir);
  }

  /** The job failed with an error: removes the work folder (nothing half-written stays). */
  abandon(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** `.<name>.partial` beside the output: one per output, so a rerun finds it. */
export function workFolderOf(finalDir: string): string {
  const resolved = path.resolve(finalDir);
  return path.join(path.dirname(resolved), `.${path.basename(resolved)}.partial`);
}

/** What differs between the manifest of the saved state and the current job, or null. */
export function manifestChange(saved: JobManifest, now: JobManifest): string | null {
  if (saved.job !== now.job) return `it was a ${saved.job} job, this is a ${now.job} job`;
  for (const k of new Set([...Object.keys(saved.versions), ...Object.keys(now.versions)])) {
    if (saved.versions[k] !== now.versions[k]) return `${k} version changed (${saved.versions[k] ?? "none"} → ${now.versions[k] ?? "none"})`;
  }
  for (const k of new Set([...Object.keys(saved.inputs), ...Object.keys(now.inputs)])) {
    if (!(k in now.inputs)) return `${k} is gone`;
    if (!(k in saved.inputs)) return `${k} is new`;
    if (saved.inputs[k] !== now.inputs[k]) return `${k} changed`;
  }
  const a = flatten(saved.recipe);
  const b = flatten(now.recipe);
  for (const k of new Set([...a.keys(), ...b.keys()])) {
    if (a.get(k) !== b.get(k)) return `the recipe changed (${k || "recipe"}: ${a.get(k) ?? "unset"} → ${b.get(k) ?? "unset"})`;
  }
  return null;
}

/** JSON leaves by path ("stages[0].sparsity" → "0.5"). */
function flatten(v: unknown, prefix = "", out = new Map<string, string>()): Map<string, string> {
  if (Array.isArray(v)) v.forEach((x, i) => flatten(x, `${prefix}[${i}]`, out));
  else if (typeof v === "object" && v !== null) for (const [k, x] of Object.entries(v)) flatten(x, prefix ? `${prefix}.${k}` : k, out);
  else out.set(prefix, JSON.stringify(v));
  return out;
}

/** sha256 of a file, read in chunks (model files can be larger than memory). */
export function sha256OfFile(file: string): string {
  const hash = crypto.createHash("sha256");
  const buf = Buffer.allocUnsafe(16 * 1024 * 1024);
  const fd = fs.openSync(file, "r");
  try {
    for (let n; (n = fs.readSync(fd, buf, 0, buf.length, null)) > 0; ) hash.update(buf.subarray(0, n));
  } finally {
    fs.closeSync(fd);
  }
  return hash.digest("hex");
}

export function sha256OfBytes(data: ArrayBufferView): string {
  return crypto.createHash("sha256").update(new Uint8Array(data.buffer, data.byteOffset, data.byteLength)).digest("hex");
}

/** Writes float32 data to `file` atomically (in chunks: calibration activations can pass 2 GB). */
export function writeFloat32Atomic(file: string, data: Float32Array): void {
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const CHUNK = 256 * 1024 * 1024;
  writeFileAtomic(file, (fd) => {
    for (let off = 0; off < bytes.length; off += CHUNK) writeAll(fd, bytes.subarray(off, Math.min(off + CHUNK, bytes.length)));
  });
}

/** Reads a file written by writeFloat32Atomic; `length` is the element count the job expects. */
export function readFloat32File(file: string, length: number): Float32Array {
  const out = new Float32Array(length);
  const bytes = new Uint8Array(out.buffer);
  const fd = fs.openSync(file, "r");
  try {
    if (fs.fstatSync(fd).size !== bytes.length) throw new FormatError(file, `is ${fs.fstatSync(fd).size} bytes, the job expects ${bytes.length}`);
    let off = 0;
    while (off < bytes.length) {
      const n = fs.readSync(fd, bytes, off, Math.min(bytes.length - off, 1 << 30), off);
      if (n === 0) throw new FormatError(file, "ended early");
      off += n;
    }
  } finally {
    fs.closeSync(fd);
  }
  return out;
}

function writeJsonAtomic(file: string, value: unknown): void {
  const bytes = Buffer.from(JSON.stringify(value, null, 1) + "\n");
  writeFileAtomic(file, (fd) => writeAll(fd, bytes));
}

function readJson(file: string): unknown {
  try {
    return JSON.parse(fs.readFileSync(file, "utf8"));
  } catch {
    return null; // absent or torn: there is no state to resume
  }
}

/** The pid in a lock file when that process is alive (and is not this one), else null. */
function lockOwner(file: string): number | null {
  let pid: number;
  try {
    pid = Number(fs.readFileSync(file, "utf8"));
  } catch {
    return null;
  }
  if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) return null;
  try {
    process.kill(pid, 0);
    return pid;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM" ? pid : null;
  }
}

/** fsync a folder, so the renames in it survive a power loss, not only a killed process. */
function syncDir(dir: string): void {
  const fd = fs.openSync(dir, "r");
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
