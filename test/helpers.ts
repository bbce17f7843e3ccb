// Shared test helpers: where ../shared is, and a way to skip end-to-end tests without it.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

export const REPO = path.resolve(import.meta.dirname, "..");
export const SHARED = path.resolve(REPO, "..", "shared");
export const HAS_SHARED = fs.existsSync(path.join(SHARED, "models", "stories260K", "config.json"));
export const STORIES = path.join(SHARED, "models", "stories260K");
export const DATA = path.join(SHARED, "data");
export const REFERENCE = path.join(SHARED, "reference");

/** `{ skip }` option for tests that need ../shared. */
export const needsShared = HAS_SHARED ? {} : { skip: "../shared is not beside the repository" };

const tempDirs: string[] = [];
process.on("exit", () => {
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
});

/** A fresh temporary folder, removed when the process exits. */
export function tempDir(prefix = "topiary-test-"): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

/** reference.json parsed. */
export function referenceResults(): {
  results: Record<string, Record<string, unknown> & { ppl_exact: Record<string, number> }>;
  protocol: Record<string, unknown>;
} {
  return JSON.parse(fs.readFileSync(path.join(REFERENCE, "reference.json"), "utf8"));
}
