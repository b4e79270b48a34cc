// Fully connected layer over flat float32 buffers in PyTorch layout (y = x w^T + b).
// Forward and both backward products run through one strided matrix multiply, tiled 4 × 4 in
// registers. Sums are kept in double precision and rounded to float32 once, on the store.

/**
 * Computes out[r · outRowStride + c] = (bias ? bias[c] : 0) + sum over k < depth of
 * a[aStart + r · aRowStride + k · aDepthStride] · b[bStart + c · bColumnStride + k · bDepthStride]
 * for r < rows and c < columns, in 4 × 4 tiles, so that each group of 8 loads feeds 16
 * multiply-adds.
 */
function multiplyStrided(
  rows: number,
  columns: number,
  depth: number,
  a: Float32Array,
  aStart: number,
  aRowStride: number,
  aDepthStride: number,
  b: Float32Array,
  bStart: number,
  bColumnStride: number,
  bDepthStride: number,
  bias: Float32Array | null,
  out: Float32Array,
  outRowStride: number,
): void {
  const tiledRows = rows - (rows % 4);
  const tiledColumns = columns - (columns % 4);

  for (let row = 0; row < tiledRows; row += 4) {
    const aRow0 = aStart + row * aRowStride;
    const aRow1 = aRow0 + aRowStride;
    const aRow2 = aRow1 + aRowStride;
    const aRow3 = aRow2 + aRowStride;
    const outRow0 = row * outRowStride;
    const outRow1 = outRow0 + outRowStride;
    const outRow2 = outRow1 + outRowStride;
    const outRow3 = outRow2 + outRowStride;

    for (let column = 0; column < tiledColumns; column += 4) {
      const bias0 = bias === null ? 0 : bias[column];
      const bias1 = bias === null ? 0 : bias[column + 1];
      const bias2 = bias === null ? 0 : bias[column + 2];
      const bias3 = bias === null ? 0 : bias[column + 3];
      let s00 = bias0,
        s01 = bias1,
        s02 = bias2,
        s03 = bias3;
      let s10 = bias0,
        s11 = bias1,
        s12 = bias2,
        s13 = bias3;
      let s20 = bias0,
        s21 = bias1,
        s22 = bias2,
        s23 = bias3;
      let s30 = bias0,
        s31 = bias1,
        s32 = bias2,
        s33 = bias3;
      const bColumn0 = bStart + column * bColumnStride;
      const bColumn1 = bColumn0 + bColumnStride;
      const bColumn2 = bColumn1 + bColumnStride;
      const bColumn3 = bColumn2 + bColumnStride;
      let aOffset = 0;
      let bOffset = 0;
      for (let k = 0; k < depth; k++) {
        const a0 = a[aRow0 + aOffset];
        const a1 = a[aRow1 + aOffset];
        const a2 = a[aRow2 + aOffset];
        const a3 = a[aRow3 + aOffset];
        const b0 = b[bColumn0 + bOffset];
        const b1 = b[bColumn1 + bOffset];
        const b2 = b[bColumn2 + bOffset];
        const b3 = b[bColumn3 + bOffset];
        s00 += a0 * b0;
        s01 += a0 * b1;
        s02 += a0 * b2;
        s03 += a0 * b3;
        s10 += a1 * b0;
        s11 += a1 * b1;
        s12 += a1 * b2;
        s13 += a1 * b3;
        s20 += a2 * b0;
        s21 += a2 * b1;
        s22 += a2 * b2;
        s23 += a2 * b3;
        s30 += a3 * b0;
        s31 += a3 * b1;
        s32 += a3 * b2;
        s33 += a3 * b3;
        aOffset += aDepthStride;
        bOffset += bDepthStride;
      }
      out[outRow0 + column] = s00;
      out[outRow0 + column + 1] = s01;
      out[outRow0 + column + 2] = s02;
      out[outRow0 + column + 3] = s03;
      out[outRow1 + column] = s10;
      out[outRow1 + column + 1] = s11;
      out[outRow1 + column + 2] = s12;
      out[outRow1 + column + 3] = s13;
      out[outRow2 + column] = s20;
      out[outRow2 + column + 1] = s21;
      out[outRow2 + column + 2] = s22;
      out[outRow2 + column + 3] = s23;
      out[outRow3 + column] = s30;
      out[outRow3 + column + 1] = s31;
      out[outRow3 + column + 2] = s32;
      out[outRow3 + column + 3] = s33;
    }

    for (let column = tiledColumns; column < columns; column++) {
      const initial = bias === null ? 0 : bias[column];
      let s0 = initial,
        s1 = initial,
        s2 = initial,
        s3 = initial;
      const bColumn = bStart + column * bColumnStride;
      let aOffset = 0;
      let bOffset = 0;
      for (let k = 0; k < depth; k++) {
        const bValue = b[bColumn + bOffset];
        s0 += a[aRow0 + aOffset] * bValue;
        s1 += a[aRow1 + aOffset] * bValue;
        s2 += a[aRow2 + aOffset] * bValue;
        s3 += a[aRow3 + aOffset] * bValue;
        aOffset += aDepthStride;
        bOffset += bDepthStride;
      }
      out[outRow0 + column] = s0;
      out[outRow1 + column] = s1;
      out[outRow2 + column] = s2;
      out[outRow3 + column] = s3;
    }
  }

  for (let row = tiledRows; row < rows; row++) {
    const aRow = aStart + row * aRowStride;
    const outRow = row * outRowStride;
    for (let column = 0; column < columns; column++) {
      let sum = bias === null ? 0 : bias[column];
      const bColumn = bStart + column * bColumnStride;
      let aOffset = 0;
      let bOffset = 0;
      for (let k = 0; k < depth; k++) {
        sum += a[aRow + aOffset] * b[bColumn + bOffset];
        aOffset += aDepthStride;
        bOffset += bDepthStride;
      }
      out[outRow + column] = sum;
    }
  }
}

/**
 * Computes y = x w^T + b for `n` rows.
 * x [n, inFeatures], w [outFeatures, inFeatures], b [outFeatures], y [n, outFeatures].
 */
export function denseForward(
  n: number,
  inFeatures: number,
  outFeatures: number,
  x: Float32Array,
  w: Float32Array,
  b: Float32Array,
  y: Float32Array,
): void {
  // y[i, o] = b[o] + sum over j of x[i, j] · w[o, j]
  multiplyStrided(
    n,
    outFeatures,
    inFeatures,
    x,
    0,
    inFeatures,
    1,
    w,
    0,
    inFeatures,
    1,
    b,
    y,
    outFeatures,
  );
}

/**
 * Computes the gradients of denseForward from the upstream gradient dy, overwriting dx (skipped
 * when null), dw and db.
 * x [n, inFeatures] (the forward input), w [outFeatures, inFeatures], dy [n, outFeatures],
 * dx like x, dw like w, db [outFeatures].
 */
export function denseBackward(
  n: number,
  inFeatures: number,
  outFeatures: number,
  x: Float32Array,
  w: Float32Array,
  dy: Float32Array,
  dx: Float32Array | null,
  dw: Float32Array,
  db: Float32Array,
): void {
  // forward: y[i, o] = b[o] + sum over j of w[o, j] · x[i, j]
  // so:      dx[i, j] = sum over o of dy[i, o] · w[o, j]
  //          dw[o, j] = sum over i of dy[i, o] · x[i, j]
  //          db[o]    = sum over i of dy[i, o]
  if (dx !== null) {
    multiplyStrided(
      n,
      inFeatures,
      outFeatures,
      dy,
      0,
      outFeatures,
      1,
      w,
      0,
      1,
      inFeatures,
      null,
      dx,
      inFeatures,
    );
  }
  multiplyStrided(
    outFeatures,
    inFeatures,
    n,
    dy,
    0,
    1,
    outFeatures,
    x,
    0,
    1,
    inFeatures,
    null,
    dw,
    inFeatures,
  );
  for (let o = 0; o < outFeatures; o++) {
    let sum = 0;
    for (let i = 0; i < n; i++) sum += dy[i * outFeatures + o];
    db[o] = sum;
  }
}
