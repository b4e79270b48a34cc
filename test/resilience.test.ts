// Runs that break: interrupts and resume, a worker that dies, divergence, damaged checkpoints.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { fileURLToPath } from "node:url";

import { writeSyntheticDataDirectory } from "./synthetic.js";

const TRAIN = fileURLToPath(new URL("../train.js", import.meta.url));
const work = mkdtempSync(join(tmpdir(), "trainer-resilience-"));
after(() => rmSync(work, { recursive: true, force: true }));
const dataDirectory = writeSyntheticDataDirectory(join(work, "data"), 400, 100);

const RECIPE = [
  "--data-dir",
  dataDirectory,
  "--net",
  "conv-net",
  "--epoch-count",
  "4",
  "--mini-batch-size",
  "50",
  "--threads",
  "2",
  "--seed",
  "5",
];

function run(args: string[], env: NodeJS.ProcessEnv = {}) {
  const result = spawnSync(process.execPath, [TRAIN, ...args], {
    encoding: "utf8",
    env: { ...process.env, FASHION_MNIST_DIR: "", ...env },
    timeout: 180_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** Starts a run and sends `signal` once the first epoch event appears on stdout (json format). */
function runAndSignal(args: string[], signal: NodeJS.Signals, count = 1) {
  return new Promise<{ status: number | null; stderr: string }>((resolve, reject) => {
    const child = spawn(process.execPath, [TRAIN, ...args, "--log-format", "json"], {
      env: { ...process.env, FASHION_MNIST_DIR: "" },
    });
    let stdout = "";
    let stderr = "";
    let sent = false;
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
      if (!sent && stdout.includes('"event":"epoch"')) {
        sent = true;
        for (let i = 0; i < count; i++) child.kill(signal);
      }
    });
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.on("error", reject);
    child.on("close", (status) => resolve({ status, stderr }));
  });
}

function csvRows(path: string): string[] {
  return readFileSync(path, "utf8")
    .split("\n")
    .filter((line) => /^\d/.test(line));
}

const reference = join(work, "reference");
function referenceRun() {
  if (!existsSync(`${reference}.safetensors`)) {
    const { status, stderr } = run([
      ...RECIPE,
      "--quiet",
      "--save-weights",
      `${reference}.safetensors`,
      "--csv-file-name",
      `${reference}.csv`,
    ]);
    assert.equal(status, 0, stderr);
  }
  return { weights: readFileSync(`${reference}.safetensors`), rows: csvRows(`${reference}.csv`) };
}

describe("interrupt and resume", () => {
  test("sigint mid-run then resume matches", async () => {
    const expected = referenceRun();
    const checkpoints = join(work, "interrupted", "checkpoints");
    const first = await runAndSignal([...RECIPE, "--checkpoint-dir", checkpoints], "SIGINT");
    assert.equal(first.status, 130, first.stderr);
    assert.match(
      first.stderr,
      new RegExp(`resume with: node dist/train.js --resume ${checkpoints}`),
    );
    assert.ok(existsSync(join(checkpoints, "latest")));
    assert.ok(existsSync(join(checkpoints, "best")));

    const weights = join(work, "interrupted", "final.safetensors");
    const csv = join(work, "interrupted", "resumed.csv");
    const resumed = run([
      "--resume",
      checkpoints,
      "--threads",
      "1",
      "--quiet",
      "--save-weights",
      weights,
      "--csv-file-name",
      csv,
    ]);
    assert.equal(resumed.status, 0, resumed.stderr);
    assert.ok(
      readFileSync(weights).equals(expected.weights),
      "weights equal the uninterrupted run's",
    );
    const rows = csvRows(csv);
    assert.ok(rows.length >= 1, `resumed run wrote ${rows.length} rows`);
    assert.ok(rows.length <= 3, `resumed run wrote ${rows.length} rows`);
    assert.deepEqual(rows, expected.rows.slice(expected.rows.length - rows.length));
  });

  test("resume continues the same csv file", async () => {
    const expected = referenceRun();
    const directory = join(work, "same-csv");
    const csv = join(directory, "stats.csv");
    const first = await runAndSignal(
      [...RECIPE, "--checkpoint-dir", join(directory, "checkpoints"), "--csv-file-name", csv],
      "SIGINT",
    );
    assert.equal(first.status, 130, first.stderr);
    assert.match(first.stderr, /--csv-file-name \S*stats\.csv/, "the resume command keeps the csv");

    const resumed = run([
      "--resume",
      join(directory, "checkpoints"),
      "--quiet",
      "--csv-file-name",
      csv,
    ]);
    assert.equal(resumed.status, 0, resumed.stderr);
    assert.deepEqual(csvRows(csv), expected.rows);
    assert.equal(readFileSync(csv, "utf8"), readFileSync(`${reference}.csv`, "utf8"));
  });

  test("sigterm exits with 143", async () => {
    const result = await runAndSignal(
      [...RECIPE, "--checkpoint-dir", join(work, "terminated")],
      "SIGTERM",
    );
    assert.equal(result.status, 143, result.stderr);
    assert.ok(existsSync(join(work, "terminated", "latest")));
  });

  test("second sigint exits at once", async () => {
    const result = await runAndSignal(
      [...RECIPE, "--checkpoint-dir", join(work, "twice")],
      "SIGINT",
      2,
    );
    assert.equal(result.status, 130);
    // The checkpoint of the first epoch was written whole before the signals.
    const resumed = run(["--resume", join(work, "twice"), "--epoch-count", "4", "--quiet"]);
    assert.equal(resumed.status, 0, resumed.stderr);
  });

  test("epoch-boundary resume with more epochs", () => {
    const expected = referenceRun();
    const checkpoints = join(work, "short");
    const short = run([
      ...RECIPE,
      "--epoch-count",
      "2",
      "--quiet",
      "--checkpoint-dir",
      checkpoints,
    ]);
    assert.equal(short.status, 0, short.stderr);
    const weights = join(work, "short.safetensors");
    const longer = run([
      "--resume",
      checkpoints,
      "--epoch-count",
      "4",
      "--quiet",
      "--save-weights",
      weights,
    ]);
    assert.equal(longer.status, 0, longer.stderr);
    assert.ok(readFileSync(weights).equals(expected.weights));
  });

  test("contradicting flag on resume exits with 2", () => {
    const checkpoints = join(work, "short");
    const result = run(["--resume", checkpoints, "--net", "linear"]);
    assert.equal(result.status, 2);
    assert.match(result.stderr, /--net linear contradicts the checkpoint .*\(--net conv-net\)/);
  });

  test("lower epoch count on resume exits with 2", () => {
    const result = run(["--resume", join(work, "short"), "--epoch-count", "1"]);
    assert.equal(result.status, 2);
    assert.match(result.stderr, /--epoch-count 1 is lower than the \d+ epochs/);
  });
});

describe("damaged checkpoints", () => {
  test("corrupted checkpoint exits with 2", () => {
    const source = readFileSync(join(work, "short", "latest"));
    const directory = join(work, "corrupted");
    const bytes = Buffer.from(source);
    bytes[bytes.length >> 1] ^= 0xff;
    rmSync(directory, { recursive: true, force: true });
    spawnSync("mkdir", ["-p", directory]);
    writeFileSync(join(directory, "latest"), bytes);
    const result = run(["--resume", directory]);
    assert.equal(result.status, 2);
    assert.match(result.stderr, /latest: checksum mismatch/);
    assert.doesNotMatch(result.stderr, /\n\s+at /);
  });

  test("truncated checkpoint exits with 2", () => {
    const source = readFileSync(join(work, "short", "latest"));
    const directory = join(work, "truncated");
    spawnSync("mkdir", ["-p", directory]);
    writeFileSync(join(directory, "latest"), source.subarray(0, source.length - 1000));
    const result = run(["--resume", directory]);
    assert.equal(result.status, 2);
    assert.match(result.stderr, /checksum mismatch \(truncated or corrupted\)/);
  });

  test("missing checkpoint exits with 2", () => {
    const result = run(["--resume", join(work, "nothing-here")]);
    assert.equal(result.status, 2);
    assert.match(result.stderr, /nothing-here\/latest: cannot read the checkpoint \(not found\)/);
  });
});

describe("worker failures", () => {
  test("killed worker is recomputed bit for bit", () => {
    const expected = referenceRun();
    const weights = join(work, "killed.safetensors");
    const result = run([...RECIPE, "--quiet", "--save-weights", weights], {
      TRAINER_FAULT_KILL_WORKER_AT_STEP: "3:2",
    });
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stderr, /step 3: 1 shard\(s\) failed \(attempt 1\)/);
    assert.match(result.stderr, /step 3: 1 shard\(s\) failed \(attempt 2\)/);
    assert.ok(readFileSync(weights).equals(expected.weights));
  });

  test("three failed attempts exit with 4", () => {
    const checkpoints = join(work, "failing");
    const result = run([...RECIPE, "--quiet", "--checkpoint-dir", checkpoints], {
      TRAINER_FAULT_KILL_WORKER_AT_STEP: "12:3",
    });
    assert.equal(result.status, 4, result.stderr);
    assert.match(result.stderr, /step 12: 1 shard\(s\) still failed after 3 attempts/);
    // Step 12 is in epoch 2 (8 steps per epoch): the checkpoint of epoch 1 stays.
    const resumed = run(["--resume", checkpoints, "--epoch-count", "4", "--quiet"]);
    assert.equal(resumed.status, 0, resumed.stderr);
  });
});

describe("divergence", () => {
  test("huge sgd learning rate stops with 3", () => {
    const checkpoints = join(work, "diverged");
    const weights = join(work, "diverged.safetensors");
    const result = run([
      ...RECIPE,
      "--optimizer",
      "sgd",
      "--learning-rate",
      "1e6",
      "--checkpoint-dir",
      checkpoints,
      "--save-weights",
      weights,
      "--log-file",
      join(work, "diverged.jsonl"),
    ]);
    assert.equal(result.status, 3, result.stderr);
    assert.match(result.stderr, /training diverged: .* in trial 1, epoch 1, mini-batch \d+/);
    assert.ok(!existsSync(weights), "no weights written");
    assert.ok(!existsSync(join(checkpoints, "latest")), "no checkpoint of a diverged epoch");
    const events = readFileSync(join(work, "diverged.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    const failure = events.find((event) => event.event === "divergence");
    assert.ok(failure, "divergence event logged");
    assert.equal(failure.level, 50);
  });
});
