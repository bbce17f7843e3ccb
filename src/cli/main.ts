// topiary's command line: parses flags and prints; the work happens in compress/, eval/, export/.
import { Command, CommanderError } from "commander";
import { registerEval } from "./commands/eval.js";
import { registerExport } from "./commands/export.js";
import { registerGenerate, registerRun } from "./commands/decode.js";
import { registerInspect } from "./commands/inspect.js";
import { registerPrune } from "./commands/prune.js";
import { registerQuantize } from "./commands/quantize.js";
import { registerRecover } from "./commands/recover.js";
import { registerCompress } from "./commands/compress.js";
import { registerSweep } from "./commands/sweep.js";
import { registerSensitivity } from "./commands/sensitivity.js";
import { reportAndExit } from "./errors.js";

/** The whole command line; a fresh one per call, so it can run more than once in one process (the fuzzer does). */
export function buildProgram(): Command {
  const program = new Command("topiary")
    .description("compress Hugging Face causal language models on a CPU, evaluate them, deploy them")
    .version("0.1.0")
    .exitOverride()
    // commander's own errors (unknown option, bad flag value) follow the CLI's one-line rule too
    .configureOutput({ outputError: (text, write) => write(`topiary: ${text.replace(/^error: /, "").trim()}\n`) });

  registerInspect(program);
  registerEval(program);
  registerGenerate(program);
  registerPrune(program);
  registerQuantize(program);
  registerCompress(program);
  registerSweep(program);
  registerSensitivity(program);
  registerRecover(program);
  registerExport(program);
  registerRun(program);
  return program;
}

/** Runs `argv` (node, script, args…); on failure prints the one line and exits. */
export async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) process.exit(e.exitCode);
    reportAndExit(e);
  }
}
