// Preloaded into the CLI by the fuzzer (node --import): writes the process's peak RSS (KiB) and
// CPU time (µs) to $TOPIARY_FUZZ_RSS_FILE when it exits, however it exits (process.exit included).
import fs from "node:fs";

const file = process.env.TOPIARY_FUZZ_RSS_FILE;
if (file) process.on("exit", () => {
  const u = process.resourceUsage();
  fs.writeFileSync(file, JSON.stringify({ maxRssKiB: u.maxRSS, cpuMicros: u.userCPUTime + u.systemCPUTime }));
});
