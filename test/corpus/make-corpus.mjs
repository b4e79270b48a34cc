// Writes the bad-input corpus of test/bad-input.test.ts into this directory: tiny Fashion-MNIST
// data directories (3 training and 2 test images) that each break the format in one way, and
// safetensors files that each break --init-weights for --net linear in one way.
//
// The output is deterministic (gzip with mtime 0, fixed pixel values), so running
// `node test/corpus/make-corpus.mjs` again with the same fflate version gives the same bytes. The generated files are
// committed, so the corpus can be read without running this script.
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { Buffer } from "node:buffer";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

import { gunzipSync, gzipSync } from "fflate";

const CORPUS = fileURLToPath(new URL(".", import.meta.url));
const SIDE = 28;

const FILES = {
  trainImages: "train-images-idx3-ubyte.gz",
  trainLabels: "train-labels-idx1-ubyte.gz",
  testImages: "t10k-images-idx3-ubyte.gz",
  testLabels: "t10k-labels-idx1-ubyte.gz",
};

/**
 * Builds an IDX image file. Pixel i of image n is (n * 37 + i * 7) mod 256. The header declares
 * `declaredCount` images (the real count by default) and magic 2051 unless the options give others.
 */
function idxImages(
  count,
  { rows = SIDE, columns = SIDE, declaredCount = count, magic = 2051 } = {},
) {
  const pixels = count * rows * columns;
  const bytes = new Uint8Array(16 + pixels);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, magic);
  view.setUint32(4, declaredCount);
  view.setUint32(8, rows);
  view.setUint32(12, columns);
  const imageSize = rows * columns;
  for (let i = 0; i < pixels; i++) {
    bytes[16 + i] = (Math.floor(i / imageSize) * 37 + (i % imageSize) * 7) & 255;
  }
  return bytes;
}

function idxLabels(labels) {
  const bytes = new Uint8Array(8 + labels.length);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, 2049);
  view.setUint32(4, labels.length);
  bytes.set(labels, 8);
  return bytes;
}

function gzip(bytes, level = 6) {
  return gzipSync(bytes, { level, mtime: 0 });
}

/** Returns the four files of the valid base set, gzip-compressed. */
function validFiles() {
  return {
    trainImages: gzip(idxImages(3)),
    trainLabels: gzip(idxLabels([0, 1, 2])),
    testImages: gzip(idxImages(2)),
    testLabels: gzip(idxLabels([3, 4])),
  };
}

function firstHalf(bytes) {
  return bytes.subarray(0, Math.floor(bytes.length / 2));
}

/** Compresses `bytes` and changes one data byte, so that only the CRC-32 detects the damage. */
function gzipWithBadCrc(bytes) {
  // Level 0 stores the data verbatim in one stored block: a 10-byte gzip header, a 5-byte block
  // header, then the IDX bytes. Changing one IDX byte keeps the deflate stream valid.
  const compressed = gzip(bytes, 0);
  const pixelOffset = 10 + 5 + 16 + 100;
  compressed[pixelOffset] ^= 0xff;
  const decompressed = gunzipSync(compressed);
  const changed = decompressed.filter((byte, i) => byte !== bytes[i]).length;
  if (decompressed.length !== bytes.length || changed !== 1) {
    throw new Error(`bad-crc: expected exactly one changed byte, found ${changed}`);
  }
  return compressed;
}

/** Each data case: a short description and the files that replace those of the valid set. */
const DATA_CASES = {
  valid: ["the valid base set, 3 training and 2 test images", {}],
  "truncated-gzip": [
    "train images cut after half of the gzip bytes",
    { trainImages: firstHalf(validFiles().trainImages) },
  ],
  "bad-crc": [
    "train images with one data byte changed, so the CRC-32 in the gzip trailer does not match",
    { trainImages: gzipWithBadCrc(idxImages(3)) },
  ],
  "not-gzip": ["train images as plain IDX bytes under the .gz name", { trainImages: idxImages(3) }],
  "empty-file": ["train labels: a file of 0 bytes", { trainLabels: new Uint8Array(0) }],
  "wrong-magic": [
    "train images with magic 0x00000d03 (an IDX file of 32-bit floats)",
    { trainImages: gzip(idxImages(3, { magic: 0x00000d03 })) },
  ],
  "count-too-large": [
    "train images whose header declares 4 images but which contains 3",
    { trainImages: gzip(idxImages(3, { declaredCount: 4 })) },
  ],
  "count-too-small": [
    "train images whose header declares 2 images but which contains 3",
    { trainImages: gzip(idxImages(3, { declaredCount: 2 })) },
  ],
  "count-mismatch": ["3 train images but 2 train labels", { trainLabels: gzip(idxLabels([0, 1])) }],
  "label-10": ["train labels 0, 10, 2", { trainLabels: gzip(idxLabels([0, 10, 2])) }],
  "label-255": ["test labels 3, 255", { testLabels: gzip(idxLabels([3, 255])) }],
  "not-28x28": [
    "train images of 32x32 pixels",
    { trainImages: gzip(idxImages(3, { rows: 32, columns: 32 })) },
  ],
  "missing-file": ["the test labels file is absent", { testLabels: null }],
  "directory-as-file": ["train-images-idx3-ubyte.gz is a directory", { trainImages: "directory" }],
};

function writeDataCases() {
  const root = join(CORPUS, "data");
  rmSync(root, { recursive: true, force: true });
  for (const [name, [description, replacements]] of Object.entries(DATA_CASES)) {
    const directory = join(root, name);
    mkdirSync(directory, { recursive: true });
    const files = { ...validFiles(), ...replacements };
    for (const [key, bytes] of Object.entries(files)) {
      const path = join(directory, FILES[key]);
      if (bytes === null) continue;
      if (bytes === "directory") {
        // git keeps no empty directories, so this one contains a note.
        mkdirSync(path);
        writeFileSync(join(path, "README"), "A directory where the trainer expects a file.\n");
        continue;
      }
      writeFileSync(path, bytes);
    }
    writeFileSync(join(directory, "README"), `${description}\n`);
  }
}

/**
 * Encodes a safetensors file from [name, dtype, shape, byteLength] entries. The tensor bytes are
 * zeros, and the header is padded with spaces to a multiple of 8 bytes.
 */
function safetensors(entries, metadata = { net: "linear" }) {
  const header = { __metadata__: metadata };
  let offset = 0;
  for (const [name, dtype, shape, byteLength] of entries) {
    header[name] = { dtype, shape, data_offsets: [offset, offset + byteLength] };
    offset += byteLength;
  }
  return safetensorsFromHeader(JSON.stringify(header), offset);
}

function safetensorsFromHeader(headerText, dataLength, declaredLength) {
  const text = Buffer.from(headerText, "utf8");
  const padded = Math.ceil(text.length / 8) * 8;
  const bytes = new Uint8Array(8 + padded + dataLength);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(declaredLength ?? padded), true);
  bytes.set(text, 8);
  bytes.fill(0x20, 8 + text.length, 8 + padded);
  return bytes;
}

/** Each weights case for --net linear (fc.weight [10, 784], fc.bias [10], both F32). */
const WEIGHTS_CASES = {
  // The header length is 4096 bytes, but only the 40 bytes of a short header follow it.
  "header-past-end": safetensorsFromHeader('{"__metadata__":{"net":"linear"}}', 0, 4096),
  "invalid-json": safetensorsFromHeader('{"fc.bias":{"dtype":"F32","shape":[10],', 40),
  "wrong-dtype": safetensors([
    ["fc.weight", "F16", [10, 784], 10 * 784 * 2],
    ["fc.bias", "F16", [10], 10 * 2],
  ]),
  "wrong-shape": safetensors([
    ["fc.weight", "F32", [10, 100], 10 * 100 * 4],
    ["fc.bias", "F32", [10], 10 * 4],
  ]),
  "missing-tensor": safetensors([["fc.bias", "F32", [10], 10 * 4]]),
};

function writeWeightsCases() {
  const root = join(CORPUS, "weights");
  rmSync(root, { recursive: true, force: true });
  mkdirSync(root, { recursive: true });
  for (const [name, bytes] of Object.entries(WEIGHTS_CASES)) {
    writeFileSync(join(root, `${name}.safetensors`), bytes);
  }
}

writeDataCases();
writeWeightsCases();
