// dist/train.js as a user runs it: flags, errors, CSV and log files, on a synthetic data set.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { fileURLToPath } from "node:url";

import { writeSyntheticDataDirectory } from "./synthetic.js";

const TRAIN = fileURLToPath(new URL("../train.js", import.meta.url));
const workDirectory = mkdtempSync(join(tmpdir(), "trainer-cli-"));
after(() => rmSync(workDirectory, { recursive: true, force: true }));
const dataDirectory = writeSyntheticDataDirectory(join(workDirectory, "data"), 400, 100);

function run(args: string[], env: NodeJS.ProcessEnv = {}) {
  const result = spawnSync(process.execPath, [TRAIN, ...args], {
    encoding: "utf8",
    env: { ...process.env, FASHION_MNIST_DIR: "", ...env },
    timeout: 120_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

const QUICK = [
  "--data-dir",
  dataDirectory,
  "--epoch-count",
  "2",
  "--mini-batch-size",
  "150",
  "--threads",
  "2",
];

describe("train.js flags", () => {
  test("help lists every flag with defaults", () => {
    const { status, stdout } = run(["--help"]);
    assert.equal(status, 0);
    for (const flag of [
      "--net",
      "--threads",
      "--optimizer",
      "--learning-rate",
      "--weight-decay",
      "--mini-batch-size",
      "--epoch-count",
      "--trial-count",
      "--seed",
      "--train-count",
      "--test-count",
      "--data-dir",
      "--csv-file-name",
      "--log-file",
      "--quiet",
      "--help",
    ]) {
      assert.ok(stdout.includes(flag), `help mentions ${flag}`);
    }
    assert.match(stdout, /default: "conv-net"/);
    assert.match(stdout, /default: 1000/);
  });

  const invalid: [string, string[], RegExp][] = [
    ["unknown flag", ["--colour"], /unknown option '--colour'/],
    ["missing value", ["--threads"], /argument missing/],
    ["zero threads", ["--threads", "0"], /--threads.*'0' is invalid.*1 to 256/],
    ["non-numeric threads", ["--threads", "abc"], /--threads.*'abc' is invalid/],
    ["too many threads", ["--threads", "100000"], /--threads.*'100000' is invalid.*1 to 256/],
    ["zero mini-batch", ["--mini-batch-size", "0"], /--mini-batch-size.*'0' is invalid/],
    ["zero epochs", ["--epoch-count", "0"], /--epoch-count.*'0' is invalid/],
    ["negative epochs", ["--epoch-count", "-1"], /--epoch-count.*'-1' is invalid/],
    ["nan learning rate", ["--learning-rate", "nan"], /--learning-rate.*'nan' is invalid/],
    [
      "unknown net",
      ["--net", "resnet"],
      /'resnet' is invalid.*linear, single-layer, conv-net, conv-blur-net/,
    ],
    ["unknown optimizer", ["--optimizer", "rmsprop"], /'rmsprop' is invalid.*adam, sgd/],
  ];
  for (const [name, args, message] of invalid) {
    test(`${name} exits with 2`, () => {
      const { status, stderr } = run(args);
      assert.equal(status, 2);
      assert.match(stderr, message);
      assert.doesNotMatch(stderr, /\n\s+at /, "no stack trace");
    });
  }

  test("missing data directory exits with 2", () => {
    const { status, stderr } = run(["--data-dir", join(workDirectory, "nowhere")]);
    assert.equal(status, 2);
    assert.match(stderr, /nowhere/);
    assert.doesNotMatch(stderr, /\n\s+at /);
  });

  test("train count beyond the set exits with 2", () => {
    const { status, stderr } = run([...QUICK, "--train-count", "401"]);
    assert.equal(status, 2);
    assert.match(stderr, /--train-count 401 is larger than the training set \(400 images\)/);
  });

  test(
    "unwritable csv directory exits with 2",
    { skip: process.platform !== "linux" && "needs /proc" },
    () => {
      const { status, stderr } = run([...QUICK, "--csv-file-name", "/proc/stats.csv"]);
      assert.equal(status, 2);
      assert.match(stderr, /--csv-file-name \/proc\/stats.csv: cannot write in \/proc/);
    },
  );

  test("test count beyond the set exits with 2", () => {
    const { status, stderr } = run([...QUICK, "--test-count", "101"]);
    assert.equal(status, 2);
    assert.match(stderr, /--test-count 101 is larger than the test set \(100 images\)/);
  });
});

describe("train.js outputs", () => {
  test("csv identical for 1 and 3 threads", () => {
    const files = [1, 3].map((threads) => {
      const csv = join(workDirectory, `stats-${threads}.csv`);
      const { status, stderr } = run([
        ...QUICK,
        "--net",
        "conv-blur-net",
        "--threads",
        String(threads),
        "--csv-file-name",
        csv,
        "--quiet",
      ]);
      assert.equal(status, 0, stderr);
      return readFileSync(csv, "utf8");
    });
    assert.equal(files[1], files[0]);
    const lines = files[0].split("\n");
    assert.equal(lines[0], "# epoch, train_loss, test_loss, train_accuracy, test_accuracy");
    assert.match(lines[1], /^1, [\d.e-]+, [\d.e-]+, [\d.e-]+, [\d.e-]+$/);
    assert.match(lines[2], /^2, /);
    assert.equal(lines[3], "");
  });

  test("csv has a block per trial", () => {
    const csv = join(workDirectory, "trials.csv");
    const { status } = run([
      ...QUICK,
      "--net",
      "linear",
      "--trial-count",
      "2",
      "--csv-file-name",
      csv,
    ]);
    assert.equal(status, 0);
    const blocks = readFileSync(csv, "utf8")
      .split("\n\n")
      .filter((block) => block.length > 0);
    assert.equal(blocks.length, 2);
    assert.notEqual(blocks[0], blocks[1], "trial 1 uses another seed");
  });

  test("human lines, parameter count and quiet", () => {
    const loud = run([...QUICK, "--net", "linear"]);
    assert.equal(loud.status, 0);
    assert.match(loud.stdout, /^trainable parameters: 7850$/m);
    assert.match(loud.stdout, /^epoch 1\/2 .*train loss [\d.]+ accuracy [\d.]+ .*test loss/m);
    assert.match(loud.stdout, /^epoch 2\/2 /m);
    const quiet = run([...QUICK, "--net", "linear", "--quiet"]);
    assert.equal(quiet.status, 0);
    assert.doesNotMatch(quiet.stdout, /^epoch/m);
  });

  test("log file gets json events", () => {
    const log = join(workDirectory, "logs", "run.jsonl");
    const { status } = run([...QUICK, "--net", "linear", "--quiet", "--log-file", log]);
    assert.equal(status, 0);
    const events = readFileSync(log, "utf8")
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line));
    assert.deepEqual(
      events.map((event) => event.event),
      ["run-start", "epoch", "epoch", "trial-end"],
    );
    assert.equal(events[0].settings.net, "linear");
    assert.equal(events[0].threads, 2);
    for (const field of [
      "trial",
      "epoch",
      "trainLoss",
      "testLoss",
      "trainAccuracy",
      "testAccuracy",
      "weightNorm",
      "seconds",
      "imagesPerSecond",
    ]) {
      assert.equal(typeof events[1][field], "number", `epoch event field ${field}`);
    }
  });

  test("oversized mini-batch is clamped with a warning", () => {
    const { status, stderr } = run([
      ...QUICK,
      "--net",
      "linear",
      "--mini-batch-size",
      "5000",
      "--epoch-count",
      "1",
    ]);
    assert.equal(status, 0);
    assert.match(
      stderr,
      /warning: --mini-batch-size 5000 is larger than the 400 training images; using 400/,
    );
  });
});

describe("train.js weights and json output", () => {
  test("json log format puts only events on stdout", () => {
    const { status, stdout } = run([...QUICK, "--net", "linear", "--log-format", "json"]);
    assert.equal(status, 0);
    const events = stdout
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line));
    assert.equal(events[0].event, "run-start");
    assert.equal(events[0].parameterCount, 7850);
    assert.equal(typeof events[0].cpuModel, "string");
    assert.equal(typeof events[0].version, "string");
    assert.deepEqual(
      events.slice(1).map((event) => event.event),
      ["epoch", "epoch", "trial-end"],
    );
  });

  test("save-weights names one file per trial", () => {
    const base = join(workDirectory, "weights", "linear.safetensors");
    const { status, stderr } = run([
      ...QUICK,
      "--net",
      "linear",
      "--trial-count",
      "2",
      "--quiet",
      "--save-weights",
      base,
    ]);
    assert.equal(status, 0, stderr);
    const first = readFileSync(join(workDirectory, "weights", "linear-trial-0.safetensors"));
    const second = readFileSync(join(workDirectory, "weights", "linear-trial-1.safetensors"));
    assert.ok(!first.equals(second));
  });

  test("init-weights starts from saved weights", () => {
    const saved = join(workDirectory, "init", "start.safetensors");
    const once = run([
      ...QUICK,
      "--net",
      "linear",
      "--epoch-count",
      "1",
      "--quiet",
      "--save-weights",
      saved,
    ]);
    assert.equal(once.status, 0, once.stderr);
    const csv = join(workDirectory, "init", "continued.csv");
    const continued = run([
      ...QUICK,
      "--net",
      "linear",
      "--epoch-count",
      "1",
      "--quiet",
      "--init-weights",
      saved,
      "--csv-file-name",
      csv,
    ]);
    assert.equal(continued.status, 0, continued.stderr);
    const fresh = join(workDirectory, "init", "fresh.csv");
    run([...QUICK, "--net", "linear", "--epoch-count", "1", "--quiet", "--csv-file-name", fresh]);
    assert.notEqual(readFileSync(csv, "utf8"), readFileSync(fresh, "utf8"));
  });

  test("init-weights of another net exits with 2", () => {
    const saved = join(workDirectory, "init", "start.safetensors");
    const { status, stderr } = run([...QUICK, "--net", "single-layer", "--init-weights", saved]);
    assert.equal(status, 2);
    assert.match(stderr, /tensor fc1\.weight is missing/);
  });
});
