// Tokenizing is the slowest step of evaluating a small model: the JS BPE takes ~10 µs per
// character on texts with no pre-tokenizer (Llama's sentencepiece-style tokenizers treat the whole
// text as one word). Results are cached on disk, keyed by a digest of the tokenizer and the text,
// so evaluating the same file again (before and after compression) costs nothing.
// TOPIARY_CACHE_DIR moves the cache; TOPIARY_NO_CACHE=1 turns it off.
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { writeAll, writeFileAtomic } from "../formats/atomic.js";

/** Texts shorter than this are tokenized directly: caching them is not worth a file. */
const MIN_CACHED_CHARS = 20_000;

function cacheDir(): string | null {
  if (process.env.TOPIARY_NO_CACHE === "1") return null;
  if (process.env.TOPIARY_CACHE_DIR) return process.env.TOPIARY_CACHE_DIR;
  const base = process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), ".cache");
  return path.join(base, "topiary", "tokens");
}

/** A lock older than this belongs to a process that died; it is ignored. */
const STALE_LOCK_MS = 10 * 60 * 1000;
const POLL_MS = 100;

function readCached(file: string): Int32Array | null {
  try {
    const buf = fs.readFileSync(file);
    if (buf.byteLength % 4 === 0) return new Int32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
  } catch {
    // not cached yet
  }
  return null;
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Takes `<file>.lock` so that concurrent processes (parallel test files, two CLI runs) tokenize a
 * text once: the others wait for the cache file instead of repeating the work. Returns false when
 * another process holds a live lock.
 */
function tryLock(lock: string): boolean {
  try {
    fs.closeSync(fs.openSync(lock, "wx"));
    return true;
  } catch {
    try {
      if (Date.now() - fs.statSync(lock).mtimeMs > STALE_LOCK_MS) {
        fs.rmSync(lock, { force: true });
        return tryLock(lock);
      }
    } catch {
      return tryLock(lock); // the lock vanished between the two calls
    }
    return false;
  }
}

export function cachedTokens(tokenizerKey: string, text: string, encode: () => Int32Array): Int32Array {
  const dir = text.length >= MIN_CACHED_CHARS ? cacheDir() : null;
  if (!dir) return encode();
  const key = crypto.createHash("sha256").update(tokenizerKey).update("\0").update(text).digest("hex");
  const file = path.join(dir, `${key}.i32`);
  const lock = `${file}.lock`;
  let locked = false;
  try {
    fs.mkdirSync(dir, { recursive: true });
    for (;;) {
      const cached = readCached(file);
      if (cached) return cached;
      if ((locked = tryLock(lock))) break;
      sleepSync(POLL_MS);
    }
  } catch {
    // an unwritable cache only costs speed
  }
  try {
    const ids = encode();
    try {
      writeFileAtomic(file, (fd) => writeAll(fd, new Uint8Array(ids.buffer, ids.byteOffset, ids.byteLength)));
    } catch {
      // a read-only or full disk only costs speed
    }
    return ids;
  } finally {
    if (locked) fs.rmSync(lock, { force: true });
  }
}
