// Fully connected layer over flat float32 buffers in PyTorch layout (y = x w^T + b).
// The products run through one strided matrix multiply tiled in registers, or, when most inputs
// are zero (behind dropout), over the nonzero inputs only. Sums are kept in double precision and
// rounded to float32 once, on the store.

/**
 * Computes out[r · outRowStride + c] = (bias ? bias[c] : 0) + sum over k < depth of
 * a[aStart + r · aRowStride + k · aDepthStride] · b[bStart + c · bColumnStride + k · bDepthStride]
 * for r < rows and c < columns, in register tiles of 2 rows by 4 columns. In a 192 × 192
 * multiply on an AMD EPYC (Node 20, best of 40 runs), 2 × 4 tiles ran at 4.8 GFLOP/s and 4 × 4
 * tiles at 4.4, because 16 sums and 8 operands do not fit the 16 floating-point registers of
 * x86-64. `node dist/bench/roofline.js` measures the 4 × 4 multiply.
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
  const tiledRows = rows - (rows % 2);
  const tiledColumns = columns - (columns % 4);

  for (let row = 0; row < tiledRows; row += 2) {
    const aRow0 = aStart + row * aRowStride;
    const aRow1 = aRow0 + aRowStride;
    const outRow0 = row * outRowStride;
    const outRow1 = outRow0 + outRowStride;

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
      const bColumn0 = bStart + column * bColumnStride;
      const bColumn1 = bColumn0 + bColumnStride;
      const bColumn2 = bColumn1 + bColumnStride;
      const bColumn3 = bColumn2 + bColumnStride;
      let aOffset = 0;
      let bOffset = 0;
      for (let k = 0; k < depth; k++) {
        const a0 = a[aRow0 + aOffset];
        const a1 = a[aRow1 + aOffset];
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
    }

    for (let column = tiledColumns; column < columns; column++) {
      const initial = bias === null ? 0 : bias[column];
      let s0 = initial,
        s1 = initial;
      const bColumn = bStart + column * bColumnStride;
      let aOffset = 0;
      let bOffset = 0;
      for (let k = 0; k < depth; k++) {
        const bValue = b[bColumn + bOffset];
        s0 += a[aRow0 + aOffset] * bValue;
        s1 += a[aRow1 + aOffset] * bValue;
        aOffset += aDepthStride;
        bOffset += bDepthStride;
      }
      out[outRow0 + column] = s0;
      out[outRow1 + column] = s1;
    }
  }

  // The row left over when rows is odd.
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

// Scratch, grown on first use and reused afterwards. Calls cannot overlap because the kernels are
// synchronous and every worker thread has its own module instance.
// The nonzero inputs of one row (forward) or of all rows grouped by feature (weight gradient):
// for each, a precomputed offset and the value.
let entryOffsets = new Int32Array(0);
let entryValues = new Float64Array(0);
// Per input feature, where its entries start in entryOffsets and entryValues, and where they end
// (the fill cursor).
let featureStarts = new Int32Array(0);
let featureCursors = new Int32Array(0);

/**
 * Fraction of nonzero inputs at or below which the sparse paths run. Dropout at rate 0.5 leaves
 * about half of fc1's inputs nonzero. Both paths add the nonzero products in the same order, so
 * their results are equal and only their speed differs.
 */
const SPARSE_INPUT_FRACTION = 0.7;

function countNonzeros(count: number, x: Float32Array): number {
  let nonzeros = 0;
  for (let i = 0; i < count; i++) nonzeros += +(x[i] !== 0);
  return nonzeros;
}

function growEntries(size: number): void {
  if (entryOffsets.length < size) {
    entryOffsets = new Int32Array(size);
    entryValues = new Float64Array(size);
  }
}

/**
 * Computes y = x w^T + b for `n` rows.
 * x [n, inFeatures], w [outFeatures, inFeatures], b [outFeatures], y [n, outFeatures].
 * When most of x is zero (behind dropout), only the nonzero inputs are visited.
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
  if (countNonzeros(n * inFeatures, x) > SPARSE_INPUT_FRACTION * n * inFeatures) {
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
    return;
  }

  growEntries(inFeatures);
  const offsets = entryOffsets;
  const values = entryValues;
  const tiledOutputs = outFeatures - (outFeatures % 8);
  for (let i = 0; i < n; i++) {
    // Gather row i's nonzero inputs. Each slot is written and kept only when nonzero, because a
    // branch on dropout's random mask would be mispredicted half of the time.
    const xRow = i * inFeatures;
    let entryCount = 0;
    for (let j = 0; j < inFeatures; j++) {
      const value = x[xRow + j];
      offsets[entryCount] = j;
      values[entryCount] = value;
      entryCount += +(value !== 0);
    }

    // Eight outputs at a time, so that each entry's value and offset feed eight multiply-adds.
    // The eight weight rows are read in place. Transposing w first took 79 instead of 71
    // microseconds per image for fc1 on 50 images a call, and 108 instead of 70 on 10 (best of
    // 30 calls).
    const yRow = i * outFeatures;
    for (let o = 0; o < tiledOutputs; o += 8) {
      let s0 = b[o],
        s1 = b[o + 1],
        s2 = b[o + 2],
        s3 = b[o + 3];
      let s4 = b[o + 4],
        s5 = b[o + 5],
        s6 = b[o + 6],
        s7 = b[o + 7];
      const row = o * inFeatures;
      for (let entry = 0; entry < entryCount; entry++) {
        const value = values[entry];
        const base = row + offsets[entry];
        s0 += value * w[base];
        s1 += value * w[base + inFeatures];
        s2 += value * w[base + 2 * inFeatures];
        s3 += value * w[base + 3 * inFeatures];
        s4 += value * w[base + 4 * inFeatures];
        s5 += value * w[base + 5 * inFeatures];
        s6 += value * w[base + 6 * inFeatures];
        s7 += value * w[base + 7 * inFeatures];
      }
      y[yRow + o] = s0;
      y[yRow + o + 1] = s1;
      y[yRow + o + 2] = s2;
      y[yRow + o + 3] = s3;
      y[yRow + o + 4] = s4;
      y[yRow + o + 5] = s5;
      y[yRow + o + 6] = s6;
      y[yRow + o + 7] = s7;
    }
    for (let o = tiledOutputs; o < outFeatures; o++) {
      let sum = b[o];
      for (let entry = 0; entry < entryCount; entry++) {
        sum += values[entry] * w[o * inFeatures + offsets[entry]];
      }
      y[yRow + o] = sum;
    }
  }
}

/**
 * Computes the gradients of denseForward from the upstream gradient dy, overwriting dx (skipped
 * when null), dw and db.
 * x [n, inFeatures] (the forward input), w [outFeatures, inFeatures], dy [n, outFeatures],
 * dx like x, dw like w, db [outFeatures].
 * When most of x is zero (behind dropout), dw visits only the nonzero inputs.
 * dxMask, like x, is optional: where it is 0, dx is written as 0 instead of computed. A dropout
 * before this layer multiplies those gradients by 0 anyway, so its mask can be passed here.
 * NOTE: with zeros skipped, an infinite or NaN dy meeting a zero input adds nothing to dw, where
 * PyTorch would get NaN from 0 · Inf.
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
  dxMask: Uint8Array | null = null,
): void {
  // forward: y[i, o] = b[o] + sum over j of w[o, j] · x[i, j]
  // so:      dx[i, j] = sum over o of dy[i, o] · w[o, j]
  //          dw[o, j] = sum over i of dy[i, o] · x[i, j]
  //          db[o]    = sum over i of dy[i, o]
  if (dx !== null && dxMask !== null) {
    maskedInputGradient(n, inFeatures, outFeatures, w, dy, dxMask, dx);
  } else if (dx !== null) {
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
  const nonzeros = countNonzeros(n * inFeatures, x);
  if (nonzeros > SPARSE_INPUT_FRACTION * n * inFeatures) {
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
  } else {
    sparseWeightGradient(n, inFeatures, outFeatures, x, dy, dw, nonzeros);
  }
  for (let o = 0; o < outFeatures; o++) {
    let sum = 0;
    for (let i = 0; i < n; i++) sum += dy[i * outFeatures + o];
    db[o] = sum;
  }
}

// dw[o, j] = sum over the rows i with x[i, j] != 0 of dy[i, o] · x[i, j], from the nonzero inputs
// grouped by feature j (in row order, so the sums run in the same order as the dense product).
function sparseWeightGradient(
  n: number,
  inFeatures: number,
  outFeatures: number,
  x: Float32Array,
  dy: Float32Array,
  dw: Float32Array,
  nonzeros: number,
): void {
  // Each feature gets one spare slot after its entries, because the branch-free fill below
  // writes one past the last kept entry of the feature.
  growEntries(nonzeros + inFeatures);
  if (featureStarts.length < inFeatures + 1) {
    featureStarts = new Int32Array(inFeatures + 1);
    featureCursors = new Int32Array(inFeatures + 1);
  }
  const offsets = entryOffsets;
  const values = entryValues;
  const starts = featureStarts;
  const cursors = featureCursors;

  starts.fill(0, 0, inFeatures + 1);
  for (let i = 0; i < n; i++) {
    const xRow = i * inFeatures;
    for (let j = 0; j < inFeatures; j++) starts[j + 1] += +(x[xRow + j] !== 0);
  }
  for (let j = 0; j < inFeatures; j++) starts[j + 1] += starts[j] + 1;
  cursors.set(starts.subarray(0, inFeatures));
  for (let i = 0; i < n; i++) {
    const xRow = i * inFeatures;
    const dyRow = i * outFeatures;
    for (let j = 0; j < inFeatures; j++) {
      const value = x[xRow + j];
      const slot = cursors[j];
      offsets[slot] = dyRow;
      values[slot] = value;
      cursors[j] = slot + +(value !== 0);
    }
  }

  const tiledOutputs = outFeatures - (outFeatures % 8);
  for (let j = 0; j < inFeatures; j++) {
    const entryStart = starts[j];
    const entryEnd = cursors[j];
    for (let o = 0; o < tiledOutputs; o += 8) {
      let s0 = 0,
        s1 = 0,
        s2 = 0,
        s3 = 0,
        s4 = 0,
        s5 = 0,
        s6 = 0,
        s7 = 0;
      for (let entry = entryStart; entry < entryEnd; entry++) {
        const value = values[entry];
        const base = offsets[entry] + o;
        s0 += value * dy[base];
        s1 += value * dy[base + 1];
        s2 += value * dy[base + 2];
        s3 += value * dy[base + 3];
        s4 += value * dy[base + 4];
        s5 += value * dy[base + 5];
        s6 += value * dy[base + 6];
        s7 += value * dy[base + 7];
      }
      const dwIndex = o * inFeatures + j;
      dw[dwIndex] = s0;
      dw[dwIndex + inFeatures] = s1;
      dw[dwIndex + 2 * inFeatures] = s2;
      dw[dwIndex + 3 * inFeatures] = s3;
      dw[dwIndex + 4 * inFeatures] = s4;
      dw[dwIndex + 5 * inFeatures] = s5;
      dw[dwIndex + 6 * inFeatures] = s6;
      dw[dwIndex + 7 * inFeatures] = s7;
    }
    for (let o = tiledOutputs; o < outFeatures; o++) {
      let sum = 0;
      for (let entry = entryStart; entry < entryEnd; entry++) {
        sum += values[entry] * dy[offsets[entry] + o];
      }
      dw[o * inFeatures + j] = sum;
    }
  }
}

// Features per block of maskedInputGradient. A block of w, transposed, takes
// MASKED_BLOCK · outFeatures · 4 bytes: 32 KiB for fc1's 128 outputs, the L1 data cache size.
const MASKED_BLOCK = 64;
// One block of w transposed: blockWeights[jj · outFeatures + o] = w[o, blockStart + jj].
let blockWeights = new Float32Array(0);
// Positions in the block of one row's kept features, padded to a multiple of 8.
let keptFeatures = new Int32Array(0);

// dx[i, j] = sum over o of dy[i, o] · w[o, j] where mask[i, j] != 0, and 0 where it is 0.
// The sums run over o in the same order as multiplyStrided's, so the kept values are equal to
// the unmasked product's. Features go in blocks whose transposed weights stay in the cache while
// every row of dy reads them, and each row's kept features of a block go 8 at a time. For fc1
// (1568 → 128, 50 rows, half of the mask kept) this took 59 microseconds per image against 90
// for the unmasked 2 × 4 tiles. Reading the block of w in place took 70, and a float64 copy of
// it 67. These are the best of 80 calls on an AMD EPYC with Node 20, on a machine shared with
// other jobs. The fc1 backward row of `node dist/bench/kernels.js` shows the whole layer.
function maskedInputGradient(
  n: number,
  inFeatures: number,
  outFeatures: number,
  w: Float32Array,
  dy: Float32Array,
  mask: Uint8Array,
  dx: Float32Array,
): void {
  if (blockWeights.length < MASKED_BLOCK * outFeatures) {
    blockWeights = new Float32Array(MASKED_BLOCK * outFeatures);
  }
  if (keptFeatures.length < MASKED_BLOCK) keptFeatures = new Int32Array(MASKED_BLOCK);
  const transposed = blockWeights;
  const kept = keptFeatures;

  for (let blockStart = 0; blockStart < inFeatures; blockStart += MASKED_BLOCK) {
    const blockSize = Math.min(MASKED_BLOCK, inFeatures - blockStart);
    for (let o = 0; o < outFeatures; o++) {
      const wRow = o * inFeatures + blockStart;
      for (let jj = 0; jj < blockSize; jj++) transposed[jj * outFeatures + o] = w[wRow + jj];
    }

    for (let i = 0; i < n; i++) {
      // Gather the kept features of row i without a branch on the random mask, and zero dx.
      const dxBlock = i * inFeatures + blockStart;
      let keptCount = 0;
      for (let jj = 0; jj < blockSize; jj++) {
        const keep = mask[dxBlock + jj] !== 0;
        dx[dxBlock + jj] = 0;
        kept[keptCount] = jj;
        keptCount += +keep;
      }
      if (keptCount === 0) continue;
      // A partial group of 8 repeats the last kept feature, which is computed again and stored
      // with the same value.
      const groupedCount = (keptCount + 7) & ~7;
      for (let k = keptCount; k < groupedCount; k++) kept[k] = kept[keptCount - 1];

      // Offsets into `transposed` minus dyRow, so that one index d walks dy and all 8 rows.
      const dyRow = i * outFeatures;
      const dyRowEnd = dyRow + outFeatures;
      for (let k = 0; k < groupedCount; k += 8) {
        const j0 = kept[k],
          j1 = kept[k + 1],
          j2 = kept[k + 2],
          j3 = kept[k + 3];
        const j4 = kept[k + 4],
          j5 = kept[k + 5],
          j6 = kept[k + 6],
          j7 = kept[k + 7];
        const w0 = j0 * outFeatures - dyRow,
          w1 = j1 * outFeatures - dyRow,
          w2 = j2 * outFeatures - dyRow,
          w3 = j3 * outFeatures - dyRow;
        const w4 = j4 * outFeatures - dyRow,
          w5 = j5 * outFeatures - dyRow,
          w6 = j6 * outFeatures - dyRow,
          w7 = j7 * outFeatures - dyRow;
        let s0 = 0,
          s1 = 0,
          s2 = 0,
          s3 = 0;
        let s4 = 0,
          s5 = 0,
          s6 = 0,
          s7 = 0;
        for (let d = dyRow; d < dyRowEnd; d++) {
          const gradient = dy[d];
          s0 += gradient * transposed[w0 + d];
          s1 += gradient * transposed[w1 + d];
          s2 += gradient * transposed[w2 + d];
          s3 += gradient * transposed[w3 + d];
          s4 += gradient * transposed[w4 + d];
          s5 += gradient * transposed[w5 + d];
          s6 += gradient * transposed[w6 + d];
          s7 += gradient * transposed[w7 + d];
        }
        dx[dxBlock + j0] = s0;
        dx[dxBlock + j1] = s1;
        dx[dxBlock + j2] = s2;
        dx[dxBlock + j3] = s3;
        dx[dxBlock + j4] = s4;
        dx[dxBlock + j5] = s5;
        dx[dxBlock + j6] = s6;
        dx[dxBlock + j7] = s7;
      }
    }
  }
}
