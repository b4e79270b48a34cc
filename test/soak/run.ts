// Soak test of dist/train.js, run by `npm run soak` and not part of `npm test`. It trains one
// recipe twice on a synthetic data set. The first run is undisturbed. The second runs in
// segments: each ends in a SIGINT after a random delay and the next resumes from the checkpoint.
// Half of the segments also kill a worker thread at a random step
// (TRAINER_FAULT_KILL_WORKER_AT_STEP). The soak passes when the final weights are byte-identical
// and the resident memory of the undisturbed run does not grow from epoch to epoch.
//
// node dist/test/soak/run.js [--minutes M] [--net NAME] [--seed N] [--max-threads N]
//                            [--train-count N] [--keep]
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

import { NET_NAMES, type NetName } from "../../src/nets/index.js";
import { Random } from "../../src/random.js";
import { writeSyntheticDataDirectory } from "../synthetic.js";

// Compiled, this file is dist/test/soak/run.js, and the entry point is dist/train.js.
const TRAIN = fileURLToPath(new URL("../../train.js", import.meta.url));
const FAULT_VARIABLE = "TRAINER_FAULT_KILL_WORKER_AT_STEP";

const MINI_BATCH_SIZE = 100;
const TEST_COUNT = 500;
/** Exit code of a run stopped by SIGINT (128 + 2), see README.md. */
const EXIT_SIGINT = 130;
/** How long a run may take to exit after SIGINT before the soak counts it as hung. */
const STOP_TIMEOUT_MS = 60_000;

/**
 * Memory check: the median RSS of the last epochs may exceed the median of the first epochs
 * (after epoch 1, while the heaps still grow) by at most this fraction or this many MiB,
 * whichever is larger. A leak of one gradient buffer (0.8 MiB for conv-net) per step exceeds it
 * within two epochs.
 */
const RSS_GROWTH_FRACTION = 0.1;
const RSS_GROWTH_MIB = 24;

/** An invalid flag of the soak script itself (exit code 2). */
class UsageError extends Error {}

interface SoakOptions {
  minutes: number;
  net: NetName;
  seed: number;
  maxThreads: number;
  trainCount: number;
  keep: boolean;
}

const SOAK_FLAGS = {
  minutes: { type: "string", default: "5" },
  net: { type: "string", default: "conv-net" },
  seed: { type: "string", default: "1" },
  "max-threads": { type: "string", default: "2" },
  "train-count": { type: "string", default: "3000" },
  keep: { type: "boolean", default: false },
} as const;

function readSoakOptions(): SoakOptions {
  let values: ReturnType<typeof parseArgs<{ options: typeof SOAK_FLAGS }>>["values"];
  try {
    ({ values } = parseArgs({ options: SOAK_FLAGS }));
  } catch (error) {
    // parseArgs reports an unknown flag or a missing value with an ERR_PARSE_ARGS_* code.
    if (!String((error as NodeJS.ErrnoException).code).startsWith("ERR_PARSE_ARGS")) throw error;
    throw new UsageError(
      `${(error as Error).message}. Flags: ${Object.keys(SOAK_FLAGS)
        .map((flag) => `--${flag}`)
        .join(", ")}`,
    );
  }

  const minutes = Number(values.minutes);
  const seed = Number(values.seed);
  const maxThreads = Number(values["max-threads"]);
  const trainCount = Number(values["train-count"]);
  const net = values.net as NetName;

  if (!(minutes > 0)) throw new UsageError(`--minutes ${values.minutes}: expected a number > 0`);
  if (!NET_NAMES.includes(net)) {
    throw new UsageError(`--net ${values.net}: expected one of ${NET_NAMES.join(", ")}`);
  }
  if (!Number.isSafeInteger(seed) || seed < 0) {
    throw new UsageError(`--seed ${values.seed}: expected an integer ≥ 0`);
  }
  if (!Number.isSafeInteger(maxThreads) || maxThreads < 1) {
    throw new UsageError(`--max-threads ${values["max-threads"]}: expected an integer ≥ 1`);
  }
  if (!Number.isSafeInteger(trainCount) || trainCount < MINI_BATCH_SIZE) {
    throw new UsageError(
      `--train-count ${values["train-count"]}: expected an integer ≥ ${MINI_BATCH_SIZE}`,
    );
  }

  return { minutes, net, seed, maxThreads, trainCount, keep: values.keep };
}

interface EpochSample {
  epoch: number;
  rssMiB: number;
}

/** One process of dist/train.js from start to exit. */
interface Segment {
  status: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
  epochs: EpochSample[];
  /** Seconds of the epoch events, as the trainer measured them. */
  epochSeconds: number[];
  /** Shards that failed because a worker was killed (warning events of the first attempt). */
  killedWorkers: number;
  /** Whether the soak sent SIGINT. */
  interrupted: boolean;
  wallSeconds: number;
}

/** Reads the resident set size of a process from /proc (Linux), in MiB. */
function readRssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  if (!match) throw new Error(`/proc/${pid}/status has no VmRSS line`);
  return Number(match[1]) / 1024;
}

/**
 * Runs dist/train.js with `--log-format json` and samples its RSS at every epoch event. With
 * `interruptAfterMs`, sends SIGINT that long after the run-start event, from which on the run
 * handles the signal.
 */
function runSegment(
  args: string[],
  env: Record<string, string>,
  interruptAfterMs: number | null,
): Promise<Segment> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(process.execPath, [TRAIN, ...args, "--log-format", "json"], {
      env: { ...process.env, FASHION_MNIST_DIR: "", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const segment: Segment = {
      status: null,
      signal: null,
      stderr: "",
      epochs: [],
      epochSeconds: [],
      killedWorkers: 0,
      interrupted: false,
      wallSeconds: 0,
    };
    const timers: NodeJS.Timeout[] = [];
    let pending = "";

    const onEvent = (event: { event?: string; epoch?: number; seconds?: number; msg?: string }) => {
      if (event.event === "run-start" && interruptAfterMs !== null) {
        timers.push(
          setTimeout(() => {
            segment.interrupted = true;
            child.kill("SIGINT");
            timers.push(setTimeout(() => child.kill("SIGKILL"), STOP_TIMEOUT_MS));
          }, interruptAfterMs),
        );
      }
      if (event.event === "epoch") {
        segment.epochs.push({ epoch: event.epoch!, rssMiB: readRssMiB(child.pid!) });
        segment.epochSeconds.push(event.seconds!);
      }
      if (event.event === "warning" && /shard\(s\) failed \(attempt 1\)/.test(event.msg ?? "")) {
        segment.killedWorkers += 1;
      }
    };

    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (chunk: string) => {
      pending += chunk;
      let newline: number;
      while ((newline = pending.indexOf("\n")) >= 0) {
        const line = pending.slice(0, newline);
        pending = pending.slice(newline + 1);
        if (line.trim() !== "") onEvent(JSON.parse(line));
      }
    });
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (chunk: string) => (segment.stderr += chunk));
    child.on("error", reject);
    child.on("close", (status, signal) => {
      for (const timer of timers) clearTimeout(timer);
      segment.status = status;
      segment.signal = signal;
      segment.wallSeconds = (performance.now() - started) / 1000;
      resolve(segment);
    });
  });
}

function sha256(path: string): string {
  return createHash("sha256").update(readFileSync(path)).digest("hex");
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

interface MemoryVerdict {
  ok: boolean;
  text: string;
}

/**
 * Compares the median RSS of the last k epochs with that of epochs 2 to k + 1, where k is a
 * quarter of the epochs and at least 2. Epoch 1 is left out because the heaps grow to their
 * working size during it.
 */
function checkMemory(samples: EpochSample[]): MemoryVerdict {
  if (samples.length < 5) {
    return { ok: false, text: `only ${samples.length} epochs, 5 are needed to compare` };
  }
  const k = Math.max(2, Math.floor(samples.length / 4));
  const rss = samples.map((sample) => sample.rssMiB);
  const first = median(rss.slice(1, 1 + k));
  const last = median(rss.slice(rss.length - k));
  const tolerance = Math.max(RSS_GROWTH_FRACTION * first, RSS_GROWTH_MIB);
  const growth = last - first;
  return {
    ok: growth <= tolerance,
    text:
      `median of epochs 2-${k + 1} ${first.toFixed(1)} MiB, of the last ${k} ` +
      `${last.toFixed(1)} MiB, growth ${growth.toFixed(1)} MiB (tolerance ${tolerance.toFixed(1)} MiB)`,
  };
}

function formatRss(samples: EpochSample[]): string {
  return samples.map((sample) => sample.rssMiB.toFixed(0)).join(" ");
}

interface DisturbedRunPlan {
  recipe: string[];
  checkpoints: string;
  weights: string;
  /** Seconds of one epoch, and of one epoch plus a process start, from the calibration run. */
  firstEpochSeconds: number;
  firstRunSeconds: number;
  /** Soak time (seconds) after which no segment is interrupted and --epoch-count stays. */
  deadline: number;
  elapsedSeconds: () => number;
  random: Random;
  maxThreads: number;
  /** Threads of the calibration run, to scale its step time to a segment's thread count. */
  calibrationThreads: number;
  stepsPerEpoch: number;
}

interface DisturbedRun {
  segments: Segment[];
  /** The --epoch-count of the first segment, then each raised value. */
  epochCounts: number[];
  epochCount: number;
  scheduledKills: number;
  completed: boolean;
  weights: string;
  failures: string[];
}

/**
 * Trains the recipe in segments until the deadline, then lets the last segment finish. Each
 * segment before the deadline gets SIGINT after a random delay of up to 1.5 epochs. The next
 * segment resumes from the checkpoint, on a random thread count, and raises --epoch-count to the
 * epochs that fit before the deadline. Half of the segments also kill a worker.
 */
async function runDisturbed(plan: DisturbedRunPlan): Promise<DisturbedRun> {
  const { random, elapsedSeconds } = plan;
  const started = elapsedSeconds();
  // Durations of whole epochs, for the interrupt delays. The first epoch of a resumed process is
  // left out, because it started in the middle.
  const observedEpochSeconds = [plan.firstEpochSeconds];
  let epochsDone = 0;
  // Soak time per completed epoch so far, with the process starts and the interrupts, or the
  // calibration run's time until two epochs are done.
  const secondsPerEpoch = () =>
    epochsDone >= 2 ? (elapsedSeconds() - started) / epochsDone : plan.firstRunSeconds;
  const epochsThatFit = () => Math.floor((plan.deadline - elapsedSeconds()) / secondsPerEpoch());
  // The first segment starts with about half of the epochs that fit, so that resumes raise it.
  let epochCount = Math.max(2, Math.floor(epochsThatFit() / 2));
  const result: DisturbedRun = {
    segments: [],
    epochCounts: [epochCount],
    epochCount,
    scheduledKills: 0,
    completed: false,
    weights: plan.weights,
    failures: [],
  };

  while (!result.completed) {
    const beforeDeadline = elapsedSeconds() < plan.deadline;
    // Raise only once two epochs give a measured rate: the calibration run does not include the
    // interrupts, the process starts and the segments on fewer threads.
    if (epochsDone >= 2 && beforeDeadline) {
      const raised = epochsDone + epochsThatFit();
      if (raised > epochCount) {
        epochCount = raised;
        result.epochCounts.push(epochCount);
      }
    }
    const base = result.segments.length === 0 ? plan.recipe : ["--resume", plan.checkpoints];
    const threads = 1 + random.nextBelow(plan.maxThreads);
    const args = [
      ...base,
      "--epoch-count",
      String(epochCount),
      "--checkpoint-dir",
      plan.checkpoints,
      "--save-weights",
      plan.weights,
      "--threads",
      String(threads),
    ];
    const epochMs = median(observedEpochSeconds) * 1000;
    const interruptAfterMs = beforeDeadline
      ? Math.round(200 + random.nextDouble() * 1.5 * epochMs)
      : null;
    // Half of the segments kill a worker, at a step that is likely to come before the interrupt.
    // The step time is an estimate: it includes the evaluation after each epoch and assumes that
    // the speed is proportional to the thread count.
    const env: Record<string, string> = {};
    if (random.nextDouble() < 0.5) {
      const stepMs = (epochMs / plan.stepsPerEpoch) * (plan.calibrationThreads / threads);
      const expectedSteps =
        interruptAfterMs === null ? plan.stepsPerEpoch : interruptAfterMs / stepMs;
      env[FAULT_VARIABLE] = String(1 + random.nextBelow(Math.max(1, Math.floor(expectedSteps))));
      result.scheduledKills += 1;
    }

    const segment = await runSegment(args, env, interruptAfterMs);
    result.segments.push(segment);
    const resumed = result.segments.length > 1;
    observedEpochSeconds.push(...segment.epochSeconds.slice(resumed ? 1 : 0));
    for (const sample of segment.epochs) epochsDone = Math.max(epochsDone, sample.epoch);
    const number = result.segments.length;

    if (segment.status === 0) {
      // Finished the current --epoch-count: done, unless the deadline leaves room to raise it.
      result.completed = !(elapsedSeconds() < plan.deadline && epochsThatFit() >= 1);
    } else if (segment.interrupted && segment.status === EXIT_SIGINT) {
      if (!existsSync(join(plan.checkpoints, "latest"))) {
        result.failures.push(`segment ${number}: exit code 130 but no checkpoint was written`);
        break;
      }
      const hint = `resume with: node dist/train.js --resume ${plan.checkpoints}`;
      if (!segment.stderr.includes(hint)) {
        result.failures.push(`segment ${number}: no resume hint on stderr:\n${segment.stderr}`);
      }
    } else {
      const ending = segment.signal ? `signal ${segment.signal}` : `exit code ${segment.status}`;
      result.failures.push(`segment ${number} ended with ${ending}:\n${segment.stderr}`);
      break;
    }
  }
  result.epochCount = epochCount;
  return result;
}

async function main(): Promise<number> {
  const options = readSoakOptions();
  const budgetSeconds = options.minutes * 60;
  const soakStarted = performance.now();
  const elapsedSeconds = () => (performance.now() - soakStarted) / 1000;
  const random = new Random(options.seed);

  const work = mkdtempSync(join(tmpdir(), "trainer-soak-"));
  const dataDirectory = writeSyntheticDataDirectory(
    join(work, "data"),
    options.trainCount,
    TEST_COUNT,
  );
  const recipe = [
    "--data-dir",
    dataDirectory,
    "--net",
    options.net,
    "--mini-batch-size",
    String(MINI_BATCH_SIZE),
    "--seed",
    String(options.seed),
  ];
  const stepsPerEpoch = Math.ceil(options.trainCount / MINI_BATCH_SIZE);
  const referenceThreads = Math.min(2, options.maxThreads);
  const failures: string[] = [];
  const log = (line: string) => console.log(line);

  // Calibration: one epoch gives the first estimate of the epoch time.
  const calibration = await runSegment(
    [...recipe, "--epoch-count", "1", "--threads", String(referenceThreads)],
    {},
    null,
  );
  if (calibration.status !== 0) {
    log(`calibration run failed with exit code ${calibration.status}:\n${calibration.stderr}`);
    log(`work directory kept: ${work}`);
    return 1;
  }
  log(
    `soak: ${options.net}, ${options.trainCount} training and ${TEST_COUNT} test images, ` +
      `mini-batch ${MINI_BATCH_SIZE} (${stepsPerEpoch} steps per epoch), seed ${options.seed}, ` +
      `budget ${options.minutes} min`,
  );
  log(
    `calibration: 1 epoch in ${calibration.epochSeconds[0].toFixed(1)} s, ` +
      `${calibration.wallSeconds.toFixed(1)} s with the process start`,
  );

  // The disturbed run gets half of the remaining budget and the reference run the other half.
  const disturbedDeadline = elapsedSeconds() + (budgetSeconds - elapsedSeconds()) / 2;
  const disturbed = await runDisturbed({
    recipe,
    checkpoints: join(work, "checkpoints"),
    weights: join(work, "disturbed.safetensors"),
    firstEpochSeconds: calibration.epochSeconds[0],
    firstRunSeconds: calibration.wallSeconds,
    deadline: disturbedDeadline,
    elapsedSeconds,
    random,
    maxThreads: options.maxThreads,
    calibrationThreads: referenceThreads,
    stepsPerEpoch,
  });
  failures.push(...disturbed.failures);
  const { segments, epochCount } = disturbed;
  const interruptions = segments.filter((segment) => segment.status === EXIT_SIGINT).length;
  const killedWorkers = segments.reduce((sum, segment) => sum + segment.killedWorkers, 0);
  const disturbedEpochs = segments.reduce((sum, segment) => sum + segment.epochs.length, 0);
  const disturbedSeconds = segments.reduce((sum, segment) => sum + segment.wallSeconds, 0);
  log(
    `disturbed: ${segments.length} processes on 1 to ${options.maxThreads} threads, ` +
      `${disturbedEpochs} epochs in ${disturbedSeconds.toFixed(0)} s, ` +
      `--epoch-count ${disturbed.epochCounts.join(" → ")} (raised on resume)`,
  );
  log(`interruptions: ${interruptions} (SIGINT, exit code 130, then --resume)`);
  log(
    `killed workers: ${killedWorkers} (${disturbed.scheduledKills} scheduled; a kill scheduled ` +
      `for a step after the interrupt does not happen)`,
  );

  // The undisturbed run of the final recipe: the weights to compare with, and the memory samples.
  const referenceWeights = join(work, "reference.safetensors");
  const reference = await runSegment(
    [
      ...recipe,
      "--epoch-count",
      String(epochCount),
      "--threads",
      String(referenceThreads),
      "--save-weights",
      referenceWeights,
    ],
    {},
    null,
  );
  log(
    `reference: ${reference.epochs.length} epochs on ${referenceThreads} threads in ` +
      `${reference.wallSeconds.toFixed(0)} s, exit code ${reference.status}`,
  );
  if (reference.status !== 0) failures.push(`reference run failed:\n${reference.stderr}`);

  if (disturbed.completed && !existsSync(disturbed.weights)) {
    failures.push(`the disturbed run completed without writing ${disturbed.weights}`);
  } else if (disturbed.completed && reference.status === 0) {
    const identical = readFileSync(disturbed.weights).equals(readFileSync(referenceWeights));
    log(
      `weights: ${identical ? "byte-identical" : "DIFFERENT"} ` +
        `(reference sha256 ${sha256(referenceWeights).slice(0, 16)}, ` +
        `disturbed ${sha256(disturbed.weights).slice(0, 16)})`,
    );
    if (!identical) failures.push("the disturbed run's weights differ from the reference");
  }

  log(`RSS per epoch of the reference run (MiB): ${formatRss(reference.epochs)}`);
  const longest = segments.reduce<Segment | null>(
    (best, segment) => (best && best.epochs.length >= segment.epochs.length ? best : segment),
    null,
  );
  if (longest && longest.epochs.length > 0) {
    log(
      `RSS per epoch of the longest disturbed process (MiB): ${formatRss(longest.epochs)} ` +
        `(epochs ${longest.epochs[0].epoch}-${longest.epochs[longest.epochs.length - 1].epoch})`,
    );
  }
  const memory = checkMemory(reference.epochs);
  log(`memory: ${memory.ok ? "no growth" : "GROWTH"}: ${memory.text}`);
  if (!memory.ok) failures.push(`memory check failed: ${memory.text}`);

  log(`total time: ${elapsedSeconds().toFixed(0)} s`);
  for (const failure of failures) log(`FAILED: ${failure}`);
  log(`verdict: ${failures.length === 0 ? "PASS" : "FAIL"}`);
  if (failures.length === 0 && !options.keep) {
    rmSync(work, { recursive: true, force: true });
  } else {
    log(`work directory kept: ${work}`);
  }
  return failures.length === 0 ? 0 : 1;
}

// `npm test` runs every file under dist/test/ with `node --test`, this one included. The test
// runner sets NODE_TEST_CONTEXT in the processes it starts, so the soak only runs when started
// directly.
if (process.env.NODE_TEST_CONTEXT !== undefined) {
  console.log("soak test skipped under node --test: run it with npm run soak");
} else {
  await runFromCommandLine();
}

async function runFromCommandLine(): Promise<void> {
  try {
    process.exitCode = await main();
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`error: ${error.message}`);
    process.exitCode = 2;
  }
}
