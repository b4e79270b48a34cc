// Locating, reading and validating the Fashion-MNIST files, and placing the images and labels in
// SharedArrayBuffers so that worker threads can read them without a copy.

import { readFileSync, statSync, type Stats } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { crc32 } from "node:zlib";
import { gunzipSync } from "fflate";
import { DataError, parseIdxImages, parseIdxLabels } from "./idx.js";

/**
 * Names of the four Fashion-MNIST files as published, gzip-compressed. The loader also accepts
 * each name without `.gz` (already decompressed). When both exist, it reads the `.gz` file,
 * because its CRC-32 lets the loader detect a damaged file.
 */
export const FASHION_MNIST_FILES = {
  trainImages: "train-images-idx3-ubyte.gz",
  trainLabels: "train-labels-idx1-ubyte.gz",
  testImages: "t10k-images-idx3-ubyte.gz",
  testLabels: "t10k-labels-idx1-ubyte.gz",
} as const satisfies Record<string, string>;

/** Class names, indexed by label value. */
export const CLASS_NAMES: readonly string[] = Object.freeze([
  "T-shirt/top",
  "Trouser",
  "Pullover",
  "Dress",
  "Coat",
  "Sandal",
  "Shirt",
  "Sneaker",
  "Bag",
  "Ankle boot",
]);

/** Directory where Debian's `dataset-fashion-mnist` package installs the files. */
export const DEBIAN_DATA_DIRECTORY = "/usr/share/datasets/fashion-mnist";

/** Environment variable that names the data directory when `--data-dir` is not given. */
export const DATA_DIRECTORY_VARIABLE = "FASHION_MNIST_DIR";

const IMAGE_ROWS = 28;
const IMAGE_COLUMNS = 28;

// A gzip member has a 10-byte header, the deflate data and an 8-byte trailer (CRC-32, size).
const GZIP_MIN_BYTES = 18;

// The largest decompressed size accepted, far above the largest Fashion-MNIST file (47,040,016
// bytes). A truncated file ends in arbitrary bytes where the trailer's size should be, and fflate
// allocates that size before it inflates, so a larger value is rejected before decompression.
const MAX_DECOMPRESSED_BYTES = 1 << 30;

/** Images and labels of one split. `pixels` and `labels` are views over SharedArrayBuffers. */
export interface ImageSet {
  count: number;
  rows: 28;
  columns: 28;
  /** Pixel bytes, count * 784 of them, row-major and image after image. 0 is background. */
  pixels: Uint8Array;
  /** count bytes, each 0 to 9, an index into CLASS_NAMES. */
  labels: Uint8Array;
}

/** The training and test splits and the directory they were read from. */
export interface FashionMnist {
  directory: string;
  train: ImageSet;
  test: ImageSet;
}

/** Options of locateDataDirectory. */
export interface LocateOptions {
  /** Value of the `--data-dir` flag. */
  dataDir?: string;
  /**
   * Origin of `dataDir` named in error messages, `--data-dir` by default. A resumed run names its
   * checkpoint, because it reads the directory recorded there.
   */
  dataDirSource?: string;
  /** Environment to read FASHION_MNIST_DIR from, process.env by default. */
  env?: NodeJS.ProcessEnv;
  /** Repository root, which contains data/fashion_mnist/. By default, the root of this module. */
  repoRoot?: string;
  /** Last directory searched, DEBIAN_DATA_DIRECTORY by default. Tests replace it. */
  systemDirectory?: string;
}

/**
 * Returns the absolute path of the directory to load Fashion-MNIST from, searching in order:
 * `options.dataDir`, the FASHION_MNIST_DIR variable, `<repo root>/data/fashion_mnist` and
 * `options.systemDirectory` (DEBIAN_DATA_DIRECTORY by default). An empty dataDir or variable counts as not set. A directory named by
 * dataDir or the variable must contain the four files, and when it does not, a DataError names
 * it and the later places are not tried. A default place is used only when it contains all four.
 * Throws a DataError listing the places searched when none does.
 */
export function locateDataDirectory(options: LocateOptions = {}): string {
  const env = options.env ?? process.env;
  const repoRoot = options.repoRoot ?? findRepoRoot();
  const downloadScript = path.join(repoRoot, "data", "fashion_mnist", "download.sh");

  if (options.dataDir) {
    return requireDataDirectory(
      path.resolve(options.dataDir),
      options.dataDirSource ?? "--data-dir",
      "--data-dir",
      downloadScript,
    );
  }
  const fromEnvironment = env[DATA_DIRECTORY_VARIABLE];
  if (fromEnvironment) {
    return requireDataDirectory(
      path.resolve(fromEnvironment),
      DATA_DIRECTORY_VARIABLE,
      DATA_DIRECTORY_VARIABLE,
      downloadScript,
    );
  }

  const defaultDirectories = [
    path.join(repoRoot, "data", "fashion_mnist"),
    options.systemDirectory ?? DEBIAN_DATA_DIRECTORY,
  ];
  for (const directory of defaultDirectories) {
    if (isDirectory(directory) && listMissingFiles(directory).length === 0) {
      return directory;
    }
  }
  throw new DataError(
    `Fashion-MNIST data not found. Neither ${defaultDirectories.join(" nor ")} ` +
      `contains the four files ${Object.values(FASHION_MNIST_FILES).join(", ")}. ` +
      `Install them with 'apt-get install dataset-fashion-mnist' (Debian) or ` +
      `'bash ${downloadScript}', or name their directory with --data-dir or ` +
      `${DATA_DIRECTORY_VARIABLE}`,
  );
}

/**
 * Reads, decompresses and validates the four files in `directory` and copies the images and
 * labels into SharedArrayBuffers. Throws a DataError naming the file and the problem when a file
 * is missing, unreadable, not valid gzip or not a valid IDX file. It also throws when the images
 * are not 28x28, a label is outside 0 to 9, or the image and label counts of a split differ.
 */
export function loadFashionMnist(directory: string): FashionMnist {
  const train = loadImageSet(
    directory,
    FASHION_MNIST_FILES.trainImages,
    FASHION_MNIST_FILES.trainLabels,
  );
  const test = loadImageSet(
    directory,
    FASHION_MNIST_FILES.testImages,
    FASHION_MNIST_FILES.testLabels,
  );
  return { directory: path.resolve(directory), train, test };
}

function loadImageSet(directory: string, imagesName: string, labelsName: string): ImageSet {
  const imagesPath = requireDataFile(directory, imagesName);
  const labelsPath = requireDataFile(directory, labelsName);

  const images = parseIdxImages(readDataFile(imagesPath), imagesPath);
  if (images.rows !== IMAGE_ROWS || images.columns !== IMAGE_COLUMNS) {
    throw new DataError(
      `${imagesPath}: images are ${images.rows}x${images.columns} pixels, expected ` +
        `${IMAGE_ROWS}x${IMAGE_COLUMNS} for Fashion-MNIST. Check that this is a Fashion-MNIST ` +
        `file or re-download it`,
    );
  }
  if (images.count === 0) {
    throw new DataError(`${imagesPath}: contains no images. Re-download it`);
  }

  const labels = parseIdxLabels(readDataFile(labelsPath), labelsPath);
  if (labels.length !== images.count) {
    throw new DataError(
      `${imagesPath} contains ${images.count} images but ${labelsPath} contains ` +
        `${labels.length} labels, and the counts must be equal. Re-download both files`,
    );
  }
  checkLabelRange(labels, labelsPath);

  return {
    count: images.count,
    rows: IMAGE_ROWS,
    columns: IMAGE_COLUMNS,
    pixels: copyToSharedMemory(images.pixels),
    labels: copyToSharedMemory(labels),
  };
}

function checkLabelRange(labels: Uint8Array, labelsPath: string): void {
  const classCount = CLASS_NAMES.length;
  for (let i = 0; i < labels.length; i++) {
    if (labels[i] >= classCount) {
      throw new DataError(
        `${labelsPath}: invalid label ${labels[i]} at index ${i}, labels must be 0 to ` +
          `${classCount - 1}. Re-download the file`,
      );
    }
  }
}

function copyToSharedMemory(source: Uint8Array): Uint8Array {
  const shared = new Uint8Array(new SharedArrayBuffer(source.length));
  shared.set(source);
  return shared;
}

/**
 * Reads one data file and returns its IDX bytes, decompressed when the name ends in `.gz`.
 * Throws a DataError naming the file when it is missing, not a regular file, empty, unreadable
 * or not valid gzip.
 */
function readDataFile(filePath: string): Uint8Array {
  let bytes: Uint8Array;
  try {
    const stats = statSync(filePath);
    if (stats.isDirectory()) {
      throw new DataError(
        `${filePath}: is a directory, expected a regular file. Remove it and re-download the file`,
      );
    }
    if (!stats.isFile()) {
      throw new DataError(`${filePath}: not a regular file. Replace it with the downloaded file`);
    }
    bytes = readFileSync(filePath);
  } catch (error) {
    throw describeReadError(error, filePath);
  }

  if (bytes.length === 0) {
    throw new DataError(`${filePath}: empty file (0 bytes). Re-download it`);
  }
  return filePath.endsWith(".gz") ? gunzipChecked(bytes, filePath) : bytes;
}

function describeReadError(error: unknown, filePath: string): Error {
  if (error instanceof DataError) return error;
  const code = (error as NodeJS.ErrnoException).code;
  if (code === "ENOENT") {
    return new DataError(`${filePath}: file not found. Re-download it`);
  }
  if (code === "EISDIR") {
    return new DataError(
      `${filePath}: is a directory, expected a regular file. Remove it and re-download the file`,
    );
  }
  if (code === "EACCES" || code === "EPERM") {
    return new DataError(`${filePath}: permission denied (${code}). Make the file readable`);
  }
  const message = error instanceof Error ? error.message : String(error);
  return new DataError(`${filePath}: read failed (${message}). Check the file and its directory`);
}

/**
 * Decompresses a single-member gzip file with fflate and checks the trailer, because fflate
 * 0.8 checks neither the CRC-32 nor the size stored there. Throws a DataError naming the file.
 */
function gunzipChecked(bytes: Uint8Array, filePath: string): Uint8Array {
  const invalidGzip = (reason: string): DataError =>
    new DataError(`${filePath}: not a valid gzip file (${reason}). Re-download it`);

  if (bytes[0] !== 0x1f || bytes[1] !== 0x8b) {
    throw invalidGzip("no gzip header");
  }
  if (bytes.length < GZIP_MIN_BYTES) {
    throw invalidGzip(
      `truncated, ${bytes.length} bytes is shorter than the gzip header and trailer`,
    );
  }
  const trailer = new DataView(bytes.buffer, bytes.byteOffset + bytes.length - 8, 8);
  const expectedCrc = trailer.getUint32(0, true);
  const expectedSize = trailer.getUint32(4, true);
  if (expectedSize > MAX_DECOMPRESSED_BYTES) {
    throw invalidGzip(
      `the trailer declares ${expectedSize} decompressed bytes, more than the ` +
        `${MAX_DECOMPRESSED_BYTES} accepted, so the file is probably truncated`,
    );
  }

  let decompressed: Uint8Array;
  try {
    decompressed = gunzipSync(bytes);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw invalidGzip(message === "unexpected EOF" ? "unexpected end of data, truncated" : message);
  }

  if (decompressed.length !== expectedSize) {
    throw invalidGzip(
      `decompressed to ${decompressed.length} bytes but the trailer declares ${expectedSize}`,
    );
  }
  const actualCrc = crc32(decompressed);
  if (actualCrc !== expectedCrc) {
    throw invalidGzip(
      `CRC-32 mismatch, the data gives ${formatCrc(actualCrc)} but the trailer declares ` +
        `${formatCrc(expectedCrc)}`,
    );
  }
  return decompressed;
}

function formatCrc(value: number): string {
  return `0x${value.toString(16).padStart(8, "0")}`;
}

/** Returns the path of `gzName` in `directory`, or of its name without `.gz`, or undefined. */
function findDataFile(directory: string, gzName: string): string | undefined {
  for (const name of [gzName, stripGz(gzName)]) {
    const candidate = path.join(directory, name);
    if (pathExists(candidate)) return candidate;
  }
  return undefined;
}

function requireDataFile(directory: string, gzName: string): string {
  const found = findDataFile(directory, gzName);
  if (found === undefined) {
    throw new DataError(
      `${path.join(directory, gzName)}: file not found (nor ${stripGz(gzName)} beside it). ` +
        `Download the Fashion-MNIST files into ${directory}`,
    );
  }
  return found;
}

function listMissingFiles(directory: string): string[] {
  return Object.values(FASHION_MNIST_FILES).filter(
    (name) => findDataFile(directory, name) === undefined,
  );
}

/**
 * Returns `directory` when it contains the four files. The error message names `source` as the
 * origin of the directory and `override` as the flag or variable that names another one.
 */
function requireDataDirectory(
  directory: string,
  source: string,
  override: string,
  downloadScript: string,
): string {
  const howToFill =
    `Install the files with 'apt-get install dataset-fashion-mnist' (Debian, into ` +
    `${DEBIAN_DATA_DIRECTORY}) or 'bash ${downloadScript} ${directory}', or name another ` +
    `directory with ${override}`;

  if (!pathExists(directory)) {
    throw new DataError(`${directory} (from ${source}): directory not found. ${howToFill}`);
  }
  if (!isDirectory(directory)) {
    throw new DataError(
      `${directory} (from ${source}): not a directory. Name the directory that contains the ` +
        `Fashion-MNIST files`,
    );
  }
  const missing = listMissingFiles(directory);
  if (missing.length > 0) {
    const names = missing.map((name) => `${name} (or ${stripGz(name)})`).join(", ");
    throw new DataError(`${directory} (from ${source}): missing ${names}. ${howToFill}`);
  }
  return directory;
}

function stripGz(name: string): string {
  return name.endsWith(".gz") ? name.slice(0, -3) : name;
}

// Both return false when stat fails for any reason (missing, permission denied), so that the
// later read reports the precise error.
function pathExists(candidate: string): boolean {
  return statQuietly(candidate) !== undefined;
}

function isDirectory(candidate: string): boolean {
  return statQuietly(candidate)?.isDirectory() ?? false;
}

function statQuietly(candidate: string): Stats | undefined {
  try {
    return statSync(candidate, { throwIfNoEntry: false });
  } catch {
    return undefined;
  }
}

/**
 * Returns the repository root: compiled, this module is dist/src/data/fashion-mnist.js, so the
 * root is three directories above this module's directory.
 */
function findRepoRoot(): string {
  const moduleDirectory = path.dirname(fileURLToPath(import.meta.url));
  return path.resolve(moduleDirectory, "..", "..", "..");
}
