// Helpers to load the reference cases (kernel results computed in float64 by PyTorch, one JSON
// file per case, every tensor stored as {"shape": [...], "data": [...]}) and to compare float32
// results with them.
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** A tensor as the reference files store it: PyTorch layout, row-major data. */
export interface ReferenceTensor {
  shape: number[];
  data: number[];
}

// Finds the repository root by walking up to the first directory with a package.json, so this
// works from the compiled file (dist/test/reference.js) and from the source file alike.
function findRepositoryRoot(): string {
  const start = dirname(fileURLToPath(import.meta.url));
  let directory = start;
  while (!existsSync(join(directory, "package.json"))) {
    const parent = dirname(directory);
    if (parent === directory) {
      throw new Error(`no package.json found in ${start} or any parent directory`);
    }
    directory = parent;
  }
  return directory;
}

function configuredReferenceDirectory(): string {
  const fromEnvironment = process.env.REFERENCE_DIR;
  if (fromEnvironment !== undefined && fromEnvironment !== "") {
    return resolve(fromEnvironment);
  }
  return resolve(findRepositoryRoot(), "..", "shared", "reference");
}

/**
 * Returns the directory of the reference cases: $REFERENCE_DIR when set, else
 * <repository root>/../shared/reference. Returns null when that directory does not exist.
 */
export function referenceDirectory(): string | null {
  const directory = configuredReferenceDirectory();
  return existsSync(directory) ? directory : null;
}

/** Parses the reference case `name` (with or without ".json"). Throws an Error when it is missing. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- each case has its own fields
export function loadReference(name: string): any {
  const directory = referenceDirectory();
  if (directory === null) {
    throw new Error(
      `reference directory ${configuredReferenceDirectory()} not found. ` +
        `Set REFERENCE_DIR to the directory that contains the reference JSON files.`,
    );
  }
  const fileName = name.endsWith(".json") ? name : `${name}.json`;
  const path = join(directory, fileName);
  if (!existsSync(path)) {
    throw new Error(`reference case ${fileName} not found in ${directory}`);
  }
  return JSON.parse(readFileSync(path, "utf8"));
}

/**
 * Returns test options that skip the reference suites when the reference directory is missing.
 * On CI (CI=true) it never skips, so a missing directory fails the load loudly instead.
 */
export function referenceSuiteOptions(): { skip: string | false } {
  if (process.env.CI === "true" || referenceDirectory() !== null) {
    return { skip: false };
  }
  return {
    skip: `reference directory ${configuredReferenceDirectory()} not found (set REFERENCE_DIR)`,
  };
}

/** Converts a reference tensor to a Float32Array, checking that the data matches the shape. */
export function toFloat32(tensor: ReferenceTensor): Float32Array {
  const expectedLength = tensor.shape.reduce((product, size) => product * size, 1);
  if (tensor.data.length !== expectedLength) {
    throw new Error(
      `reference tensor of shape [${tensor.shape.join(", ")}] has ${tensor.data.length} ` +
        `values, expected ${expectedLength}`,
    );
  }
  return Float32Array.from(tensor.data);
}

/**
 * Asserts that actual matches expected elementwise within relativeTolerance.
 * Each element may differ by relativeTolerance * max(|expected[i]|, 0.1 * max |expected|).
 * Values near zero are compared against the magnitude of the whole tensor, because a float32 sum
 * whose terms cancel keeps an absolute error of the size of its terms, not of its result.
 */
export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  label: string,
  relativeTolerance = 1e-4,
): void {
  assert.equal(
    actual.length,
    expected.length,
    `${label}: length ${actual.length}, expected ${expected.length}`,
  );

  let maximumMagnitude = 0;
  for (let i = 0; i < expected.length; i++) {
    maximumMagnitude = Math.max(maximumMagnitude, Math.abs(expected[i]));
  }
  const magnitudeFloor = 0.1 * maximumMagnitude;

  for (let i = 0; i < expected.length; i++) {
    const difference = Math.abs(actual[i] - expected[i]);
    const tolerance = relativeTolerance * Math.max(Math.abs(expected[i]), magnitudeFloor);
    // Written as !(a <= b) so that a NaN fails.
    if (!(difference <= tolerance)) {
      assert.fail(
        `${label}[${i}]: actual ${actual[i]}, expected ${expected[i]}, ` +
          `difference ${difference} > tolerance ${tolerance}`,
      );
    }
  }
}
