// A minimal dense float32 tensor: a flat Float32Array plus a row-major shape.
// Everything numeric in topiary is float32 on the way through (as in the reference code);
// half-precision formats are converted at the file boundary (see dtype.ts).

export class Tensor {
  readonly data: Float32Array;
  readonly shape: readonly number[];

  constructor(data: Float32Array, shape: readonly number[]) {
    const n = shape.reduce((a, b) => a * b, 1);
    if (n !== data.length) {
      throw new Error(`tensor shape [${shape.join(", ")}] needs ${n} values, got ${data.length}`);
    }
    this.data = data;
    this.shape = shape;
  }

  get size(): number {
    return this.data.length;
  }

  /** Rows and columns of a 2-D tensor (a linear layer's weight is [out, in]). */
  get rows(): number {
    this.expectRank(2);
    return this.shape[0]!;
  }

  get cols(): number {
    this.expectRank(2);
    return this.shape[1]!;
  }

  clone(): Tensor {
    return new Tensor(this.data.slice(), this.shape);
  }

  expectRank(rank: number): void {
    if (this.shape.length !== rank) {
      throw new Error(`expected a ${rank}-D tensor, got shape [${this.shape.join(", ")}]`);
    }
  }
}

/** Number of elements of a shape. */
export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Throws when any value is NaN or ±Inf; `what` names the tensor in the message. */
export function assertFinite(data: Float32Array, what: string): void {
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (v - v !== 0) {
      throw new Error(`${what} contains ${Number.isNaN(v) ? "NaN" : "Inf"} at flat index ${i}`);
    }
  }
}
