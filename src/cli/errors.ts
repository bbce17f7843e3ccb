// The CLI's one rule for failures: a single line on stderr naming the file and the problem,
// and a non-zero exit. Stack traces only with TOPIARY_DEBUG=1.
export class UsageError extends Error {
  override name = "UsageError";
}

/** The line printed for a failure, without the "topiary: " prefix. */
export function failureLine(e: unknown): string {
  const err = e instanceof Error ? e : new Error(String(e));
  return err.message.split("\n")[0]!.replace(/^Error: /, "");
}

/** Every failure, bad flag or bad file, exits 1 (as commander does for its own errors). */
export function reportAndExit(e: unknown): never {
  if (process.env.TOPIARY_DEBUG === "1") console.error(e instanceof Error ? e.stack : e);
  process.stderr.write(`topiary: ${failureLine(e)}\n`);
  process.exit(1);
}
