// Gradients of the 2-D convolution (see conv2d.ts for the layouts). Only the nonzero entries of dy
// are visited: behind a 2 × 2 stride-2 max pool at least 3 of every 4 are exactly zero.
import { conv2dForward, type Conv2dGeometry } from "./conv2d.js";
import {
  clearedPaddedPlanes,
  copyIntoPaddedPlanes,
  float64Scratch,
  int32Scratch,
} from "./conv2d-scratch.js";
import { useWinograd } from "./winograd.js";

// Scratch (see conv2d-scratch.ts for the rules).
// The input gradient of one image with `pad` around every plane, before the border is dropped.
let paddedGradientPlanes = new Float64Array(0);
// Weight and bias gradient sums over the images of one call, [outChannels, columnRows] and
// [outChannels].
let weightGradientSums = new Float64Array(0);
let biasGradientSums = new Float64Array(0);
// The nonzero entries of dy for one image, per output channel: entry j of channel oc sits at
// oc · outPlaneSize + j and contains the padded-plane offset of the window's top-left input and the
// gradient value. nonzeroCounts[oc] is the number of filled entries.
let nonzeroOffsets = new Int32Array(0);
let nonzeroValues = new Float64Array(0);
let nonzeroCounts = new Int32Array(0);

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
  }
  // The padded input is needed only for dw. The dense dx path below runs conv2dForward, which
  // reuses this scratch, but only after the last image's dw is done.
  const planes = dw !== null ? clearedPaddedPlanes(g) : null;
  // Scatter dx from the nonzero dy entries while they are few. When dy is dense enough, compute dx
  // afterwards as a forward convolution of dy, which takes the Winograd path.
  const transposed = dx !== null ? transposedForwardGeometry(g) : null;
  const scatterDx =
    dx !== null &&
    (transposed === null ||
      countNonzeros(n * outChannels * outPlaneSize, dy) <=
        DENSE_INPUT_GRADIENT_FRACTION * n * outChannels * outPlaneSize);
  if (scatterDx) {
    paddedGradientPlanes = float64Scratch(paddedGradientPlanes, paddedPlanesSize);
    paddedGradientPlanes.fill(0, 0, paddedPlanesSize);
  }

  for (let image = 0; image < n; image++) {
    collectNonzeroGradients(g, dy, image);
    if (dw !== null) {
      copyIntoPaddedPlanes(g, x, image, planes!);
      accumulateWeightGradient(g, planes!);
    }
    if (scatterDx) {
      scatterInputGradient(g, w);
      moveInputGradientOut(g, dx!, image);
    }
  }
  if (dx !== null && !scatterDx) {
    conv2dForward(transposed!, n, dy, flipWeights(g, w), null, dx);
  }

  if (dw !== null) {
    for (let i = 0; i < outChannels * columnRows; i++) dw[i] = weightGradientSums[i];
  }
  if (db !== null) {
    for (let oc = 0; oc < outChannels; oc++) db[oc] = biasGradientSums[oc];
  }
}

/**
 * Fraction of nonzero dy entries above which dx is computed as a dense forward convolution of dy
 * rather than scattered from the nonzero entries. For conv2's shape (16 → 32 channels in 2
 * groups, 14 × 14) the scatter took 99, 129, 161 and 190 microseconds per image at 20, 30, 40
 * and 50 % nonzeros. The Winograd convolution took 154 at any density (AMD EPYC, Node 20, best of
 * 20 calls on 50 images). On synthetic images at initialization, 12.5 % of conv-net's conv2 dy
 * is nonzero (its stride-2 pool passes 1 in 4, and dropout half of those), and 39 % of
 * conv-blur-net's.
 */
const DENSE_INPUT_GRADIENT_FRACTION = 0.38;

function countNonzeros(count: number, values: Float32Array): number {
  let nonzeros = 0;
  for (let i = 0; i < count; i++) nonzeros += +(values[i] !== 0);
  return nonzeros;
}

// For a stride-1 convolution, dx is the convolution of dy, padded by kernelSize - 1 - pad, with
// each filter rotated by 180 degrees and its input and output channels swapped:
//   dx[ic, i, j] = sum over oc, tapRow, tapColumn of
//                  w[oc, ic, tapRow, tapColumn] · dy[oc, i + pad - tapRow, j + pad - tapColumn].
// Returns that forward geometry when it takes the Winograd path, else null (the scatter is used).
// Results are cached per geometry object, so that a training step allocates nothing here.
const transposedGeometries = new WeakMap<Conv2dGeometry, Conv2dGeometry | null>();

function transposedForwardGeometry(g: Conv2dGeometry): Conv2dGeometry | null {
  let transposed = transposedGeometries.get(g);
  if (transposed === undefined) {
    transposed = computeTransposedGeometry(g);
    transposedGeometries.set(g, transposed);
  }
  return transposed;
}

// The cache is keyed by object identity, so a geometry object changed after its first backward
// call would keep its old transposed geometry. The model plan never changes one.
function computeTransposedGeometry(g: Conv2dGeometry): Conv2dGeometry | null {
  if (g.stride !== 1 || g.kernelHeight !== g.kernelWidth || g.pad > g.kernelHeight - 1) return null;
  const transposed: Conv2dGeometry = {
    inChannels: g.outChannels,
    inHeight: g.outHeight,
    inWidth: g.outWidth,
    outChannels: g.inChannels,
    outHeight: g.inHeight,
    outWidth: g.inWidth,
    kernelHeight: g.kernelHeight,
    kernelWidth: g.kernelWidth,
    stride: 1,
    pad: g.kernelHeight - 1 - g.pad,
    groups: g.groups,
  };
  return useWinograd(transposed) ? transposed : null;
}

// Rotated, channel-swapped weights for transposedForwardGeometry:
// flipped[ic, ocInGroup, tapRow, tapColumn] = w[oc, icInGroup, kernelHeight - 1 - tapRow,
// kernelWidth - 1 - tapColumn] within each group.
let flippedWeights = new Float32Array(0);

function flipWeights(g: Conv2dGeometry, w: Float32Array): Float32Array {
  const { inChannels, outChannels, kernelHeight, kernelWidth, groups } = g;
  const inChannelsPerGroup = inChannels / groups;
  const outChannelsPerGroup = outChannels / groups;
  const tapCount = kernelHeight * kernelWidth;
  const size = outChannels * inChannelsPerGroup * tapCount;
  if (flippedWeights.length < size) flippedWeights = new Float32Array(size);
  const flipped = flippedWeights;
  for (let oc = 0; oc < outChannels; oc++) {
    const group = Math.floor(oc / outChannelsPerGroup);
    const ocInGroup = oc - group * outChannelsPerGroup;
    for (let icInGroup = 0; icInGroup < inChannelsPerGroup; icInGroup++) {
      const ic = group * inChannelsPerGroup + icInGroup;
      const source = (oc * inChannelsPerGroup + icInGroup) * tapCount;
      const target = (ic * outChannelsPerGroup + ocInGroup) * tapCount;
      for (let tap = 0; tap < tapCount; tap++) {
        flipped[target + tap] = w[source + tapCount - 1 - tap];
      }
    }
  }
  return flipped;
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
        // Written unconditionally and kept only when nonzero: a branch on the value would be
        // mispredicted about once per pooling window. A zero adds nothing to the sum.
        const gradient = dy[dyIndex++];
        offsets[entry] = window;
        values[entry] = gradient;
        entry += +(gradient !== 0);
        sum += gradient;
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
function accumulateWeightGradient(g: Conv2dGeometry, planes: Float64Array): void {
  const { inChannels, inHeight, inWidth, outChannels, outHeight, outWidth } = g;
  const { kernelHeight, kernelWidth, pad, groups } = g;
  const inChannelsPerGroup = inChannels / groups;
  const outChannelsPerGroup = outChannels / groups;
  const tapCount = kernelHeight * kernelWidth;
  const columnRows = inChannelsPerGroup * tapCount;
  const paddedWidth = inWidth + 2 * pad;
  const paddedPlaneSize = (inHeight + 2 * pad) * paddedWidth;
  const outPlaneSize = outHeight * outWidth;
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
