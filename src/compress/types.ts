// The compressors' results: see formats/compressed-linear.ts, where the writers that store them
// (and the grid arithmetic they share with the quantizers) live.
export type { CompressedLinear, QuantGrid } from "../formats/compressed-linear.js";
export { groupCount, groupOf } from "../formats/compressed-linear.js";
