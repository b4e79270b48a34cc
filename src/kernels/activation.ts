// Leaky ReLU, elementwise over flat float32 buffers.

/** Slope of leaky ReLU for negative inputs (PyTorch's default negative_slope). */
export const LEAKY_RELU_SLOPE = 0.01;

/**
 * Computes y = x for x > 0, else LEAKY_RELU_SLOPE * x.
 * x [count], y [count]. y may be the same array as x.
 */
export function leakyReluForward(count: number, x: Float32Array, y: Float32Array): void {
  for (let i = 0; i < count; i++) {
    const value = x[i];
    y[i] = value > 0 ? value : LEAKY_RELU_SLOPE * value;
  }
}

/**
 * Computes dx, the gradient of the activation input, overwriting dx.
 * x [count] (the forward input, not its output), dy [count], dx [count].
 * dx may be the same array as dy. At x = 0 the slope LEAKY_RELU_SLOPE is used, as PyTorch does.
 */
export function leakyReluBackward(
  count: number,
  x: Float32Array,
  dy: Float32Array,
  dx: Float32Array,
): void {
  // forward: y = x > 0 ? x : slope * x, so dx = x > 0 ? dy : slope * dy
  for (let i = 0; i < count; i++) {
    const gradient = dy[i];
    dx[i] = x[i] > 0 ? gradient : LEAKY_RELU_SLOPE * gradient;
  }
}
