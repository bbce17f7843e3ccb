#!/usr/bin/env node
// topiary's command-line entry. The sources are TypeScript, run through tsx's loader:
// no build step, so `npm ci` is all an install needs.
import { register } from "tsx/esm/api";

register();
await import("../src/cli/main.ts");
