// piscina worker: attaches the shared buffers once, then runs one shard per task.
import { Piscina } from "piscina";

import { planModel, parameterViews } from "../src/model/plan.js";
import {
  ModelWorkspace,
  EVALUATION,
  pixelsToInput,
  type PassMode,
} from "../src/model/workspace.js";
import {
  PUBLISHED_STEP,
  type ShardResult,
  type ShardTask,
  type TrainShardTask,
  type WorkerSetup,
} from "../src/training/protocol.js";

const setup = Piscina.workerData as WorkerSetup;
const plan = planModel(setup.net);
const workspace = new ModelWorkspace(plan, setup.chunkCapacity);
workspace.bindWeights(setup.weights);

// Views of each gradient slot, made on first use of the slot and kept.
const slotViews: Float32Array[][] = [];
// A shard larger than one chunk sums its chunks' gradients; later chunks land here first.
let chunkGradient: Float32Array | null = null;
let chunkGradientViews: Float32Array[] = [];

function gradientSlot(slot: number): Float32Array[] {
  let views = slotViews[slot];
  if (!views) {
    const start = slot * setup.parameterCount;
    views = parameterViews(plan, setup.gradientSlots.subarray(start, start + setup.parameterCount));
    slotViews[slot] = views;
  }
  return views;
}

function checkPublishedStep(step: number): void {
  const published = Atomics.load(setup.sync, PUBLISHED_STEP);
  if (published !== step) {
    throw new Error(`task for step ${step} found the weights of step ${published}`);
  }
}

function trainShard(task: TrainShardTask): ShardResult {
  const { batchIndices, trainPixels, trainLabels } = setup;
  const pixelsPerImage = plan.inputSize;
  const slot = gradientSlot(task.slot);
  let lossSum = 0;
  let correct = 0;

  for (let done = 0; done < task.count; done += workspace.capacity) {
    const n = Math.min(workspace.capacity, task.count - done);
    const offset = task.offset + done;
    for (let i = 0; i < n; i++) {
      const imageIndex = batchIndices[offset + i];
      pixelsToInput(trainPixels, imageIndex, pixelsPerImage, workspace.input, i * pixelsPerImage);
      workspace.labels[i] = trainLabels[imageIndex];
    }
    const mode: PassMode = {
      training: true,
      seed: task.seed,
      epoch: task.epoch,
      imageIndices: batchIndices,
      indexOffset: offset,
    };
    workspace.forward(n, mode);
    if (task.exitWorker) {
      // Testing aid (TRAINER_FAULT_KILL_WORKER_AT_STEP): die with the slot half-written.
      process.exit(70);
    }

    // The first chunk writes the slot; later ones are added to it in chunk order.
    const first = done === 0;
    if (!first && !chunkGradient) {
      chunkGradient = new Float32Array(setup.parameterCount);
      chunkGradientViews = parameterViews(plan, chunkGradient);
    }
    const result = workspace.lossAndBackward(n, first ? slot : chunkGradientViews);
    if (!first) {
      const start = task.slot * setup.parameterCount;
      const target = setup.gradientSlots;
      const source = chunkGradient!;
      for (let i = 0; i < setup.parameterCount; i++) target[start + i] += source[i];
    }
    lossSum += result.lossSum;
    correct += result.correct;
  }
  return { lossSum, correct };
}

function evaluateShard(start: number, count: number): ShardResult {
  const { testPixels, testLabels } = setup;
  const pixelsPerImage = plan.inputSize;
  let lossSum = 0;
  let correct = 0;
  for (let done = 0; done < count; done += workspace.capacity) {
    const n = Math.min(workspace.capacity, count - done);
    for (let i = 0; i < n; i++) {
      const imageIndex = start + done + i;
      pixelsToInput(testPixels, imageIndex, pixelsPerImage, workspace.input, i * pixelsPerImage);
      workspace.labels[i] = testLabels[imageIndex];
    }
    workspace.forward(n, EVALUATION);
    const result = workspace.lossAndBackward(n, null);
    lossSum += result.lossSum;
    correct += result.correct;
  }
  return { lossSum, correct };
}

export default function runShard(task: ShardTask): ShardResult {
  const started = performance.now();
  checkPublishedStep(task.step);
  if (task.kind === "evaluate") return evaluateShard(task.start, task.count);
  const result = trainShard(task);
  // Release: the slot's writes above happen before this store (see protocol.ts).
  Atomics.store(setup.slotSteps, task.slot, task.step + 1);
  result.seconds = (performance.now() - started) / 1000;
  return result;
}
