// The coordinator and pool end to end on synthetic data: results must not depend on the number
// of worker threads, and training must learn.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  Trainer,
  shardImages,
  type EpochResult,
  type TrainingSettings,
} from "../src/training/trainer.js";
import { syntheticFashionMnist } from "./synthetic.js";

const data = syntheticFashionMnist(600, 200);

function settings(overrides: Partial<TrainingSettings> = {}): TrainingSettings {
  return {
    net: "conv-blur-net",
    optimizer: "adam",
    learningRate: 0.005,
    weightDecay: 1e-8,
    miniBatchSize: 250, // 600 images: batches of 250, 250 and 100
    epochCount: 2,
    trialCount: 1,
    seed: 11,
    trainCount: 600,
    testCount: 200,
    ...overrides,
  };
}

async function train(threads: number, overrides: Partial<TrainingSettings> = {}) {
  const trainer = new Trainer(settings(overrides), data, threads);
  try {
    const { results: epochs } = await trainer.runTrial(0);
    return { epochs, weights: Buffer.from(trainer.weights.buffer).toString("base64") };
  } finally {
    await trainer.close();
  }
}

function withoutTimings(epochs: EpochResult[]) {
  return epochs.map(({ seconds: _seconds, imagesPerSecond: _rate, ...figures }) => figures);
}

describe("training across worker threads", () => {
  test("1 and 3 threads give bit-identical results", async () => {
    const one = await train(1);
    const three = await train(3);
    assert.equal(three.weights, one.weights);
    assert.deepEqual(withoutTimings(three.epochs), withoutTimings(one.epochs));
  });

  test("sgd single-layer is identical on 1 and 4 threads", async () => {
    const overrides = { net: "single-layer", optimizer: "sgd", learningRate: 0.1 } as const;
    const one = await train(1, overrides);
    const four = await train(4, overrides);
    assert.equal(four.weights, one.weights);
  });

  test("another seed gives other weights", async () => {
    const first = await train(2, { net: "linear" });
    const second = await train(2, { net: "linear", seed: 12 });
    assert.notEqual(second.weights, first.weights);
  });

  test("conv-net learns the synthetic classes", async () => {
    const { epochs } = await train(2, { net: "conv-net", epochCount: 3, miniBatchSize: 100 });
    const last = epochs[epochs.length - 1];
    assert.ok(last.testAccuracy > 0.9, `test accuracy ${last.testAccuracy}`);
    assert.ok(last.trainLoss < epochs[0].trainLoss, "training loss fell");
    assert.ok(Number.isFinite(last.weightNorm), `weight norm ${last.weightNorm}`);
    assert.ok(last.weightNorm > 0);
  });
});

describe("shard size", () => {
  test("fixed by the batch size alone", () => {
    assert.equal(shardImages(1000), 50);
    assert.equal(shardImages(10), 50);
    assert.equal(shardImages(60000), 938);
  });
});
