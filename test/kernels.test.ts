// Kernel results against the PyTorch reference cases, plus the buffer contracts that the model
// runner relies on: longer buffers, null outputs, in-place calls and tie breaking.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  canFuseLeakyReluMaxPoolBackward,
  conv2dBackward,
  conv2dForward,
  conv2dGeometry,
  denseBackward,
  denseForward,
  dropoutBackward,
  dropoutForward,
  leakyReluBackward,
  leakyReluForward,
  leakyReluMaxPool2dBackward,
  maxPool2dBackward,
  maxPool2dForward,
  maxPool2dGeometry,
  softmaxCrossEntropy,
} from "../src/kernels/index.js";
import { fillDropoutMask } from "../src/random.js";
import {
  assertClose,
  loadReference,
  referenceSuiteOptions,
  toFloat32,
  type ReferenceTensor,
} from "./reference.js";

function elementCount(tensor: ReferenceTensor): number {
  return tensor.shape.reduce((product, size) => product * size, 1);
}

// xorshift32: a small deterministic generator, so that the random inputs are the same every run.
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

// Copies `values` into a buffer `extra` elements longer whose tail is `fill`.
function withTail(values: Float32Array, extra: number, fill: number): Float32Array {
  const buffer = new Float32Array(values.length + extra).fill(fill);
  buffer.set(values);
  return buffer;
}

function assertTailUntouched(
  buffer: ArrayLike<number>,
  start: number,
  fill: number,
  label: string,
) {
  for (let i = start; i < buffer.length; i++) {
    assert.equal(buffer[i], fill, `${label}: element ${i} past the used length was written`);
  }
}

const TAIL = 7;
const OUTPUT_FILL = 12345;

describe("reference cases", referenceSuiteOptions(), () => {
  for (const name of ["conv2d_pad1", "conv2d_pad1_groups2", "conv2d_blur_stride2"]) {
    test(`${name} forward and backward`, () => {
      const reference = loadReference(name);
      const [n, inChannels, inHeight, inWidth] = reference.x.shape;
      const [outChannels, , kernelSize] = reference.w.shape;
      const g = conv2dGeometry({
        inChannels,
        inHeight,
        inWidth,
        outChannels,
        kernelSize,
        stride: reference.stride,
        pad: reference.pad,
        groups: reference.groups,
      });
      assert.deepEqual([n, outChannels, g.outHeight, g.outWidth], reference.y.shape);

      const x = toFloat32(reference.x);
      const w = toFloat32(reference.w);
      const b = toFloat32(reference.b);
      const y = new Float32Array(elementCount(reference.y));
      conv2dForward(g, n, x, w, b, y);
      assertClose(y, reference.y.data, `${name} y`);

      const dx = new Float32Array(x.length);
      const dw = new Float32Array(w.length);
      const db = new Float32Array(b.length);
      conv2dBackward(g, n, x, w, toFloat32(reference.dy), dx, dw, db);
      assertClose(dx, reference.dx.data, `${name} dx`);
      assertClose(dw, reference.dw.data, `${name} dw`);
      assertClose(db, reference.db.data, `${name} db`);
    });
  }

  test("conv2d_blur_stride2 without bias", () => {
    // The blur case has an all-zero bias, so a null bias must give the same y.
    const reference = loadReference("conv2d_blur_stride2");
    const [n, channels, inHeight, inWidth] = reference.x.shape;
    assert.deepEqual(reference.b.data, new Array(channels).fill(0));
    const g = conv2dGeometry({
      inChannels: channels,
      inHeight,
      inWidth,
      outChannels: channels,
      kernelSize: 3,
      stride: 2,
      pad: 1,
      groups: channels,
    });
    const y = new Float32Array(elementCount(reference.y));
    conv2dForward(g, n, toFloat32(reference.x), toFloat32(reference.w), null, y);
    assertClose(y, reference.y.data, "blur y");

    const dx = new Float32Array(elementCount(reference.x));
    const x = toFloat32(reference.x);
    conv2dBackward(g, n, x, toFloat32(reference.w), toFloat32(reference.dy), dx, null, null);
    assertClose(dx, reference.dx.data, "blur dx");
  });

  for (const name of [
    "maxpool_2x2_stride2",
    "maxpool_2x2_stride1",
    "maxpool_2x2_stride2_ties",
    "maxpool_2x2_stride1_ties",
  ]) {
    test(`${name} forward and backward`, () => {
      const reference = loadReference(name);
      const [n, channels, inHeight, inWidth] = reference.x.shape;
      const g = maxPool2dGeometry({
        channels,
        inHeight,
        inWidth,
        size: reference.size,
        stride: reference.stride,
      });
      assert.deepEqual([n, channels, g.outHeight, g.outWidth], reference.y.shape);

      const x = toFloat32(reference.x);
      const y = new Float32Array(elementCount(reference.y));
      const argmax = new Int32Array(y.length);
      maxPool2dForward(g, n, x, y, argmax);
      assertClose(y, reference.y.data, `${name} y`);

      const dx = new Float32Array(x.length);
      maxPool2dBackward(g, n, toFloat32(reference.dy), argmax, dx);
      assertClose(dx, reference.dx.data, `${name} dx`);
    });
  }

  test("dense forward and backward", () => {
    const reference = loadReference("dense");
    const [n, inFeatures] = reference.x.shape;
    const [outFeatures] = reference.w.shape;
    const x = toFloat32(reference.x);
    const w = toFloat32(reference.w);

    const y = new Float32Array(n * outFeatures);
    denseForward(n, inFeatures, outFeatures, x, w, toFloat32(reference.b), y);
    assertClose(y, reference.y.data, "dense y");

    const dx = new Float32Array(x.length);
    const dw = new Float32Array(w.length);
    const db = new Float32Array(outFeatures);
    denseBackward(n, inFeatures, outFeatures, x, w, toFloat32(reference.dy), dx, dw, db);
    assertClose(dx, reference.dx.data, "dense dx");
    assertClose(dw, reference.dw.data, "dense dw");
    assertClose(db, reference.db.data, "dense db");
  });

  test("leaky_relu forward and backward", () => {
    const reference = loadReference("leaky_relu");
    assert.equal(reference.slope, 0.01);
    const count = elementCount(reference.x);
    const x = toFloat32(reference.x);

    const y = new Float32Array(count);
    leakyReluForward(count, x, y);
    assertClose(y, reference.y.data, "leaky_relu y");

    const dx = new Float32Array(count);
    leakyReluBackward(count, x, toFloat32(reference.dy), dx);
    assertClose(dx, reference.dx.data, "leaky_relu dx");
  });

  test("leaky_relu in place", () => {
    const reference = loadReference("leaky_relu");
    const count = elementCount(reference.x);

    const activations = toFloat32(reference.x);
    leakyReluForward(count, activations, activations);
    assertClose(activations, reference.y.data, "leaky_relu y in place");

    const gradients = toFloat32(reference.dy);
    leakyReluBackward(count, toFloat32(reference.x), gradients, gradients);
    assertClose(gradients, reference.dx.data, "leaky_relu dx in place");
  });

  test("softmax_cross_entropy loss and gradient", () => {
    const reference = loadReference("softmax_cross_entropy");
    assert.equal(reference.reduction, "sum");
    const [n, classes] = reference.logits.shape;
    const labels = Uint8Array.from(reference.labels);
    const dlogits = new Float32Array(n * classes);

    const result = softmaxCrossEntropy(
      n,
      classes,
      toFloat32(reference.logits),
      labels,
      0,
      dlogits,
      1,
    );
    assertClose([result.lossSum], [reference.loss_sum], "softmax_cross_entropy loss_sum");
    assert.equal(result.correct, reference.correct);
    assertClose(dlogits, reference.dlogits.data, "softmax_cross_entropy dlogits");
  });
});

describe("longer buffers", () => {
  test("conv2d ignores buffer tails", () => {
    const random = seededRandom(11);
    const g = conv2dGeometry({
      inChannels: 4,
      inHeight: 6,
      inWidth: 5,
      outChannels: 6,
      kernelSize: 3,
      stride: 2,
      pad: 1,
      groups: 2,
    });
    const n = 2;
    const xCount = n * 4 * 6 * 5;
    const wCount = 6 * 2 * 3 * 3;
    const yCount = n * 6 * g.outHeight * g.outWidth;
    const x = randomArray(xCount, random);
    const w = randomArray(wCount, random);
    const b = randomArray(6, random);
    const dy = randomArray(yCount, random);

    const y = new Float32Array(yCount);
    const dx = new Float32Array(xCount);
    const dw = new Float32Array(wCount);
    const db = new Float32Array(6);
    conv2dForward(g, n, x, w, b, y);
    conv2dBackward(g, n, x, w, dy, dx, dw, db);

    // Weights and bias as views into one larger parameter buffer, as the model stores them.
    const parameters = new Float32Array(3 + wCount + 6 + TAIL).fill(NaN);
    parameters.set(w, 3);
    parameters.set(b, 3 + wCount);
    const wView = parameters.subarray(3);
    const bView = parameters.subarray(3 + wCount);
    const yLong = new Float32Array(yCount + TAIL).fill(OUTPUT_FILL);
    const dxLong = new Float32Array(xCount + TAIL).fill(OUTPUT_FILL);
    const dwLong = new Float32Array(wCount + TAIL).fill(OUTPUT_FILL);
    const dbLong = new Float32Array(6 + TAIL).fill(OUTPUT_FILL);
    const xLong = withTail(x, TAIL, NaN);
    conv2dForward(g, n, xLong, wView, bView, yLong);
    conv2dBackward(g, n, xLong, wView, withTail(dy, TAIL, NaN), dxLong, dwLong, dbLong);

    assert.deepEqual(yLong.subarray(0, yCount), y);
    assert.deepEqual(dxLong.subarray(0, xCount), dx);
    assert.deepEqual(dwLong.subarray(0, wCount), dw);
    assert.deepEqual(dbLong.subarray(0, 6), db);
    assertTailUntouched(yLong, yCount, OUTPUT_FILL, "conv2d y");
    assertTailUntouched(dxLong, xCount, OUTPUT_FILL, "conv2d dx");
    assertTailUntouched(dwLong, wCount, OUTPUT_FILL, "conv2d dw");
    assertTailUntouched(dbLong, 6, OUTPUT_FILL, "conv2d db");
  });

  test("conv2d backward overwrites outputs", () => {
    const random = seededRandom(12);
    const g = conv2dGeometry({
      inChannels: 2,
      inHeight: 5,
      inWidth: 5,
      outChannels: 3,
      kernelSize: 3,
      stride: 1,
      pad: 1,
      groups: 1,
    });
    const x = randomArray(2 * 25, random);
    const w = randomArray(3 * 2 * 9, random);
    const dy = randomArray(3 * 25, random);
    const dx = new Float32Array(x.length);
    const dw = new Float32Array(w.length);
    const db = new Float32Array(3);
    conv2dBackward(g, 1, x, w, dy, dx, dw, db);

    const dxAgain = new Float32Array(x.length).fill(99);
    const dwAgain = new Float32Array(w.length).fill(99);
    const dbAgain = new Float32Array(3).fill(99);
    conv2dBackward(g, 1, x, w, dy, dxAgain, dwAgain, dbAgain);
    assert.deepEqual(dxAgain, dx);
    assert.deepEqual(dwAgain, dw);
    assert.deepEqual(dbAgain, db);
  });

  test("maxpool ignores buffer tails", () => {
    const random = seededRandom(13);
    const g = maxPool2dGeometry({ channels: 3, inHeight: 7, inWidth: 6, size: 2, stride: 2 });
    const n = 2;
    const xCount = n * 3 * 7 * 6;
    const yCount = n * 3 * g.outHeight * g.outWidth;
    const x = randomArray(xCount, random);
    const dy = randomArray(yCount, random);

    const y = new Float32Array(yCount);
    const argmax = new Int32Array(yCount);
    const dx = new Float32Array(xCount);
    maxPool2dForward(g, n, x, y, argmax);
    maxPool2dBackward(g, n, dy, argmax, dx);

    const yLong = new Float32Array(yCount + TAIL).fill(OUTPUT_FILL);
    const argmaxLong = new Int32Array(yCount + TAIL).fill(OUTPUT_FILL);
    const dxLong = new Float32Array(xCount + TAIL).fill(OUTPUT_FILL);
    maxPool2dForward(g, n, withTail(x, TAIL, Infinity), yLong, argmaxLong);
    // Garbage in the argmax tail would move dy's tail onto dx[0] if it were read.
    argmaxLong.fill(0, yCount);
    maxPool2dBackward(g, n, withTail(dy, TAIL, 1e6), argmaxLong, dxLong);

    assert.deepEqual(yLong.subarray(0, yCount), y);
    assert.deepEqual(argmaxLong.subarray(0, yCount), argmax);
    assert.deepEqual(dxLong.subarray(0, xCount), dx);
    assertTailUntouched(yLong, yCount, OUTPUT_FILL, "maxpool y");
    assertTailUntouched(dxLong, xCount, OUTPUT_FILL, "maxpool dx");
  });

  test("dense ignores buffer tails", () => {
    const random = seededRandom(14);
    const [n, inFeatures, outFeatures] = [3, 9, 4];
    const x = randomArray(n * inFeatures, random);
    const w = randomArray(outFeatures * inFeatures, random);
    const b = randomArray(outFeatures, random);
    const dy = randomArray(n * outFeatures, random);

    const y = new Float32Array(n * outFeatures);
    const dx = new Float32Array(x.length);
    const dw = new Float32Array(w.length);
    const db = new Float32Array(outFeatures);
    denseForward(n, inFeatures, outFeatures, x, w, b, y);
    denseBackward(n, inFeatures, outFeatures, x, w, dy, dx, dw, db);

    const xLong = withTail(x, TAIL, NaN);
    const wLong = withTail(w, TAIL, NaN);
    const yLong = new Float32Array(y.length + TAIL).fill(OUTPUT_FILL);
    const dxLong = new Float32Array(dx.length + TAIL).fill(OUTPUT_FILL);
    const dwLong = new Float32Array(dw.length + TAIL).fill(OUTPUT_FILL);
    const dbLong = new Float32Array(db.length + TAIL).fill(OUTPUT_FILL);
    denseForward(n, inFeatures, outFeatures, xLong, wLong, withTail(b, TAIL, NaN), yLong);
    denseBackward(
      n,
      inFeatures,
      outFeatures,
      xLong,
      wLong,
      withTail(dy, TAIL, NaN),
      dxLong,
      dwLong,
      dbLong,
    );

    assert.deepEqual(yLong.subarray(0, y.length), y);
    assert.deepEqual(dxLong.subarray(0, dx.length), dx);
    assert.deepEqual(dwLong.subarray(0, dw.length), dw);
    assert.deepEqual(dbLong.subarray(0, db.length), db);
    assertTailUntouched(yLong, y.length, OUTPUT_FILL, "dense y");
    assertTailUntouched(dxLong, dx.length, OUTPUT_FILL, "dense dx");
    assertTailUntouched(dwLong, dw.length, OUTPUT_FILL, "dense dw");
    assertTailUntouched(dbLong, db.length, OUTPUT_FILL, "dense db");
  });

  test("dense backward without dx", () => {
    const random = seededRandom(15);
    const [n, inFeatures, outFeatures] = [2, 5, 3];
    const x = randomArray(n * inFeatures, random);
    const w = randomArray(outFeatures * inFeatures, random);
    const dy = randomArray(n * outFeatures, random);
    const dw = new Float32Array(w.length);
    const db = new Float32Array(outFeatures);
    denseBackward(n, inFeatures, outFeatures, x, w, dy, new Float32Array(x.length), dw, db);

    const dwAlone = new Float32Array(w.length).fill(99);
    const dbAlone = new Float32Array(outFeatures).fill(99);
    denseBackward(n, inFeatures, outFeatures, x, w, dy, null, dwAlone, dbAlone);
    assert.deepEqual(dwAlone, dw);
    assert.deepEqual(dbAlone, db);
  });

  test("leaky ReLU ignores buffer tails", () => {
    const random = seededRandom(16);
    const count = 20;
    const x = randomArray(count, random);
    const dy = randomArray(count, random);
    const y = new Float32Array(count);
    const dx = new Float32Array(count);
    leakyReluForward(count, x, y);
    leakyReluBackward(count, x, dy, dx);

    const yLong = new Float32Array(count + TAIL).fill(OUTPUT_FILL);
    const dxLong = new Float32Array(count + TAIL).fill(OUTPUT_FILL);
    const xLong = withTail(x, TAIL, NaN);
    leakyReluForward(count, xLong, yLong);
    leakyReluBackward(count, xLong, withTail(dy, TAIL, NaN), dxLong);

    assert.deepEqual(yLong.subarray(0, count), y);
    assert.deepEqual(dxLong.subarray(0, count), dx);
    assertTailUntouched(yLong, count, OUTPUT_FILL, "leaky ReLU y");
    assertTailUntouched(dxLong, count, OUTPUT_FILL, "leaky ReLU dx");
  });

  test("softmax cross-entropy ignores buffer tails", () => {
    const random = seededRandom(17);
    const [n, classes] = [4, 10];
    const logits = randomArray(n * classes, random).map((value) => 4 * value);
    const labels = Uint8Array.from([3, 9, 0, 5]);
    const dlogits = new Float32Array(n * classes);
    const expected = softmaxCrossEntropy(n, classes, logits, labels, 0, dlogits, 0.25);

    // The labels sit at an offset inside a longer array, as a shard of the whole label set.
    const labelsLong = Uint8Array.from([255, 255, 3, 9, 0, 5, 255]);
    const dlogitsLong = new Float32Array(n * classes + TAIL).fill(OUTPUT_FILL);
    const result = softmaxCrossEntropy(
      n,
      classes,
      withTail(logits, TAIL, NaN),
      labelsLong,
      2,
      dlogitsLong,
      0.25,
    );

    assert.equal(result.lossSum, expected.lossSum);
    assert.equal(result.correct, expected.correct);
    assert.deepEqual(dlogitsLong.subarray(0, n * classes), dlogits);
    assertTailUntouched(dlogitsLong, n * classes, OUTPUT_FILL, "softmax dlogits");
  });
});

describe("dropout", () => {
  test("dropout keeps, drops and scales", () => {
    const x = Float32Array.from([1.5, -2, 3.25, 0.5, -0.75, 4]);
    const mask = Uint8Array.from([1, 0, 1, 1, 0, 0]);
    const y = new Float32Array(x.length + TAIL).fill(OUTPUT_FILL);
    dropoutForward(x.length, 0.5, x, mask, y);
    assert.deepEqual(Array.from(y.subarray(0, x.length)), [3, 0, 6.5, 1, 0, 0]);
    assertTailUntouched(y, x.length, OUTPUT_FILL, "dropout y");

    const dy = Float32Array.from([0.25, 1, -1, 2, 3, -4]);
    const dx = new Float32Array(dy.length).fill(OUTPUT_FILL);
    dropoutBackward(dy.length, 0.5, dy, mask, dx);
    assert.deepEqual(Array.from(dx), [0.5, 0, -2, 4, 0, 0]);
  });

  test("dropout in place", () => {
    const mask = Uint8Array.from([0, 1, 1]);
    const values = Float32Array.from([1, 2, 3]);
    dropoutForward(3, 0.75, values, mask, values);
    assert.deepEqual(Array.from(values), [0, 8, 12]);
    dropoutBackward(3, 0.75, values, mask, values);
    assert.deepEqual(Array.from(values), [0, 32, 48]);
  });

  test("dropout rate 0 is identity", () => {
    const x = Float32Array.from([1, -2, 3]);
    const y = new Float32Array(3);
    dropoutForward(3, 0, x, Uint8Array.from([1, 1, 1]), y);
    assert.deepEqual(y, x);
  });

  test("dropout rejects invalid rates", () => {
    const buffer = new Float32Array(2);
    const mask = new Uint8Array(2);
    assert.throws(() => dropoutForward(2, 1, buffer, mask, buffer), RangeError);
    assert.throws(() => dropoutForward(2, -0.1, buffer, mask, buffer), RangeError);
    assert.throws(() => dropoutBackward(2, NaN, buffer, mask, buffer), RangeError);
  });

  test("dropout mask keep fraction", () => {
    const count = 20000;
    const mask = new Uint8Array(count);
    fillDropoutMask(mask, 0, count, 0.25, 5, 0, 123);
    const keptCount = mask.reduce((sum, value) => sum + value, 0);
    // The standard deviation of the kept count is sqrt(20000 * 0.25 * 0.75), about 61.
    assert.ok(
      Math.abs(keptCount - 15000) < 400,
      `kept ${keptCount} of ${count}, expected about 15000`,
    );
  });

  test("dropout mask depends on seed, epoch and image only", () => {
    const draw = (seed: number, epoch: number, image: number, offset = 0) => {
      const mask = new Uint8Array(offset + 64).fill(7);
      fillDropoutMask(mask, offset, 64, 0.5, seed, epoch, image);
      return Array.from(mask.subarray(offset));
    };
    assert.deepEqual(draw(1, 2, 3), draw(1, 2, 3, 10));
    assert.notDeepEqual(draw(1, 2, 3), draw(2, 2, 3));
    assert.notDeepEqual(draw(1, 2, 3), draw(1, 3, 3));
    assert.notDeepEqual(draw(1, 2, 3), draw(1, 2, 4));
  });
});

describe("maxpool ties", () => {
  test("2x2 window picks first maximum", () => {
    const g = maxPool2dGeometry({ channels: 1, inHeight: 2, inWidth: 4, size: 2, stride: 2 });
    const x = Float32Array.from([1, 3, 5, 5, 3, 3, 5, 5]);
    const y = new Float32Array(2);
    const argmax = new Int32Array(2);
    maxPool2dForward(g, 1, x, y, argmax);
    assert.deepEqual(Array.from(y), [3, 5]);
    assert.deepEqual(Array.from(argmax), [1, 2]);
  });

  test("3x3 window picks first maximum", () => {
    const g = maxPool2dGeometry({ channels: 1, inHeight: 3, inWidth: 4, size: 3, stride: 1 });
    // Window 0 covers columns 0-2 and window 1 columns 1-3. Window 0's maximum 7 is at flat
    // indices 0, 2 and 5, and window 1's maximum 9 is at 7 and 11.
    const x = Float32Array.from([7, 1, 7, 0, 2, 7, 0, 9, 3, 4, 6, 9]);
    const y = new Float32Array(2);
    const argmax = new Int32Array(2);
    maxPool2dForward(g, 1, x, y, argmax);
    assert.deepEqual(Array.from(y), [7, 9]);
    assert.deepEqual(Array.from(argmax), [0, 7]);
  });

  test("all-equal windows pick first element", () => {
    const g = maxPool2dGeometry({ channels: 2, inHeight: 3, inWidth: 3, size: 2, stride: 1 });
    const x = new Float32Array(18);
    const y = new Float32Array(8);
    const argmax = new Int32Array(8);
    maxPool2dForward(g, 1, x, y, argmax);
    assert.deepEqual(Array.from(argmax), [0, 1, 3, 4, 9, 10, 12, 13]);

    const dx = new Float32Array(18).fill(OUTPUT_FILL);
    maxPool2dBackward(g, 1, new Float32Array(8).fill(1), argmax, dx);
    assert.deepEqual(Array.from(dx), [1, 1, 0, 1, 1, 0, 0, 0, 0, 1, 1, 0, 1, 1, 0, 0, 0, 0]);
  });
});

describe("geometry", () => {
  test("conv2d output sizes", () => {
    const same = conv2dGeometry({
      inChannels: 1,
      inHeight: 28,
      inWidth: 28,
      outChannels: 16,
      kernelSize: 3,
      stride: 1,
      pad: 1,
      groups: 1,
    });
    assert.equal(same.outHeight, 28);
    assert.equal(same.outWidth, 28);
    assert.equal(same.kernelHeight, 3);
    assert.equal(same.kernelWidth, 3);

    const strided = conv2dGeometry({
      inChannels: 32,
      inHeight: 15,
      inWidth: 14,
      outChannels: 32,
      kernelSize: 3,
      stride: 2,
      pad: 1,
      groups: 32,
    });
    assert.equal(strided.outHeight, 8);
    assert.equal(strided.outWidth, 7);
  });

  test("conv2d rejects indivisible groups", () => {
    const spec = {
      inChannels: 6,
      inHeight: 5,
      inWidth: 5,
      outChannels: 4,
      kernelSize: 3,
      stride: 1,
      pad: 1,
      groups: 4,
    };
    assert.throws(() => conv2dGeometry(spec), /divisible by groups 4/);
    assert.throws(() => conv2dGeometry({ ...spec, inChannels: 4, outChannels: 6 }), /divisible/);
  });

  test("conv2d rejects empty output", () => {
    const spec = {
      inChannels: 1,
      inHeight: 2,
      inWidth: 5,
      outChannels: 1,
      kernelSize: 3,
      stride: 1,
      pad: 0,
      groups: 1,
    };
    assert.throws(() => conv2dGeometry(spec), /empty output/);
    assert.throws(() => conv2dGeometry({ ...spec, stride: 0 }), /stride must be an integer/);
  });

  test("maxpool output sizes", () => {
    const halved = maxPool2dGeometry({
      channels: 16,
      inHeight: 28,
      inWidth: 27,
      size: 2,
      stride: 2,
    });
    assert.equal(halved.outHeight, 14);
    assert.equal(halved.outWidth, 13);
    const overlapping = maxPool2dGeometry({
      channels: 16,
      inHeight: 28,
      inWidth: 28,
      size: 2,
      stride: 1,
    });
    assert.equal(overlapping.outHeight, 27);
  });

  test("maxpool rejects empty output", () => {
    assert.throws(
      () => maxPool2dGeometry({ channels: 1, inHeight: 1, inWidth: 4, size: 2, stride: 2 }),
      /empty output/,
    );
  });
});

describe("softmax cross-entropy labels", () => {
  test("rejects label out of range", () => {
    const logits = new Float32Array(6);
    assert.throws(
      () => softmaxCrossEntropy(2, 3, logits, Uint8Array.from([0, 3]), 0, null, 1),
      RangeError,
    );
  });

  test("rejects too few labels", () => {
    const logits = new Float32Array(6);
    assert.throws(
      () => softmaxCrossEntropy(2, 3, logits, Uint8Array.from([0, 1]), 1, null, 1),
      RangeError,
    );
  });

  test("ties count the first maximum", () => {
    const logits = Float32Array.from([2, 2, 1, 0, 5, 5]);
    const result = softmaxCrossEntropy(2, 3, logits, Uint8Array.from([1, 1]), 0, null, 1);
    // Row 0 ties classes 0 and 1, so its arg-max is 0 and misses label 1.
    // Row 1 ties classes 1 and 2, so its arg-max is 1 and hits label 1.
    assert.equal(result.correct, 1);
  });

  test("large logits do not overflow", () => {
    const logits = Float32Array.from([1000, 0, -1000]);
    const dlogits = new Float32Array(3);
    const result = softmaxCrossEntropy(1, 3, logits, Uint8Array.from([1]), 0, dlogits, 1);
    assert.ok(Math.abs(result.lossSum - 1000) < 1e-9, `loss ${result.lossSum}, expected 1000`);
    assert.deepEqual(Array.from(dlogits), [1, -1, 0]);
  });
});

// Plain float64 loops, the definition of each product, to check the tiled and sparse paths.
function naiveDense(
  n: number,
  inFeatures: number,
  outFeatures: number,
  x: Float32Array,
  w: Float32Array,
  b: Float32Array,
  dy: Float32Array,
): { y: number[]; dx: number[]; dw: number[]; db: number[] } {
  const y = new Array<number>(n * outFeatures).fill(0);
  const dx = new Array<number>(n * inFeatures).fill(0);
  const dw = new Array<number>(outFeatures * inFeatures).fill(0);
  const db = new Array<number>(outFeatures).fill(0);
  for (let i = 0; i < n; i++) {
    for (let o = 0; o < outFeatures; o++) {
      let sum = b[o];
      for (let j = 0; j < inFeatures; j++) {
        sum += x[i * inFeatures + j] * w[o * inFeatures + j];
        dx[i * inFeatures + j] += dy[i * outFeatures + o] * w[o * inFeatures + j];
        dw[o * inFeatures + j] += dy[i * outFeatures + o] * x[i * inFeatures + j];
      }
      y[i * outFeatures + o] = sum;
      db[o] += dy[i * outFeatures + o];
    }
  }
  return { y, dx, dw, db };
}

// Zeroes each element of `values` with probability `zeroFraction`.
function sparsify(values: Float32Array, zeroFraction: number, random: () => number): Float32Array {
  for (let i = 0; i < values.length; i++) {
    if (random() < zeroFraction) values[i] = 0;
  }
  return values;
}

describe("zero skipping", () => {
  for (const zeroFraction of [0.5, 0.9, 1]) {
    test(`dense with ${zeroFraction * 100}% zero inputs`, () => {
      const random = seededRandom(21);
      // 19 outputs make two tiles of 8 with 3 left over, and 5 rows make two pairs with 1 left over.
      const [n, inFeatures, outFeatures] = [5, 37, 19];
      const x = sparsify(randomArray(n * inFeatures, random), zeroFraction, random);
      const w = randomArray(outFeatures * inFeatures, random);
      const b = randomArray(outFeatures, random);
      const dy = randomArray(n * outFeatures, random);
      const expected = naiveDense(n, inFeatures, outFeatures, x, w, b, dy);

      const y = new Float32Array(n * outFeatures + TAIL).fill(OUTPUT_FILL);
      const dx = new Float32Array(n * inFeatures + TAIL).fill(OUTPUT_FILL);
      const dw = new Float32Array(outFeatures * inFeatures + TAIL).fill(OUTPUT_FILL);
      const db = new Float32Array(outFeatures + TAIL).fill(OUTPUT_FILL);
      const xLong = withTail(x, TAIL, NaN);
      denseForward(n, inFeatures, outFeatures, xLong, w, b, y);
      denseBackward(n, inFeatures, outFeatures, xLong, w, withTail(dy, TAIL, NaN), dx, dw, db);

      assertClose(y.subarray(0, n * outFeatures), expected.y, "y", 1e-6);
      assertClose(dx.subarray(0, n * inFeatures), expected.dx, "dx", 1e-6);
      assertClose(dw.subarray(0, outFeatures * inFeatures), expected.dw, "dw", 1e-6);
      assertClose(db.subarray(0, outFeatures), expected.db, "db", 1e-6);
      assertTailUntouched(y, n * outFeatures, OUTPUT_FILL, "y");
      assertTailUntouched(dw, outFeatures * inFeatures, OUTPUT_FILL, "dw");
    });
  }

  test("dense sparse and dense inputs agree", () => {
    // Two rows with most inputs zero run alone (sparse path) and again followed by 8 dense rows
    // (dense path). Their outputs must be bit-identical.
    const random = seededRandom(22);
    const [inFeatures, outFeatures] = [40, 16];
    const sparseRows = sparsify(randomArray(2 * inFeatures, random), 0.6, random);
    const denseRows = randomArray(8 * inFeatures, random);
    const mixed = new Float32Array(10 * inFeatures);
    mixed.set(sparseRows);
    mixed.set(denseRows, 2 * inFeatures);
    const w = randomArray(outFeatures * inFeatures, random);
    const b = randomArray(outFeatures, random);

    const ySparse = new Float32Array(2 * outFeatures);
    const yMixed = new Float32Array(10 * outFeatures);
    denseForward(2, inFeatures, outFeatures, sparseRows, w, b, ySparse);
    denseForward(10, inFeatures, outFeatures, mixed, w, b, yMixed);
    assert.deepEqual(yMixed.subarray(0, 2 * outFeatures), ySparse);
  });

  test("conv2d backward with mostly zero dy", () => {
    const random = seededRandom(23);
    const g = conv2dGeometry({
      inChannels: 4,
      inHeight: 7,
      inWidth: 6,
      outChannels: 6,
      kernelSize: 3,
      stride: 1,
      pad: 1,
      groups: 2,
    });
    const n = 3;
    const x = randomArray(n * 4 * 7 * 6, random);
    const w = randomArray(6 * 2 * 9, random);
    const yCount = n * 6 * g.outHeight * g.outWidth;
    const dy = sparsify(randomArray(yCount, random), 0.75, random);

    // Definition of the gradients, looping over every dy entry.
    const dxExpected = new Array<number>(x.length).fill(0);
    const dwExpected = new Array<number>(w.length).fill(0);
    const dbExpected = new Array<number>(6).fill(0);
    for (let image = 0; image < n; image++) {
      for (let oc = 0; oc < 6; oc++) {
        const group = Math.floor(oc / 3);
        for (let oh = 0; oh < 7; oh++) {
          for (let ow = 0; ow < 6; ow++) {
            const gradient = dy[((image * 6 + oc) * 7 + oh) * 6 + ow];
            dbExpected[oc] += gradient;
            for (let icInGroup = 0; icInGroup < 2; icInGroup++) {
              const ic = group * 2 + icInGroup;
              for (let tap = 0; tap < 9; tap++) {
                const row = oh - 1 + Math.floor(tap / 3);
                const column = ow - 1 + (tap % 3);
                if (row < 0 || row >= 7 || column < 0 || column >= 6) continue;
                const xIndex = ((image * 4 + ic) * 7 + row) * 6 + column;
                const wIndex = (oc * 2 + icInGroup) * 9 + tap;
                dxExpected[xIndex] += gradient * w[wIndex];
                dwExpected[wIndex] += gradient * x[xIndex];
              }
            }
          }
        }
      }
    }

    const dx = new Float32Array(x.length).fill(OUTPUT_FILL);
    const dw = new Float32Array(w.length).fill(OUTPUT_FILL);
    const db = new Float32Array(6).fill(OUTPUT_FILL);
    conv2dBackward(g, n, x, w, dy, dx, dw, db);
    assertClose(dx, dxExpected, "dx", 1e-6);
    assertClose(dw, dwExpected, "dw", 1e-6);
    assertClose(db, dbExpected, "db", 1e-6);
  });

  for (const stride of [1, 2]) {
    test(`2x2 maxpool stride ${stride} matches a sequential scan`, () => {
      // Values from a set of four, so that most windows hold ties.
      const random = seededRandom(24 + stride);
      const g = maxPool2dGeometry({ channels: 3, inHeight: 9, inWidth: 8, size: 2, stride });
      const n = 2;
      const x = new Float32Array(n * 3 * 9 * 8);
      for (let i = 0; i < x.length; i++) x[i] = Math.floor(4 * random()) - 1;
      const yCount = n * 3 * g.outHeight * g.outWidth;
      const y = new Float32Array(yCount);
      const argmax = new Int32Array(yCount);
      maxPool2dForward(g, n, x, y, argmax);

      let yIndex = 0;
      for (let plane = 0; plane < n * 3; plane++) {
        for (let oh = 0; oh < g.outHeight; oh++) {
          for (let ow = 0; ow < g.outWidth; ow++) {
            const window = plane * 72 + oh * stride * 8 + ow * stride;
            let best = window;
            for (const offset of [1, 8, 9]) {
              if (x[window + offset] > x[best]) best = window + offset;
            }
            assert.equal(argmax[yIndex], best, `argmax of window ${yIndex}`);
            assert.equal(y[yIndex], x[best], `maximum of window ${yIndex}`);
            yIndex++;
          }
        }
      }
    });
  }
});

describe("conv2d forward paths", () => {
  // Plain float64 loops over every output, input channel and tap.
  function naiveConvForward(
    g: ReturnType<typeof conv2dGeometry>,
    n: number,
    x: Float32Array,
    w: Float32Array,
    b: Float32Array,
  ): number[] {
    const { inChannels, inHeight, inWidth, outChannels, outHeight, outWidth } = g;
    const { kernelHeight, kernelWidth, stride, pad, groups } = g;
    const inChannelsPerGroup = inChannels / groups;
    const outChannelsPerGroup = outChannels / groups;
    const y: number[] = [];
    for (let image = 0; image < n; image++) {
      for (let oc = 0; oc < outChannels; oc++) {
        const group = Math.floor(oc / outChannelsPerGroup);
        for (let oh = 0; oh < outHeight; oh++) {
          for (let ow = 0; ow < outWidth; ow++) {
            let sum = b[oc];
            for (let icInGroup = 0; icInGroup < inChannelsPerGroup; icInGroup++) {
              const ic = group * inChannelsPerGroup + icInGroup;
              for (let tapRow = 0; tapRow < kernelHeight; tapRow++) {
                for (let tapColumn = 0; tapColumn < kernelWidth; tapColumn++) {
                  const row = oh * stride - pad + tapRow;
                  const column = ow * stride - pad + tapColumn;
                  if (row < 0 || row >= inHeight || column < 0 || column >= inWidth) continue;
                  const xIndex = ((image * inChannels + ic) * inHeight + row) * inWidth + column;
                  const wIndex =
                    ((oc * inChannelsPerGroup + icInGroup) * kernelHeight + tapRow) * kernelWidth +
                    tapColumn;
                  sum += x[xIndex] * w[wIndex];
                }
              }
            }
            y.push(sum);
          }
        }
      }
    }
    return y;
  }

  // Each case picks one forward path (see conv2dForward) and exercises its leftover handling.
  const cases = [
    // Winograd: 3x3, stride 1, even output, 8 or more input channels per group. 5 output
    // channels leave one row of the tiled products over.
    { name: "Winograd", inChannels: 16, inHeight: 6, inWidth: 8, outChannels: 6, groups: 2 },
    {
      name: "Winograd odd rows",
      inChannels: 8,
      inHeight: 4,
      inWidth: 4,
      outChannels: 5,
      groups: 1,
    },
    // Direct 3x3: an odd output width leaves outputs over, 3 channels per group a lone channel.
    { name: "direct 3x3", inChannels: 16, inHeight: 5, inWidth: 7, outChannels: 6, groups: 2 },
    {
      name: "direct single input",
      inChannels: 1,
      inHeight: 6,
      inWidth: 9,
      outChannels: 4,
      groups: 1,
    },
    { name: "depthwise", inChannels: 5, inHeight: 6, inWidth: 7, outChannels: 5, groups: 5 },
    // im2col and the tiled multiply: stride 2 and a 5x5 kernel, with leftover rows and columns.
    {
      name: "im2col stride 2",
      inChannels: 4,
      inHeight: 9,
      inWidth: 8,
      outChannels: 5,
      groups: 1,
      stride: 2,
    },
    {
      name: "im2col kernel 5",
      inChannels: 6,
      inHeight: 7,
      inWidth: 9,
      outChannels: 6,
      groups: 2,
      kernelSize: 5,
      pad: 2,
    },
  ];
  for (const spec of cases) {
    test(`${spec.name} matches the definition`, () => {
      const random = seededRandom(31);
      const kernelSize = spec.kernelSize ?? 3;
      const g = conv2dGeometry({ stride: 1, pad: 1, ...spec, kernelSize });
      const n = 2;
      const x = randomArray(n * spec.inChannels * spec.inHeight * spec.inWidth, random);
      const filterSize = (spec.inChannels / spec.groups) * kernelSize * kernelSize;
      const w = randomArray(spec.outChannels * filterSize, random);
      const b = randomArray(spec.outChannels, random);
      const yCount = n * spec.outChannels * g.outHeight * g.outWidth;
      const y = new Float32Array(yCount + TAIL).fill(OUTPUT_FILL);
      conv2dForward(g, n, withTail(x, TAIL, NaN), w, b, y);
      assertClose(y.subarray(0, yCount), naiveConvForward(g, n, x, w, b), "y", 1e-6);
      assertTailUntouched(y, yCount, OUTPUT_FILL, "y");
    });

    test(`${spec.name} with leaky ReLU equals two passes`, () => {
      const random = seededRandom(37);
      const kernelSize = spec.kernelSize ?? 3;
      const g = conv2dGeometry({ stride: 1, pad: 1, ...spec, kernelSize });
      const n = 2;
      const x = randomArray(n * spec.inChannels * spec.inHeight * spec.inWidth, random);
      const filterSize = (spec.inChannels / spec.groups) * kernelSize * kernelSize;
      const w = randomArray(spec.outChannels * filterSize, random);
      const b = randomArray(spec.outChannels, random);
      // Half of the biases are 0 and the second image is all zeros, so some outputs are ±0.
      for (let oc = 0; oc < spec.outChannels; oc += 2) b[oc] = oc % 4 === 0 ? 0 : -0;
      x.fill(0, x.length / 2);
      const yCount = n * spec.outChannels * g.outHeight * g.outWidth;
      const expected = new Float32Array(yCount);
      conv2dForward(g, n, x, w, b, expected);
      leakyReluForward(yCount, expected, expected);
      const y = new Float32Array(yCount + TAIL).fill(OUTPUT_FILL);
      conv2dForward(g, n, withTail(x, TAIL, NaN), w, b, y, true);

      for (let i = 0; i < yCount; i++) {
        assert.ok(Object.is(y[i], expected[i]), `y element ${i}: ${y[i]} != ${expected[i]}`);
      }
      assertTailUntouched(y, yCount, OUTPUT_FILL, "y");
    });
  }
});

describe("fused and masked paths", () => {
  for (const [n, inFeatures, outFeatures] of [
    [5, 37, 19],
    [3, 150, 24],
  ]) {
    test(`dense dx mask ${inFeatures} inputs matches unmasked`, () => {
      // 150 inputs span three blocks of 64 features, the last one partial.
      const random = seededRandom(41);
      const x = randomArray(n * inFeatures, random);
      const w = randomArray(outFeatures * inFeatures, random);
      const dy = randomArray(n * outFeatures, random);
      const mask = new Uint8Array(n * inFeatures);
      for (let i = 0; i < mask.length; i++) mask[i] = random() < 0.5 ? 1 : 0;
      // Row 1 keeps nothing and row 2 keeps everything.
      mask.fill(0, inFeatures, 2 * inFeatures);
      mask.fill(1, 2 * inFeatures, 3 * inFeatures);

      const dxFull = new Float32Array(n * inFeatures);
      const dwFull = new Float32Array(outFeatures * inFeatures);
      const dbFull = new Float32Array(outFeatures);
      denseBackward(n, inFeatures, outFeatures, x, w, dy, dxFull, dwFull, dbFull);
      const dxMasked = new Float32Array(n * inFeatures + TAIL).fill(OUTPUT_FILL);
      const dw = new Float32Array(outFeatures * inFeatures);
      const db = new Float32Array(outFeatures);
      denseBackward(n, inFeatures, outFeatures, x, w, dy, dxMasked, dw, db, mask);

      for (let i = 0; i < n * inFeatures; i++) {
        const expected = mask[i] === 0 ? 0 : dxFull[i];
        assert.equal(dxMasked[i], expected, `dx element ${i}`);
      }
      assertTailUntouched(dxMasked, n * inFeatures, OUTPUT_FILL, "dx");
      assert.deepEqual(dw, dwFull);
      assert.deepEqual(db, dbFull);
    });
  }

  test("fused leaky ReLU and maxpool backward is exact", () => {
    // Values from a small set with both signs, so that windows hold ties, and a dy with signed
    // zeros. The fused pass must equal maxPool2dBackward then leakyReluBackward bit for bit.
    const random = seededRandom(42);
    const g = maxPool2dGeometry({ channels: 3, inHeight: 9, inWidth: 8, size: 2, stride: 2 });
    assert.equal(canFuseLeakyReluMaxPoolBackward(g), true);
    const n = 2;
    const xCount = n * 3 * 9 * 8;
    const yCount = n * 3 * g.outHeight * g.outWidth;
    const x = new Float32Array(xCount);
    for (let i = 0; i < xCount; i++) x[i] = [-2, -0.5, 0, 0.5, 3][Math.floor(5 * random())];
    const dy = randomArray(yCount, random);
    dy[0] = -0;
    dy[1] = 0;
    const activation = new Float32Array(xCount);
    leakyReluForward(xCount, x, activation);
    const pooled = new Float32Array(yCount);
    const argmax = new Int32Array(yCount);
    maxPool2dForward(g, n, activation, pooled, argmax);

    const poolGradient = new Float32Array(xCount);
    maxPool2dBackward(g, n, dy, argmax, poolGradient);
    const expected = new Float32Array(xCount);
    leakyReluBackward(xCount, x, poolGradient, expected);
    const fromInput = new Float32Array(xCount + TAIL).fill(OUTPUT_FILL);
    leakyReluMaxPool2dBackward(g, n, x, dy, argmax, fromInput);
    const fromOutput = new Float32Array(xCount);
    leakyReluMaxPool2dBackward(g, n, activation, dy, argmax, fromOutput);

    for (let i = 0; i < xCount; i++) {
      assert.ok(Object.is(fromInput[i], expected[i]), `dx element ${i} from the input`);
      assert.ok(Object.is(fromOutput[i], expected[i]), `dx element ${i} from the output`);
    }
    assertTailUntouched(fromInput, xCount, OUTPUT_FILL, "dx");
  });

  test("fused backward rejects overlapping windows", () => {
    const g = maxPool2dGeometry({ channels: 1, inHeight: 4, inWidth: 4, size: 2, stride: 1 });
    assert.equal(canFuseLeakyReluMaxPoolBackward(g), false);
  });
});
