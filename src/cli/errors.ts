// The CLI's one rule for failures: a single line on stderr naming the file and the problem,
// and a non-zero exit. Stack traces only with TOPIARY_DEBUG=1.
export class UsageError extends Error {
  override name = "UsageError";
}

export function reportAndExit(e: unknown): never {
  const err = e instanceof Error ? e : new Error(String(e));
  if (process.env.TOPIARY_DEBUG === "1") console.error(err.stack);
  const message = err.message.split("\n")[0]!.replace(/^Error: /, "");
  process.stderr.write(`topiary: ${message}\n`);
  process.exit(err instanceof UsageError ? 2 : 1);
}
