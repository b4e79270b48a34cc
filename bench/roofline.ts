// The speed limit that the kernels are measured against: GFLOP/s of a register-tiled float32
// matrix multiply in plain TypeScript on one thread. Kernel figures read as a fraction of it.
//
// Run directly: node dist/bench/roofline.js
import { performance } from "node:perf_hooks";
import { pathToFileURL } from "node:url";

/** Result of measureRoofline. */
export interface RooflineFigure {
  /** Median GFLOP/s of the tiled multiply, counting 2 FLOPs per multiply-add. */
  gflops: number;
  /** GFLOP/s of every run, in run order. */
  runs: number[];
  /** Matrix side: the multiply is side × side times side × side. */
  side: number;
  /** Multiplies per run. */
  repeats: number;
}

/**
 * Computes c = a · b for row-major square matrices of size `side` (a multiple of 4), four rows of
 * c by four columns at a time, so that each loaded a and b value feeds four multiply-adds.
 * a [side, side], b [side, side], c [side, side].
 */
function multiplyTiled(side: number, a: Float32Array, b: Float32Array, c: Float32Array): void {
  for (let row = 0; row < side; row += 4) {
    const aRow0 = row * side;
    const aRow1 = aRow0 + side;
    const aRow2 = aRow1 + side;
    const aRow3 = aRow2 + side;
    for (let column = 0; column < side; column += 4) {
      let c00 = 0,
        c01 = 0,
        c02 = 0,
        c03 = 0;
      let c10 = 0,
        c11 = 0,
        c12 = 0,
        c13 = 0;
      let c20 = 0,
        c21 = 0,
        c22 = 0,
        c23 = 0;
      let c30 = 0,
        c31 = 0,
        c32 = 0,
        c33 = 0;
      let bIndex = column;
      for (let k = 0; k < side; k++) {
        const b0 = b[bIndex];
        const b1 = b[bIndex + 1];
        const b2 = b[bIndex + 2];
        const b3 = b[bIndex + 3];
        const a0 = a[aRow0 + k];
        const a1 = a[aRow1 + k];
        const a2 = a[aRow2 + k];
        const a3 = a[aRow3 + k];
        c00 += a0 * b0;
        c01 += a0 * b1;
        c02 += a0 * b2;
        c03 += a0 * b3;
        c10 += a1 * b0;
        c11 += a1 * b1;
        c12 += a1 * b2;
        c13 += a1 * b3;
        c20 += a2 * b0;
        c21 += a2 * b1;
        c22 += a2 * b2;
        c23 += a2 * b3;
        c30 += a3 * b0;
        c31 += a3 * b1;
        c32 += a3 * b2;
        c33 += a3 * b3;
        bIndex += side;
      }
      const c0 = aRow0 + column;
      const c1 = aRow1 + column;
      const c2 = aRow2 + column;
      const c3 = aRow3 + column;
      c[c0] = c00;
      c[c0 + 1] = c01;
      c[c0 + 2] = c02;
      c[c0 + 3] = c03;
      c[c1] = c10;
      c[c1 + 1] = c11;
      c[c1 + 2] = c12;
      c[c1 + 3] = c13;
      c[c2] = c20;
      c[c2 + 1] = c21;
      c[c2 + 2] = c22;
      c[c2 + 3] = c23;
      c[c3] = c30;
      c[c3 + 1] = c31;
      c[c3 + 2] = c32;
      c[c3 + 3] = c33;
    }
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((p, q) => p - q);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/**
 * Measures the tiled multiply of two side × side matrices (default 256): `runs` timed runs of
 * `repeats` multiplies each after a warm-up, reporting the median.
 */
export function measureRoofline(
  options: { side?: number; repeats?: number; runs?: number } = {},
): RooflineFigure {
  const side = options.side ?? 256;
  const repeats = options.repeats ?? 4;
  const runCount = options.runs ?? 7;
  if (side % 4 !== 0) throw new Error(`roofline: side must be a multiple of 4, got ${side}`);

  const a = new Float32Array(side * side);
  const b = new Float32Array(side * side);
  const c = new Float32Array(side * side);
  for (let i = 0; i < a.length; i++) {
    a[i] = ((i * 7919) % 1000) / 1000 - 0.5;
    b[i] = ((i * 104729) % 1000) / 1000 - 0.5;
  }

  // Warm-up, so that the timed runs measure optimized code.
  for (let i = 0; i < 3; i++) multiplyTiled(side, a, b, c);

  const flopsPerRun = 2 * side * side * side * repeats;
  const runs: number[] = [];
  for (let run = 0; run < runCount; run++) {
    const start = performance.now();
    for (let i = 0; i < repeats; i++) multiplyTiled(side, a, b, c);
    const seconds = (performance.now() - start) / 1000;
    runs.push(flopsPerRun / seconds / 1e9);
  }
  return { gflops: median(runs), runs, side, repeats };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const figure = measureRoofline();
  console.log(
    `roofline: ${figure.gflops.toFixed(2)} GFLOP/s (median of ${figure.runs.length} runs, ` +
      `${figure.repeats} multiplies of ${figure.side}x${figure.side} float32 matrices each, 1 thread)`,
  );
}
