// A test hook, not a feature: TOPIARY_TEST_KILL_AT=<label>[#<n>] makes the process SIGKILL itself
// the n-th time (default: the first) it passes the named point, so tests of resuming after a crash
// kill a job at a chosen, reproducible moment instead of racing a timer. Points:
//   linear-compressed            after one linear's compression, before its layer is stored
//   layer-stored                 after a layer's results are on disk, before the progress commit
//   layer-committed              after a layer's progress commit, before the next layer starts
//   calibration-run              after one forward run of calibration data through a layer in a
//                                structured-pruning pass (mid-layer: before its results are saved)
//   write:<file name>            before each tensor written to a safetensors file of that name
//   rename:<file name>           after a file is written in full, before it is renamed into place
//   recover-checkpoint           after a recover checkpoint's commit, before the older one is removed
// Unset (always, outside tests) it costs one string comparison per point.
const passed = new Map<string, number>();

export function killPoint(label: string): void {
  const spec = process.env.TOPIARY_TEST_KILL_AT;
  if (!spec) return;
  const [want, nth] = spec.split("#") as [string, string | undefined];
  if (want !== label) return;
  const count = (passed.get(label) ?? 0) + 1;
  passed.set(label, count);
  if (count === Number(nth ?? 1)) process.kill(process.pid, "SIGKILL");
}
