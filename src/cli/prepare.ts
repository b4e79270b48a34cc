// Everything a run checks before it creates any output: the output paths, flags against the
// checkpoint being resumed, the initial weights file, the data, and the subset sizes.
import { rmSync, statSync, writeFileSync, type Stats } from "node:fs";
import { dirname, join, resolve } from "node:path";

import { loadFashionMnist, locateDataDirectory, type FashionMnist } from "../data/index.js";
import {
  matchParameters,
  readSafetensors,
  SafetensorsError,
  type SafetensorsContents,
} from "../io/safetensors.js";
import { planModel } from "../model/plan.js";
import { LATEST_CHECKPOINT, readCheckpoint, type Checkpoint } from "../training/checkpoint.js";
import type { TrainingSettings } from "../training/trainer.js";
import { UsageError } from "./errors.js";
import { RESUMABLE_FLAGS, type ParsedOptions, type TrainOptions } from "./options.js";

export interface PreparedRun {
  settings: TrainingSettings;
  data: FashionMnist;
  checkpoint: Checkpoint | null;
  /** Flat weights (plan layout) to start every trial from, instead of a fresh initialization. */
  initialWeights: Float32Array | null;
  warnings: string[];
}

const FLAG_NAMES: Partial<Record<keyof TrainOptions, string>> = {
  net: "--net",
  optimizer: "--optimizer",
  learningRate: "--learning-rate",
  weightDecay: "--weight-decay",
  miniBatchSize: "--mini-batch-size",
  epochCount: "--epoch-count",
  trialCount: "--trial-count",
  seed: "--seed",
  trainCount: "--train-count",
  testCount: "--test-count",
  initWeights: "--init-weights",
};

export function prepareRun({ options, explicit }: ParsedOptions): PreparedRun {
  const warnings: string[] = [];
  checkOutputPaths(options);
  const checkpoint = options.resume
    ? readCheckpoint(join(options.resume, LATEST_CHECKPOINT))
    : null;
  // A resumed run reads the data from where the checkpointed run did, unless --data-dir is given.
  const dataDir = options.dataDir ?? checkpoint?.dataDirectory;
  const dataDirSource =
    options.dataDir === undefined && checkpoint ? `the checkpoint in ${options.resume}` : undefined;
  const data = loadFashionMnist(locateDataDirectory({ dataDir, dataDirSource }));

  let settings: TrainingSettings;
  if (checkpoint) {
    settings = settingsFromCheckpoint(checkpoint, options, explicit, options.resume!);
    checkSubset("--train-count", settings.trainCount, data.train.count, "training");
    checkSubset("--test-count", settings.testCount, data.test.count, "test");
  } else {
    settings = settingsFromOptions(options, data, warnings);
  }

  const initialWeights = options.initWeights
    ? readInitialWeights(options.initWeights, settings, warnings)
    : null;
  return { settings, data, checkpoint, initialWeights, warnings };
}

/**
 * Rejects output paths that cannot be written: a file flag that names a directory, a
 * --checkpoint-dir that names a file, and a path below an existing file. The run writes these
 * only after an epoch or a trial, so without this check the mistake would cost that much training
 * and end with a stack trace.
 */
function checkOutputPaths(options: TrainOptions): void {
  // Each file flag, its value and an example file name for the message.
  const files: [string, string | undefined, string][] = [
    ["--csv-file-name", options.csvFileName, "stats.csv"],
    ["--log-file", options.logFile, "run.jsonl"],
    ["--save-weights", options.saveWeights, `${options.net}.safetensors`],
  ];
  for (const [flag, path, example] of files) {
    if (path === undefined) continue;
    if (statOrUndefined(path)?.isDirectory()) {
      throw new UsageError(
        `${flag} ${path}: is a directory, expected a file name. Name a file, for example ${join(path, example)}`,
      );
    }
    checkParentDirectory(flag, path);
  }
  const directory = options.checkpointDir;
  if (directory !== undefined) {
    const stats = statOrUndefined(directory);
    if (stats && !stats.isDirectory()) {
      throw new UsageError(
        `--checkpoint-dir ${directory}: is a file, expected a directory. Name a new or existing directory`,
      );
    }
    checkParentDirectory("--checkpoint-dir", directory);
  }
}

/** Throws a UsageError when the nearest existing ancestor of `path` is not a directory. */
function checkParentDirectory(flag: string, path: string): void {
  let ancestor = dirname(resolve(path));
  for (;;) {
    const stats = statOrUndefined(ancestor);
    if (stats) {
      if (stats.isDirectory()) {
        checkWritable(flag, path, ancestor);
        return;
      }
      throw new UsageError(
        `${flag} ${path}: ${ancestor} is a file, so the path cannot be created. Name a path in a directory`,
      );
    }
    const parent = dirname(ancestor);
    if (parent === ancestor) return;
    ancestor = parent;
  }
}

/**
 * Creates and removes an empty file in `directory`, so that a directory the run cannot write to
 * (read-only, no permission, a pseudo file system) fails now rather than after an epoch.
 */
function checkWritable(flag: string, path: string, directory: string): void {
  const probe = join(directory, `.write-check-${process.pid}.tmp`);
  try {
    writeFileSync(probe, "");
    rmSync(probe, { force: true });
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new UsageError(
      `${flag} ${path}: cannot write in ${directory} (${reason}). Name a path in a writable directory`,
    );
  }
}

/** Returns the stats of `path`, or undefined when it does not exist or cannot be examined. */
function statOrUndefined(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}

function settingsFromOptions(
  options: TrainOptions,
  data: FashionMnist,
  warnings: string[],
): TrainingSettings {
  const trainCount = options.trainCount ?? data.train.count;
  const testCount = options.testCount ?? data.test.count;
  checkSubset("--train-count", trainCount, data.train.count, "training");
  checkSubset("--test-count", testCount, data.test.count, "test");
  let miniBatchSize = options.miniBatchSize;
  if (miniBatchSize > trainCount) {
    warnings.push(
      `--mini-batch-size ${miniBatchSize} is larger than the ${trainCount} training images; using ${trainCount}`,
    );
    miniBatchSize = trainCount;
  }
  return {
    net: options.net,
    optimizer: options.optimizer,
    learningRate: options.learningRate,
    weightDecay: options.weightDecay,
    miniBatchSize,
    epochCount: options.epochCount,
    trialCount: options.trialCount,
    seed: options.seed,
    trainCount,
    testCount,
  };
}

function checkSubset(flag: string, count: number, available: number, set: string): void {
  if (count > available) {
    throw new UsageError(
      `${flag} ${count} is larger than the ${set} set (${available} images): pass at most ${available}`,
    );
  }
}

/**
 * Takes the settings of the checkpoint. A flag given on the command line must agree with them,
 * except the run options in RESUMABLE_FLAGS and a larger --epoch-count.
 */
function settingsFromCheckpoint(
  checkpoint: Checkpoint,
  options: TrainOptions,
  explicit: Set<keyof TrainOptions>,
  directory: string,
): TrainingSettings {
  const saved = checkpoint.settings;
  const settings = { ...saved };
  for (const name of explicit) {
    if (RESUMABLE_FLAGS.includes(name)) continue;
    const flag = FLAG_NAMES[name] ?? name;
    if (name === "epochCount") {
      if (options.epochCount < saved.epochCount) {
        throw new UsageError(
          `--epoch-count ${options.epochCount} is lower than the ${saved.epochCount} epochs of the run in ${directory}: a resumed run may only raise it`,
        );
      }
      settings.epochCount = options.epochCount;
      continue;
    }
    if (name === "initWeights") {
      throw new UsageError(
        `--init-weights cannot be combined with --resume, because the checkpoint contains the weights. Drop --init-weights to resume, or start a new run without --resume`,
      );
    }
    const savedValue = (saved as unknown as Record<string, unknown>)[name];
    const given = options[name];
    // A mini-batch size above the training set was clamped when the run started.
    const agrees =
      given === savedValue ||
      (name === "miniBatchSize" &&
        savedValue === saved.trainCount &&
        Number(given) >= saved.trainCount);
    if (!agrees) {
      throw new UsageError(
        `${flag} ${String(given)} contradicts the checkpoint in ${directory} (${flag} ${String(savedValue)}): drop the flag to resume, or start a new run`,
      );
    }
  }
  return settings;
}

function readInitialWeights(
  path: string,
  settings: TrainingSettings,
  warnings: string[],
): Float32Array {
  const { net } = settings;
  const plan = planModel(net);
  const remedy = `Pass a safetensors file of ${net} weights, as --save-weights writes with --net ${net}`;
  let contents: SafetensorsContents;
  let extra: string[];
  try {
    contents = readSafetensors(path);
    ({ extra } = matchParameters(path, contents.tensors, plan.parameters));
  } catch (error) {
    // SafetensorsError messages start with the path, so prefix the flag and add what to do.
    if (error instanceof SafetensorsError) {
      throw new SafetensorsError(`--init-weights ${error.message}. ${remedy}`);
    }
    throw error;
  }
  if (extra.length > 0)
    warnings.push(`${path}: ignoring tensors this network does not use: ${extra.join(", ")}`);
  const weights = new Float32Array(plan.parameterCount);
  for (const tensor of plan.parameters) {
    const data = contents.tensors[tensor.name].data;
    for (let i = 0; i < data.length; i++) {
      if (!Number.isFinite(data[i])) {
        throw new UsageError(
          `--init-weights ${path}: tensor ${tensor.name} contains a non-finite value at index ${i}. Pass weights with finite values`,
        );
      }
    }
    weights.set(data, tensor.offset);
  }
  return weights;
}
