// A small learnable stand-in for Fashion-MNIST: class c is a bright 8×8 square at one of ten
// places on a noisy background, so a few epochs of any network separate the classes.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

import { gzipSync } from "fflate";

import type { FashionMnist, ImageSet } from "../src/data/index.js";
import { Random } from "../src/random.js";

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

function idxImages(set: ImageSet): Uint8Array {
  const bytes = new Uint8Array(16 + set.count * PIXELS);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, 2051);
  view.setUint32(4, set.count);
  view.setUint32(8, SIDE);
  view.setUint32(12, SIDE);
  bytes.set(set.pixels.subarray(0, set.count * PIXELS), 16);
  return bytes;
}

function idxLabels(set: ImageSet): Uint8Array {
  const bytes = new Uint8Array(8 + set.count);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, 2049);
  view.setUint32(4, set.count);
  bytes.set(set.labels.subarray(0, set.count), 8);
  return bytes;
}

/** Writes the four gzipped IDX files of a synthetic data set into `directory`; returns it. */
export function writeSyntheticDataDirectory(
  directory: string,
  trainCount: number,
  testCount: number,
  seed = 1,
): string {
  const data = syntheticFashionMnist(trainCount, testCount, seed);
  mkdirSync(directory, { recursive: true });
  const files: [string, Uint8Array][] = [
    ["train-images-idx3-ubyte.gz", idxImages(data.train)],
    ["train-labels-idx1-ubyte.gz", idxLabels(data.train)],
    ["t10k-images-idx3-ubyte.gz", idxImages(data.test)],
    ["t10k-labels-idx1-ubyte.gz", idxLabels(data.test)],
  ];
  for (const [name, bytes] of files) writeFileSync(join(directory, name), gzipSync(bytes));
  return directory;
}
