// Finite-difference checks of every backward kernel on tiny random shapes.
//
// For a layer with output y, the scalar loss is L = sum(y * r) for a fixed random r, so the
// upstream gradient is dy = r. Each input, weight and bias element is moved by +-EPSILON and
// (L+ - L-) / (actual change) is compared with the analytic gradient. L is summed in float64 from
// the float32 outputs. Conv, dense, leaky ReLU away from 0 and the max of well-separated values
// are linear in each element, so the difference quotient is exact up to the float32 rounding of
// the changed outputs (half an ulp each). Softmax cross-entropy is smooth, so its central
// difference is off by O(EPSILON^2). With these seeds the largest difference from the analytic
// gradient is about 3e-5, some 30 times below ABSOLUTE_TOLERANCE.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  conv2dBackward,
  conv2dForward,
  conv2dGeometry,
  denseBackward,
  denseForward,
  leakyReluBackward,
  leakyReluForward,
  maxPool2dBackward,
  maxPool2dForward,
  maxPool2dGeometry,
  softmaxCrossEntropy,
} from "../src/kernels/index.js";

const EPSILON = 1e-2;
const ABSOLUTE_TOLERANCE = 1e-3;
const RELATIVE_TOLERANCE = 2e-2;

// xorshift32: a small deterministic generator, so that every run checks the same numbers.
function seededRandom(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state / 4294967296;
  };
}

function randomArray(count: number, random: () => number): Float32Array {
  const values = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    values[i] = 2 * random() - 1;
  }
  return values;
}

function weightedSum(count: number, y: Float32Array, r: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < count; i++) {
    sum += y[i] * r[i];
  }
  return sum;
}

/**
 * Asserts that `analytic` matches the central difference of `loss` for every element of
 * `parameter`. `loss` must recompute the forward pass from the current parameter values.
 */
function checkGradient(
  label: string,
  parameter: Float32Array,
  analytic: Float32Array,
  loss: () => number,
): void {
  assert.equal(analytic.length, parameter.length, `${label}: gradient length`);
  for (let i = 0; i < parameter.length; i++) {
    const original = parameter[i];
    parameter[i] = original + EPSILON;
    const raised = parameter[i];
    const lossRaised = loss();
    parameter[i] = original - EPSILON;
    const lowered = parameter[i];
    const lossLowered = loss();
    parameter[i] = original;

    // Divide by the change float32 actually stored, not by 2 * EPSILON.
    const numeric = (lossRaised - lossLowered) / (raised - lowered);
    const difference = Math.abs(numeric - analytic[i]);
    const tolerance = ABSOLUTE_TOLERANCE + RELATIVE_TOLERANCE * Math.abs(numeric);
    assert.ok(
      difference <= tolerance,
      `${label}[${i}]: analytic ${analytic[i]}, finite difference ${numeric}, ` +
        `difference ${difference} > tolerance ${tolerance}`,
    );
  }
}

interface ConvCase {
  name: string;
  n: number;
  inChannels: number;
  inHeight: number;
  inWidth: number;
  outChannels: number;
  kernelSize: number;
  stride: number;
  pad: number;
  groups: number;
}

const convCases: ConvCase[] = [
  {
    name: "pad 1 stride 1",
    n: 2,
    inChannels: 2,
    inHeight: 5,
    inWidth: 4,
    outChannels: 3,
    kernelSize: 3,
    stride: 1,
    pad: 1,
    groups: 1,
  },
  {
    name: "pad 1 groups 2",
    n: 2,
    inChannels: 4,
    inHeight: 4,
    inWidth: 5,
    outChannels: 6,
    kernelSize: 3,
    stride: 1,
    pad: 1,
    groups: 2,
  },
  {
    name: "pad 1 stride 2",
    n: 2,
    inChannels: 2,
    inHeight: 7,
    inWidth: 6,
    outChannels: 2,
    kernelSize: 3,
    stride: 2,
    pad: 1,
    groups: 1,
  },
  {
    name: "pad 0 stride 2",
    n: 1,
    inChannels: 2,
    inHeight: 6,
    inWidth: 7,
    outChannels: 2,
    kernelSize: 3,
    stride: 2,
    pad: 0,
    groups: 1,
  },
  {
    name: "depthwise stride 2",
    n: 2,
    inChannels: 3,
    inHeight: 6,
    inWidth: 5,
    outChannels: 3,
    kernelSize: 3,
    stride: 2,
    pad: 1,
    groups: 3,
  },
  {
    // 8 input channels per group and an even output size take the Winograd forward path.
    name: "Winograd groups 2",
    n: 2,
    inChannels: 16,
    inHeight: 4,
    inWidth: 6,
    outChannels: 6,
    kernelSize: 3,
    stride: 1,
    pad: 1,
    groups: 2,
  },
  {
    // 8 output channels per group: with a dense dy, dx is computed as a Winograd convolution of dy.
    name: "dense dy groups 2",
    n: 2,
    inChannels: 4,
    inHeight: 4,
    inWidth: 6,
    outChannels: 16,
    kernelSize: 3,
    stride: 1,
    pad: 1,
    groups: 2,
  },
  {
    name: "kernel 5 pad 2",
    n: 1,
    inChannels: 2,
    inHeight: 6,
    inWidth: 5,
    outChannels: 2,
    kernelSize: 5,
    stride: 1,
    pad: 2,
    groups: 1,
  },
];

describe("conv2d gradients", () => {
  for (const [caseIndex, spec] of convCases.entries()) {
    test(`conv2d ${spec.name}`, () => {
      const random = seededRandom(100 + caseIndex);
      const g = conv2dGeometry(spec);
      const { n } = spec;
      const x = randomArray(n * g.inChannels * g.inHeight * g.inWidth, random);
      const w = randomArray(
        g.outChannels * (g.inChannels / g.groups) * g.kernelHeight * g.kernelWidth,
        random,
      );
      const b = randomArray(g.outChannels, random);
      const yCount = n * g.outChannels * g.outHeight * g.outWidth;
      const r = randomArray(yCount, random);
      const y = new Float32Array(yCount);
      const loss = () => {
        conv2dForward(g, n, x, w, b, y);
        return weightedSum(yCount, y, r);
      };

      const dx = new Float32Array(x.length);
      const dw = new Float32Array(w.length);
      const db = new Float32Array(b.length);
      conv2dBackward(g, n, x, w, r, dx, dw, db);
      checkGradient(`${spec.name} dx`, x, dx, loss);
      checkGradient(`${spec.name} dw`, w, dw, loss);
      checkGradient(`${spec.name} db`, b, db, loss);
    });
  }
});

describe("maxpool gradients", () => {
  for (const [caseIndex, stride, size] of [
    [0, 2, 2],
    [1, 1, 2],
    [2, 2, 3],
    [3, 1, 3],
  ]) {
    test(`maxpool size ${size} stride ${stride}`, () => {
      const random = seededRandom(200 + caseIndex);
      const g = maxPool2dGeometry({ channels: 2, inHeight: 7, inWidth: 6, size, stride });
      const n = 2;
      const xCount = n * 2 * 7 * 6;
      // Distinct values 0.1 apart, shuffled, so that a +-EPSILON move never changes a maximum
      // and the pooling is differentiable at every point checked.
      const x = new Float32Array(xCount);
      for (let i = 0; i < xCount; i++) {
        x[i] = 0.1 * i - 2;
      }
      for (let i = xCount - 1; i > 0; i--) {
        const j = Math.floor(random() * (i + 1));
        [x[i], x[j]] = [x[j], x[i]];
      }
      const yCount = n * 2 * g.outHeight * g.outWidth;
      const r = randomArray(yCount, random);
      const y = new Float32Array(yCount);
      const argmax = new Int32Array(yCount);
      const loss = () => {
        maxPool2dForward(g, n, x, y, argmax);
        return weightedSum(yCount, y, r);
      };

      loss();
      const dx = new Float32Array(xCount);
      maxPool2dBackward(g, n, r, argmax, dx);
      checkGradient(`maxpool size ${size} stride ${stride} dx`, x, dx, loss);
    });
  }
});

test("dense gradients", () => {
  const random = seededRandom(300);
  const [n, inFeatures, outFeatures] = [3, 7, 4];
  const x = randomArray(n * inFeatures, random);
  const w = randomArray(outFeatures * inFeatures, random);
  const b = randomArray(outFeatures, random);
  const r = randomArray(n * outFeatures, random);
  // One zero upstream gradient exercises the skip of zero rows in the backward pass.
  r[5] = 0;
  const y = new Float32Array(n * outFeatures);
  const loss = () => {
    denseForward(n, inFeatures, outFeatures, x, w, b, y);
    return weightedSum(y.length, y, r);
  };

  const dx = new Float32Array(x.length);
  const dw = new Float32Array(w.length);
  const db = new Float32Array(b.length);
  denseBackward(n, inFeatures, outFeatures, x, w, r, dx, dw, db);
  checkGradient("dense dx", x, dx, loss);
  checkGradient("dense dw", w, dw, loss);
  checkGradient("dense db", b, db, loss);
});

test("leaky ReLU gradients", () => {
  const random = seededRandom(400);
  const count = 40;
  // Magnitudes of at least 0.1 keep every point away from the kink at 0.
  const x = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    const magnitude = 0.1 + 0.9 * random();
    x[i] = random() < 0.5 ? -magnitude : magnitude;
  }
  const r = randomArray(count, random);
  const y = new Float32Array(count);
  const loss = () => {
    leakyReluForward(count, x, y);
    return weightedSum(count, y, r);
  };

  const dx = new Float32Array(count);
  leakyReluBackward(count, x, r, dx);
  checkGradient("leaky ReLU dx", x, dx, loss);
});

test("softmax cross-entropy gradients", () => {
  const random = seededRandom(500);
  const [n, classes] = [4, 6];
  const logits = randomArray(n * classes, random).map((value) => 3 * value);
  const labels = Uint8Array.from([2, 0, 5, 3]);
  const gradientScale = 0.5;
  // The loss is the one the gradient is scaled for: lossSum * gradientScale.
  const loss = () =>
    softmaxCrossEntropy(n, classes, logits, labels, 0, null, 1).lossSum * gradientScale;

  const dlogits = new Float32Array(logits.length);
  softmaxCrossEntropy(n, classes, logits, labels, 0, dlogits, gradientScale);
  checkGradient("softmax cross-entropy dlogits", logits, dlogits, loss);
});
