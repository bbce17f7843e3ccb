// The multiple-choice knapsack behind the budget solver: pick one option per item (a setting per
// linear) minimising the summed loss with the summed cost within the budget. Dynamic programming
// over the cost discretised into buckets, as OBC's spdy.py `dp` does (github.com/IST-DASLab/OBC):
// DP[i][b] = least loss of items 0..i with total cost in exactly b buckets, PD the option chosen.
// One difference: spdy.py rounds each cost to the nearest bucket, which can overshoot the budget
// by up to half a bucket per item; we round every cost *up*, so whatever the DP finds fits the
// exact budget (it may leave at most one bucket per item unused).

export interface Option {
  cost: number;
  loss: number;
}

export interface Solution {
  /** the chosen option of every item */
  choice: number[];
  cost: number;
  loss: number;
}

/** Returns null when even the cheapest option of every item does not fit. */
export function solveKnapsack(items: Option[][], budget: number, buckets = 10000): Solution | null {
  if (items.length === 0) return { choice: [], cost: 0, loss: 0 };
  const cheapest = items.reduce((a, opts) => a + Math.min(...opts.map((o) => o.cost)), 0);
  if (cheapest > budget) return null;
  const B = buckets;
  const size = budget / B;
  const bucketsOf = (cost: number) => (size > 0 ? Math.ceil(cost / size - 1e-9) : cost > 0 ? Infinity : 0);
  let dp = new Float64Array(B + 1).fill(Infinity);
  dp[0] = 0;
  const picks: Int16Array[] = [];
  for (const opts of items) {
    const next = new Float64Array(B + 1).fill(Infinity);
    const pick = new Int16Array(B + 1).fill(-1);
    opts.forEach((o, k) => {
      const c = bucketsOf(o.cost);
      if (c > B) return;
      for (let b = 0; b + c <= B; b++) {
        const v = dp[b]! + o.loss;
        if (v < next[b + c]!) {
          next[b + c] = v;
          pick[b + c] = k;
        }
      }
    });
    picks.push(pick);
    dp = next;
  }
  let best = -1;
  for (let b = 0; b <= B; b++) if (dp[b]! < Infinity && (best < 0 || dp[b]! < dp[best]!)) best = b;
  if (best < 0) return null; // the round-up left no room (budget within a few buckets of the cheapest plan)
  const choice = new Array<number>(items.length);
  for (let i = items.length - 1, b = best; i >= 0; i--) {
    const k = picks[i]![b]!;
    choice[i] = k;
    b -= bucketsOf(items[i]![k]!.cost);
  }
  return {
    choice,
    cost: choice.reduce((a, k, i) => a + items[i]![k]!.cost, 0),
    loss: choice.reduce((a, k, i) => a + items[i]![k]!.loss, 0),
  };
}
