// How a layer-by-layer pass of structured pruning (block similarity, FLAP's statistics, the
// sequential selection) starts part-way and hands over its progress, so that a resumable job
// (structured/job-state.ts) can save each completed layer and a rerun can go on from there.
// A pass's layer depends only on its calibration inputs and the model's weights (no RNG, no
// state carried between layers but the inputs), so a pass resumed from saved results and inputs
// computes exactly what an uninterrupted one computes.

export interface PassCheckpoint<R> {
  /**
   * The layers already done: their results, in order, and the calibration inputs of the next
   * layer (null when every layer is done). Absent: the pass starts at layer 0.
   */
  start?: { done: R[]; inputs: Float32Array | null };
  /** After layer i: its result and the next layer's inputs (null after the last layer). */
  after?: (i: number, result: R, next: Float32Array | null) => void | Promise<void>;
}
