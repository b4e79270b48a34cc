// dist/evaluate.js as a user runs it: saved weights on a synthetic test set, and its errors.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { fileURLToPath } from "node:url";

import { CLASS_NAMES, loadFashionMnist } from "../src/data/index.js";
import { createNetwork } from "../src/index.js";
import { writeSafetensors } from "../src/io/safetensors.js";
import { writeSyntheticDataDirectory } from "./synthetic.js";

const EVALUATE = fileURLToPath(new URL("../evaluate.js", import.meta.url));
const TEST_COUNT = 1100; // two full batches of 500 and a partial one

const workDirectory = mkdtempSync(join(tmpdir(), "trainer-evaluate-"));
after(() => rmSync(workDirectory, { recursive: true, force: true }));
const dataDirectory = writeSyntheticDataDirectory(join(workDirectory, "data"), 100, TEST_COUNT);

const linear = createNetwork("linear", { seed: 1 });
const weightsPath = join(workDirectory, "linear.safetensors");
writeSafetensors(weightsPath, linear.getParameters(), { net: "linear", version: "test" });

function run(args: string[]) {
  const result = spawnSync(process.execPath, [EVALUATE, ...args], {
    encoding: "utf8",
    env: { ...process.env, FASHION_MNIST_DIR: "" },
    timeout: 120_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

interface Report {
  loss: number;
  accuracy: number;
  matrix: number[][];
}

/** Reads the loss, accuracy and confusion matrix rows from evaluate.js output. */
function parseReport(stdout: string): Report {
  const loss = /^test loss (\d+\.\d{4})$/m.exec(stdout);
  const accuracy = /^test accuracy (\d\.\d{4})$/m.exec(stdout);
  assert.ok(loss, `a loss line in:\n${stdout}`);
  assert.ok(accuracy, `an accuracy line in:\n${stdout}`);
  const matrix = CLASS_NAMES.map((name, c) => {
    const line = stdout.split("\n").find((text) => text.startsWith(`${c} ${name} `));
    assert.ok(line, `a matrix row for class ${c} ${name} in:\n${stdout}`);
    return line.slice(`${c} ${name}`.length).trim().split(/\s+/).map(Number);
  });
  return { loss: Number(loss[1]), accuracy: Number(accuracy[1]), matrix };
}

/** Loss and accuracy of the in-thread API on the first `count` test images. */
function expectedResult(count: number): { loss: number; accuracy: number; labels: Uint8Array } {
  const data = loadFashionMnist(dataDirectory);
  const images = Float32Array.from(data.test.pixels.subarray(0, count * 784), (p) => p / 255);
  const labels = data.test.labels.slice(0, count);
  const { lossSum, logits } = linear.lossAndGradients(images, labels);
  let correct = 0;
  for (let i = 0; i < count; i++) {
    const row = Array.from(logits.subarray(i * 10, i * 10 + 10));
    if (row.indexOf(Math.max(...row)) === labels[i]) correct++;
  }
  return { loss: lossSum / count, accuracy: correct / count, labels };
}

const sum = (values: number[]) => values.reduce((total, value) => total + value, 0);

describe("evaluate.js results", () => {
  test("loss, accuracy and matrix agree", () => {
    const { status, stdout, stderr } = run([
      "--net",
      "linear",
      "--weights",
      weightsPath,
      "--data-dir",
      dataDirectory,
    ]);
    assert.equal(status, 0, stderr);
    assert.equal(stderr, "");
    assert.match(stdout, new RegExp(`^test images ${TEST_COUNT}$`, "m"));
    const report = parseReport(stdout);
    const expected = expectedResult(TEST_COUNT);

    assert.equal(report.matrix.length, 10);
    for (const row of report.matrix) assert.equal(row.length, 10);
    assert.equal(sum(report.matrix.flat()), TEST_COUNT);
    report.matrix.forEach((row, c) => {
      const labelCount = expected.labels.filter((label) => label === c).length;
      assert.equal(sum(row), labelCount, `row ${c} sums to the images of class ${c}`);
    });

    const diagonal = sum(report.matrix.map((row, c) => row[c]));
    assert.equal(report.accuracy, Number((diagonal / TEST_COUNT).toFixed(4)));
    assert.equal(report.accuracy, Number(expected.accuracy.toFixed(4)));
    assert.ok(
      Math.abs(report.loss - expected.loss) <= 5e-5,
      `loss ${report.loss} against ${expected.loss}`,
    );
  });

  test("test count limits the images", () => {
    const { status, stdout, stderr } = run([
      "--net",
      "linear",
      "--weights",
      weightsPath,
      "--data-dir",
      dataDirectory,
      "--test-count",
      "250",
    ]);
    assert.equal(status, 0, stderr);
    const report = parseReport(stdout);
    assert.equal(sum(report.matrix.flat()), 250);
    assert.equal(report.accuracy, Number(expectedResult(250).accuracy.toFixed(4)));
  });

  test("extra tensor warned by name", () => {
    const path = join(workDirectory, "extra.safetensors");
    const tensors = {
      ...linear.getParameters(),
      "fc.momentum": { shape: [10], data: new Float32Array(10) },
    };
    writeSafetensors(path, tensors, { net: "linear", version: "test" });
    const { status, stdout, stderr } = run([
      "--net",
      "linear",
      "--weights",
      path,
      "--data-dir",
      dataDirectory,
    ]);
    assert.equal(status, 0, stderr);
    assert.match(stderr, /^warning: .*extra\.safetensors.*fc\.momentum/m);
    assert.match(stdout, /^test accuracy /m);
  });

  test("help lists the flags", () => {
    const { status, stdout } = run(["--help"]);
    assert.equal(status, 0);
    for (const flag of ["--net", "--weights", "--data-dir", "--test-count"]) {
      assert.ok(stdout.includes(flag), `help mentions ${flag}`);
    }
  });
});

describe("evaluate.js errors", () => {
  const garbage = join(workDirectory, "garbage.safetensors");
  writeFileSync(garbage, "this is not a safetensors file at all");
  const unnamed = join(workDirectory, "unnamed.safetensors");
  writeSafetensors(unnamed, linear.getParameters(), {});

  const base = ["--data-dir", dataDirectory];
  const cases: [string, string[], RegExp][] = [
    ["missing weights flag", ["--net", "linear", ...base], /--weights <file>.* not specified/],
    ["missing net flag", ["--weights", weightsPath, ...base], /--net <name>.* not specified/],
    [
      "unknown net",
      ["--net", "resnet", "--weights", weightsPath, ...base],
      /'resnet' is invalid.*linear, single-layer, conv-net, conv-blur-net/,
    ],
    [
      "unknown flag",
      ["--net", "linear", "--weights", weightsPath, "--colour"],
      /unknown option '--colour'/,
    ],
    [
      "missing weights file",
      ["--net", "linear", "--weights", join(workDirectory, "absent.safetensors"), ...base],
      /absent\.safetensors: cannot read the file/,
    ],
    [
      "invalid weights file",
      ["--net", "linear", "--weights", garbage, ...base],
      /garbage\.safetensors: the header length \d+ runs past the end/,
    ],
    [
      "net differs from metadata",
      ["--net", "single-layer", "--weights", weightsPath, ...base],
      /contains weights of linear, not single-layer: pass --net linear/,
    ],
    [
      "net lacks a tensor",
      ["--net", "single-layer", "--weights", unnamed, ...base],
      /unnamed\.safetensors: tensor fc1\.weight is missing \(the file has fc\.weight, fc\.bias\)/,
    ],
    [
      "test count beyond the set",
      ["--net", "linear", "--weights", weightsPath, ...base, "--test-count", "1101"],
      /--test-count 1101 is larger than the test set \(1100 images\)/,
    ],
    [
      "zero test count",
      ["--net", "linear", "--weights", weightsPath, ...base, "--test-count", "0"],
      /--test-count.*'0' is invalid/,
    ],
    [
      "missing data directory",
      ["--net", "linear", "--weights", weightsPath, "--data-dir", join(workDirectory, "nowhere")],
      /nowhere/,
    ],
  ];
  for (const [name, args, message] of cases) {
    test(`${name} exits with 2`, () => {
      const { status, stderr } = run(args);
      assert.equal(status, 2, stderr);
      assert.match(stderr, message);
      assert.doesNotMatch(stderr, /\n\s+at /, "no stack trace");
    });
  }
});
