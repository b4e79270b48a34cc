// The coordinator: owns the piscina pool and the shared buffers, and runs epochs of synchronous
// data-parallel training. One training step:
//   1. write the mini-batch's image indices (coordinator; workers idle)
//   2. forward/backward of each shard into its own gradient slot (workers; coordinator waits)
//   3. reduce the slots in slot order, optimizer step, publish the step (coordinator; workers idle)
// Shard boundaries depend only on the mini-batch size, and the reduction order only on the slot
// number, so the arithmetic, and so every result, is the same for any thread count.
import { availableParallelism } from "node:os";

import { Piscina } from "piscina";

import type { FashionMnist } from "../data/index.js";
import type { NetName } from "../nets/index.js";
import { initializeParameters, planModel, type ModelPlan } from "../model/plan.js";
import { hashKey, Random, RandomStream, shuffleInPlace } from "../random.js";
import {
  createOptimizer,
  scheduledLearningRate,
  type Optimizer,
  type OptimizerName,
} from "./optimizers.js";
import {
  COMPLETED_SHARDS,
  PUBLISHED_STEP,
  SYNC_WORDS,
  type ShardResult,
  type ShardTask,
  type WorkerSetup,
} from "./protocol.js";

export interface TrainingSettings {
  net: NetName;
  optimizer: OptimizerName;
  learningRate: number;
  weightDecay: number;
  miniBatchSize: number;
  epochCount: number;
  trialCount: number;
  seed: number;
  trainCount: number;
  testCount: number;
}

export interface EpochResult {
  trial: number;
  /** Counted from 1. */
  epoch: number;
  trainLoss: number;
  testLoss: number;
  trainAccuracy: number;
  testAccuracy: number;
  /** √(Σ w²) over all trainable parameters after the epoch. */
  weightNorm: number;
  learningRate: number;
  /** Wall time of the whole epoch, training and evaluation. */
  seconds: number;
  /** Training images per second of the training phase. */
  imagesPerSecond: number;
}

/** Images per shard when the mini-batch is small enough; the unit of work of one task. */
export const SHARD_IMAGES = 50;
/** At most this many shards (and gradient slots) per mini-batch; larger batches get larger shards. */
export const MAX_SHARDS = 64;
/** Test images per evaluation task. */
export const EVALUATION_SHARD_IMAGES = 250;

export function defaultThreadCount(): number {
  return availableParallelism();
}

/** Images per shard for a mini-batch size: fixed by the batch size alone, never by the threads. */
export function shardImages(miniBatchSize: number): number {
  return Math.max(SHARD_IMAGES, Math.ceil(miniBatchSize / MAX_SHARDS));
}

function sharedFloat32(length: number): Float32Array {
  return new Float32Array(new SharedArrayBuffer(length * Float32Array.BYTES_PER_ELEMENT));
}

export class Trainer {
  readonly plan: ModelPlan;
  readonly weights: Float32Array;
  private readonly pool: Piscina;
  private readonly setup: WorkerSetup;
  private readonly gradient: Float32Array;
  private readonly gradientSum: Float64Array;
  private readonly shardSize: number;
  private step = 0;
  private poolError: Error | null = null;

  constructor(
    readonly settings: TrainingSettings,
    readonly data: FashionMnist,
    readonly threads: number,
  ) {
    this.plan = planModel(settings.net);
    const parameterCount = this.plan.parameterCount;
    this.shardSize = shardImages(settings.miniBatchSize);
    const slotCount = Math.ceil(settings.miniBatchSize / this.shardSize);

    this.weights = sharedFloat32(parameterCount);
    this.setup = {
      net: settings.net,
      chunkCapacity: SHARD_IMAGES,
      parameterCount,
      slotCount,
      weights: this.weights,
      gradientSlots: sharedFloat32(slotCount * parameterCount),
      batchIndices: new Int32Array(new SharedArrayBuffer(settings.miniBatchSize * 4)),
      sync: new Int32Array(new SharedArrayBuffer(SYNC_WORDS * 4)),
      trainPixels: data.train.pixels,
      trainLabels: data.train.labels,
      testPixels: data.test.pixels,
      testLabels: data.test.labels,
    };
    this.gradient = new Float32Array(parameterCount);
    this.gradientSum = new Float64Array(parameterCount);

    // minThreads and maxThreads both N: exactly N workers for the whole run (piscina's defaults
    // differ, and would start or stop threads as the queue changes).
    this.pool = new Piscina({
      filename: new URL("../../workers/shard-worker.js", import.meta.url).href,
      minThreads: threads,
      maxThreads: threads,
      idleTimeout: Number.MAX_SAFE_INTEGER,
      concurrentTasksPerWorker: 1,
      workerData: this.setup,
    });
    // A failure outside any task (a worker that cannot start, say) arrives here, not as a
    // rejected task; keep it and fail the step that waits on the pool.
    this.pool.on("error", (error: Error) => {
      this.poolError = error;
    });
  }

  get parameterCount(): number {
    return this.plan.parameterCount;
  }

  /** Runs every epoch of trial `trial` (seed = settings.seed + trial), reporting each epoch. */
  async runTrial(trial: number, onEpoch: (result: EpochResult) => void): Promise<EpochResult[]> {
    const { settings } = this;
    const seed = settings.seed + trial;
    const initRandom = new Random(hashKey(seed, RandomStream.initialization));
    initializeParameters(this.plan, this.weights, () => initRandom.nextNormal());
    const optimizer = createOptimizer(
      settings.optimizer,
      this.parameterCount,
      settings.weightDecay,
    );
    this.publishStep();

    const results: EpochResult[] = [];
    for (let epoch = 0; epoch < settings.epochCount; epoch++) {
      const started = performance.now();
      const train = await this.trainEpoch(seed, epoch, optimizer);
      const trainSeconds = (performance.now() - started) / 1000;
      const test = await this.evaluate();
      const seconds = (performance.now() - started) / 1000;
      const result: EpochResult = {
        trial,
        epoch: epoch + 1,
        trainLoss: train.lossSum / settings.trainCount,
        testLoss: test.lossSum / settings.testCount,
        trainAccuracy: train.correct / settings.trainCount,
        testAccuracy: test.correct / settings.testCount,
        weightNorm: this.weightNorm(),
        learningRate: scheduledLearningRate(settings.learningRate, epoch),
        seconds,
        imagesPerSecond: settings.trainCount / trainSeconds,
      };
      results.push(result);
      onEpoch(result);
    }
    return results;
  }

  private async trainEpoch(
    seed: number,
    epoch: number,
    optimizer: Optimizer,
  ): Promise<ShardResult> {
    const { settings } = this;
    const order = new Int32Array(settings.trainCount);
    for (let i = 0; i < order.length; i++) order[i] = i;
    shuffleInPlace(order, new Random(hashKey(seed, RandomStream.shuffle, epoch)));

    const learningRate = scheduledLearningRate(settings.learningRate, epoch);
    let lossSum = 0;
    let correct = 0;
    for (let start = 0; start < order.length; start += settings.miniBatchSize) {
      const batch = order.subarray(start, Math.min(order.length, start + settings.miniBatchSize));
      const result = await this.trainStep(batch, seed, epoch, optimizer, learningRate);
      lossSum += result.lossSum;
      correct += result.correct;
    }
    return { lossSum, correct };
  }

  /** One synchronous step: shards on the pool, then reduce and optimizer step here. */
  private async trainStep(
    batch: Int32Array,
    seed: number,
    epoch: number,
    optimizer: Optimizer,
    learningRate: number,
  ): Promise<ShardResult> {
    const { setup } = this;
    setup.batchIndices.set(batch);
    Atomics.store(setup.sync, COMPLETED_SHARDS, 0);

    const tasks: ShardTask[] = [];
    for (let offset = 0, slot = 0; offset < batch.length; offset += this.shardSize, slot++) {
      const count = Math.min(this.shardSize, batch.length - offset);
      tasks.push({ kind: "train", step: this.step, slot, offset, count, seed, epoch });
    }
    const results = await this.runTasks(tasks);

    // Acquire: pairs with each worker's Atomics.add after it wrote its slot (see protocol.ts).
    const completed = Atomics.load(setup.sync, COMPLETED_SHARDS);
    if (completed !== tasks.length) {
      throw new Error(
        `step ${this.step}: ${completed} of ${tasks.length} shards reported completion`,
      );
    }

    this.reduce(tasks.length, batch.length);
    optimizer.step(this.weights, this.gradient, learningRate);
    this.publishStep(this.step + 1);
    return sumResults(results);
  }

  /** Sums the gradient slots in slot order (in double) and divides by the batch size. */
  private reduce(slotCount: number, batchSize: number): void {
    const { gradientSlots, parameterCount } = this.setup;
    const sum = this.gradientSum;
    sum.set(gradientSlots.subarray(0, parameterCount));
    for (let slot = 1; slot < slotCount; slot++) {
      const start = slot * parameterCount;
      for (let i = 0; i < parameterCount; i++) sum[i] += gradientSlots[start + i];
    }
    const gradient = this.gradient;
    for (let i = 0; i < parameterCount; i++) gradient[i] = sum[i] / batchSize;
  }

  /** Loss and accuracy sums over the first testCount test images, computed on the pool. */
  async evaluate(): Promise<ShardResult> {
    const tasks: ShardTask[] = [];
    for (let start = 0; start < this.settings.testCount; start += EVALUATION_SHARD_IMAGES) {
      const count = Math.min(EVALUATION_SHARD_IMAGES, this.settings.testCount - start);
      tasks.push({ kind: "evaluate", step: this.step, start, count });
    }
    return sumResults(await this.runTasks(tasks));
  }

  private async runTasks(tasks: ShardTask[]): Promise<ShardResult[]> {
    if (this.poolError) throw this.poolError;
    const results = await Promise.all(
      tasks.map((task) => this.pool.run(task) as Promise<ShardResult>),
    );
    if (this.poolError) throw this.poolError;
    return results;
  }

  /** Makes the current weights visible to the workers as those of step `step`. */
  private publishStep(step = this.step): void {
    this.step = step;
    // Release: the optimizer's weight writes happen before this store (see protocol.ts).
    Atomics.store(this.setup.sync, PUBLISHED_STEP, step);
  }

  weightNorm(): number {
    let sum = 0;
    for (let i = 0; i < this.weights.length; i++) sum += this.weights[i] * this.weights[i];
    return Math.sqrt(sum);
  }

  async close(): Promise<void> {
    await this.pool.destroy();
  }
}

/** Adds shard results in task order, so the floating-point sum never depends on timing. */
function sumResults(results: ShardResult[]): ShardResult {
  let lossSum = 0;
  let correct = 0;
  for (const result of results) {
    lossSum += result.lossSum;
    correct += result.correct;
  }
  return { lossSum, correct };
}
