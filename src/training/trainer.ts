// The coordinator: owns the piscina pool and the shared buffers, and runs epochs of synchronous
// data-parallel training. One training step:
//   1. write the mini-batch's image indices (coordinator; workers idle)
//   2. forward/backward of each shard into its own gradient slot (workers; coordinator waits)
//   3. reduce the slots in slot order, optimizer step, publish the step (coordinator; workers idle)
// Shard boundaries depend only on the mini-batch size, and the reduction order only on the slot
// number. So the arithmetic, and with it every result, is the same for any thread count.
import { availableParallelism } from "node:os";

import { Piscina } from "piscina";

import type { FashionMnist } from "../data/index.js";
import type { NetName } from "../nets/index.js";
import { initializeParameters, planModel, type ModelPlan } from "../model/plan.js";
import { hashKey, Random, RandomStream, shuffleInPlace } from "../random.js";
import { DivergenceError, StepFailedError } from "./errors.js";
import { readWorkerFault, type WorkerFault } from "./fault-injection.js";
import {
  createOptimizer,
  scheduledLearningRate,
  type Optimizer,
  type OptimizerName,
  type OptimizerState,
} from "./optimizers.js";
import {
  PUBLISHED_STEP,
  SYNC_WORDS,
  type ShardResult,
  type ShardTask,
  type TrainShardTask,
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
  /** Wall time of the epoch in this process, training and evaluation. */
  seconds: number;
  /** Training images per second of the training phase in this process. */
  imagesPerSecond: number;
}

/**
 * Position of a trial: the next mini-batch to train, and the sums of the epoch so far. Every
 * random stream is keyed by (seed, purpose, epoch, image), so this position fixes all of them.
 */
export interface TrialPosition {
  trial: number;
  /** Epoch in progress, counted from 0; equal to epochCount once the trial is done. */
  epoch: number;
  /** Next mini-batch of the epoch, counted from 0. */
  batch: number;
  /** Summed loss and correct count of the epoch's mini-batches trained so far. */
  lossSum: number;
  correct: number;
}

/** The whole state of a trial between two steps: enough to continue it bit for bit. */
export interface TrialSnapshot {
  position: TrialPosition;
  weights: Float32Array;
  optimizer: OptimizerState;
}

export interface TrialHooks {
  onEpoch?: (result: EpochResult) => void;
  onStep?: (position: TrialPosition) => void;
  /** Asked after every step; true stops the trial there. */
  shouldStop?: () => boolean;
  /** A shard failed on the pool and will be computed again. */
  onRetry?: (details: { step: number; attempt: number; failed: number; error: Error }) => void;
}

export interface TrialOutcome {
  results: EpochResult[];
  /** False when shouldStop ended the trial early. */
  finished: boolean;
}

/** Time spent in each phase of the training steps, summed since the last reset. */
export interface StepProfile {
  steps: number;
  images: number;
  /** Whole steps, from writing the batch indices to publishing the new weights. */
  stepSeconds: number;
  /** From dispatching the shards to the last result. */
  shardPhaseSeconds: number;
  /** Summed over shards: time inside the workers' task function. */
  workerSeconds: number;
  reduceSeconds: number;
  optimizerSeconds: number;
}

export function emptyStepProfile(): StepProfile {
  return {
    steps: 0,
    images: 0,
    stepSeconds: 0,
    shardPhaseSeconds: 0,
    workerSeconds: 0,
    reduceSeconds: 0,
    optimizerSeconds: 0,
  };
}

/** Images per shard when the mini-batch is small enough; the unit of work of one task. */
export const SHARD_IMAGES = 50;
/** At most this many shards (and gradient slots) per mini-batch; larger batches get larger shards. */
export const MAX_SHARDS = 64;
/** Test images per evaluation task. */
export const EVALUATION_SHARD_IMAGES = 250;
/** Attempts at one step before the run stops: the first try and two recomputations. */
export const MAX_STEP_ATTEMPTS = 3;

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

function sharedInt32(length: number): Int32Array {
  return new Int32Array(new SharedArrayBuffer(length * Int32Array.BYTES_PER_ELEMENT));
}

export class Trainer {
  readonly plan: ModelPlan;
  readonly weights: Float32Array;
  private readonly pool: Piscina;
  private readonly setup: WorkerSetup;
  private readonly gradient: Float32Array;
  private readonly gradientSum: Float64Array;
  private readonly shardSize: number;
  private readonly fault: WorkerFault | null;
  /** Training steps started by this process, counted from 1 (the fault-injection clock). */
  private processStep = 0;
  /** Published weight version; bumps after every optimizer step and every weight load. */
  private step = 0;
  private optimizer: Optimizer | null = null;
  private position: TrialPosition | null = null;
  private poolError: Error | null = null;
  /** Time spent in each phase of the training steps; reset it to measure a stretch of steps. */
  profile: StepProfile = emptyStepProfile();

  constructor(
    readonly settings: TrainingSettings,
    readonly data: FashionMnist,
    readonly threads: number,
  ) {
    this.plan = planModel(settings.net);
    const parameterCount = this.plan.parameterCount;
    this.shardSize = shardImages(settings.miniBatchSize);
    const slotCount = Math.ceil(settings.miniBatchSize / this.shardSize);
    this.fault = readWorkerFault();

    this.weights = sharedFloat32(parameterCount);
    this.setup = {
      net: settings.net,
      chunkCapacity: SHARD_IMAGES,
      parameterCount,
      slotCount,
      weights: this.weights,
      gradientSlots: sharedFloat32(slotCount * parameterCount),
      batchIndices: sharedInt32(settings.miniBatchSize),
      sync: sharedInt32(SYNC_WORDS),
      slotSteps: sharedInt32(slotCount),
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
    // rejected task. Keep it, so the step that waits on the pool fails with it.
    this.pool.on("error", (error: Error) => {
      this.poolError = error;
    });
  }

  get parameterCount(): number {
    return this.plan.parameterCount;
  }

  /**
   * Runs trial `trial` (seed = settings.seed + trial) from its start (from `initialWeights` when
   * given), or from a snapshot, until its last epoch or until hooks.shouldStop returns true after
   * a step.
   */
  async runTrial(
    trial: number,
    hooks: TrialHooks = {},
    start: { resume?: TrialSnapshot; initialWeights?: Float32Array | null } = {},
  ): Promise<TrialOutcome> {
    const { resume, initialWeights } = start;
    const { settings } = this;
    const seed = settings.seed + trial;
    const optimizer = createOptimizer(
      settings.optimizer,
      this.parameterCount,
      settings.weightDecay,
    );
    this.optimizer = optimizer;
    if (resume) {
      if (resume.position.trial !== trial) {
        throw new Error(`snapshot of trial ${resume.position.trial} cannot resume trial ${trial}`);
      }
      this.weights.set(resume.weights);
      optimizer.restore(resume.optimizer);
      this.position = { ...resume.position };
    } else {
      if (initialWeights) this.weights.set(initialWeights);
      else {
        const initRandom = new Random(hashKey(seed, RandomStream.initialization));
        initializeParameters(this.plan, this.weights, () => initRandom.nextNormal());
      }
      this.position = { trial, epoch: 0, batch: 0, lossSum: 0, correct: 0 };
    }
    this.publishStep(this.step + 1);

    const results: EpochResult[] = [];
    const position = this.position;
    while (position.epoch < settings.epochCount) {
      const epoch = position.epoch;
      const started = performance.now();
      const firstBatch = position.batch;
      const finishedEpoch = await this.trainEpoch(seed, position, optimizer, hooks);
      const trainSeconds = (performance.now() - started) / 1000;
      if (!finishedEpoch) return { results, finished: false };

      const test = await this.evaluate();
      const seconds = (performance.now() - started) / 1000;
      const trainedImages = settings.trainCount - firstBatch * settings.miniBatchSize;
      const result: EpochResult = {
        trial,
        epoch: epoch + 1,
        trainLoss: position.lossSum / settings.trainCount,
        testLoss: test.lossSum / settings.testCount,
        trainAccuracy: position.correct / settings.trainCount,
        testAccuracy: test.correct / settings.testCount,
        weightNorm: this.weightNorm(),
        learningRate: scheduledLearningRate(settings.learningRate, epoch),
        seconds,
        imagesPerSecond: trainedImages / trainSeconds,
      };
      if (!Number.isFinite(result.weightNorm)) {
        throw new DivergenceError(
          trial,
          epoch + 1,
          this.batchCount(),
          "the weights are not finite",
        );
      }
      Object.assign(position, { epoch: epoch + 1, batch: 0, lossSum: 0, correct: 0 });
      results.push(result);
      hooks.onEpoch?.(result);
      if (position.epoch < settings.epochCount && hooks.shouldStop?.()) {
        return { results, finished: false };
      }
    }
    return { results, finished: true };
  }

  /** Mini-batches per epoch. */
  batchCount(): number {
    return Math.ceil(this.settings.trainCount / this.settings.miniBatchSize);
  }

  /** Returns the position of the trial in progress (null before the first trial starts). */
  currentPosition(): TrialPosition | null {
    return this.position ? { ...this.position } : null;
  }

  /** Copies the trial's state as of the last finished step. */
  snapshot(): TrialSnapshot {
    if (!this.position || !this.optimizer) throw new Error("no trial has started");
    const state = this.optimizer.state();
    const arrays: Record<string, Float32Array> = {};
    for (const [name, array] of Object.entries(state.arrays)) arrays[name] = array.slice();
    return {
      position: { ...this.position },
      weights: this.weights.slice(),
      optimizer: { stepCount: state.stepCount, arrays },
    };
  }

  /** Returns the training order of an epoch: a shuffle seeded by (seed, epoch) alone. */
  private epochOrder(seed: number, epoch: number): Int32Array {
    const order = new Int32Array(this.settings.trainCount);
    for (let i = 0; i < order.length; i++) order[i] = i;
    shuffleInPlace(order, new Random(hashKey(seed, RandomStream.shuffle, epoch)));
    return order;
  }

  /** Trains the rest of the epoch at `position`; returns false when stopped before its end. */
  private async trainEpoch(
    seed: number,
    position: TrialPosition,
    optimizer: Optimizer,
    hooks: TrialHooks,
  ): Promise<boolean> {
    const { settings } = this;
    const order = this.epochOrder(seed, position.epoch);
    const learningRate = scheduledLearningRate(settings.learningRate, position.epoch);
    const batchCount = this.batchCount();
    while (position.batch < batchCount) {
      const start = position.batch * settings.miniBatchSize;
      const batch = order.subarray(start, Math.min(order.length, start + settings.miniBatchSize));
      const result = await this.trainStep(batch, seed, position, optimizer, learningRate, hooks);
      position.lossSum += result.lossSum;
      position.correct += result.correct;
      position.batch++;
      hooks.onStep?.(position);
      if (position.batch < batchCount && hooks.shouldStop?.()) return false;
    }
    return true;
  }

  /** One synchronous step: shards on the pool, then reduce and optimizer step here. */
  private async trainStep(
    batch: Int32Array,
    seed: number,
    position: TrialPosition,
    optimizer: Optimizer,
    learningRate: number,
    hooks: TrialHooks,
  ): Promise<ShardResult> {
    const { setup } = this;
    const started = performance.now();
    this.processStep++;
    setup.batchIndices.set(batch);

    const tasks: TrainShardTask[] = [];
    for (let offset = 0, slot = 0; offset < batch.length; offset += this.shardSize, slot++) {
      const count = Math.min(this.shardSize, batch.length - offset);
      const epoch = position.epoch;
      tasks.push({ kind: "train", step: this.step, slot, offset, count, seed, epoch });
    }
    const dispatched = performance.now();
    const results = await this.runShards(tasks, hooks);
    const shardsDone = performance.now();

    // Acquire: pairs with each worker's Atomics.store after it wrote its slot (see protocol.ts).
    for (const task of tasks) {
      const slotStep = Atomics.load(setup.slotSteps, task.slot);
      if (slotStep !== this.step + 1) {
        throw new Error(
          `step ${this.step}: gradient slot ${task.slot} contains step ${slotStep - 1}, expected this step`,
        );
      }
    }

    const summed = sumResults(results);
    const gradientTotal = this.reduce(tasks.length, batch.length);
    if (!Number.isFinite(summed.lossSum) || !Number.isFinite(gradientTotal)) {
      const what = Number.isFinite(summed.lossSum)
        ? "the gradient is not finite"
        : "the loss is not finite";
      throw new DivergenceError(position.trial, position.epoch + 1, position.batch + 1, what);
    }
    const reduced = performance.now();
    optimizer.step(this.weights, this.gradient, learningRate);
    this.publishStep(this.step + 1);
    const finished = performance.now();

    const profile = this.profile;
    profile.steps++;
    profile.images += batch.length;
    profile.stepSeconds += (finished - started) / 1000;
    profile.shardPhaseSeconds += (shardsDone - dispatched) / 1000;
    for (const result of results) profile.workerSeconds += result.seconds ?? 0;
    profile.reduceSeconds += (reduced - shardsDone) / 1000;
    profile.optimizerSeconds += (finished - reduced) / 1000;
    return summed;
  }

  /**
   * Sums the gradient slots in slot order (in double) and divides by the batch size. Returns the
   * sum of all gradient values, which is finite exactly when every value is.
   */
  private reduce(slotCount: number, batchSize: number): number {
    const { gradientSlots, parameterCount } = this.setup;
    const sum = this.gradientSum;
    for (let i = 0; i < parameterCount; i++) sum[i] = gradientSlots[i];
    for (let slot = 1; slot < slotCount; slot++) {
      const start = slot * parameterCount;
      for (let i = 0; i < parameterCount; i++) sum[i] += gradientSlots[start + i];
    }
    const gradient = this.gradient;
    let total = 0;
    for (let i = 0; i < parameterCount; i++) {
      const value = sum[i] / batchSize;
      gradient[i] = value;
      // NaN or an infinity anywhere makes the total non-finite.
      total += value;
    }
    return total;
  }

  /** Loss and accuracy sums over the first testCount test images, computed on the pool. */
  async evaluate(): Promise<ShardResult> {
    const tasks: ShardTask[] = [];
    for (let start = 0; start < this.settings.testCount; start += EVALUATION_SHARD_IMAGES) {
      const count = Math.min(EVALUATION_SHARD_IMAGES, this.settings.testCount - start);
      tasks.push({ kind: "evaluate", step: this.step, start, count });
    }
    return sumResults(await this.runShards(tasks, {}));
  }

  /**
   * Runs the tasks on the pool. A task whose worker threw or exited is run again (piscina replaces
   * a dead worker), up to MAX_STEP_ATTEMPTS attempts in all. A shard's result depends only on the
   * published weights and its images, so a recomputed shard gives the same bits.
   */
  private async runShards<T extends ShardTask>(
    tasks: T[],
    hooks: TrialHooks,
  ): Promise<ShardResult[]> {
    const results: ShardResult[] = new Array(tasks.length);
    let pending = tasks.map((_, index) => index);
    for (let attempt = 1; pending.length > 0; attempt++) {
      if (this.poolError) throw this.poolError;
      const faulty = this.injectedFault(tasks[pending[0]], attempt);
      const settled = await Promise.allSettled(
        pending.map((index, j) => {
          const task = j === 0 && faulty ? { ...tasks[index], exitWorker: true } : tasks[index];
          return this.pool.run(task) as Promise<ShardResult>;
        }),
      );
      const failed: number[] = [];
      let lastError: Error | null = null;
      settled.forEach((outcome, j) => {
        if (outcome.status === "fulfilled") results[pending[j]] = outcome.value;
        else {
          failed.push(pending[j]);
          lastError =
            outcome.reason instanceof Error ? outcome.reason : new Error(String(outcome.reason));
        }
      });
      if (failed.length > 0) {
        const error = lastError as unknown as Error;
        if (attempt >= MAX_STEP_ATTEMPTS) {
          throw new StepFailedError(
            `step ${this.processStep}: ${failed.length} shard(s) still failed after ${attempt} attempts: ${error.message}`,
          );
        }
        hooks.onRetry?.({ step: this.processStep, attempt, failed: failed.length, error });
      }
      pending = failed;
    }
    return results;
  }

  private injectedFault(task: ShardTask, attempt: number): boolean {
    const fault = this.fault;
    return (
      fault !== null &&
      task.kind === "train" &&
      this.processStep === fault.step &&
      attempt <= fault.attempts
    );
  }

  /** Makes the current weights visible to the workers as version `step`. */
  private publishStep(step: number): void {
    this.step = step;
    // Release: the weight writes before this store become visible to a worker that loads it.
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
