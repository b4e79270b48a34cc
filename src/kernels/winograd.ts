// Winograd F(2 × 2, 3 × 3) forward convolution, the path conv2dForward takes for conv2.
//
// Each 2 × 2 block of outputs comes from the 4 × 4 padded-input tile d at its top-left corner as
// Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A, summed over input channels, where g is the 3 × 3 filter and
//   Bᵀ = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], G = [1 0 0; ½ ½ ½; ½ -½ ½; 0 0 1],
//   Aᵀ = [1 1 1 0; 0 1 -1 -1].
// For each of the 16 tile positions ξ, the sum over input channels of the elementwise products
// is a matrix product [outChannelsPerGroup, inChannelsPerGroup] · [inChannelsPerGroup, tiles].
// It takes 16 multiply-adds per 2 × 2 outputs and input channel instead of 36.
// All transforms run in double precision, and each output is rounded to float32 once.
//
// Measured on conv2 (16 → 32 channels in 2 groups, 14 × 14, 50 images a call): 128 instead of
// 246 microseconds per image for im2col with the tiled multiply, best of 30 calls (AMD EPYC,
// Node 20, machine shared with other jobs; `node dist/bench/kernels.js`, conv2 forward row).
import { leakyReluOfSum } from "./activation.js";
import type { Conv2dGeometry } from "./conv2d.js";
import { copyIntoPaddedPlanes, float64Scratch } from "./conv2d-scratch.js";

// Transformed weights, [group, ξ, input channel in group, output channel in group].
let winogradWeights = new Float64Array(0);
// Transformed input tiles of one group of one image, [ξ, input channel in group, tile].
let winogradInputs = new Float64Array(0);
// The 16 matrix products of one group of one image, [ξ, output channel in group, tile].
let winogradProducts = new Float64Array(0);

// Whether conv2dForward uses the Winograd path for this geometry: a 3 × 3 kernel at stride 1, an
// even output size (whole 2 × 2 tiles), and enough input channels per group for the matrix
// products to outweigh the transforms. conv2 has 8. conv1, with 1, measured 78 microseconds per
// image this way against 69 through im2col, because its output transform then costs more than
// the multiply-adds it saves.
export function useWinograd(g: Conv2dGeometry): boolean {
  return (
    g.kernelHeight === 3 &&
    g.kernelWidth === 3 &&
    g.stride === 1 &&
    g.outHeight % 2 === 0 &&
    g.outWidth % 2 === 0 &&
    g.inChannels / g.groups >= 8
  );
}

// Fills winogradWeights with U = G g Gᵀ for every (output channel, input channel in group).
function transformWinogradWeights(g: Conv2dGeometry, w: Float32Array): void {
  const { inChannels, outChannels, groups } = g;
  const inChannelsPerGroup = inChannels / groups;
  const outChannelsPerGroup = outChannels / groups;
  const positionStride = inChannelsPerGroup * outChannelsPerGroup;
  const transformed = winogradWeights;
  for (let oc = 0; oc < outChannels; oc++) {
    const group = Math.floor(oc / outChannelsPerGroup);
    const ocInGroup = oc - group * outChannelsPerGroup;
    for (let icInGroup = 0; icInGroup < inChannelsPerGroup; icInGroup++) {
      const wStart = (oc * inChannelsPerGroup + icInGroup) * 9;
      // Rows of G g: [g0, (g0 + g1 + g2) / 2, (g0 - g1 + g2) / 2, g2] for each kernel column.
      const r00 = w[wStart],
        r01 = w[wStart + 1],
        r02 = w[wStart + 2];
      const r30 = w[wStart + 6],
        r31 = w[wStart + 7],
        r32 = w[wStart + 8];
      const r10 = 0.5 * (r00 + w[wStart + 3] + r30);
      const r11 = 0.5 * (r01 + w[wStart + 4] + r31);
      const r12 = 0.5 * (r02 + w[wStart + 5] + r32);
      const r20 = 0.5 * (r00 - w[wStart + 3] + r30);
      const r21 = 0.5 * (r01 - w[wStart + 4] + r31);
      const r22 = 0.5 * (r02 - w[wStart + 5] + r32);
      const start = group * 16 * positionStride + icInGroup * outChannelsPerGroup + ocInGroup;
      // Then (G g) Gᵀ: the same combination along each row of G g.
      const rowStride = 4 * positionStride;
      writeWinogradWeightRow(transformed, start, positionStride, r00, r01, r02);
      writeWinogradWeightRow(transformed, start + rowStride, positionStride, r10, r11, r12);
      writeWinogradWeightRow(transformed, start + 2 * rowStride, positionStride, r20, r21, r22);
      writeWinogradWeightRow(transformed, start + 3 * rowStride, positionStride, r30, r31, r32);
    }
  }
}

// Writes one row of G g Gᵀ, [a, (a + b + c) / 2, (a - b + c) / 2, c], `stride` apart.
function writeWinogradWeightRow(
  transformed: Float64Array,
  position: number,
  stride: number,
  a: number,
  b: number,
  c: number,
): void {
  transformed[position] = a;
  transformed[position + stride] = 0.5 * (a + b + c);
  transformed[position + 2 * stride] = 0.5 * (a - b + c);
  transformed[position + 3 * stride] = c;
}

// Fills winogradInputs with V = Bᵀ d B for every 4 × 4 tile d of the padded input channels
// firstChannel .. firstChannel + inChannelsPerGroup - 1. Tile (th, tw) starts at padded row
// 2 · th and column 2 · tw, and tiles are numbered row-major.
function transformWinogradInputs(
  g: Conv2dGeometry,
  planes: Float64Array,
  firstChannel: number,
): void {
  const { inChannels, inHeight, inWidth, outHeight, outWidth, pad, groups } = g;
  const inChannelsPerGroup = inChannels / groups;
  const paddedWidth = inWidth + 2 * pad;
  const paddedPlaneSize = (inHeight + 2 * pad) * paddedWidth;
  const tilesHigh = outHeight / 2;
  const tilesWide = outWidth / 2;
  const tileCount = tilesHigh * tilesWide;
  const positionStride = inChannelsPerGroup * tileCount;
  const transformed = winogradInputs;
  const row1 = paddedWidth;
  const row2 = 2 * paddedWidth;
  const row3 = 3 * paddedWidth;

  for (let icInGroup = 0; icInGroup < inChannelsPerGroup; icInGroup++) {
    const plane = (firstChannel + icInGroup) * paddedPlaneSize;
    let tile = icInGroup * tileCount;
    for (let th = 0; th < tilesHigh; th++) {
      let top = plane + 2 * th * paddedWidth;
      for (let tw = 0; tw < tilesWide; tw++) {
        // Bᵀ d combines rows: [d0 - d2, d1 + d2, d2 - d1, d1 - d3], column by column.
        const d00 = planes[top],
          d01 = planes[top + 1],
          d02 = planes[top + 2],
          d03 = planes[top + 3];
        const d10 = planes[top + row1],
          d11 = planes[top + row1 + 1];
        const d12 = planes[top + row1 + 2],
          d13 = planes[top + row1 + 3];
        const d20 = planes[top + row2],
          d21 = planes[top + row2 + 1];
        const d22 = planes[top + row2 + 2],
          d23 = planes[top + row2 + 3];
        const d30 = planes[top + row3],
          d31 = planes[top + row3 + 1];
        const d32 = planes[top + row3 + 2],
          d33 = planes[top + row3 + 3];
        const t00 = d00 - d20,
          t01 = d01 - d21,
          t02 = d02 - d22,
          t03 = d03 - d23;
        const t10 = d10 + d20,
          t11 = d11 + d21,
          t12 = d12 + d22,
          t13 = d13 + d23;
        const t20 = d20 - d10,
          t21 = d21 - d11,
          t22 = d22 - d12,
          t23 = d23 - d13;
        const t30 = d10 - d30,
          t31 = d11 - d31,
          t32 = d12 - d32,
          t33 = d13 - d33;
        // (Bᵀ d) B combines columns the same way, row by row; position ξ = 4 · row + column.
        transformed[tile] = t00 - t02;
        transformed[tile + positionStride] = t01 + t02;
        transformed[tile + 2 * positionStride] = t02 - t01;
        transformed[tile + 3 * positionStride] = t01 - t03;
        transformed[tile + 4 * positionStride] = t10 - t12;
        transformed[tile + 5 * positionStride] = t11 + t12;
        transformed[tile + 6 * positionStride] = t12 - t11;
        transformed[tile + 7 * positionStride] = t11 - t13;
        transformed[tile + 8 * positionStride] = t20 - t22;
        transformed[tile + 9 * positionStride] = t21 + t22;
        transformed[tile + 10 * positionStride] = t22 - t21;
        transformed[tile + 11 * positionStride] = t21 - t23;
        transformed[tile + 12 * positionStride] = t30 - t32;
        transformed[tile + 13 * positionStride] = t31 + t32;
        transformed[tile + 14 * positionStride] = t32 - t31;
        transformed[tile + 15 * positionStride] = t31 - t33;
        tile++;
        top += 2;
      }
    }
  }
}

// For each position ξ, winogradProducts[ξ, oc, tile] = sum over ic of
// winogradWeights[group, ξ, ic, oc] · winogradInputs[ξ, ic, tile], in 2 × 4 register tiles as
// in multiplyGroup.
function multiplyWinogradPositions(
  outRows: number,
  depth: number,
  tileCount: number,
  weightStart: number,
): void {
  const weights = winogradWeights;
  const inputs = winogradInputs;
  const products = winogradProducts;
  const tiledRows = outRows - (outRows % 2);
  const tiledColumns = tileCount - (tileCount % 4);

  for (let position = 0; position < 16; position++) {
    const positionWeights = weightStart + position * depth * outRows;
    const positionInputs = position * depth * tileCount;
    const positionProducts = position * outRows * tileCount;
    for (let row = 0; row < tiledRows; row += 2) {
      const out0 = positionProducts + row * tileCount;
      const out1 = out0 + tileCount;
      for (let column = 0; column < tiledColumns; column += 4) {
        let s00 = 0,
          s01 = 0,
          s02 = 0,
          s03 = 0;
        let s10 = 0,
          s11 = 0,
          s12 = 0,
          s13 = 0;
        let weightIndex = positionWeights + row;
        let inputIndex = positionInputs + column;
        for (let k = 0; k < depth; k++) {
          const w0 = weights[weightIndex];
          const w1 = weights[weightIndex + 1];
          const v0 = inputs[inputIndex];
          const v1 = inputs[inputIndex + 1];
          const v2 = inputs[inputIndex + 2];
          const v3 = inputs[inputIndex + 3];
          s00 += w0 * v0;
          s01 += w0 * v1;
          s02 += w0 * v2;
          s03 += w0 * v3;
          s10 += w1 * v0;
          s11 += w1 * v1;
          s12 += w1 * v2;
          s13 += w1 * v3;
          weightIndex += outRows;
          inputIndex += tileCount;
        }
        products[out0 + column] = s00;
        products[out0 + column + 1] = s01;
        products[out0 + column + 2] = s02;
        products[out0 + column + 3] = s03;
        products[out1 + column] = s10;
        products[out1 + column + 1] = s11;
        products[out1 + column + 2] = s12;
        products[out1 + column + 3] = s13;
      }
      for (let column = tiledColumns; column < tileCount; column++) {
        let s0 = 0,
          s1 = 0;
        let weightIndex = positionWeights + row;
        let inputIndex = positionInputs + column;
        for (let k = 0; k < depth; k++) {
          const v = inputs[inputIndex];
          s0 += weights[weightIndex] * v;
          s1 += weights[weightIndex + 1] * v;
          weightIndex += outRows;
          inputIndex += tileCount;
        }
        products[out0 + column] = s0;
        products[out1 + column] = s1;
      }
    }
    for (let row = tiledRows; row < outRows; row++) {
      const out = positionProducts + row * tileCount;
      for (let column = 0; column < tileCount; column++) {
        let sum = 0;
        let weightIndex = positionWeights + row;
        let inputIndex = positionInputs + column;
        for (let k = 0; k < depth; k++) {
          sum += weights[weightIndex] * inputs[inputIndex];
          weightIndex += outRows;
          inputIndex += tileCount;
        }
        products[out + column] = sum;
      }
    }
  }
}

// Stores Y = Aᵀ m A + bias for every output channel of the group starting at firstOutChannel and
// every tile, where m contains the 16 products of that channel and tile.
function transformWinogradOutputs(
  g: Conv2dGeometry,
  firstOutChannel: number,
  b: Float32Array | null,
  y: Float32Array,
  image: number,
  leakyRelu: boolean,
): void {
  const { outChannels, outHeight, outWidth, groups } = g;
  const outChannelsPerGroup = outChannels / groups;
  const tilesHigh = outHeight / 2;
  const tilesWide = outWidth / 2;
  const tileCount = tilesHigh * tilesWide;
  const positionStride = outChannelsPerGroup * tileCount;
  const products = winogradProducts;

  for (let ocInGroup = 0; ocInGroup < outChannelsPerGroup; ocInGroup++) {
    const oc = firstOutChannel + ocInGroup;
    const bias = b === null ? 0 : b[oc];
    const yPlane = (image * outChannels + oc) * outHeight * outWidth;
    let tile = ocInGroup * tileCount;
    for (let th = 0; th < tilesHigh; th++) {
      let yTop = yPlane + 2 * th * outWidth;
      for (let tw = 0; tw < tilesWide; tw++) {
        const m00 = products[tile],
          m01 = products[tile + positionStride];
        const m02 = products[tile + 2 * positionStride],
          m03 = products[tile + 3 * positionStride];
        const m10 = products[tile + 4 * positionStride],
          m11 = products[tile + 5 * positionStride];
        const m12 = products[tile + 6 * positionStride],
          m13 = products[tile + 7 * positionStride];
        const m20 = products[tile + 8 * positionStride],
          m21 = products[tile + 9 * positionStride];
        const m22 = products[tile + 10 * positionStride];
        const m23 = products[tile + 11 * positionStride];
        const m30 = products[tile + 12 * positionStride];
        const m31 = products[tile + 13 * positionStride];
        const m32 = products[tile + 14 * positionStride];
        const m33 = products[tile + 15 * positionStride];
        // Aᵀ m combines rows: [m0 + m1 + m2, m1 - m2 - m3], column by column.
        const u00 = m00 + m10 + m20,
          u01 = m01 + m11 + m21;
        const u02 = m02 + m12 + m22,
          u03 = m03 + m13 + m23;
        const u10 = m10 - m20 - m30,
          u11 = m11 - m21 - m31;
        const u12 = m12 - m22 - m32,
          u13 = m13 - m23 - m33;
        // (Aᵀ m) A combines columns the same way.
        let y00 = bias + (u00 + u01 + u02);
        let y01 = bias + (u01 - u02 - u03);
        let y10 = bias + (u10 + u11 + u12);
        let y11 = bias + (u11 - u12 - u13);
        if (leakyRelu) {
          y00 = leakyReluOfSum(y00);
          y01 = leakyReluOfSum(y01);
          y10 = leakyReluOfSum(y10);
          y11 = leakyReluOfSum(y11);
        }
        y[yTop] = y00;
        y[yTop + 1] = y01;
        y[yTop + outWidth] = y10;
        y[yTop + outWidth + 1] = y11;
        tile++;
        yTop += 2;
      }
    }
  }
}

/**
 * Runs conv2dForward through Winograd F(2 × 2, 3 × 3); useWinograd(g) must be true. `planes` is the
 * padded-input scratch from clearedPaddedPlanes(g). With `leakyRelu` true, each output is stored
 * through leakyReluOfSum.
 */
export function winogradForward(
  g: Conv2dGeometry,
  planes: Float64Array,
  n: number,
  x: Float32Array,
  w: Float32Array,
  b: Float32Array | null,
  y: Float32Array,
  leakyRelu: boolean,
): void {
  const { inChannels, outChannels, outHeight, outWidth, groups } = g;
  const inChannelsPerGroup = inChannels / groups;
  const outChannelsPerGroup = outChannels / groups;
  const tileCount = (outHeight / 2) * (outWidth / 2);

  winogradWeights = float64Scratch(
    winogradWeights,
    groups * 16 * inChannelsPerGroup * outChannelsPerGroup,
  );
  winogradInputs = float64Scratch(winogradInputs, 16 * inChannelsPerGroup * tileCount);
  winogradProducts = float64Scratch(winogradProducts, 16 * outChannelsPerGroup * tileCount);
  transformWinogradWeights(g, w);

  for (let image = 0; image < n; image++) {
    copyIntoPaddedPlanes(g, x, image, planes);
    for (let group = 0; group < groups; group++) {
      transformWinogradInputs(g, planes, group * inChannelsPerGroup);
      multiplyWinogradPositions(
        outChannelsPerGroup,
        inChannelsPerGroup,
        tileCount,
        group * 16 * inChannelsPerGroup * outChannelsPerGroup,
      );
      transformWinogradOutputs(g, group * outChannelsPerGroup, b, y, image, leakyRelu);
    }
  }
}
