// What the coordinator and the workers share: the buffers handed over once through piscina's
// workerData, the task messages, and the synchronization words.
//
// Memory visibility. Plain writes to a SharedArrayBuffer by one thread are guaranteed visible to
// another only after a synchronizing pair of Atomics operations. The protocol relies on two:
//  - Weights: after each optimizer step the coordinator writes the step number with
//    Atomics.store(sync, PUBLISHED_STEP). A worker starts every task with Atomics.load of that
//    word and checks that it equals the task's step, so it reads the weights of that step.
//  - Gradients: a worker writes its slot, then Atomics.store(slotSteps, slot, step + 1); after
//    all tasks resolve, the coordinator reads every slot's word with Atomics.load before it
//    reduces, and checks each says step + 1.
// piscina's task-completion messages only tell the coordinator when to look.
import type { NetName } from "../nets/index.js";

/** Index of the step whose weights are published, in the Int32Array over `sync`. */
export const PUBLISHED_STEP = 0;
export const SYNC_WORDS = 1;

/** Passed once to every worker through piscina's workerData. Typed arrays over SharedArrayBuffers. */
export interface WorkerSetup {
  net: NetName;
  /** Images per forward/backward pass: the size of each worker's activation buffers. */
  chunkCapacity: number;
  parameterCount: number;
  slotCount: number;
  weights: Float32Array;
  /** slotCount gradient slots of parameterCount values each, one per shard of a mini-batch. */
  gradientSlots: Float32Array;
  /** Dataset indices of the current mini-batch's images, in training order. */
  batchIndices: Int32Array;
  sync: Int32Array;
  /** Per gradient slot: 1 + the step whose gradient the slot contains (0: none yet). */
  slotSteps: Int32Array;
  trainPixels: Uint8Array;
  trainLabels: Uint8Array;
  testPixels: Uint8Array;
  testLabels: Uint8Array;
}

/** Forward and backward over batchIndices[offset .. offset + count); the gradient goes to `slot`. */
export interface TrainShardTask {
  kind: "train";
  step: number;
  slot: number;
  offset: number;
  count: number;
  seed: number;
  epoch: number;
  /** Testing aid only: the worker exits abruptly in the middle of this shard. */
  exitWorker?: boolean;
}

/** Forward only, over test images start .. start + count − 1. */
export interface EvaluateShardTask {
  kind: "evaluate";
  step: number;
  start: number;
  count: number;
}

export type ShardTask = TrainShardTask | EvaluateShardTask;

export interface ShardResult {
  /** Summed cross-entropy over the shard's images. */
  lossSum: number;
  /** Images whose arg-max equals the label. */
  correct: number;
  /** Seconds the worker spent computing the shard (for the step profile). */
  seconds?: number;
}
