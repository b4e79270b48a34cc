// Optimizers against three steps computed in float64 from the same formulas.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { Adam, scheduledLearningRate, SgdMomentum } from "../src/training/optimizers.js";
import { assertClose, loadReference, referenceSuiteOptions, toFloat32 } from "./reference.js";

describe("optimizers against reference", referenceSuiteOptions(), () => {
  test("adam three steps", () => {
    const reference = loadReference("adam_3_steps");
    const weights = toFloat32(reference.w0);
    const adam = new Adam(weights.length, reference.weight_decay);
    assert.equal(adam.beta1, reference.beta1);
    assert.equal(adam.beta2, reference.beta2);
    assert.equal(adam.epsilon, reference.epsilon);
    for (const gradient of reference.grads) adam.step(weights, toFloat32(gradient), reference.lr);
    assert.equal(adam.stepCount, 3);
    assertClose(weights, toFloat32(reference.w), "adam weights");
  });

  test("sgd with momentum three steps", () => {
    const reference = loadReference("sgd_momentum_3_steps");
    const weights = toFloat32(reference.w0);
    const sgd = new SgdMomentum(weights.length, reference.weight_decay);
    assert.equal(sgd.momentum, reference.momentum);
    for (const gradient of reference.grads) sgd.step(weights, toFloat32(gradient), reference.lr);
    assertClose(weights, toFloat32(reference.w), "sgd weights");
  });
});

describe("learning-rate schedule", () => {
  test("halves every 40 epochs", () => {
    assert.equal(scheduledLearningRate(0.005, 0), 0.005);
    assert.equal(scheduledLearningRate(0.005, 40), 0.0025);
    assert.equal(scheduledLearningRate(0.1, 20), 0.1 * Math.pow(0.5, 0.5));
  });
});
