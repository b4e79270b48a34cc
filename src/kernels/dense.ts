// Fully connected layer over flat float32 buffers in PyTorch layout (y = x w^T + b).

// Float64 scratch for one row of dx or dw, so that each sum is rounded to float32 once while the
// inner loops still run over contiguous memory. It grows on first use and is reused afterwards.
// Calls cannot overlap because the kernels are synchronous and every worker thread has its own
// module instance.
let rowAccumulator = new Float64Array(0);

function rowAccumulatorOfSize(size: number): Float64Array {
  if (rowAccumulator.length < size) {
    rowAccumulator = new Float64Array(size);
  }
  return rowAccumulator;
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
  for (let i = 0; i < n; i++) {
    const xRow = i * inFeatures;
    const xRowEnd = xRow + inFeatures;
    const yRow = i * outFeatures;
    for (let o = 0; o < outFeatures; o++) {
      let sum = b[o];
      let wIndex = o * inFeatures;
      for (let xIndex = xRow; xIndex < xRowEnd; xIndex++) {
        sum += x[xIndex] * w[wIndex];
        wIndex++;
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
  // forward: y[i, o] = b[o] + sum over j of w[o, j] * x[i, j]
  // so:      dx[i, j] = sum over o of dy[i, o] * w[o, j]
  //          dw[o, j] = sum over i of dy[i, o] * x[i, j]
  //          db[o]    = sum over i of dy[i, o]
  // A zero dy[i, o] (a unit that dropout removed) contributes nothing, so its row is skipped.
  const sums = rowAccumulatorOfSize(inFeatures);

  if (dx !== null) {
    for (let i = 0; i < n; i++) {
      const dyRow = i * outFeatures;
      sums.fill(0, 0, inFeatures);
      for (let o = 0; o < outFeatures; o++) {
        const gradient = dy[dyRow + o];
        if (gradient === 0) continue;
        const wRow = o * inFeatures;
        for (let j = 0; j < inFeatures; j++) {
          sums[j] += gradient * w[wRow + j];
        }
      }
      const dxRow = i * inFeatures;
      for (let j = 0; j < inFeatures; j++) {
        dx[dxRow + j] = sums[j];
      }
    }
  }

  for (let o = 0; o < outFeatures; o++) {
    sums.fill(0, 0, inFeatures);
    let biasSum = 0;
    for (let i = 0; i < n; i++) {
      const gradient = dy[i * outFeatures + o];
      biasSum += gradient;
      if (gradient === 0) continue;
      const xRow = i * inFeatures;
      for (let j = 0; j < inFeatures; j++) {
        sums[j] += gradient * x[xRow + j];
      }
    }
    const dwRow = o * inFeatures;
    for (let j = 0; j < inFeatures; j++) {
      dw[dwRow + j] = sums[j];
    }
    db[o] = biasSum;
  }
}
