// 2-D max pooling without padding over flat float32 buffers in PyTorch layout.
// Ties go to the first maximum of a window in row-major scan order, as in PyTorch's CPU kernel,
// so every code path below scans in that order and replaces the maximum only on a strict `>`.

/** Shape of one max-pooling layer, computed once by `maxPool2dGeometry`. */
export interface MaxPool2dGeometry {
  channels: number;
  inHeight: number;
  inWidth: number;
  outHeight: number;
  outWidth: number;
  size: number;
  stride: number;
}

/**
 * Computes the output size of a square max-pooling window without padding and checks the spec.
 * Throws an Error when a size is not a positive integer or when the output would be empty.
 */
export function maxPool2dGeometry(spec: {
  channels: number;
  inHeight: number;
  inWidth: number;
  size: number;
  stride: number;
}): MaxPool2dGeometry {
  const { channels, inHeight, inWidth, size, stride } = spec;
  const sizes: [string, number][] = [
    ["channels", channels],
    ["inHeight", inHeight],
    ["inWidth", inWidth],
    ["size", size],
    ["stride", stride],
  ];
  for (const [name, value] of sizes) {
    if (!Number.isInteger(value) || value < 1) {
      throw new Error(`maxpool2d: ${name} must be an integer >= 1, got ${value}`);
    }
  }

  const outHeight = Math.floor((inHeight - size) / stride) + 1;
  const outWidth = Math.floor((inWidth - size) / stride) + 1;
  if (outHeight < 1 || outWidth < 1) {
    throw new Error(
      `maxpool2d: empty output (${outHeight}x${outWidth}) for a ${inHeight}x${inWidth} input ` +
        `with window ${size}. Use a window no larger than the input.`,
    );
  }

  return { channels, inHeight, inWidth, outHeight, outWidth, size, stride };
}

/**
 * Computes y = the maximum of each window and records where it came from.
 * x [n, channels, inHeight, inWidth], y [n, channels, outHeight, outWidth], argmax like y,
 * holding for each output the flat index into x of the window's first maximum.
 * NOTE: a NaN never wins a comparison here, so NaN inputs are not propagated the way PyTorch
 * propagates them.
 */
export function maxPool2dForward(
  g: MaxPool2dGeometry,
  n: number,
  x: Float32Array,
  y: Float32Array,
  argmax: Int32Array,
): void {
  const { channels, inHeight, inWidth, outHeight, outWidth, size, stride } = g;
  const planeCount = n * channels;
  const xPlaneSize = inHeight * inWidth;
  const yPlaneSize = outHeight * outWidth;
  const xRowStepPerOutputRow = stride * inWidth;

  for (let plane = 0; plane < planeCount; plane++) {
    let xWindowRowStart = plane * xPlaneSize;
    let yIndex = plane * yPlaneSize;
    for (let oh = 0; oh < outHeight; oh++) {
      let xWindow = xWindowRowStart;
      for (let ow = 0; ow < outWidth; ow++) {
        let maximum = x[xWindow];
        let maximumIndex = xWindow;
        if (size === 2) {
          // The generic scan below, unrolled for the common 2x2 window.
          const xLowerLeft = xWindow + inWidth;
          if (x[xWindow + 1] > maximum) {
            maximum = x[xWindow + 1];
            maximumIndex = xWindow + 1;
          }
          if (x[xLowerLeft] > maximum) {
            maximum = x[xLowerLeft];
            maximumIndex = xLowerLeft;
          }
          if (x[xLowerLeft + 1] > maximum) {
            maximum = x[xLowerLeft + 1];
            maximumIndex = xLowerLeft + 1;
          }
        } else {
          for (let windowRow = 0; windowRow < size; windowRow++) {
            const xRow = xWindow + windowRow * inWidth;
            const xRowEnd = xRow + size;
            for (let xIndex = xRow; xIndex < xRowEnd; xIndex++) {
              if (x[xIndex] > maximum) {
                maximum = x[xIndex];
                maximumIndex = xIndex;
              }
            }
          }
        }
        y[yIndex] = maximum;
        argmax[yIndex] = maximumIndex;
        yIndex++;
        xWindow += stride;
      }
      xWindowRowStart += xRowStepPerOutputRow;
    }
  }
}

/**
 * Computes dx, the gradient of the pooling input, overwriting dx. Each window's gradient goes to
 * its recorded maximum, and overlapping windows (stride < size) add up.
 * dy [n, channels, outHeight, outWidth], argmax like dy (from maxPool2dForward),
 * dx [n, channels, inHeight, inWidth].
 */
export function maxPool2dBackward(
  g: MaxPool2dGeometry,
  n: number,
  dy: Float32Array,
  argmax: Int32Array,
  dx: Float32Array,
): void {
  const { channels, inHeight, inWidth, outHeight, outWidth } = g;
  const dxCount = n * channels * inHeight * inWidth;
  const dyCount = n * channels * outHeight * outWidth;

  dx.fill(0, 0, dxCount);
  for (let i = 0; i < dyCount; i++) {
    dx[argmax[i]] += dy[i];
  }
}
