// A small learnable stand-in for Fashion-MNIST, for tests and benchmarks: class c is a bright
// 8×8 square at one of ten places on a noisy background, so a few epochs of any network
// separate the classes.
import type { FashionMnist, ImageSet } from "./fashion-mnist.js";
import { Random } from "../random.js";

const SIDE = 28;
const PIXELS = SIDE * SIDE;

export function syntheticImageSet(count: number, seed: number): ImageSet {
  const random = new Random(seed);
  const pixels = new Uint8Array(new SharedArrayBuffer(count * PIXELS));
  const labels = new Uint8Array(new SharedArrayBuffer(count));
  for (let n = 0; n < count; n++) {
    const label = random.nextBelow(10);
    labels[n] = label;
    const top = 2 + 12 * Math.floor(label / 5);
    const left = 1 + 5 * (label % 5);
    for (let i = 0; i < PIXELS; i++) {
      const row = Math.floor(i / SIDE);
      const column = i % SIDE;
      const inside = row >= top && row < top + 8 && column >= left && column < left + 8;
      // Many exact zeros, as in real images, so pooling ties are exercised.
      const noise = random.nextDouble() < 0.5 ? 0 : random.nextBelow(80);
      pixels[n * PIXELS + i] = inside ? 160 + random.nextBelow(96) : noise;
    }
  }
  return { count, rows: 28, columns: 28, pixels, labels };
}

export function syntheticFashionMnist(
  trainCount: number,
  testCount: number,
  seed = 1,
): FashionMnist {
  return {
    directory: "(synthetic)",
    train: syntheticImageSet(trainCount, seed),
    test: syntheticImageSet(testCount, seed + 1000),
  };
}
