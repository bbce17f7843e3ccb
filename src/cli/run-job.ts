// Running a compression job from the CLI: progress per layer on a terminal, a summary at the end.
import { runCompression, type CompressionJob } from "../compress/job.js";
import { progress, type ProgressReporter } from "./progress.js";

export async function runJobWithProgress(job: Omit<CompressionJob, "onLayer" | "warn">, methods: string[], json: boolean): Promise<void> {
  let bar: ProgressReporter | null = null;
  let barStage = -1;
  const summary = await runCompression({
    ...job,
    warn: (m) => process.stderr.write(`${bar ? "\n" : ""}topiary: warning: ${m}\n`),
    // said on every terminal or log, not only in the progress bar: work was skipped
    onResume: (r) => {
      // i/N counts completed layers, as the progress bar does
      const where = r.stages > 1 ? ` of stage ${r.stage + 1}/${r.stages} (${methods[r.stage]})` : "";
      const restored = [r.stage > 0 ? `stage${r.stage > 1 ? "s" : ""} 1${r.stage > 1 ? `–${r.stage}` : ""}` : "", r.layer > 0 ? `layer${r.layer > 1 ? `s 1–${r.layer}` : " 1"}` : ""]
        .filter(Boolean)
        .join(" and ");
      process.stderr.write(`topiary: resumed at layer ${r.layer}/${r.layers}${where}: ${restored || "nothing"} restored from the interrupted run (--restart discards it)\n`);
    },
    onLayer: (stage, p) => {
      if (stage !== barStage) {
        bar?.stop();
        bar = progress(p.layers, `${methods[stage]} {bar} layer {value}/{total} | {secs} s/layer | ETA {eta_formatted}`);
        barStage = stage;
      }
      bar!.update(p.layer, { secs: p.seconds.toFixed(2) });
    },
  });
  (bar as ProgressReporter | null)?.stop();
  const params = summary.linears.reduce((a, r) => a + r.shape[0] * r.shape[1], 0);
  const zeros = summary.linears.reduce((a, r) => a + r.zeros, 0);
  if (json) {
    console.log(JSON.stringify({ out: summary.outDir, linears: summary.linears.length, sparsity: zeros / params, seconds: summary.seconds, warnings: summary.warnings }));
  } else {
    console.log(
      `${methods.join(" → ")}: ${summary.linears.length} linears, ${((100 * zeros) / params).toFixed(2)} % zeros; wrote ${summary.outDir} in ${summary.seconds.toFixed(1)} s`,
    );
  }
}
