// Tests of the Fashion-MNIST loader on small IDX files written to a temporary directory, and on
// the real data set when Debian's dataset-fashion-mnist package is installed.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { gzipSync } from "fflate";
import {
  CLASS_NAMES,
  DataError,
  DEBIAN_DATA_DIRECTORY,
  FASHION_MNIST_FILES,
  loadFashionMnist,
  locateDataDirectory,
  parseIdxImages,
  parseIdxLabels,
} from "../src/data/index.js";

// Compiled, this file is dist/test/data.test.js, so the repository root is two levels up.
const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const DOWNLOAD_SCRIPT = path.join(REPO_ROOT, "data", "fashion_mnist", "download.sh");

const TEMP_ROOT = mkdtempSync(path.join(os.tmpdir(), "fashion-data-test-"));
after(() => rmSync(TEMP_ROOT, { recursive: true, force: true }));

let tempCounter = 0;
function makeTempDirectory(): string {
  tempCounter += 1;
  const directory = path.join(TEMP_ROOT, `case-${tempCounter}`);
  mkdirSync(directory);
  return directory;
}

interface IdxImagesSpec {
  count: number;
  rows?: number;
  columns?: number;
  magic?: number;
  /** Bytes added to (positive) or removed from (negative) the end of the pixel data. */
  extraBytes?: number;
}

/** Builds an IDX image file whose pixel i of image n is (n * 7 + i) mod 256. */
function buildIdxImages(spec: IdxImagesSpec): Uint8Array {
  const rows = spec.rows ?? 28;
  const columns = spec.columns ?? 28;
  const pixelCount = spec.count * rows * columns + (spec.extraBytes ?? 0);
  const bytes = new Uint8Array(16 + pixelCount);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, spec.magic ?? 2051);
  view.setUint32(4, spec.count);
  view.setUint32(8, rows);
  view.setUint32(12, columns);
  const imageSize = rows * columns;
  for (let i = 0; i < pixelCount; i++) {
    bytes[16 + i] = (Math.floor(i / imageSize) * 7 + i) & 255;
  }
  return bytes;
}

/** Builds an IDX label file containing `labels`, with `count` in the header (labels.length by default). */
function buildIdxLabels(labels: number[], options: { magic?: number; count?: number } = {}) {
  const bytes = new Uint8Array(8 + labels.length);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, options.magic ?? 2049);
  view.setUint32(4, options.count ?? labels.length);
  bytes.set(labels, 8);
  return bytes;
}

function cyclicLabels(count: number): number[] {
  return Array.from({ length: count }, (_, i) => i % 10);
}

type FileKey = keyof typeof FASHION_MNIST_FILES;

interface DatasetSpec {
  /** Replaces the content of a file, written gzip-compressed unless `plain` is set. */
  contents?: Partial<Record<FileKey, Uint8Array>>;
  /** Replaces the raw bytes written to a `.gz` file, without compressing them. */
  rawGzip?: Partial<Record<FileKey, Uint8Array>>;
  /** Writes the names without `.gz`, uncompressed. */
  plain?: boolean;
  /** Leaves these files out. */
  omit?: FileKey[];
}

const TRAIN_COUNT = 5;
const TEST_COUNT = 3;

function defaultContents(): Record<FileKey, Uint8Array> {
  return {
    trainImages: buildIdxImages({ count: TRAIN_COUNT }),
    trainLabels: buildIdxLabels(cyclicLabels(TRAIN_COUNT)),
    testImages: buildIdxImages({ count: TEST_COUNT }),
    testLabels: buildIdxLabels([9, 0, 4]),
  };
}

/** Writes the four files into a new temporary directory and returns the directory. */
function writeDataset(spec: DatasetSpec = {}): string {
  const directory = makeTempDirectory();
  const contents = { ...defaultContents(), ...spec.contents };
  for (const key of Object.keys(FASHION_MNIST_FILES) as FileKey[]) {
    if (spec.omit?.includes(key)) continue;
    const gzName = FASHION_MNIST_FILES[key];
    const raw = spec.rawGzip?.[key];
    if (raw !== undefined) {
      writeFileSync(path.join(directory, gzName), raw);
    } else if (spec.plain) {
      writeFileSync(path.join(directory, gzName.slice(0, -3)), contents[key]);
    } else {
      writeFileSync(path.join(directory, gzName), gzipSync(contents[key]));
    }
  }
  return directory;
}

function filePath(directory: string, key: FileKey, plain = false): string {
  const name = FASHION_MNIST_FILES[key];
  return path.join(directory, plain ? name.slice(0, -3) : name);
}

/** Asserts that `action` throws a DataError whose message contains every fragment. */
function assertDataError(action: () => unknown, fragments: string[]): void {
  assert.throws(action, (error: unknown) => {
    assert.ok(error instanceof DataError, `expected a DataError, got ${String(error)}`);
    assert.equal(error.name, "DataError");
    for (const fragment of fragments) {
      assert.ok(
        error.message.includes(fragment),
        `message lacks ${JSON.stringify(fragment)}: ${error.message}`,
      );
    }
    return true;
  });
}

describe("loadFashionMnist", () => {
  it("loads gzip files into shared memory", () => {
    const directory = writeDataset();
    const data = loadFashionMnist(directory);
    const expected = defaultContents();

    assert.equal(data.directory, directory);
    assert.equal(data.train.count, TRAIN_COUNT);
    assert.equal(data.train.rows, 28);
    assert.equal(data.train.columns, 28);
    assert.equal(data.test.count, TEST_COUNT);
    assert.ok(data.train.pixels.buffer instanceof SharedArrayBuffer);
    assert.ok(data.train.labels.buffer instanceof SharedArrayBuffer);
    assert.ok(data.test.pixels.buffer instanceof SharedArrayBuffer);
    assert.ok(data.test.labels.buffer instanceof SharedArrayBuffer);
    assert.equal(data.train.pixels.byteOffset, 0);
    assert.equal(data.train.pixels.buffer.byteLength, TRAIN_COUNT * 784);
    assert.deepEqual([...data.train.pixels], [...expected.trainImages.subarray(16)]);
    assert.deepEqual([...data.train.labels], cyclicLabels(TRAIN_COUNT));
    assert.deepEqual([...data.test.pixels], [...expected.testImages.subarray(16)]);
    assert.deepEqual([...data.test.labels], [9, 0, 4]);
  });

  it("loads uncompressed files", () => {
    const directory = writeDataset({ plain: true });
    const data = loadFashionMnist(directory);

    assert.equal(data.train.count, TRAIN_COUNT);
    assert.equal(data.test.count, TEST_COUNT);
    assert.deepEqual([...data.test.labels], [9, 0, 4]);
    assert.deepEqual([...data.train.pixels], [...defaultContents().trainImages.subarray(16)]);
  });

  it("prefers .gz over the uncompressed name", () => {
    const directory = writeDataset();
    writeFileSync(filePath(directory, "testLabels", true), buildIdxLabels([1, 1, 1]));
    const data = loadFashionMnist(directory);

    assert.deepEqual([...data.test.labels], [9, 0, 4]);
  });

  it("rejects a truncated gzip file", () => {
    const whole = gzipSync(defaultContents().trainImages);
    const directory = writeDataset({
      rawGzip: { trainImages: whole.subarray(0, whole.length >> 1) },
    });

    assertDataError(
      () => loadFashionMnist(directory),
      [filePath(directory, "trainImages"), "not a valid gzip file", "truncated", "Re-download it"],
    );
  });

  it("rejects truncated gzip with huge size", () => {
    const whole = gzipSync(defaultContents().trainImages);
    const cut = whole.slice(0, whole.length - 20);
    cut.set([0xff, 0xff, 0xff, 0xff], cut.length - 4);
    const directory = writeDataset({ rawGzip: { trainImages: cut } });

    assertDataError(
      () => loadFashionMnist(directory),
      [filePath(directory, "trainImages"), "not a valid gzip file", "probably truncated"],
    );
  });

  it("rejects a gzip CRC mismatch", () => {
    const corrupt = gzipSync(defaultContents().trainLabels);
    corrupt[corrupt.length - 8] ^= 0x01;
    const directory = writeDataset({ rawGzip: { trainLabels: corrupt } });

    assertDataError(
      () => loadFashionMnist(directory),
      [filePath(directory, "trainLabels"), "not a valid gzip file", "CRC-32 mismatch"],
    );
  });

  it("rejects a wrong gzip size field", () => {
    const corrupt = gzipSync(defaultContents().trainLabels);
    corrupt[corrupt.length - 4] += 1;
    const directory = writeDataset({ rawGzip: { trainLabels: corrupt } });

    assertDataError(
      () => loadFashionMnist(directory),
      [
        filePath(directory, "trainLabels"),
        "not a valid gzip file",
        "decompressed to 13 bytes but the trailer declares 14",
      ],
    );
  });

  it("rejects a .gz file that is not gzip", () => {
    const directory = writeDataset({ rawGzip: { testImages: buildIdxImages({ count: 3 }) } });

    assertDataError(
      () => loadFashionMnist(directory),
      [filePath(directory, "testImages"), "not a valid gzip file (no gzip header)"],
    );
  });

  it("rejects gzip shorter than its trailer", () => {
    const whole = gzipSync(defaultContents().trainImages);
    const directory = writeDataset({ rawGzip: { trainImages: whole.subarray(0, 12) } });

    assertDataError(
      () => loadFashionMnist(directory),
      [filePath(directory, "trainImages"), "not a valid gzip file (truncated, 12 bytes"],
    );
  });

  it("rejects an empty .gz file", () => {
    const directory = writeDataset({ rawGzip: { trainImages: new Uint8Array(0) } });

    assertDataError(
      () => loadFashionMnist(directory),
      [filePath(directory, "trainImages"), "empty file"],
    );
  });

  it("rejects an empty uncompressed file", () => {
    const directory = writeDataset({ plain: true, contents: { testLabels: new Uint8Array(0) } });

    assertDataError(
      () => loadFashionMnist(directory),
      [filePath(directory, "testLabels", true), "empty file"],
    );
  });

  it("rejects a file shorter than its header", () => {
    const directory = writeDataset({ contents: { trainImages: new Uint8Array([0, 0, 8, 3]) } });

    assertDataError(
      () => loadFashionMnist(directory),
      [filePath(directory, "trainImages"), "shorter than the 16-byte header"],
    );
  });

  it("rejects a label file as images", () => {
    const directory = writeDataset({
      contents: { trainImages: buildIdxImages({ count: 5, magic: 2049 }) },
    });

    assertDataError(
      () => loadFashionMnist(directory),
      [filePath(directory, "trainImages"), "invalid magic number 2049", "expected 2051"],
    );
  });

  it("rejects a wrong label magic number", () => {
    const labels = buildIdxLabels(cyclicLabels(TRAIN_COUNT), { magic: 0x1234 });
    const directory = writeDataset({ contents: { trainLabels: labels } });

    assertDataError(
      () => loadFashionMnist(directory),
      [filePath(directory, "trainLabels"), "invalid magic number 4660", "expected 2049"],
    );
  });

  it("rejects images that are not 28x28", () => {
    const images = buildIdxImages({ count: TRAIN_COUNT, rows: 27, columns: 28 });
    const directory = writeDataset({ contents: { trainImages: images } });

    assertDataError(
      () => loadFashionMnist(directory),
      [filePath(directory, "trainImages"), "images are 27x28 pixels", "expected 28x28"],
    );
  });

  it("rejects image data longer than the header", () => {
    const images = buildIdxImages({ count: TRAIN_COUNT, extraBytes: 10 });
    const directory = writeDataset({ contents: { trainImages: images } });

    assertDataError(
      () => loadFashionMnist(directory),
      [filePath(directory, "trainImages"), "10 unexpected bytes after the data", "3920 bytes"],
    );
  });

  it("rejects image data shorter than the header", () => {
    const images = buildIdxImages({ count: TRAIN_COUNT, extraBytes: -784 });
    const directory = writeDataset({ contents: { trainImages: images } });

    assertDataError(
      () => loadFashionMnist(directory),
      [filePath(directory, "trainImages"), "truncated", "3920 bytes", "only 3136 bytes"],
    );
  });

  it("rejects label data longer than the header", () => {
    const labels = buildIdxLabels(cyclicLabels(TRAIN_COUNT + 2), { count: TRAIN_COUNT });
    const directory = writeDataset({ contents: { trainLabels: labels } });

    assertDataError(
      () => loadFashionMnist(directory),
      [filePath(directory, "trainLabels"), "2 unexpected bytes after the data"],
    );
  });

  it("rejects label data shorter than the header", () => {
    const labels = buildIdxLabels(cyclicLabels(TRAIN_COUNT - 1), { count: TRAIN_COUNT });
    const directory = writeDataset({ contents: { trainLabels: labels } });

    assertDataError(
      () => loadFashionMnist(directory),
      [filePath(directory, "trainLabels"), "truncated", "only 4 bytes"],
    );
  });

  it("rejects differing image and label counts", () => {
    const directory = writeDataset({ contents: { testLabels: buildIdxLabels([1, 2]) } });

    assertDataError(
      () => loadFashionMnist(directory),
      [
        filePath(directory, "testImages"),
        filePath(directory, "testLabels"),
        "contains 3 images",
        "contains 2 labels",
      ],
    );
  });

  it("rejects a label outside 0 to 9", () => {
    const directory = writeDataset({
      contents: { trainLabels: buildIdxLabels([0, 1, 2, 10, 200]) },
    });

    assertDataError(
      () => loadFashionMnist(directory),
      [filePath(directory, "trainLabels"), "invalid label 10 at index 3", "0 to 9"],
    );
  });

  it("rejects a file with no images", () => {
    const directory = writeDataset({
      contents: { testImages: buildIdxImages({ count: 0 }), testLabels: buildIdxLabels([]) },
    });

    assertDataError(
      () => loadFashionMnist(directory),
      [filePath(directory, "testImages"), "contains no images"],
    );
  });

  it("rejects a missing file", () => {
    const directory = writeDataset({ omit: ["testLabels"] });

    assertDataError(
      () => loadFashionMnist(directory),
      [filePath(directory, "testLabels"), "file not found", "t10k-labels-idx1-ubyte beside it"],
    );
  });

  it("rejects a directory in place of a file", () => {
    const directory = writeDataset({ omit: ["trainLabels"] });
    mkdirSync(filePath(directory, "trainLabels"));

    assertDataError(
      () => loadFashionMnist(directory),
      [filePath(directory, "trainLabels"), "is a directory, expected a regular file"],
    );
  });
});

describe("parseIdx functions", () => {
  it("parseIdxImages returns a view of the pixels", () => {
    const bytes = buildIdxImages({ count: 2, rows: 3, columns: 4 });
    const images = parseIdxImages(bytes, "images.idx");

    assert.equal(images.count, 2);
    assert.equal(images.rows, 3);
    assert.equal(images.columns, 4);
    assert.equal(images.pixels.length, 24);
    assert.equal(images.pixels.buffer, bytes.buffer);
    assert.equal(images.pixels.byteOffset, 16);
  });

  it("parseIdxLabels returns the labels", () => {
    const labels = parseIdxLabels(buildIdxLabels([3, 1, 4]), "labels.idx");

    assert.deepEqual([...labels], [3, 1, 4]);
  });

  it("parseIdxLabels names the file", () => {
    assertDataError(
      () => parseIdxLabels(new Uint8Array(0), "some/labels.idx"),
      ["some/labels.idx", "empty file"],
    );
  });
});

describe("locateDataDirectory", () => {
  const emptyRepoRoot = makeTempDirectory();
  const absentSystemDirectory = path.join(TEMP_ROOT, "no-such-system-directory");

  it("prefers --data-dir over the variable and defaults", () => {
    const flagDirectory = writeDataset();
    const envDirectory = writeDataset();
    const repoRoot = makeTempDirectory();
    mkdirSync(path.join(repoRoot, "data", "fashion_mnist"), { recursive: true });

    const found = locateDataDirectory({
      dataDir: flagDirectory,
      env: { FASHION_MNIST_DIR: envDirectory },
      repoRoot,
      systemDirectory: writeDataset(),
    });

    assert.equal(found, flagDirectory);
  });

  it("prefers the variable over the defaults", () => {
    const envDirectory = writeDataset();
    const found = locateDataDirectory({
      env: { FASHION_MNIST_DIR: envDirectory },
      repoRoot: emptyRepoRoot,
      systemDirectory: writeDataset(),
    });

    assert.equal(found, envDirectory);
  });

  it("treats an empty flag and variable as not set", () => {
    const systemDirectory = writeDataset();
    const found = locateDataDirectory({
      dataDir: "",
      env: { FASHION_MNIST_DIR: "" },
      repoRoot: emptyRepoRoot,
      systemDirectory,
    });

    assert.equal(found, systemDirectory);
  });

  it("resolves a relative --data-dir", () => {
    const flagDirectory = writeDataset();
    const relative = path.relative(process.cwd(), flagDirectory);
    const found = locateDataDirectory({ dataDir: relative, env: {}, repoRoot: emptyRepoRoot });

    assert.equal(found, flagDirectory);
  });

  it("prefers the repository folder over the system one", () => {
    const repoRoot = makeTempDirectory();
    const repoData = path.join(repoRoot, "data", "fashion_mnist");
    mkdirSync(path.dirname(repoData));
    copyDirectory(writeDataset({ plain: true }), repoData);

    const found = locateDataDirectory({ env: {}, repoRoot, systemDirectory: writeDataset() });

    assert.equal(found, repoData);
  });

  it("skips an incomplete repository folder", () => {
    const repoRoot = makeTempDirectory();
    const repoData = path.join(repoRoot, "data", "fashion_mnist");
    mkdirSync(path.dirname(repoData));
    copyDirectory(writeDataset({ omit: ["trainImages"] }), repoData);
    const systemDirectory = writeDataset();

    const found = locateDataDirectory({ env: {}, repoRoot, systemDirectory });

    assert.equal(found, systemDirectory);
  });

  it("rejects a --data-dir missing a file", () => {
    const flagDirectory = writeDataset({ omit: ["trainLabels", "testImages"] });

    assertDataError(
      () =>
        locateDataDirectory({
          dataDir: flagDirectory,
          env: { FASHION_MNIST_DIR: writeDataset() },
          repoRoot: emptyRepoRoot,
          systemDirectory: writeDataset(),
        }),
      [
        flagDirectory,
        "(from --data-dir)",
        "missing train-labels-idx1-ubyte.gz (or train-labels-idx1-ubyte)",
        "t10k-images-idx3-ubyte.gz",
        "apt-get install dataset-fashion-mnist",
        "download.sh",
      ],
    );
  });

  it("rejects a --data-dir that does not exist", () => {
    const flagDirectory = path.join(TEMP_ROOT, "no-such-flag-directory");

    assertDataError(
      () =>
        locateDataDirectory({
          dataDir: flagDirectory,
          env: {},
          repoRoot: emptyRepoRoot,
          systemDirectory: writeDataset(),
        }),
      [flagDirectory, "(from --data-dir)", "directory not found"],
    );
  });

  it("rejects a --data-dir that is a file", () => {
    const flagFile = filePath(writeDataset(), "trainImages");

    assertDataError(
      () => locateDataDirectory({ dataDir: flagFile, env: {}, repoRoot: emptyRepoRoot }),
      [flagFile, "(from --data-dir)", "not a directory"],
    );
  });

  it("rejects a variable directory missing a file", () => {
    const envDirectory = writeDataset({ omit: ["testLabels"] });

    assertDataError(
      () =>
        locateDataDirectory({
          env: { FASHION_MNIST_DIR: envDirectory },
          repoRoot: emptyRepoRoot,
          systemDirectory: writeDataset(),
        }),
      [envDirectory, "(from FASHION_MNIST_DIR)", "missing t10k-labels-idx1-ubyte.gz"],
    );
  });

  it("lists the places searched when none has data", () => {
    assertDataError(
      () =>
        locateDataDirectory({
          env: {},
          repoRoot: emptyRepoRoot,
          systemDirectory: absentSystemDirectory,
        }),
      [
        "Fashion-MNIST data not found",
        path.join(emptyRepoRoot, "data", "fashion_mnist"),
        absentSystemDirectory,
        "apt-get install dataset-fashion-mnist",
        `bash ${path.join(emptyRepoRoot, "data", "fashion_mnist", "download.sh")}`,
        "--data-dir",
        "FASHION_MNIST_DIR",
      ],
    );
  });

  it("finds the repository root from its own location", () => {
    const repoData = path.join(REPO_ROOT, "data", "fashion_mnist");
    let outcome: string;
    try {
      outcome = locateDataDirectory({ env: {}, systemDirectory: absentSystemDirectory });
    } catch (error) {
      assert.ok(error instanceof DataError);
      outcome = error.message;
    }

    // The folder contains the data on some machines, so both a result and an error are valid.
    assert.ok(outcome.includes(repoData), `expected ${repoData} in: ${outcome}`);
  });
});

function copyDirectory(source: string, destination: string): void {
  mkdirSync(destination);
  for (const name of Object.values(FASHION_MNIST_FILES).flatMap((gz) => [gz, gz.slice(0, -3)])) {
    const from = path.join(source, name);
    if (existsSync(from)) copyFileSync(from, path.join(destination, name));
  }
}

const DECOMPRESSED_MD5: Record<FileKey, string> = {
  trainImages: "f4a8712d7a061bf5bd6d2ca38dc4d50a",
  trainLabels: "9018921c3c673c538a1fc5bad174d6f9",
  testImages: "8181f5470baa50b63fa0f6fddb340f0a",
  testLabels: "15d484375f8d13e6eb1aabb0c3f46965",
};

const realDataSkip = existsSync(DEBIAN_DATA_DIRECTORY)
  ? false
  : `${DEBIAN_DATA_DIRECTORY} not found, install the dataset-fashion-mnist package to run this test`;

/** Returns the MD5 of the IDX image file that `pixels` came from, rebuilding its header. */
function md5OfImageFile(count: number, pixels: Uint8Array): string {
  const header = new DataView(new ArrayBuffer(16));
  header.setUint32(0, 2051);
  header.setUint32(4, count);
  header.setUint32(8, 28);
  header.setUint32(12, 28);
  return createHash("md5").update(new Uint8Array(header.buffer)).update(pixels).digest("hex");
}

function md5OfLabelFile(labels: Uint8Array): string {
  const header = new DataView(new ArrayBuffer(8));
  header.setUint32(0, 2049);
  header.setUint32(4, labels.length);
  return createHash("md5").update(new Uint8Array(header.buffer)).update(labels).digest("hex");
}

describe("real Fashion-MNIST data", { skip: realDataSkip }, () => {
  it("loads with the published checksums", () => {
    const started = performance.now();
    const data = loadFashionMnist(DEBIAN_DATA_DIRECTORY);
    const elapsedMs = performance.now() - started;

    assert.equal(data.train.count, 60000);
    assert.equal(data.test.count, 10000);
    assert.equal(data.train.pixels.length, 60000 * 784);
    assert.equal(data.test.pixels.length, 10000 * 784);
    assert.equal(md5OfImageFile(60000, data.train.pixels), DECOMPRESSED_MD5.trainImages);
    assert.equal(md5OfLabelFile(data.train.labels), DECOMPRESSED_MD5.trainLabels);
    assert.equal(md5OfImageFile(10000, data.test.pixels), DECOMPRESSED_MD5.testImages);
    assert.equal(md5OfLabelFile(data.test.labels), DECOMPRESSED_MD5.testLabels);
    assert.equal(CLASS_NAMES.length, 10);
    console.log(`loaded and validated the real data in ${elapsedMs.toFixed(0)} ms`);
  });
});

describe("download.sh", () => {
  /** Writes a stand-in for curl that copies files from `sourceDirectory` by URL base name. */
  function makeLocalCurl(sourceDirectory: string): string {
    const binDirectory = makeTempDirectory();
    const script = path.join(binDirectory, "curl");
    writeFileSync(
      script,
      [
        "#!/usr/bin/env bash",
        "set -euo pipefail",
        'output=""',
        'while (($# > 1)); do [[ "$1" == --output ]] && output="$2"; shift; done',
        `cp -- "${sourceDirectory}/$(basename "$1")" "$output"`,
        "",
      ].join("\n"),
    );
    chmodSync(script, 0o755);
    return binDirectory;
  }

  function runScript(args: string[], binDirectory?: string) {
    const pathVariable = binDirectory ? `${binDirectory}:${process.env.PATH}` : process.env.PATH;
    return spawnSync("bash", [DOWNLOAD_SCRIPT, ...args], {
      encoding: "utf8",
      env: { ...process.env, PATH: pathVariable },
    });
  }

  it("--check reports missing and invalid files", () => {
    const directory = writeDataset({ omit: ["trainLabels"] });
    const result = runScript(["--check", directory]);

    assert.equal(result.status, 1);
    assert.match(result.stderr, /train-labels-idx1-ubyte\.gz: missing/);
    assert.match(result.stderr, /train-images-idx3-ubyte\.gz: invalid/);
    assert.match(result.stderr, /4 file\(s\) missing or invalid/);
  });

  it("removes a download with a wrong MD5", () => {
    const source = writeDataset();
    const directory = makeTempDirectory();
    const result = runScript([directory], makeLocalCurl(source));

    assert.equal(result.status, 1);
    assert.match(result.stderr, /downloaded file is invalid/);
    assert.equal(existsSync(filePath(directory, "trainImages")), false);
  });

  it("verifies and downloads real files", { skip: realDataSkip }, () => {
    const directory = makeTempDirectory();
    copyFileSync(
      path.join(DEBIAN_DATA_DIRECTORY, FASHION_MNIST_FILES.trainImages),
      filePath(directory, "trainImages"),
    );
    writeFileSync(filePath(directory, "testLabels"), "damaged");
    const result = runScript([directory], makeLocalCurl(DEBIAN_DATA_DIRECTORY));

    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /train-images-idx3-ubyte\.gz: present and valid/);
    assert.match(result.stdout, /train-labels-idx1-ubyte\.gz: downloaded and valid/);
    assert.match(result.stdout, /t10k-labels-idx1-ubyte\.gz: invalid, downloading it again/);
    assert.equal(runScript(["--check", directory]).status, 0);
  });
});
