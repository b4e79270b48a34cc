// Inverted dropout, elementwise over flat float32 buffers. Kept values are scaled by
// 1 / (1 - rate) during training, so evaluation needs no rescaling. The caller draws the mask
// (fillDropoutMask in random.ts, keyed by seed, epoch and image) so that runs are reproducible.

function keepScale(rate: number): number {
  if (!(rate >= 0 && rate < 1)) {
    throw new RangeError(`dropout: rate must be in [0, 1), got ${rate}`);
  }
  return 1 / (1 - rate);
}

/**
 * Computes y = x * mask / (1 - rate).
 * x [count], mask [count] with 1 = keep and 0 = drop (read, not written), y [count].
 * y may be the same array as x. Throws a RangeError unless 0 <= rate < 1.
 */
export function dropoutForward(
  count: number,
  rate: number,
  x: Float32Array,
  mask: Uint8Array,
  y: Float32Array,
): void {
  const scale = keepScale(rate);
  for (let i = 0; i < count; i++) {
    y[i] = mask[i] !== 0 ? x[i] * scale : 0;
  }
}

/**
 * Computes dx = dy * mask / (1 - rate), overwriting dx.
 * dy [count], mask [count] (the one the forward pass used), dx [count].
 * dx may be the same array as dy. Throws a RangeError unless 0 <= rate < 1.
 */
export function dropoutBackward(
  count: number,
  rate: number,
  dy: Float32Array,
  mask: Uint8Array,
  dx: Float32Array,
): void {
  const scale = keepScale(rate);
  for (let i = 0; i < count; i++) {
    dx[i] = mask[i] !== 0 ? dy[i] * scale : 0;
  }
}
