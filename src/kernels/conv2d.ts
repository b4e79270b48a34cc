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

// Scratch buffers, grown on first use and reused afterwards, so that no call allocates once the
// largest layer has run. Calls cannot overlap because the kernels are synchronous and every
// worker thread has its own module instance. Float64 scratch keeps every sum in double
// precision until its single rounding to float32 on the final store.

// One image's input with `pad` zeros around every plane: [inChannels, paddedHeight, paddedWidth].
let paddedPlanes = new Float64Array(0);
// The input gradient of one image in the same padded layout, before its border is dropped.
let paddedGradientPlanes = new Float64Array(0);
// im2col matrix of one group of one image: [inChannelsPerGroup · kernelHeight · kernelWidth,
// outHeight · outWidth], row k = (input channel in group, tap row, tap column).
let columnMatrix = new Float64Array(0);
// Weights of each group transposed to [k, output channel in group], as the tiled multiply reads
// them: groups · columnRows · outChannelsPerGroup values.
let packedWeights = new Float64Array(0);
// Weight and bias gradient sums over the images of one call, [outChannels, columnRows] and
// [outChannels].
let weightGradientSums = new Float64Array(0);
let biasGradientSums = new Float64Array(0);
// The nonzero entries of dy for one image, per output channel: entry j of channel oc sits at
// oc · outPlaneSize + j and holds the padded-plane offset of the window's top-left input and the
// gradient value. nonzeroCounts[oc] tells how many entries are filled.
let nonzeroOffsets = new Int32Array(0);
let nonzeroValues = new Float64Array(0);
let nonzeroCounts = new Int32Array(0);

function float64Scratch(
  buffer: Float64Array<ArrayBuffer>,
  size: number,
): Float64Array<ArrayBuffer> {
  return buffer.length >= size ? buffer : new Float64Array(size);
}

function int32Scratch(buffer: Int32Array<ArrayBuffer>, size: number): Int32Array<ArrayBuffer> {
  return buffer.length >= size ? buffer : new Int32Array(size);
}

// Copies image `image` of x into the interior of paddedPlanes. The border must already be zero:
// every call clears the buffer once before its first image, and images only write the interior.
function copyIntoPaddedPlanes(g: Conv2dGeometry, x: Float32Array, image: number): void {
  const { inChannels, inHeight, inWidth, pad } = g;
  const paddedWidth = inWidth + 2 * pad;
  const paddedPlaneSize = (inHeight + 2 * pad) * paddedWidth;
  const xPlaneSize = inHeight * inWidth;
  const planes = paddedPlanes;
  let xIndex = image * inChannels * xPlaneSize;
  for (let channel = 0; channel < inChannels; channel++) {
    let paddedRow = channel * paddedPlaneSize + pad * paddedWidth + pad;
    for (let row = 0; row < inHeight; row++) {
      const xRowEnd = xIndex + inWidth;
      let paddedIndex = paddedRow;
      while (xIndex < xRowEnd) {
        planes[paddedIndex++] = x[xIndex++];
      }
      paddedRow += paddedWidth;
    }
  }
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
  // Per image and group: unfold the padded input into columnMatrix (im2col), then multiply the
  // group's weights [outChannelsPerGroup, columnRows] by it in 4 × 4 register tiles.
  const { inChannels, inHeight, inWidth, outChannels, outHeight, outWidth } = g;
  const { kernelHeight, kernelWidth, pad, groups } = g;
  const inChannelsPerGroup = inChannels / groups;
  const outChannelsPerGroup = outChannels / groups;
  const columnRows = inChannelsPerGroup * kernelHeight * kernelWidth;
  const outPlaneSize = outHeight * outWidth;
  const paddedPlaneSize = (inHeight + 2 * pad) * (inWidth + 2 * pad);

  paddedPlanes = float64Scratch(paddedPlanes, inChannels * paddedPlaneSize);
  paddedPlanes.fill(0, 0, inChannels * paddedPlaneSize);
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

  for (let image = 0; image < n; image++) {
    copyIntoPaddedPlanes(g, x, image);
    for (let group = 0; group < groups; group++) {
      fillColumnMatrix(g, group * inChannelsPerGroup);
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
}

// Fills columnMatrix[k, p] with the padded input that output p reads through row k, for the
// inChannelsPerGroup channels starting at `firstChannel`.
function fillColumnMatrix(g: Conv2dGeometry, firstChannel: number): void {
  const { inChannels, inHeight, inWidth, outHeight, outWidth } = g;
  const { kernelHeight, kernelWidth, stride, pad, groups } = g;
  const paddedWidth = inWidth + 2 * pad;
  const paddedPlaneSize = (inHeight + 2 * pad) * paddedWidth;
  const inChannelsPerGroup = inChannels / groups;
  const planes = paddedPlanes;
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
// packedWeights[k, ocInGroup] · columnMatrix[k, p], in 4 × 4 register tiles (4 output channels by
// 4 output positions), so that each pair of 4 loads feeds 16 multiply-adds.
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
  const tiledRows = outRows - (outRows % 4);
  const tiledColumns = outColumns - (outColumns % 4);

  for (let row = 0; row < tiledRows; row += 4) {
    const bias0 = b === null ? 0 : b[biasStart + row];
    const bias1 = b === null ? 0 : b[biasStart + row + 1];
    const bias2 = b === null ? 0 : b[biasStart + row + 2];
    const bias3 = b === null ? 0 : b[biasStart + row + 3];
    const yRow0 = yStart + row * outColumns;
    const yRow1 = yRow0 + outColumns;
    const yRow2 = yRow1 + outColumns;
    const yRow3 = yRow2 + outColumns;

    for (let column = 0; column < tiledColumns; column += 4) {
      let s00 = bias0,
        s01 = bias0,
        s02 = bias0,
        s03 = bias0;
      let s10 = bias1,
        s11 = bias1,
        s12 = bias1,
        s13 = bias1;
      let s20 = bias2,
        s21 = bias2,
        s22 = bias2,
        s23 = bias2;
      let s30 = bias3,
        s31 = bias3,
        s32 = bias3,
        s33 = bias3;
      let weightIndex = weightStart + row;
      let columnIndex = column;
      for (let k = 0; k < depth; k++) {
        const w0 = weights[weightIndex];
        const w1 = weights[weightIndex + 1];
        const w2 = weights[weightIndex + 2];
        const w3 = weights[weightIndex + 3];
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
        s20 += w2 * c0;
        s21 += w2 * c1;
        s22 += w2 * c2;
        s23 += w2 * c3;
        s30 += w3 * c0;
        s31 += w3 * c1;
        s32 += w3 * c2;
        s33 += w3 * c3;
        weightIndex += outRows;
        columnIndex += outColumns;
      }
      y[yRow0 + column] = s00;
      y[yRow0 + column + 1] = s01;
      y[yRow0 + column + 2] = s02;
      y[yRow0 + column + 3] = s03;
      y[yRow1 + column] = s10;
      y[yRow1 + column + 1] = s11;
      y[yRow1 + column + 2] = s12;
      y[yRow1 + column + 3] = s13;
      y[yRow2 + column] = s20;
      y[yRow2 + column + 1] = s21;
      y[yRow2 + column + 2] = s22;
      y[yRow2 + column + 3] = s23;
      y[yRow3 + column] = s30;
      y[yRow3 + column + 1] = s31;
      y[yRow3 + column + 2] = s32;
      y[yRow3 + column + 3] = s33;
    }

    for (let column = tiledColumns; column < outColumns; column++) {
      let s0 = bias0,
        s1 = bias1,
        s2 = bias2,
        s3 = bias3;
      let weightIndex = weightStart + row;
      let columnIndex = column;
      for (let k = 0; k < depth; k++) {
        const c = columns[columnIndex];
        s0 += weights[weightIndex] * c;
        s1 += weights[weightIndex + 1] * c;
        s2 += weights[weightIndex + 2] * c;
        s3 += weights[weightIndex + 3] * c;
        weightIndex += outRows;
        columnIndex += outColumns;
      }
      y[yRow0 + column] = s0;
      y[yRow1 + column] = s1;
      y[yRow2 + column] = s2;
      y[yRow3 + column] = s3;
    }
  }

  // Rows left over when outRows is not a multiple of 4 (a depthwise blur has one row per group).
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

/**
 * Computes the gradients of conv2dForward from the upstream gradient dy, overwriting each
 * output that is not null: dx (input gradient), dw (weight gradient) and db (bias gradient).
 * x [n, inChannels, inHeight, inWidth] (the forward input), w [outChannels, inChannels / groups,
 * kernelHeight, kernelWidth], dy [n, outChannels, outHeight, outWidth], dx like x, dw like w,
 * db [outChannels].
 * Only the nonzero entries of dy are visited. After max pooling most of dy is exactly zero (3 of 4
 * entries behind a 2 × 2 stride-2 pool), and a zero entry adds nothing to dx or dw.
 * NOTE: because zero entries are skipped, an infinite or NaN x or w meeting a zero gradient does
 * not turn into NaN as it would in PyTorch (0 · Inf = NaN there).
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
  if (dx === null && dw === null && db === null) return;
  const { inChannels, inHeight, inWidth, outChannels, outHeight, outWidth } = g;
  const { kernelHeight, kernelWidth, pad, groups } = g;
  const columnRows = (inChannels / groups) * kernelHeight * kernelWidth;
  const paddedPlanesSize = inChannels * (inHeight + 2 * pad) * (inWidth + 2 * pad);
  const outPlaneSize = outHeight * outWidth;

  nonzeroOffsets = int32Scratch(nonzeroOffsets, outChannels * outPlaneSize);
  nonzeroValues = float64Scratch(nonzeroValues, outChannels * outPlaneSize);
  nonzeroCounts = int32Scratch(nonzeroCounts, outChannels);
  biasGradientSums = float64Scratch(biasGradientSums, outChannels);
  biasGradientSums.fill(0, 0, outChannels);
  if (dw !== null) {
    weightGradientSums = float64Scratch(weightGradientSums, outChannels * columnRows);
    weightGradientSums.fill(0, 0, outChannels * columnRows);
    paddedPlanes = float64Scratch(paddedPlanes, paddedPlanesSize);
    paddedPlanes.fill(0, 0, paddedPlanesSize);
  }
  if (dx !== null) {
    paddedGradientPlanes = float64Scratch(paddedGradientPlanes, paddedPlanesSize);
    paddedGradientPlanes.fill(0, 0, paddedPlanesSize);
  }

  for (let image = 0; image < n; image++) {
    collectNonzeroGradients(g, dy, image);
    if (dw !== null) {
      copyIntoPaddedPlanes(g, x, image);
      accumulateWeightGradient(g);
    }
    if (dx !== null) {
      scatterInputGradient(g, w);
      moveInputGradientOut(g, dx, image);
    }
  }

  if (dw !== null) {
    for (let i = 0; i < outChannels * columnRows; i++) dw[i] = weightGradientSums[i];
  }
  if (db !== null) {
    for (let oc = 0; oc < outChannels; oc++) db[oc] = biasGradientSums[oc];
  }
}

// Records the nonzero entries of dy for one image in nonzeroOffsets, nonzeroValues and
// nonzeroCounts, and adds them to biasGradientSums (a zero entry would not change the sum).
function collectNonzeroGradients(g: Conv2dGeometry, dy: Float32Array, image: number): void {
  const { inWidth, outChannels, outHeight, outWidth, stride, pad } = g;
  const paddedWidth = inWidth + 2 * pad;
  const outPlaneSize = outHeight * outWidth;
  const offsets = nonzeroOffsets;
  const values = nonzeroValues;
  const rowStep = stride * paddedWidth;
  let dyIndex = image * outChannels * outPlaneSize;

  for (let oc = 0; oc < outChannels; oc++) {
    const entryStart = oc * outPlaneSize;
    let entry = entryStart;
    let sum = biasGradientSums[oc];
    let windowRow = 0;
    for (let oh = 0; oh < outHeight; oh++) {
      let window = windowRow;
      for (let ow = 0; ow < outWidth; ow++) {
        const gradient = dy[dyIndex++];
        if (gradient !== 0) {
          offsets[entry] = window;
          values[entry] = gradient;
          entry++;
          sum += gradient;
        }
        window += stride;
      }
      windowRow += rowStep;
    }
    nonzeroCounts[oc] = entry - entryStart;
    biasGradientSums[oc] = sum;
  }
}

// forward: y[oc, oh, ow] += w[oc, ic, tapRow, tapColumn] · xPadded[ic, oh·stride + tapRow, ow·stride + tapColumn]
// so:      dw[oc, ic, tapRow, tapColumn] += sum over nonzero dy[oc, oh, ow] of dy · (that xPadded)
// for the image in paddedPlanes, added into weightGradientSums.
function accumulateWeightGradient(g: Conv2dGeometry): void {
  const { inChannels, inHeight, inWidth, outChannels, outHeight, outWidth } = g;
  const { kernelHeight, kernelWidth, pad, groups } = g;
  const inChannelsPerGroup = inChannels / groups;
  const outChannelsPerGroup = outChannels / groups;
  const tapCount = kernelHeight * kernelWidth;
  const columnRows = inChannelsPerGroup * tapCount;
  const paddedWidth = inWidth + 2 * pad;
  const paddedPlaneSize = (inHeight + 2 * pad) * paddedWidth;
  const outPlaneSize = outHeight * outWidth;
  const planes = paddedPlanes;
  const offsets = nonzeroOffsets;
  const values = nonzeroValues;
  const sums = weightGradientSums;
  const isThreeByThree = kernelHeight === 3 && kernelWidth === 3;
  const row1 = paddedWidth;
  const row2 = 2 * paddedWidth;

  for (let oc = 0; oc < outChannels; oc++) {
    const entryStart = oc * outPlaneSize;
    const entryEnd = entryStart + nonzeroCounts[oc];
    if (entryEnd === entryStart) continue;
    const group = Math.floor(oc / outChannelsPerGroup);
    for (let icInGroup = 0; icInGroup < inChannelsPerGroup; icInGroup++) {
      const plane = (group * inChannelsPerGroup + icInGroup) * paddedPlaneSize;
      const sumStart = oc * columnRows + icInGroup * tapCount;
      if (isThreeByThree) {
        // The 9 taps unrolled, one register each.
        let s0 = 0,
          s1 = 0,
          s2 = 0,
          s3 = 0,
          s4 = 0,
          s5 = 0,
          s6 = 0,
          s7 = 0,
          s8 = 0;
        for (let entry = entryStart; entry < entryEnd; entry++) {
          const gradient = values[entry];
          const top = plane + offsets[entry];
          s0 += gradient * planes[top];
          s1 += gradient * planes[top + 1];
          s2 += gradient * planes[top + 2];
          s3 += gradient * planes[top + row1];
          s4 += gradient * planes[top + row1 + 1];
          s5 += gradient * planes[top + row1 + 2];
          s6 += gradient * planes[top + row2];
          s7 += gradient * planes[top + row2 + 1];
          s8 += gradient * planes[top + row2 + 2];
        }
        sums[sumStart] += s0;
        sums[sumStart + 1] += s1;
        sums[sumStart + 2] += s2;
        sums[sumStart + 3] += s3;
        sums[sumStart + 4] += s4;
        sums[sumStart + 5] += s5;
        sums[sumStart + 6] += s6;
        sums[sumStart + 7] += s7;
        sums[sumStart + 8] += s8;
      } else {
        for (let tapRow = 0; tapRow < kernelHeight; tapRow++) {
          for (let tapColumn = 0; tapColumn < kernelWidth; tapColumn++) {
            const tapOffset = plane + tapRow * paddedWidth + tapColumn;
            let sum = 0;
            for (let entry = entryStart; entry < entryEnd; entry++) {
              sum += values[entry] * planes[tapOffset + offsets[entry]];
            }
            sums[sumStart + tapRow * kernelWidth + tapColumn] += sum;
          }
        }
      }
    }
  }
}

// forward: y[oc, oh, ow] += w[oc, ic, tapRow, tapColumn] · xPadded[ic, oh·stride + tapRow, ow·stride + tapColumn]
// so:      dxPadded[ic, oh·stride + tapRow, ow·stride + tapColumn] += w[oc, ic, tapRow, tapColumn] · dy[oc, oh, ow]
// summed into paddedGradientPlanes over the nonzero dy entries of one image.
function scatterInputGradient(g: Conv2dGeometry, w: Float32Array): void {
  const { inChannels, inHeight, inWidth, outChannels, outHeight, outWidth } = g;
  const { kernelHeight, kernelWidth, pad, groups } = g;
  const inChannelsPerGroup = inChannels / groups;
  const outChannelsPerGroup = outChannels / groups;
  const tapCount = kernelHeight * kernelWidth;
  const columnRows = inChannelsPerGroup * tapCount;
  const paddedWidth = inWidth + 2 * pad;
  const paddedPlaneSize = (inHeight + 2 * pad) * paddedWidth;
  const outPlaneSize = outHeight * outWidth;
  const gradients = paddedGradientPlanes;
  const offsets = nonzeroOffsets;
  const values = nonzeroValues;
  const isThreeByThree = kernelHeight === 3 && kernelWidth === 3;
  const row1 = paddedWidth;
  const row2 = 2 * paddedWidth;

  for (let ic = 0; ic < inChannels; ic++) {
    const group = Math.floor(ic / inChannelsPerGroup);
    const icInGroup = ic - group * inChannelsPerGroup;
    const plane = ic * paddedPlaneSize;
    for (let ocInGroup = 0; ocInGroup < outChannelsPerGroup; ocInGroup++) {
      const oc = group * outChannelsPerGroup + ocInGroup;
      const entryStart = oc * outPlaneSize;
      const entryEnd = entryStart + nonzeroCounts[oc];
      const wStart = oc * columnRows + icInGroup * tapCount;
      if (isThreeByThree) {
        const w0 = w[wStart],
          w1 = w[wStart + 1],
          w2 = w[wStart + 2];
        const w3 = w[wStart + 3],
          w4 = w[wStart + 4],
          w5 = w[wStart + 5];
        const w6 = w[wStart + 6],
          w7 = w[wStart + 7],
          w8 = w[wStart + 8];
        for (let entry = entryStart; entry < entryEnd; entry++) {
          const gradient = values[entry];
          const top = plane + offsets[entry];
          gradients[top] += gradient * w0;
          gradients[top + 1] += gradient * w1;
          gradients[top + 2] += gradient * w2;
          gradients[top + row1] += gradient * w3;
          gradients[top + row1 + 1] += gradient * w4;
          gradients[top + row1 + 2] += gradient * w5;
          gradients[top + row2] += gradient * w6;
          gradients[top + row2 + 1] += gradient * w7;
          gradients[top + row2 + 2] += gradient * w8;
        }
      } else {
        for (let tapRow = 0; tapRow < kernelHeight; tapRow++) {
          for (let tapColumn = 0; tapColumn < kernelWidth; tapColumn++) {
            const weight = w[wStart + tapRow * kernelWidth + tapColumn];
            const tapOffset = plane + tapRow * paddedWidth + tapColumn;
            for (let entry = entryStart; entry < entryEnd; entry++) {
              gradients[tapOffset + offsets[entry]] += values[entry] * weight;
            }
          }
        }
      }
    }
  }
}

// Stores the interior of paddedGradientPlanes as image `image` of dx, then clears the whole
// buffer (border included, which collected the gradient of the padding) for the next image.
function moveInputGradientOut(g: Conv2dGeometry, dx: Float32Array, image: number): void {
  const { inChannels, inHeight, inWidth, pad } = g;
  const paddedWidth = inWidth + 2 * pad;
  const paddedPlaneSize = (inHeight + 2 * pad) * paddedWidth;
  const gradients = paddedGradientPlanes;
  let dxIndex = image * inChannels * inHeight * inWidth;
  for (let channel = 0; channel < inChannels; channel++) {
    let paddedRow = channel * paddedPlaneSize + pad * paddedWidth + pad;
    for (let row = 0; row < inHeight; row++) {
      const dxRowEnd = dxIndex + inWidth;
      let paddedIndex = paddedRow;
      while (dxIndex < dxRowEnd) {
        dx[dxIndex++] = gradients[paddedIndex++];
      }
      paddedRow += paddedWidth;
    }
  }
  gradients.fill(0, 0, inChannels * paddedPlaneSize);
}
