// Progress for long work: a live bar on an interactive terminal, nothing in CI or when piped
// (stderr is not a TTY), so logs stay clean and --json output stays parseable.
import cliProgress from "cli-progress";

export interface ProgressReporter {
  /** done units so far, with named values for the format (e.g. { rate: "1234" }) */
  update(done: number, values?: Record<string, string | number>): void;
  stop(): void;
}

const silent: ProgressReporter = { update() {}, stop() {} };

export function interactive(): boolean {
  return Boolean(process.stderr.isTTY) && !process.env.CI;
}

/** `format` uses cli-progress tokens: {bar} {value} {total} {eta_formatted} plus your own. */
export function progress(total: number, format: string): ProgressReporter {
  if (!interactive()) return silent;
  const bar = new cliProgress.SingleBar(
    { format, stream: process.stderr, hideCursor: true, clearOnComplete: true, etaBuffer: 20 },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  return {
    update(done, values = {}) {
      if (!started) {
        bar.start(total, 0, values);
        started = true;
      }
      bar.update(done, values);
    },
    stop() {
      if (started) bar.stop();
    },
  };
}
