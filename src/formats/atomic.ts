// Nothing half-written is ever left under a final name: files and folders are written to a
// temporary sibling and renamed into place only when complete. A rename within one directory
// is atomic on POSIX file systems.
import fs from "node:fs";
import path from "node:path";
import { killPoint } from "./kill-point.js";

function tempSibling(finalPath: string): string {
  const dir = path.dirname(finalPath);
  const base = path.basename(finalPath);
  const tag = `${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  return path.join(dir, `.${base}.tmp-${tag}`);
}

/** Writes a file through `write(fd)`; on success renames it to `finalPath`, on failure removes it. */
export function writeFileAtomic(finalPath: string, write: (fd: number) => void): void {
  const tmp = tempSibling(finalPath);
  const fd = fs.openSync(tmp, "w");
  try {
    write(fd);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    killPoint(`rename:${path.basename(finalPath)}`);
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fs.renameSync(tmp, finalPath);
}

/** Writes all of `data` at the fd's current position (writeSync may write less than asked). */
export function writeAll(fd: number, data: Uint8Array): void {
  let off = 0;
  while (off < data.length) off += fs.writeSync(fd, data, off, data.length - off);
}

/**
 * Builds a folder through `fill(tmpDir)` and renames it to `finalDir` when `fill` resolves.
 * An existing `finalDir` is replaced only when `overwrite` is set; on failure the temporary
 * folder is removed and `finalDir` is untouched.
 */
export async function writeDirAtomic(
  finalDir: string,
  fill: (tmpDir: string) => Promise<void> | void,
  opts: { overwrite?: boolean } = {},
): Promise<void> {
  const resolved = path.resolve(finalDir);
  if (fs.existsSync(resolved) && !opts.overwrite) {
    const entries = fs.statSync(resolved).isDirectory() ? fs.readdirSync(resolved) : ["x"];
    if (entries.length > 0) {
      throw new Error(`${finalDir}: output already exists (pass --overwrite to replace it)`);
    }
  }
  fs.mkdirSync(path.dirname(resolved), { recursive: true });
  const tmp = tempSibling(resolved);
  fs.mkdirSync(tmp);
  try {
    await fill(tmp);
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  moveDirIntoPlace(tmp, resolved);
}

/** Renames a complete folder to `finalDir`, replacing an existing one (the caller checked it may). */
export function moveDirIntoPlace(tmp: string, finalDir: string): void {
  if (fs.existsSync(finalDir)) {
    const old = tempSibling(finalDir);
    fs.renameSync(finalDir, old);
    fs.renameSync(tmp, finalDir);
    fs.rmSync(old, { recursive: true, force: true });
  } else {
    fs.renameSync(tmp, finalDir);
  }
}
