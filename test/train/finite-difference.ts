// The finite-difference probe every gradient check here uses (block backward, head loss).

/**
 * (f(x + eps·eᵢ) − f(x − eps·eᵢ)) / 2eps, the central difference of f along coordinate i; `f`
 * reads x itself (it is changed in place and restored).
 */
export async function centralDifference(x: Float64Array, i: number, eps: number, f: () => Promise<number>): Promise<number> {
  const old = x[i]!;
  x[i] = old + eps;
  const lp = await f();
  x[i] = old - eps;
  const lm = await f();
  x[i] = old;
  return (lp - lm) / (2 * eps);
}

/** |fd − backward| relative to |fd|, floored at 1e-3 (a near-zero derivative is compared absolutely). */
export const relativeError = (fd: number, backward: number) => Math.abs(fd - backward) / Math.max(1e-3, Math.abs(fd));
