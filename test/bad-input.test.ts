// The bad-input corpus run through dist/train.js as a user runs it. Every case must exit with 2
// and print one error line with the file or flag, what is wrong and what to do, and no stack
// trace. None of the output files given with the case may appear. The data and weights files
// are in test/corpus/ (written by make-corpus.mjs). The checkpoint cases damage copies of a real
// tiny run made in `before`.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";

import { DataError, FASHION_MNIST_FILES, loadFashionMnist } from "../src/data/index.js";
import { writeSyntheticDataDirectory } from "./synthetic.js";

const TRAIN = fileURLToPath(new URL("../train.js", import.meta.url));
// Compiled, this file is dist/test/bad-input.test.js, and the corpus stays in the source tree.
const CORPUS = fileURLToPath(new URL("../../test/corpus/", import.meta.url));
const VALID_DATA = join(CORPUS, "data", "valid");
const USAGE_HINT = "(run with --help to see every flag)";

const work = mkdtempSync(join(tmpdir(), "trainer-bad-input-"));
after(() => rmSync(work, { recursive: true, force: true }));

function corpusData(name: string): string {
  return join(CORPUS, "data", name);
}

function corpusWeights(name: string): string {
  return join(CORPUS, "weights", `${name}.safetensors`);
}

function run(args: string[]) {
  const result = spawnSync(process.execPath, [TRAIN, ...args], {
    encoding: "utf8",
    env: { ...process.env, FASHION_MNIST_DIR: "" },
    timeout: 120_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** A run that would finish in about a second if the case were accepted by mistake. */
const QUICK = ["--net", "linear", "--epoch-count", "1", "--threads", "1", "--quiet"];

// Paths that the `before` hook fills from real runs.
const realRun = {
  data: join(work, "run", "data"),
  checkpoints: join(work, "run", "checkpoints"),
  weights: join(work, "run", "linear.safetensors"),
};
const movedRun = {
  data: join(work, "moved", "data"),
  checkpoints: join(work, "moved", "checkpoints"),
};
const damaged = {
  truncated: join(work, "damaged", "truncated"),
  corrupted: join(work, "damaged", "corrupted"),
  foreign: join(work, "damaged", "not-a-checkpoint"),
  empty: join(work, "damaged", "no-latest"),
  nonFiniteWeights: join(work, "damaged", "non-finite.safetensors"),
};
// Existing paths of the wrong kind for the output flags.
const existingDirectory = join(work, "existing-directory");
const existingFile = join(work, "existing-file");
const emptyDataDirectory = join(work, "empty-data");

before(() => {
  mkdirSync(existingDirectory, { recursive: true });
  mkdirSync(emptyDataDirectory, { recursive: true });
  writeFileSync(existingFile, "not a directory\n");

  // A real run: 100 synthetic images, 2 epochs, a checkpoint and the final weights.
  writeSyntheticDataDirectory(realRun.data, 200, 50);
  const trained = run([
    ...QUICK,
    "--epoch-count",
    "2",
    "--data-dir",
    realRun.data,
    "--train-count",
    "100",
    "--mini-batch-size",
    "50",
    "--checkpoint-dir",
    realRun.checkpoints,
    "--save-weights",
    realRun.weights,
  ]);
  assert.equal(trained.status, 0, trained.stderr);

  const latest = readFileSync(join(realRun.checkpoints, "latest"));
  for (const directory of Object.values(damaged)) mkdirSync(directory, { recursive: true });
  rmSync(damaged.nonFiniteWeights, { recursive: true });
  writeFileSync(join(damaged.truncated, "latest"), latest.subarray(0, latest.length >> 1));
  const corrupted = Buffer.from(latest);
  corrupted[corrupted.length >> 1] ^= 0x01;
  writeFileSync(join(damaged.corrupted, "latest"), corrupted);
  copyFileSync(realRun.weights, join(damaged.foreign, "latest"));

  // The first value of the first tensor (fc.weight) becomes NaN.
  const weights = Buffer.from(readFileSync(realRun.weights));
  const dataStart = 8 + Number(weights.readBigUInt64LE(0));
  weights.writeFloatLE(Number.NaN, dataStart);
  writeFileSync(damaged.nonFiniteWeights, weights);

  // A run whose data directory is removed after it wrote its checkpoint.
  writeSyntheticDataDirectory(movedRun.data, 60, 20);
  const moved = run([
    ...QUICK,
    "--data-dir",
    movedRun.data,
    "--mini-batch-size",
    "30",
    "--checkpoint-dir",
    movedRun.checkpoints,
  ]);
  assert.equal(moved.status, 0, moved.stderr);
  rmSync(movedRun.data, { recursive: true });
});

interface Outputs {
  csvFileName: string;
  logFile: string;
  checkpointDir: string;
  saveWeights: string;
}

const OUTPUT_FLAGS: Record<keyof Outputs, string> = {
  csvFileName: "--csv-file-name",
  logFile: "--log-file",
  checkpointDir: "--checkpoint-dir",
  saveWeights: "--save-weights",
};

interface BadInputCase {
  name: string;
  args: string[];
  /** The file or flag the error line must name, as a literal substring. */
  names: string;
  /** What is wrong. */
  problem: RegExp;
  /** What to do; matched against all of stderr, so commander's hint line counts. */
  remedy: RegExp;
  /** Commander reports flag errors and adds USAGE_HINT as a second line. */
  usageHint?: boolean;
  /** Output flags the case sets itself, to paths that exist before the run. */
  outputs?: Partial<Outputs>;
  /** Files whose bytes the failed run must leave unchanged. */
  unchanged?: string[];
}

/** Snapshot of a path: the bytes of a file, the entries of a directory, or null when absent. */
function snapshot(path: string): string | null {
  if (!existsSync(path)) return null;
  if (statSync(path).isDirectory()) return `directory: ${readdirSync(path).join(", ")}`;
  return readFileSync(path).toString("base64");
}

let caseNumber = 0;

/** Runs one case with all four output flags and checks the exit code, stderr and the outputs. */
function checkCase(badCase: BadInputCase): void {
  caseNumber += 1;
  const outputDirectory = join(work, "outputs", `case-${caseNumber}`);
  const outputs: Outputs = {
    csvFileName: join(outputDirectory, "stats.csv"),
    logFile: join(outputDirectory, "logs", "run.jsonl"),
    checkpointDir: join(outputDirectory, "checkpoints"),
    saveWeights: join(outputDirectory, "weights", "final.safetensors"),
    ...badCase.outputs,
  };
  const outputArgs = Object.entries(outputs).flatMap(([key, path]) => [
    OUTPUT_FLAGS[key as keyof Outputs],
    path,
  ]);
  const preset = new Set(Object.keys(badCase.outputs ?? {}));
  const watched = [
    ...Object.entries(outputs)
      .filter(([key]) => preset.has(key))
      .map(([, path]) => path),
    ...(badCase.unchanged ?? []),
  ];
  const snapshotsBefore = watched.map(snapshot);

  const { status, stdout, stderr } = run([...outputArgs, ...badCase.args]);

  assert.equal(status, 2, `exit code; stderr: ${stderr}`);
  assert.equal(stdout, "", "nothing on stdout");
  assert.doesNotMatch(stderr, /\n\s+at /, "no stack trace");
  assert.ok(stderr.endsWith("\n"), `stderr ends with a newline: ${JSON.stringify(stderr)}`);
  const lines = stderr.slice(0, -1).split("\n");
  assert.equal(lines.length, 1, `stderr has one line: ${stderr}`);
  if (badCase.usageHint)
    assert.ok(lines[0].endsWith(` ${USAGE_HINT}`), "the line ends with the --help hint");
  const [line] = lines;
  assert.match(line, /^error: /);
  assert.ok(line.includes(badCase.names), `the line names ${badCase.names}: ${line}`);
  assert.match(line, badCase.problem, "the line says what is wrong");
  assert.match(stderr, badCase.remedy, "stderr says what to do");

  for (const [key, path] of Object.entries(outputs)) {
    if (preset.has(key)) continue;
    assert.ok(!existsSync(path), `${OUTPUT_FLAGS[key as keyof Outputs]} ${path} was not created`);
  }
  assert.ok(!existsSync(outputDirectory), `nothing was created in ${outputDirectory}`);
  watched.forEach((path, i) => {
    assert.equal(snapshot(path), snapshotsBefore[i], `${path} is unchanged`);
  });
}

function dataCase(
  name: string,
  corpusName: string,
  file: string,
  problem: RegExp,
  remedy = /Re-download/,
): BadInputCase {
  const directory = corpusData(corpusName);
  return {
    name,
    args: [...QUICK, "--data-dir", directory],
    names: join(directory, file),
    problem,
    remedy,
  };
}

const FILES = FASHION_MNIST_FILES;

const DATA_CASES: BadInputCase[] = [
  dataCase(
    "truncated gzip",
    "truncated-gzip",
    FILES.trainImages,
    /not a valid gzip file \(unexpected end of data, truncated\)/,
  ),
  dataCase(
    "gzip with a bad crc",
    "bad-crc",
    FILES.trainImages,
    /not a valid gzip file \(CRC-32 mismatch, the data gives 0x[0-9a-f]{8} but the trailer declares 0x[0-9a-f]{8}\)/,
  ),
  dataCase(
    "non-gzip file named .gz",
    "not-gzip",
    FILES.trainImages,
    /not a valid gzip file \(no gzip header\)/,
  ),
  dataCase("empty file", "empty-file", FILES.trainLabels, /empty file \(0 bytes\)/),
  dataCase(
    "wrong magic number",
    "wrong-magic",
    FILES.trainImages,
    /invalid magic number 3331 \(0x00000d03\), expected 2051 \(0x00000803\)/,
    /Check the file name or re-download it/,
  ),
  dataCase(
    "header count above the data",
    "count-too-large",
    FILES.trainImages,
    /truncated\. The header declares 4 images of 28x28 pixels \(3136 bytes\) but only 2352 bytes follow it/,
  ),
  dataCase(
    "header count below the data",
    "count-too-small",
    FILES.trainImages,
    /784 unexpected bytes after the data\. The header declares 2 images/,
  ),
  dataCase(
    "image and label counts differ",
    "count-mismatch",
    FILES.trainImages,
    /contains 3 images but .*train-labels-idx1-ubyte\.gz contains 2 labels/,
    /Re-download both files/,
  ),
  dataCase(
    "label 10",
    "label-10",
    FILES.trainLabels,
    /invalid label 10 at index 1, labels must be 0 to 9/,
  ),
  dataCase(
    "label 255",
    "label-255",
    FILES.testLabels,
    /invalid label 255 at index 1, labels must be 0 to 9/,
  ),
  dataCase(
    "images not 28x28",
    "not-28x28",
    FILES.trainImages,
    /images are 32x32 pixels, expected 28x28/,
    /Check that this is a Fashion-MNIST file or re-download it/,
  ),
  {
    name: "missing file",
    args: [...QUICK, "--data-dir", corpusData("missing-file")],
    names: `${corpusData("missing-file")} (from --data-dir)`,
    problem: /missing t10k-labels-idx1-ubyte\.gz \(or t10k-labels-idx1-ubyte\)/,
    remedy: /Install the files with .*download\.sh.*, or name another directory with --data-dir/,
  },
  dataCase(
    "directory in place of a file",
    "directory-as-file",
    FILES.trainImages,
    /is a directory, expected a regular file/,
    /Remove it and re-download the file/,
  ),
];

function flagCase(name: string, args: string[], names: string, problem: RegExp, remedy: RegExp) {
  return { name, args: [...QUICK, ...args], names, problem, remedy, usageHint: true };
}

const POSITIVE_INTEGER = /Expected a positive integer\./;

const FLAG_CASES: BadInputCase[] = [
  flagCase("unknown flag", ["--colour", "red"], "--colour", /unknown option/, /--help/),
  flagCase("missing value", ["--threads"], "--threads", /argument missing/, /--help/),
  flagCase(
    "zero threads",
    ["--threads", "0"],
    "--threads",
    /argument '0' is invalid/,
    /Expected an integer from 1 to 256\./,
  ),
  flagCase(
    "non-numeric threads",
    ["--threads", "abc"],
    "--threads",
    /argument 'abc' is invalid/,
    /Expected an integer from 1 to 256\./,
  ),
  flagCase(
    "threads above 256",
    ["--threads", "100000"],
    "--threads",
    /argument '100000' is invalid/,
    /Expected an integer from 1 to 256\./,
  ),
  flagCase(
    "zero mini-batch size",
    ["--mini-batch-size", "0"],
    "--mini-batch-size",
    /argument '0' is invalid/,
    POSITIVE_INTEGER,
  ),
  flagCase(
    "zero epochs",
    ["--epoch-count", "0"],
    "--epoch-count",
    /argument '0' is invalid/,
    POSITIVE_INTEGER,
  ),
  flagCase(
    "negative epochs",
    ["--epoch-count", "-1"],
    "--epoch-count",
    /argument '-1' is invalid/,
    POSITIVE_INTEGER,
  ),
  flagCase(
    "nan learning rate",
    ["--learning-rate", "nan"],
    "--learning-rate",
    /argument 'nan' is invalid/,
    /Expected a finite number greater than 0\./,
  ),
  flagCase(
    "unknown net",
    ["--net", "resnet"],
    "--net",
    /argument 'resnet' is invalid/,
    /Allowed choices are linear, single-layer, conv-net, conv-blur-net\./,
  ),
  flagCase(
    "unknown optimizer",
    ["--optimizer", "rmsprop"],
    "--optimizer",
    /argument 'rmsprop' is invalid/,
    /Allowed choices are adam, sgd\./,
  ),
  {
    name: "data directory not found",
    args: [...QUICK, "--data-dir", join(work, "nowhere")],
    names: `${join(work, "nowhere")} (from --data-dir)`,
    problem: /directory not found/,
    remedy: /Install the files with .*, or name another directory with --data-dir/,
  },
  {
    name: "data directory without the files",
    args: [...QUICK, "--data-dir", emptyDataDirectory],
    names: `${emptyDataDirectory} (from --data-dir)`,
    problem:
      /missing train-images-idx3-ubyte\.gz \(or train-images-idx3-ubyte\), train-labels-idx1-ubyte\.gz/,
    remedy: /Install the files with .*, or name another directory with --data-dir/,
  },
  {
    name: "data directory is a file",
    args: [...QUICK, "--data-dir", existingFile],
    names: `${existingFile} (from --data-dir)`,
    problem: /not a directory/,
    remedy: /Name the directory that contains the Fashion-MNIST files/,
  },
  {
    name: "train count above the set",
    args: [...QUICK, "--data-dir", VALID_DATA, "--train-count", "4"],
    names: "--train-count 4",
    problem: /is larger than the training set \(3 images\)/,
    remedy: /pass at most 3/,
  },
  {
    name: "test count above the set",
    args: [...QUICK, "--data-dir", VALID_DATA, "--test-count", "3"],
    names: "--test-count 3",
    problem: /is larger than the test set \(2 images\)/,
    remedy: /pass at most 2/,
  },
];

function weightsCase(
  name: string,
  file: string,
  problem: RegExp,
  options: { net?: string; remedy?: RegExp } = {},
): BadInputCase {
  const net = options.net ?? "linear";
  return {
    name,
    args: [...QUICK, "--data-dir", VALID_DATA, "--net", net, "--init-weights", file],
    names: `--init-weights ${file}`,
    problem,
    remedy:
      options.remedy ??
      new RegExp(`Pass a safetensors file of ${net} weights, as --save-weights writes`),
    unchanged: [file],
  };
}

const WEIGHTS_CASES: BadInputCase[] = [
  weightsCase(
    "header length past the end",
    corpusWeights("header-past-end"),
    /the header length 4096 runs past the end of the file \(40 bytes follow the length\)/,
  ),
  weightsCase("header not json", corpusWeights("invalid-json"), /the header is not valid JSON/),
  weightsCase(
    "wrong dtype",
    corpusWeights("wrong-dtype"),
    /tensor fc\.weight has dtype F16, expected F32/,
  ),
  weightsCase(
    "wrong shape",
    corpusWeights("wrong-shape"),
    /tensor fc\.weight has shape \[10, 100\], expected \[10, 784\]/,
  ),
  weightsCase(
    "missing tensor",
    corpusWeights("missing-tensor"),
    /tensor fc\.weight is missing \(the file has fc\.bias\)/,
  ),
  weightsCase(
    "weights file not found",
    join(work, "no-such.safetensors"),
    /cannot read the file \(ENOENT/,
  ),
  weightsCase(
    "weights of another net",
    realRun.weights,
    /tensor conv1\.weight is missing \(the file has fc\.weight, fc\.bias\)/,
    { net: "conv-net" },
  ),
  weightsCase(
    "non-finite weight",
    damaged.nonFiniteWeights,
    /tensor fc\.weight contains a non-finite value at index 0/,
    { remedy: /Pass weights with finite values/ },
  ),
];

const CHECKPOINT_CASES: BadInputCase[] = [
  {
    name: "checkpoint of another net",
    args: ["--resume", realRun.checkpoints, "--net", "conv-net", "--quiet"],
    names: "--net conv-net",
    problem: /contradicts the checkpoint in .* \(--net linear\)/,
    remedy: /drop the flag to resume, or start a new run/,
    unchanged: [join(realRun.checkpoints, "latest")],
  },
  {
    name: "lower epoch count on resume",
    args: ["--resume", realRun.checkpoints, "--epoch-count", "1", "--quiet"],
    names: "--epoch-count 1",
    problem: /is lower than the 2 epochs of the run in /,
    remedy: /a resumed run may only raise it/,
    unchanged: [join(realRun.checkpoints, "latest")],
  },
  {
    name: "init weights with resume",
    args: ["--resume", realRun.checkpoints, "--init-weights", realRun.weights, "--quiet"],
    names: "--init-weights",
    problem: /cannot be combined with --resume/,
    remedy: /Drop --init-weights to resume, or start a new run without --resume/,
  },
  {
    name: "truncated checkpoint",
    args: ["--resume", damaged.truncated, "--quiet"],
    names: join(damaged.truncated, "latest"),
    problem: /checksum mismatch \(truncated or corrupted\)/,
    remedy: /the checkpoint is damaged, use another or start again/,
    unchanged: [join(damaged.truncated, "latest")],
  },
  {
    name: "corrupted checkpoint",
    args: ["--resume", damaged.corrupted, "--quiet"],
    names: join(damaged.corrupted, "latest"),
    problem: /checksum mismatch \(truncated or corrupted\)/,
    remedy: /the checkpoint is damaged, use another or start again/,
    unchanged: [join(damaged.corrupted, "latest")],
  },
  {
    name: "safetensors file as checkpoint",
    args: ["--resume", damaged.foreign, "--quiet"],
    names: join(damaged.foreign, "latest"),
    problem: /not a checkpoint of this trainer \(wrong magic bytes\)/,
    remedy: /Pass --resume the directory that --checkpoint-dir named in the earlier run/,
  },
  {
    name: "checkpoint not found",
    args: ["--resume", damaged.empty, "--quiet"],
    names: join(damaged.empty, "latest"),
    problem: /cannot read the checkpoint \(not found\)/,
    remedy: /Pass --resume the directory that --checkpoint-dir named in the earlier run/,
  },
  {
    name: "checkpoint data directory gone",
    args: ["--resume", movedRun.checkpoints, "--quiet"],
    names: `${movedRun.data} (from the checkpoint in ${movedRun.checkpoints})`,
    problem: /directory not found/,
    remedy: /name another directory with --data-dir/,
    unchanged: [join(movedRun.checkpoints, "latest")],
  },
];

function outputCase(name: string, outputs: Partial<Outputs>, names: string, problem: RegExp) {
  return {
    name,
    args: [...QUICK, "--data-dir", VALID_DATA],
    outputs,
    names,
    problem,
    remedy: /Name (a file|a new or existing directory|a path in a directory)/,
  };
}

const OUTPUT_CASES: BadInputCase[] = [
  outputCase(
    "csv file is a directory",
    { csvFileName: existingDirectory },
    `--csv-file-name ${existingDirectory}`,
    /is a directory, expected a file name/,
  ),
  outputCase(
    "log file is a directory",
    { logFile: existingDirectory },
    `--log-file ${existingDirectory}`,
    /is a directory, expected a file name/,
  ),
  outputCase(
    "weights file is a directory",
    { saveWeights: existingDirectory },
    `--save-weights ${existingDirectory}`,
    /is a directory, expected a file name/,
  ),
  outputCase(
    "checkpoint directory is a file",
    { checkpointDir: existingFile },
    `--checkpoint-dir ${existingFile}`,
    /is a file, expected a directory/,
  ),
  outputCase(
    "log file below a file",
    { logFile: join(existingFile, "run.jsonl") },
    `--log-file ${join(existingFile, "run.jsonl")}`,
    new RegExp(`${existingFile} is a file, so the path cannot be created`),
  ),
];

const GROUPS: [string, BadInputCase[]][] = [
  ["data files", DATA_CASES],
  ["flags", FLAG_CASES],
  ["weights files", WEIGHTS_CASES],
  ["checkpoints", CHECKPOINT_CASES],
  ["output paths", OUTPUT_CASES],
];

for (const [group, cases] of GROUPS) {
  describe(`bad ${group}`, () => {
    for (const badCase of cases) {
      test(badCase.name, () => checkCase(badCase));
    }
  });
}

describe("corpus controls", () => {
  test("valid corpus set trains", () => {
    const weights = join(work, "valid", "linear.safetensors");
    const { status, stderr } = run([...QUICK, "--data-dir", VALID_DATA, "--save-weights", weights]);
    assert.equal(status, 0, stderr);
    assert.ok(existsSync(weights), "the weights were written");
  });

  test("resume of the real run works", () => {
    const { status, stderr } = run(["--resume", realRun.checkpoints, "--epoch-count", "3"]);
    assert.equal(status, 0, stderr);
  });
});

describe("gzip damage sweep", () => {
  // Every prefix and every single-byte change of a valid .gz file either fails with a DataError
  // or, where the changed byte carries no data (gzip mtime, OS byte), loads the same pixels.
  const source = readFileSync(join(VALID_DATA, FILES.trainImages));
  const expected = loadFashionMnist(VALID_DATA).train.pixels;

  /** Returns a copy of the valid set whose train images the caller overwrites. */
  function copyValidSet(directory: string): string {
    mkdirSync(directory, { recursive: true });
    for (const name of Object.values(FILES)) {
      copyFileSync(join(VALID_DATA, name), join(directory, name));
    }
    return join(directory, FILES.trainImages);
  }

  test("every truncation is rejected", () => {
    const directory = join(work, "sweep", "truncated");
    const trainImages = copyValidSet(directory);
    for (let length = 0; length < source.length; length++) {
      writeFileSync(trainImages, source.subarray(0, length));
      assert.throws(
        () => loadFashionMnist(directory),
        DataError,
        `first ${length} of ${source.length} bytes`,
      );
    }
  });

  test("every changed byte is caught", () => {
    const directory = join(work, "sweep", "changed");
    const trainImages = copyValidSet(directory);
    for (let offset = 0; offset < source.length; offset++) {
      const bytes = Buffer.from(source);
      bytes[offset] ^= 0xff;
      writeFileSync(trainImages, bytes);
      let pixels: Uint8Array;
      try {
        pixels = loadFashionMnist(directory).train.pixels;
      } catch (error) {
        assert.ok(error instanceof DataError, `byte ${offset}: got ${String(error)}`);
        continue;
      }
      assert.deepEqual(
        pixels,
        expected,
        `byte ${offset} changed and loaded: pixels must be intact`,
      );
    }
  });
});
