// 2-D convolution over flat float32 buffers in PyTorch layout. Like PyTorch's conv2d it is a
// cross-correlation (the kernel is not flipped), with zero padding and channel groups.

/** Shape of one convolution, computed once by `conv2dGeometry` and read by forward and backward. */
export interface Conv2dGeometry {
  inChannels: number;
  inHeight: number;
  inWidth: number;
  outChannels: number;
  outHeight: number;
  outWidth: number;
  kernelHeight: number;
  kernelWidth: number;
  stride: number;
  pad: number;
  groups: number;
}

function requireInteger(name: string, value: number, minimum: number): void {
  if (!Number.isInteger(value) || value < minimum) {
    throw new Error(`conv2d: ${name} must be an integer >= ${minimum}, got ${value}`);
  }
}

/**
 * Computes the output size of a square-kernel convolution and checks the spec.
 * Throws an Error when a size is not a positive integer (pad may be 0), when a channel count is
 * not divisible by `groups`, or when the output would be empty.
 */
export function conv2dGeometry(spec: {
  inChannels: number;
  inHeight: number;
  inWidth: number;
  outChannels: number;
  kernelSize: number;
  stride: number;
  pad: number;
  groups: number;
}): Conv2dGeometry {
  const { inChannels, inHeight, inWidth, outChannels, kernelSize, stride, pad, groups } = spec;
  requireInteger("inChannels", inChannels, 1);
  requireInteger("inHeight", inHeight, 1);
  requireInteger("inWidth", inWidth, 1);
  requireInteger("outChannels", outChannels, 1);
  requireInteger("kernelSize", kernelSize, 1);
  requireInteger("stride", stride, 1);
  requireInteger("pad", pad, 0);
  requireInteger("groups", groups, 1);
  if (inChannels % groups !== 0 || outChannels % groups !== 0) {
    throw new Error(
      `conv2d: inChannels ${inChannels} and outChannels ${outChannels} must both be divisible ` +
        `by groups ${groups}`,
    );
  }

  const outHeight = Math.floor((inHeight + 2 * pad - kernelSize) / stride) + 1;
  const outWidth = Math.floor((inWidth + 2 * pad - kernelSize) / stride) + 1;
  if (outHeight < 1 || outWidth < 1) {
    throw new Error(
      `conv2d: empty output (${outHeight}x${outWidth}) for a ${inHeight}x${inWidth} input ` +
        `with kernel ${kernelSize}, stride ${stride} and pad ${pad}. Use a larger input or pad.`,
    );
  }

  return {
    inChannels,
    inHeight,
    inWidth,
    outChannels,
    outHeight,
    outWidth,
    kernelHeight: kernelSize,
    kernelWidth: kernelSize,
    stride,
    pad,
    groups,
  };
}

// A kernel tap at offset `tap` (0 .. kernelSize - 1) reads input position
// `output * stride - pad + tap`. These two helpers return the range [first, end) of output
// positions for which that input position lies inside [0, inSize), so that the inner loops
// never test borders.
function firstValidOutput(tap: number, stride: number, pad: number): number {
  return Math.max(0, Math.ceil((pad - tap) / stride));
}

function endValidOutput(
  tap: number,
  stride: number,
  pad: number,
  inSize: number,
  outSize: number,
): number {
  return Math.min(outSize, Math.floor((inSize - 1 + pad - tap) / stride) + 1);
}

// Returns the offset within an input plane of the element that output (oh, ow) reads through
// tap (tapRow, tapColumn).
function inputPlaneOffset(
  g: Conv2dGeometry,
  oh: number,
  ow: number,
  tapRow: number,
  tapColumn: number,
): number {
  return (oh * g.stride - g.pad + tapRow) * g.inWidth + ow * g.stride - g.pad + tapColumn;
}

// Float64 scratch for one input or output plane, so that each sum over channels and taps is
// rounded to float32 once. It grows on first use and is reused afterwards. Calls cannot overlap
// because the kernels are synchronous and every worker thread has its own module instance.
let planeAccumulator = new Float64Array(0);

function planeAccumulatorOfSize(size: number): Float64Array {
  if (planeAccumulator.length < size) {
    planeAccumulator = new Float64Array(size);
  }
  return planeAccumulator;
}

/**
 * Computes y = conv2d(x, w) + b for `n` images.
 * x [n, inChannels, inHeight, inWidth], w [outChannels, inChannels / groups, kernelHeight,
 * kernelWidth], b [outChannels] or null for no bias, y [n, outChannels, outHeight, outWidth].
 * Output channel oc reads the input channels of its group, group = floor(oc / (outChannels / groups)).
 */
export function conv2dForward(
  g: Conv2dGeometry,
  n: number,
  x: Float32Array,
  w: Float32Array,
  b: Float32Array | null,
  y: Float32Array,
): void {
  const { inChannels, inHeight, inWidth, outChannels, outHeight, outWidth } = g;
  const { kernelHeight, kernelWidth, stride, pad, groups } = g;
  const inChannelsPerGroup = inChannels / groups;
  const outChannelsPerGroup = outChannels / groups;
  const xPlaneSize = inHeight * inWidth;
  const xImageStride = inChannels * xPlaneSize;
  const yPlaneSize = outHeight * outWidth;
  const yImageStride = outChannels * yPlaneSize;
  const wTapCount = kernelHeight * kernelWidth;
  const wFilterStride = inChannelsPerGroup * wTapCount;
  const xRowStepPerOutputRow = stride * inWidth;
  const sums = planeAccumulatorOfSize(yPlaneSize);

  for (let image = 0; image < n; image++) {
    const xImage = image * xImageStride;
    for (let oc = 0; oc < outChannels; oc++) {
      const group = Math.floor(oc / outChannelsPerGroup);
      const xGroup = xImage + group * inChannelsPerGroup * xPlaneSize;
      sums.fill(b === null ? 0 : b[oc], 0, yPlaneSize);

      for (let icInGroup = 0; icInGroup < inChannelsPerGroup; icInGroup++) {
        const xPlane = xGroup + icInGroup * xPlaneSize;
        const wFilter = oc * wFilterStride + icInGroup * wTapCount;
        for (let tapRow = 0; tapRow < kernelHeight; tapRow++) {
          const ohFirst = firstValidOutput(tapRow, stride, pad);
          const ohEnd = endValidOutput(tapRow, stride, pad, inHeight, outHeight);
          for (let tapColumn = 0; tapColumn < kernelWidth; tapColumn++) {
            const owFirst = firstValidOutput(tapColumn, stride, pad);
            const owEnd = endValidOutput(tapColumn, stride, pad, inWidth, outWidth);
            const weight = w[wFilter + tapRow * kernelWidth + tapColumn];
            // x index that output (ohFirst, owFirst) reads, then stepped per row and column.
            let xRowStart = xPlane + inputPlaneOffset(g, ohFirst, owFirst, tapRow, tapColumn);
            for (let oh = ohFirst; oh < ohEnd; oh++) {
              const sumsRowEnd = oh * outWidth + owEnd;
              let xIndex = xRowStart;
              for (let sumIndex = oh * outWidth + owFirst; sumIndex < sumsRowEnd; sumIndex++) {
                sums[sumIndex] += weight * x[xIndex];
                xIndex += stride;
              }
              xRowStart += xRowStepPerOutputRow;
            }
          }
        }
      }

      const yPlane = image * yImageStride + oc * yPlaneSize;
      for (let i = 0; i < yPlaneSize; i++) {
        y[yPlane + i] = sums[i];
      }
    }
  }
}

/**
 * Computes the gradients of conv2dForward from the upstream gradient dy, overwriting each
 * output that is not null: dx (input gradient), dw (weight gradient) and db (bias gradient).
 * x [n, inChannels, inHeight, inWidth] (the forward input), w [outChannels, inChannels / groups,
 * kernelHeight, kernelWidth], dy [n, outChannels, outHeight, outWidth], dx like x, dw like w,
 * db [outChannels].
 */
export function conv2dBackward(
  g: Conv2dGeometry,
  n: number,
  x: Float32Array,
  w: Float32Array,
  dy: Float32Array,
  dx: Float32Array | null,
  dw: Float32Array | null,
  db: Float32Array | null,
): void {
  if (dx !== null) {
    conv2dBackwardInput(g, n, w, dy, dx);
  }
  if (dw !== null) {
    conv2dBackwardWeights(g, n, x, dy, dw);
  }
  if (db !== null) {
    conv2dBackwardBias(g, n, dy, db);
  }
}

/**
 * Computes dx, the gradient of the convolution input.
 * w [outChannels, inChannels / groups, kernelHeight, kernelWidth],
 * dy [n, outChannels, outHeight, outWidth], dx [n, inChannels, inHeight, inWidth].
 */
function conv2dBackwardInput(
  g: Conv2dGeometry,
  n: number,
  w: Float32Array,
  dy: Float32Array,
  dx: Float32Array,
): void {
  // forward: y[oc, oh, ow] += w[oc, ic, tapRow, tapColumn] * x[ic, oh*stride - pad + tapRow, ow*stride - pad + tapColumn]
  // so:      dx[ic, oh*stride - pad + tapRow, ow*stride - pad + tapColumn] += w[oc, ic, tapRow, tapColumn] * dy[oc, oh, ow]
  const { inChannels, inHeight, inWidth, outChannels, outHeight, outWidth } = g;
  const { kernelHeight, kernelWidth, stride, pad, groups } = g;
  const inChannelsPerGroup = inChannels / groups;
  const outChannelsPerGroup = outChannels / groups;
  const xPlaneSize = inHeight * inWidth;
  const xImageStride = inChannels * xPlaneSize;
  const yPlaneSize = outHeight * outWidth;
  const yImageStride = outChannels * yPlaneSize;
  const wTapCount = kernelHeight * kernelWidth;
  const wFilterStride = inChannelsPerGroup * wTapCount;
  const xRowStepPerOutputRow = stride * inWidth;
  const sums = planeAccumulatorOfSize(xPlaneSize);

  for (let image = 0; image < n; image++) {
    for (let ic = 0; ic < inChannels; ic++) {
      const group = Math.floor(ic / inChannelsPerGroup);
      const icInGroup = ic - group * inChannelsPerGroup;
      sums.fill(0, 0, xPlaneSize);

      for (let ocInGroup = 0; ocInGroup < outChannelsPerGroup; ocInGroup++) {
        const oc = group * outChannelsPerGroup + ocInGroup;
        const dyPlane = image * yImageStride + oc * yPlaneSize;
        const wFilter = oc * wFilterStride + icInGroup * wTapCount;
        for (let tapRow = 0; tapRow < kernelHeight; tapRow++) {
          const ohFirst = firstValidOutput(tapRow, stride, pad);
          const ohEnd = endValidOutput(tapRow, stride, pad, inHeight, outHeight);
          for (let tapColumn = 0; tapColumn < kernelWidth; tapColumn++) {
            const owFirst = firstValidOutput(tapColumn, stride, pad);
            const owEnd = endValidOutput(tapColumn, stride, pad, inWidth, outWidth);
            const weight = w[wFilter + tapRow * kernelWidth + tapColumn];
            let sumsRowStart = inputPlaneOffset(g, ohFirst, owFirst, tapRow, tapColumn);
            for (let oh = ohFirst; oh < ohEnd; oh++) {
              const dyRowEnd = dyPlane + oh * outWidth + owEnd;
              let sumIndex = sumsRowStart;
              for (let dyIndex = dyPlane + oh * outWidth + owFirst; dyIndex < dyRowEnd; dyIndex++) {
                sums[sumIndex] += weight * dy[dyIndex];
                sumIndex += stride;
              }
              sumsRowStart += xRowStepPerOutputRow;
            }
          }
        }
      }

      const dxPlane = image * xImageStride + ic * xPlaneSize;
      for (let i = 0; i < xPlaneSize; i++) {
        dx[dxPlane + i] = sums[i];
      }
    }
  }
}

/**
 * Computes dw, the gradient of the convolution weights, summed over the n images.
 * x [n, inChannels, inHeight, inWidth], dy [n, outChannels, outHeight, outWidth],
 * dw [outChannels, inChannels / groups, kernelHeight, kernelWidth].
 */
function conv2dBackwardWeights(
  g: Conv2dGeometry,
  n: number,
  x: Float32Array,
  dy: Float32Array,
  dw: Float32Array,
): void {
  // forward: y[oc, oh, ow] += w[oc, ic, tapRow, tapColumn] * x[ic, oh*stride - pad + tapRow, ow*stride - pad + tapColumn]
  // so:      dw[oc, ic, tapRow, tapColumn] = sum over images, oh, ow of dy[oc, oh, ow] * (that x)
  const { inChannels, inHeight, inWidth, outChannels, outHeight, outWidth } = g;
  const { kernelHeight, kernelWidth, stride, pad, groups } = g;
  const inChannelsPerGroup = inChannels / groups;
  const outChannelsPerGroup = outChannels / groups;
  const xPlaneSize = inHeight * inWidth;
  const xImageStride = inChannels * xPlaneSize;
  const yPlaneSize = outHeight * outWidth;
  const yImageStride = outChannels * yPlaneSize;
  const wTapCount = kernelHeight * kernelWidth;
  const wFilterStride = inChannelsPerGroup * wTapCount;
  const xRowStepPerOutputRow = stride * inWidth;

  for (let oc = 0; oc < outChannels; oc++) {
    const group = Math.floor(oc / outChannelsPerGroup);
    for (let icInGroup = 0; icInGroup < inChannelsPerGroup; icInGroup++) {
      const xChannelOffset = (group * inChannelsPerGroup + icInGroup) * xPlaneSize;
      const wFilter = oc * wFilterStride + icInGroup * wTapCount;
      for (let tapRow = 0; tapRow < kernelHeight; tapRow++) {
        const ohFirst = firstValidOutput(tapRow, stride, pad);
        const ohEnd = endValidOutput(tapRow, stride, pad, inHeight, outHeight);
        for (let tapColumn = 0; tapColumn < kernelWidth; tapColumn++) {
          const owFirst = firstValidOutput(tapColumn, stride, pad);
          const owEnd = endValidOutput(tapColumn, stride, pad, inWidth, outWidth);
          const xTapOffset = inputPlaneOffset(g, ohFirst, owFirst, tapRow, tapColumn);
          let sum = 0;
          for (let image = 0; image < n; image++) {
            const dyPlane = image * yImageStride + oc * yPlaneSize;
            let xRowStart = image * xImageStride + xChannelOffset + xTapOffset;
            for (let oh = ohFirst; oh < ohEnd; oh++) {
              const dyRowEnd = dyPlane + oh * outWidth + owEnd;
              let xIndex = xRowStart;
              for (let dyIndex = dyPlane + oh * outWidth + owFirst; dyIndex < dyRowEnd; dyIndex++) {
                sum += dy[dyIndex] * x[xIndex];
                xIndex += stride;
              }
              xRowStart += xRowStepPerOutputRow;
            }
          }
          dw[wFilter + tapRow * kernelWidth + tapColumn] = sum;
        }
      }
    }
  }
}

/**
 * Computes db, the gradient of the bias: the sum of dy over images and positions.
 * dy [n, outChannels, outHeight, outWidth], db [outChannels].
 */
function conv2dBackwardBias(
  g: Conv2dGeometry,
  n: number,
  dy: Float32Array,
  db: Float32Array,
): void {
  const { outChannels, outHeight, outWidth } = g;
  const yPlaneSize = outHeight * outWidth;
  const yImageStride = outChannels * yPlaneSize;

  for (let oc = 0; oc < outChannels; oc++) {
    let sum = 0;
    for (let image = 0; image < n; image++) {
      const dyPlane = image * yImageStride + oc * yPlaneSize;
      const dyPlaneEnd = dyPlane + yPlaneSize;
      for (let dyIndex = dyPlane; dyIndex < dyPlaneEnd; dyIndex++) {
        sum += dy[dyIndex];
      }
    }
    db[oc] = sum;
  }
}
