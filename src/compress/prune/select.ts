// Choosing what to prune from a score (smaller = less important), the three ways the papers do:
//   layer — one threshold over the whole matrix: prune score ≤ the k-th smallest, k = ⌊numel·s⌋
//           (the reference code's `<=`: one more than k when there are no ties, more on ties)
//   row   — per output row, the ⌊cols·s⌋ smallest (stable order on ties), as Wanda does
//   N:M   — per row, in every group of M consecutive input columns, the N smallest; a partial
//           last group of w < M columns prunes min(N, w) (the reference code's topk on a short
//           slice: 4:8 on 172 columns prunes all of 168..171)
// Masks are Uint8Array, 1 = kept, 0 = pruned, row-major like the weight.

export interface NM {
  n: number;
  m: number;
}

/** The k-th smallest value (0-based) of `values` (not modified), by quickselect: O(n). */
export function kthSmallest(values: Float32Array, k: number): number {
  const a = values.slice();
  let lo = 0;
  let hi = a.length - 1;
  while (lo < hi) {
    // median of three as pivot
    const mid = (lo + hi) >>> 1;
    const x = a[lo]!;
    const y = a[mid]!;
    const z = a[hi]!;
    const pivot = x < y ? (y < z ? y : x < z ? z : x) : x < z ? x : y < z ? z : y;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i]! < pivot) i++;
      while (a[j]! > pivot) j--;
      if (i <= j) {
        const t = a[i]!;
        a[i] = a[j]!;
        a[j] = t;
        i++;
        j--;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return a[k]!;
  }
  return a[k]!;
}

/** layer scope: prune every score ≤ the ⌊numel·s⌋-th smallest (nothing when s = 0). */
export function thresholdMask(score: Float32Array, sparsity: number): Uint8Array {
  const mask = new Uint8Array(score.length).fill(1);
  if (sparsity <= 0) return mask;
  const thresh = kthSmallest(score, Math.floor(score.length * sparsity));
  for (let i = 0; i < score.length; i++) if (score[i]! <= thresh) mask[i] = 0;
  return mask;
}

/**
 * row scope: in each row, the ⌊cols·s⌋ smallest scores, earlier columns first on ties — the
 * same set a stable sort picks, found with a k-th-smallest selection instead of a sort.
 */
export function rowMask(score: Float32Array, rows: number, cols: number, sparsity: number): Uint8Array {
  const mask = new Uint8Array(rows * cols).fill(1);
  const k = Math.floor(cols * sparsity);
  if (k === 0) return mask;
  for (let r = 0; r < rows; r++) {
    const off = r * cols;
    const row = score.subarray(off, off + cols);
    const thresh = kthSmallest(row, k - 1); // the largest score that is pruned
    let pruned = 0;
    for (let j = 0; j < cols; j++) {
      if (row[j]! < thresh) {
        mask[off + j] = 0;
        pruned++;
      }
    }
    for (let j = 0; j < cols && pruned < k; j++) {
      if (row[j] === thresh) {
        mask[off + j] = 0;
        pruned++;
      }
    }
  }
  return mask;
}

/**
 * N:M over columns [c0, c1) of one row (score at `off + j`): marks the min(n, width) smallest
 * of the group as pruned in `mask` (same layout).
 */
export function pruneGroup(score: ArrayLike<number>, off: number, c0: number, c1: number, n: number, mask: Uint8Array): void {
  const width = c1 - c0;
  const k = Math.min(n, width);
  const picked: number[] = [];
  for (let t = 0; t < k; t++) {
    let best = -1;
    for (let j = c0; j < c1; j++) {
      if (picked.includes(j)) continue;
      if (best < 0 || score[off + j]! < score[off + best]!) best = j;
    }
    picked.push(best);
    mask[off + best] = 0;
  }
}

/** N:M everywhere: each row, each group of m consecutive input columns. */
export function nmMask(score: Float32Array, rows: number, cols: number, nm: NM): Uint8Array {
  const mask = new Uint8Array(rows * cols).fill(1);
  for (let r = 0; r < rows; r++) {
    for (let c0 = 0; c0 < cols; c0 += nm.m) pruneGroup(score, r * cols, c0, Math.min(c0 + nm.m, cols), nm.n, mask);
  }
  return mask;
}

/** W ⊙ mask, in place; returns W. */
export function applyMask(W: Float32Array, mask: Uint8Array): Float32Array {
  for (let i = 0; i < W.length; i++) if (!mask[i]) W[i] = 0;
  return W;
}
