// The backward passes of leaky ReLU followed by 2 × 2 max pooling with stride >= 2, fused into
// one pass over the pooling windows' maxima, so that the full-size gradient of the activation
// output is never written and read back. The result is bit-identical to maxPool2dBackward
// followed by leakyReluBackward.
//
// For conv-net's two pooling layers this took the backward pair from 39 to 15 and from 19 to 7
// microseconds per image (AMD EPYC, Node 20, best of 41 sweeps on 50 images, machine shared
// with other jobs; `node dist/bench/kernels.js --net conv-net`, max-pool and leaky-relu
// backward rows). The forward pair fused the same way measured no faster (43 against 42),
// because each window then computes the activation of its 4 inputs and of the maxima, and
// stride 1 (conv-blur-net) was slower fused in both directions, so both stay unfused.
import { LEAKY_RELU_SLOPE } from "./activation.js";
import type { MaxPool2dGeometry } from "./maxpool2d.js";

const SLOPE_STEP = 1 - LEAKY_RELU_SLOPE;

/** Returns whether leakyReluMaxPool2dBackward handles this pooling geometry. */
export function canFuseLeakyReluMaxPoolBackward(g: MaxPool2dGeometry): boolean {
  // Windows that do not overlap, so each input receives the gradient of at most one window.
  return g.size === 2 && g.stride >= 2;
}

/**
 * Computes dx, the gradient of the leaky ReLU's input, overwriting dx, as maxPool2dBackward
 * followed by leakyReluBackward would; canFuseLeakyReluMaxPoolBackward(g) must be true.
 * x [n, channels, inHeight, inWidth] (the leaky ReLU's input or output, which have the same
 * sign), dy [n, channels, outHeight, outWidth] (the gradient of the pooling output), argmax like
 * dy (from maxPool2dForward), dx like x.
 */
export function leakyReluMaxPool2dBackward(
  g: MaxPool2dGeometry,
  n: number,
  x: Float32Array,
  dy: Float32Array,
  argmax: Int32Array,
  dx: Float32Array,
): void {
  const { channels, inHeight, inWidth, outHeight, outWidth } = g;
  const dxCount = n * channels * inHeight * inWidth;
  const dyCount = n * channels * outHeight * outWidth;

  // Unfused, the pooling gradient of a window's maximum is 0 + dy (a float32 sum, which turns
  // -0 into 0), and the activation gradient multiplies it by the slope at x. Inputs that are no
  // window's maximum get 0 · slope = 0.
  dx.fill(0, 0, dxCount);
  for (let i = 0; i < dyCount; i++) {
    const index = argmax[i];
    const value = x[index];
    dx[index] = (0 + dy[i]) * (LEAKY_RELU_SLOPE + SLOPE_STEP * +(value > 0));
  }
}
