// Scratch buffers shared by the convolution kernels, grown on first use and reused afterwards, so
// that no call allocates once the largest layer has run. Calls cannot overlap because the kernels
// are synchronous and every worker thread has its own module instance. Float64 scratch keeps
// every sum in double precision until its single rounding to float32 on the final store.
import type { Conv2dGeometry } from "./conv2d.js";

/** Returns `buffer` when it has at least `size` values, else a new zeroed one of that size. */
export function float64Scratch(
  buffer: Float64Array<ArrayBuffer>,
  size: number,
): Float64Array<ArrayBuffer> {
  return buffer.length >= size ? buffer : new Float64Array(size);
}

/** Returns `buffer` when it has at least `size` values, else a new zeroed one of that size. */
export function int32Scratch(
  buffer: Int32Array<ArrayBuffer>,
  size: number,
): Int32Array<ArrayBuffer> {
  return buffer.length >= size ? buffer : new Int32Array(size);
}

// One image's input with `pad` zeros around every plane: [inChannels, paddedHeight, paddedWidth].
let paddedPlanes = new Float64Array(0);

/**
 * Returns the padded-input scratch for geometry g, all zero over
 * [inChannels, inHeight + 2 · pad, inWidth + 2 · pad]. copyIntoPaddedPlanes writes only the
 * interior, so the border stays zero for every image of the call.
 */
export function clearedPaddedPlanes(g: Conv2dGeometry): Float64Array {
  const size = g.inChannels * (g.inHeight + 2 * g.pad) * (g.inWidth + 2 * g.pad);
  paddedPlanes = float64Scratch(paddedPlanes, size);
  paddedPlanes.fill(0, 0, size);
  return paddedPlanes;
}

/** Copies image `image` of x [n, inChannels, inHeight, inWidth] into the interior of `planes`. */
export function copyIntoPaddedPlanes(
  g: Conv2dGeometry,
  x: Float32Array,
  image: number,
  planes: Float64Array,
): void {
  const { inChannels, inHeight, inWidth, pad } = g;
  const paddedWidth = inWidth + 2 * pad;
  const paddedPlaneSize = (inHeight + 2 * pad) * paddedWidth;
  const xPlaneSize = inHeight * inWidth;
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
