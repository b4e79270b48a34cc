// 2-D convolution over flat float32 buffers in PyTorch layout. Like PyTorch's conv2d it is a
// cross-correlation (the kernel is not flipped), with zero padding and channel groups.

import { leakyReluForward, leakyReluOfSum } from "./activation.js";
import { clearedPaddedPlanes, copyIntoPaddedPlanes, float64Scratch } from "./conv2d-scratch.js";
import { useWinograd, winogradForward } from "./winograd.js";

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

// Scratch of the im2col path (see conv2d-scratch.ts for the rules).
// im2col matrix of one group of one image: [inChannelsPerGroup · kernelHeight · kernelWidth,
// outHeight · outWidth], row k = (input channel in group, tap row, tap column).
let columnMatrix = new Float64Array(0);
// Weights of each group transposed to [k, output channel in group], as the tiled multiply reads
// them: groups · columnRows · outChannelsPerGroup values.
let packedWeights = new Float64Array(0);

/**
 * Computes y = conv2d(x, w) + b for `n` images.
 * x [n, inChannels, inHeight, inWidth], w [outChannels, inChannels / groups, kernelHeight,
 * kernelWidth], b [outChannels] or null for no bias, y [n, outChannels, outHeight, outWidth].
 * Output channel oc reads the input channels of its group, group = floor(oc / (outChannels / groups)).
 * With `leakyRelu` true, y receives leakyReluForward of that output instead, bit for bit.
 * The geometry picks one of four paths. Depthwise 3 × 3 (the blur) runs a direct loop, and
 * Winograd F(2 × 2, 3 × 3) runs where useWinograd returns true (conv2). Other 3 × 3 stride-1
 * convolutions (conv1) run a direct tiled loop, and the rest im2col with a tiled multiply.
 */
export function conv2dForward(
  g: Conv2dGeometry,
  n: number,
  x: Float32Array,
  w: Float32Array,
  b: Float32Array | null,
  y: Float32Array,
  leakyRelu = false,
): void {
  const { inChannels, outChannels, outHeight, outWidth } = g;
  const { kernelHeight, kernelWidth, groups } = g;
  const inChannelsPerGroup = inChannels / groups;
  const outChannelsPerGroup = outChannels / groups;
  const columnRows = inChannelsPerGroup * kernelHeight * kernelWidth;
  const outPlaneSize = outHeight * outWidth;

  const planes = clearedPaddedPlanes(g);
  if (
    inChannelsPerGroup === 1 &&
    outChannelsPerGroup === 1 &&
    kernelHeight === 3 &&
    kernelWidth === 3
  ) {
    // A depthwise 3 × 3 convolution (the blur) has too few multiply-adds per input for im2col
    // to pay off, so it reads the padded planes directly. conv-blur-net's first blur took about
    // 150 microseconds per image through im2col and 33 this way (`node dist/bench/kernels.js
    // --net conv-blur-net`, blur rows, machine shared with other jobs).
    for (let image = 0; image < n; image++) {
      copyIntoPaddedPlanes(g, x, image, planes);
      depthwiseForward(g, planes, w, b, y, image);
    }
    if (leakyRelu) leakyReluForward(n * outChannels * outPlaneSize, y, y);
    return;
  }
  if (useWinograd(g)) {
    winogradForward(g, planes, n, x, w, b, y, leakyRelu);
    return;
  }
  if (kernelHeight === 3 && kernelWidth === 3 && g.stride === 1) {
    for (let image = 0; image < n; image++) {
      copyIntoPaddedPlanes(g, x, image, planes);
      directForward3x3(g, planes, w, b, y, image, leakyRelu);
    }
    return;
  }
  columnMatrix = float64Scratch(columnMatrix, columnRows * outPlaneSize);
  packedWeights = float64Scratch(packedWeights, groups * columnRows * outChannelsPerGroup);

  // packedWeights[(group · columnRows + k) · outChannelsPerGroup + ocInGroup] = w[oc, k].
  for (let oc = 0; oc < outChannels; oc++) {
    const group = Math.floor(oc / outChannelsPerGroup);
    const ocInGroup = oc - group * outChannelsPerGroup;
    const packedStart = group * columnRows * outChannelsPerGroup + ocInGroup;
    for (let k = 0; k < columnRows; k++) {
      packedWeights[packedStart + k * outChannelsPerGroup] = w[oc * columnRows + k];
    }
  }

  // Per image and group: unfold the padded input into columnMatrix (im2col), then multiply the
  // group's weights [outChannelsPerGroup, columnRows] by it.
  for (let image = 0; image < n; image++) {
    copyIntoPaddedPlanes(g, x, image, planes);
    for (let group = 0; group < groups; group++) {
      fillColumnMatrix(g, planes, group * inChannelsPerGroup);
      multiplyGroup(
        outChannelsPerGroup,
        columnRows,
        outPlaneSize,
        group * columnRows * outChannelsPerGroup,
        b,
        group * outChannelsPerGroup,
        y,
        (image * outChannels + group * outChannelsPerGroup) * outPlaneSize,
      );
    }
  }
  if (leakyRelu) leakyReluForward(n * outChannels * outPlaneSize, y, y);
}

// Computes image `image` of y for a depthwise 3 × 3 convolution (one input and one output
// channel per group) from the padded input in paddedPlanes.
function depthwiseForward(
  g: Conv2dGeometry,
  planes: Float64Array,
  w: Float32Array,
  b: Float32Array | null,
  y: Float32Array,
  image: number,
): void {
  const { inHeight, inWidth, outChannels, outHeight, outWidth, stride, pad } = g;
  const paddedWidth = inWidth + 2 * pad;
  const paddedPlaneSize = (inHeight + 2 * pad) * paddedWidth;
  const rowStep = stride * paddedWidth;
  const row1 = paddedWidth;
  const row2 = 2 * paddedWidth;
  let yIndex = image * outChannels * outHeight * outWidth;

  for (let channel = 0; channel < outChannels; channel++) {
    const wStart = channel * 9;
    const w0 = w[wStart],
      w1 = w[wStart + 1],
      w2 = w[wStart + 2];
    const w3 = w[wStart + 3],
      w4 = w[wStart + 4],
      w5 = w[wStart + 5];
    const w6 = w[wStart + 6],
      w7 = w[wStart + 7],
      w8 = w[wStart + 8];
    const bias = b === null ? 0 : b[channel];
    let windowRow = channel * paddedPlaneSize;
    for (let oh = 0; oh < outHeight; oh++) {
      let top = windowRow;
      for (let ow = 0; ow < outWidth; ow++) {
        y[yIndex++] =
          bias +
          w0 * planes[top] +
          w1 * planes[top + 1] +
          w2 * planes[top + 2] +
          w3 * planes[top + row1] +
          w4 * planes[top + row1 + 1] +
          w5 * planes[top + row1 + 2] +
          w6 * planes[top + row2] +
          w7 * planes[top + row2 + 1] +
          w8 * planes[top + row2 + 2];
        top += stride;
      }
      windowRow += rowStep;
    }
  }
}

// Computes image `image` of y for a 3 × 3 stride-1 convolution straight from the padded input,
// 2 output channels by 4 neighboring outputs of one row at a time. Per input channel and tap row,
// 6 inputs and 6 weights feed 24 multiply-adds, and no column matrix is filled first. For conv1
// (1 → 16 channels, 28 × 28) this took 59 instead of 73 microseconds per image through im2col
// (best of 30 calls on 50 images, AMD EPYC, Node 20).
function directForward3x3(
  g: Conv2dGeometry,
  planes: Float64Array,
  w: Float32Array,
  b: Float32Array | null,
  y: Float32Array,
  image: number,
  leakyRelu: boolean,
): void {
  const { inChannels, inHeight, inWidth, outChannels, outHeight, outWidth, pad, groups } = g;
  const inChannelsPerGroup = inChannels / groups;
  const outChannelsPerGroup = outChannels / groups;
  const paddedWidth = inWidth + 2 * pad;
  const paddedPlaneSize = (inHeight + 2 * pad) * paddedWidth;
  const filterStride = inChannelsPerGroup * 9;
  const outPlaneSize = outHeight * outWidth;
  const tiledWidth = outWidth - (outWidth % 4);

  for (let group = 0; group < groups; group++) {
    const firstPlane = group * inChannelsPerGroup * paddedPlaneSize;
    for (let ocInGroup = 0; ocInGroup < outChannelsPerGroup; ocInGroup += 2) {
      // A last channel without a partner is computed twice and stored once.
      const oc0 = group * outChannelsPerGroup + ocInGroup;
      const hasPartner = ocInGroup + 1 < outChannelsPerGroup;
      const oc1 = hasPartner ? oc0 + 1 : oc0;
      const bias0 = b === null ? 0 : b[oc0];
      const bias1 = b === null ? 0 : b[oc1];
      const y0 = (image * outChannels + oc0) * outPlaneSize;
      const y1 = (image * outChannels + oc1) * outPlaneSize;

      for (let oh = 0; oh < outHeight; oh++) {
        const yRow0 = y0 + oh * outWidth;
        const yRow1 = y1 + oh * outWidth;
        for (let ow = 0; ow < tiledWidth; ow += 4) {
          let s00 = bias0,
            s01 = bias0,
            s02 = bias0,
            s03 = bias0;
          let s10 = bias1,
            s11 = bias1,
            s12 = bias1,
            s13 = bias1;
          let top = firstPlane + oh * paddedWidth + ow;
          let w0 = oc0 * filterStride;
          let w1 = oc1 * filterStride;
          // Input channels of the group, then tap rows: 3 rows per channel.
          const rowCount = inChannelsPerGroup * 3;
          for (let tapRow = 0; tapRow < rowCount; tapRow++) {
            const x0 = planes[top];
            const x1 = planes[top + 1];
            const x2 = planes[top + 2];
            const x3 = planes[top + 3];
            const x4 = planes[top + 4];
            const x5 = planes[top + 5];
            const a0 = w[w0],
              a1 = w[w0 + 1],
              a2 = w[w0 + 2];
            const c0 = w[w1],
              c1 = w[w1 + 1],
              c2 = w[w1 + 2];
            s00 += a0 * x0 + a1 * x1 + a2 * x2;
            s01 += a0 * x1 + a1 * x2 + a2 * x3;
            s02 += a0 * x2 + a1 * x3 + a2 * x4;
            s03 += a0 * x3 + a1 * x4 + a2 * x5;
            s10 += c0 * x0 + c1 * x1 + c2 * x2;
            s11 += c0 * x1 + c1 * x2 + c2 * x3;
            s12 += c0 * x2 + c1 * x3 + c2 * x4;
            s13 += c0 * x3 + c1 * x4 + c2 * x5;
            w0 += 3;
            w1 += 3;
            // The next tap row, or after the third the first row of the next channel's plane.
            top += tapRow % 3 === 2 ? paddedPlaneSize - 2 * paddedWidth : paddedWidth;
          }
          if (leakyRelu) {
            s00 = leakyReluOfSum(s00);
            s01 = leakyReluOfSum(s01);
            s02 = leakyReluOfSum(s02);
            s03 = leakyReluOfSum(s03);
            s10 = leakyReluOfSum(s10);
            s11 = leakyReluOfSum(s11);
            s12 = leakyReluOfSum(s12);
            s13 = leakyReluOfSum(s13);
          }
          y[yRow1 + ow] = s10;
          y[yRow1 + ow + 1] = s11;
          y[yRow1 + ow + 2] = s12;
          y[yRow1 + ow + 3] = s13;
          y[yRow0 + ow] = s00;
          y[yRow0 + ow + 1] = s01;
          y[yRow0 + ow + 2] = s02;
          y[yRow0 + ow + 3] = s03;
        }

        // Outputs left over when outWidth is not a multiple of 4, one at a time.
        for (let ow = tiledWidth; ow < outWidth; ow++) {
          let s0 = bias0;
          let s1 = bias1;
          for (let icInGroup = 0; icInGroup < inChannelsPerGroup; icInGroup++) {
            const plane = firstPlane + icInGroup * paddedPlaneSize;
            for (let tap = 0; tap < 9; tap++) {
              const input =
                planes[plane + (oh + Math.floor(tap / 3)) * paddedWidth + ow + (tap % 3)];
              s0 += w[oc0 * filterStride + icInGroup * 9 + tap] * input;
              s1 += w[oc1 * filterStride + icInGroup * 9 + tap] * input;
            }
          }
          if (leakyRelu) {
            s0 = leakyReluOfSum(s0);
            s1 = leakyReluOfSum(s1);
          }
          y[yRow1 + ow] = s1;
          y[yRow0 + ow] = s0;
        }
      }
    }
  }
}

// Fills columnMatrix[k, p] with the padded input that output p reads through row k, for the
// inChannelsPerGroup channels starting at `firstChannel`.
function fillColumnMatrix(g: Conv2dGeometry, planes: Float64Array, firstChannel: number): void {
  const { inChannels, inHeight, inWidth, outHeight, outWidth } = g;
  const { kernelHeight, kernelWidth, stride, pad, groups } = g;
  const paddedWidth = inWidth + 2 * pad;
  const paddedPlaneSize = (inHeight + 2 * pad) * paddedWidth;
  const inChannelsPerGroup = inChannels / groups;
  const columns = columnMatrix;
  const rowStep = stride * paddedWidth;

  let columnIndex = 0;
  for (let icInGroup = 0; icInGroup < inChannelsPerGroup; icInGroup++) {
    const plane = (firstChannel + icInGroup) * paddedPlaneSize;
    for (let tapRow = 0; tapRow < kernelHeight; tapRow++) {
      for (let tapColumn = 0; tapColumn < kernelWidth; tapColumn++) {
        let paddedRow = plane + tapRow * paddedWidth + tapColumn;
        for (let oh = 0; oh < outHeight; oh++) {
          let paddedIndex = paddedRow;
          const columnRowEnd = columnIndex + outWidth;
          while (columnIndex < columnRowEnd) {
            columns[columnIndex++] = planes[paddedIndex];
            paddedIndex += stride;
          }
          paddedRow += rowStep;
        }
      }
    }
  }
}

// Computes one group's block of y for one image: y[ocInGroup, p] = bias + sum over k of
// packedWeights[k, ocInGroup] · columnMatrix[k, p], in register tiles of 2 output channels by
// 4 output positions, chosen as in dense.ts's multiplyStrided (4.8 GFLOP/s against 4.4 for 4 × 4
// tiles).
// outRows = outChannelsPerGroup, depth = columnRows, outColumns = outHeight · outWidth.
function multiplyGroup(
  outRows: number,
  depth: number,
  outColumns: number,
  weightStart: number,
  b: Float32Array | null,
  biasStart: number,
  y: Float32Array,
  yStart: number,
): void {
  const weights = packedWeights;
  const columns = columnMatrix;
  const tiledRows = outRows - (outRows % 2);
  const tiledColumns = outColumns - (outColumns % 4);

  // Column blocks outside, row pairs inside, so that a block of 4 columns stays in the L1 cache
  // while every row pair reads it. For conv2 this measured the same as rows outside (246 and 244
  // microseconds per image).
  for (let column = 0; column < tiledColumns; column += 4) {
    for (let row = 0; row < tiledRows; row += 2) {
      const bias0 = b === null ? 0 : b[biasStart + row];
      const bias1 = b === null ? 0 : b[biasStart + row + 1];
      let s00 = bias0,
        s01 = bias0,
        s02 = bias0,
        s03 = bias0;
      let s10 = bias1,
        s11 = bias1,
        s12 = bias1,
        s13 = bias1;
      let weightIndex = weightStart + row;
      let columnIndex = column;
      for (let k = 0; k < depth; k++) {
        const w0 = weights[weightIndex];
        const w1 = weights[weightIndex + 1];
        const c0 = columns[columnIndex];
        const c1 = columns[columnIndex + 1];
        const c2 = columns[columnIndex + 2];
        const c3 = columns[columnIndex + 3];
        s00 += w0 * c0;
        s01 += w0 * c1;
        s02 += w0 * c2;
        s03 += w0 * c3;
        s10 += w1 * c0;
        s11 += w1 * c1;
        s12 += w1 * c2;
        s13 += w1 * c3;
        weightIndex += outRows;
        columnIndex += outColumns;
      }
      const y0 = yStart + row * outColumns + column;
      const y1 = y0 + outColumns;
      y[y0] = s00;
      y[y0 + 1] = s01;
      y[y0 + 2] = s02;
      y[y0 + 3] = s03;
      y[y1] = s10;
      y[y1 + 1] = s11;
      y[y1 + 2] = s12;
      y[y1 + 3] = s13;
    }
  }

  for (let row = 0; row < tiledRows; row += 2) {
    const bias0 = b === null ? 0 : b[biasStart + row];
    const bias1 = b === null ? 0 : b[biasStart + row + 1];
    const yRow0 = yStart + row * outColumns;
    const yRow1 = yRow0 + outColumns;
    for (let column = tiledColumns; column < outColumns; column++) {
      let s0 = bias0,
        s1 = bias1;
      let weightIndex = weightStart + row;
      let columnIndex = column;
      for (let k = 0; k < depth; k++) {
        const c = columns[columnIndex];
        s0 += weights[weightIndex] * c;
        s1 += weights[weightIndex + 1] * c;
        weightIndex += outRows;
        columnIndex += outColumns;
      }
      y[yRow0 + column] = s0;
      y[yRow1 + column] = s1;
    }
  }

  // The row left over when outRows is odd.
  for (let row = tiledRows; row < outRows; row++) {
    const bias = b === null ? 0 : b[biasStart + row];
    const yRow = yStart + row * outColumns;
    for (let column = 0; column < tiledColumns; column += 4) {
      let s0 = bias,
        s1 = bias,
        s2 = bias,
        s3 = bias;
      let weightIndex = weightStart + row;
      let columnIndex = column;
      for (let k = 0; k < depth; k++) {
        const weight = weights[weightIndex];
        s0 += weight * columns[columnIndex];
        s1 += weight * columns[columnIndex + 1];
        s2 += weight * columns[columnIndex + 2];
        s3 += weight * columns[columnIndex + 3];
        weightIndex += outRows;
        columnIndex += outColumns;
      }
      y[yRow + column] = s0;
      y[yRow + column + 1] = s1;
      y[yRow + column + 2] = s2;
      y[yRow + column + 3] = s3;
    }
    for (let column = tiledColumns; column < outColumns; column++) {
      let sum = bias;
      let weightIndex = weightStart + row;
      let columnIndex = column;
      for (let k = 0; k < depth; k++) {
        sum += weights[weightIndex] * columns[columnIndex];
        weightIndex += outRows;
        columnIndex += outColumns;
      }
      y[yRow + column] = sum;
    }
  }
}
