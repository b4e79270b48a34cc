// Synthetic data sets written as IDX files, for tests that run the command-line tools.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

import { gzipSync } from "fflate";

import type { ImageSet } from "../src/data/index.js";
import { syntheticFashionMnist } from "../src/data/synthetic.js";

export { syntheticFashionMnist, syntheticImageSet } from "../src/data/synthetic.js";

const SIDE = 28;
const PIXELS = SIDE * SIDE;

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
