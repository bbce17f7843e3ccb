// The trained values before their last update, kept on disk rather than in memory: what a step
// whose loss is not finite rolls back to (the weights it ran with are already the bad ones). A
// 22-layer TinyLlama student trains 968 M weights, so an in-memory copy would cost 3.9 GB of RAM
// for something read only when a run fails; here each param is written (one pwrite, at its own
// offset) just before AdamW updates it and read back only on a rollback or a checkpoint. The
// file's pages are the kernel's page cache, reclaimable, not the process's memory.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { FormatError } from "../formats/errors.js";

export class RollbackFile {
  private readonly offsets: number[] = [];
  private constructor(
    private readonly file: string,
    private readonly fd: number,
    private readonly lengths: readonly number[],
    /** a folder made for the file, removed with it */
    private readonly ownDir: string | null,
  ) {
    let off = 0;
    for (const n of lengths) {
      this.offsets.push(off);
      off += 4 * n;
    }
  }

  /**
   * A rollback file for params of these lengths at `file` (created or truncated), or, with no
   * file named, in a fresh folder under the system's temporary directory.
   */
  static create(lengths: readonly number[], file?: string): RollbackFile {
    let ownDir: string | null = null;
    if (!file) {
      ownDir = fs.mkdtempSync(path.join(os.tmpdir(), "topiary-rollback-"));
      file = path.join(ownDir, "previous.f32");
    }
    return new RollbackFile(file, fs.openSync(file, "w+"), lengths, ownDir);
  }

  /** Stores param k's values (before its update). */
  save(k: number, values: Float32Array): void {
    this.check(k, values);
    const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    for (let off = 0; off < bytes.length; ) off += fs.writeSync(this.fd, bytes, off, Math.min(bytes.length - off, 1 << 30), this.offsets[k]! + off);
  }

  /** Reads param k's stored values into `into`. */
  restore(k: number, into: Float32Array): void {
    this.check(k, into);
    const bytes = new Uint8Array(into.buffer, into.byteOffset, into.byteLength);
    for (let off = 0; off < bytes.length; ) {
      const n = fs.readSync(this.fd, bytes, off, Math.min(bytes.length - off, 1 << 30), this.offsets[k]! + off);
      if (n === 0) throw new FormatError(this.file, `ended early (param ${k} was never stored)`);
      off += n;
    }
  }

  /** Param k's stored values, in a new array. */
  read(k: number): Float32Array {
    const a = new Float32Array(this.lengths[k]!);
    this.restore(k, a);
    return a;
  }

  /** Closes and removes the file. */
  close(): void {
    fs.closeSync(this.fd);
    fs.rmSync(this.ownDir ?? this.file, { recursive: true, force: true });
  }

  private check(k: number, a: Float32Array): void {
    if (a.length !== this.lengths[k]) throw new Error(`rollback: param ${k} has ${a.length} values, the file holds ${this.lengths[k]}`);
  }
}
