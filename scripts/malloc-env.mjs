// glibc malloc settings for topiary's processes. Large typed arrays and onnxruntime outputs are
// allocated and freed constantly (activations, GEMM results); with glibc's defaults every block
// over 32 MB is a fresh mmap whose pages fault in one by one, which on the VMs we run on cost
// ~15 µs per 4 KB page; freed memory is kept and reused, and mappings use transparent huge pages
// (bench/malloc.ts measures both settings: 45 MB allocated and touched in 5.3 s vs 0.76 s, 180 MB
// in 18.1 s vs 0.42 s, on a loaded 2-vCPU VM).
// Blocks of 64 MB and more (Llama-7B's 180 MB weights, its MLP's 485 MB Hessian) are still mmaps:
// kept in the heap, a freed one left a hole that the next, differently sized block could not
// reuse, and the heap grew past what was live (SparseGPT on one 7B-wide layer: peak RSS 5.59 GB
// with everything in the heap, 4.36 GB with these mmaps; README, Memory). With huge pages such a
// mapping faults in 2 MB at a time, so the cost stays small next to the work done on a block that size.
// The shared reference README recommends the same MALLOC_* values for PyTorch.
// Other C libraries ignore these variables.
export const MALLOC_ENV = {
  MALLOC_MMAP_THRESHOLD_: "64000000",
  MALLOC_TRIM_THRESHOLD_: "8000000000",
  MALLOC_TOP_PAD_: "1000000000",
  GLIBC_TUNABLES: "glibc.malloc.hugetlb=1",
};

/** true when this process already runs with the settings (malloc reads them only at start-up). */
export function hasMallocEnv(env = process.env) {
  return Object.entries(MALLOC_ENV).every(([k, v]) => env[k] === v || (k === "GLIBC_TUNABLES" && env[k]?.includes(v)));
}

/** The environment with the settings added (an existing GLIBC_TUNABLES is extended). */
export function withMallocEnv(env = process.env) {
  const out = { ...env, ...MALLOC_ENV };
  if (env.GLIBC_TUNABLES && !env.GLIBC_TUNABLES.includes(MALLOC_ENV.GLIBC_TUNABLES)) {
    out.GLIBC_TUNABLES = `${env.GLIBC_TUNABLES}:${MALLOC_ENV.GLIBC_TUNABLES}`;
  }
  return out;
}
