// Command-line flags of dist/train.js, parsed with commander.
import { Command, InvalidArgumentError, Option } from "commander";

import { NET_NAMES, type NetName } from "../nets/index.js";
import {
  defaultLearningRate,
  OPTIMIZER_NAMES,
  type OptimizerName,
} from "../training/optimizers.js";
import { defaultThreadCount } from "../training/trainer.js";

export const MAX_THREADS = 256;

export interface TrainOptions {
  net: NetName;
  threads: number;
  optimizer: OptimizerName;
  learningRate: number;
  weightDecay: number;
  miniBatchSize: number;
  epochCount: number;
  trialCount: number;
  seed: number;
  /** Undefined: the whole set. */
  trainCount?: number;
  testCount?: number;
  dataDir?: string;
  csvFileName?: string;
  logFile?: string;
  logFormat: LogFormat;
  checkpointDir?: string;
  resume?: string;
  saveWeights?: string;
  initWeights?: string;
  quiet: boolean;
}

export const LOG_FORMATS = ["text", "json"] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/** Flags a resumed run may set freely; every other flag must agree with the checkpoint. */
export const RESUMABLE_FLAGS: readonly (keyof TrainOptions)[] = [
  "csvFileName",
  "logFile",
  "logFormat",
  "saveWeights",
  "checkpointDir",
  "threads",
  "quiet",
  "dataDir",
  "resume",
];

function integerIn(minimum: number, maximum: number) {
  const expected =
    maximum === Number.MAX_SAFE_INTEGER && minimum === 1
      ? "Expected a positive integer."
      : `Expected an integer from ${minimum} to ${maximum}.`;
  return (text: string): number => {
    const value = Number(text);
    if (!/^[+-]?\d+$/.test(text.trim()) || !Number.isSafeInteger(value)) {
      throw new InvalidArgumentError(expected);
    }
    if (value < minimum || value > maximum) throw new InvalidArgumentError(expected);
    return value;
  };
}

function finiteNumber(minimum: number, inclusive: boolean) {
  const range = inclusive ? `at least ${minimum}` : `greater than ${minimum}`;
  return (text: string): number => {
    const value = Number(text);
    if (text.trim() === "" || !Number.isFinite(value)) {
      throw new InvalidArgumentError(`Expected a finite number ${range}.`);
    }
    if (inclusive ? value < minimum : value <= minimum) {
      throw new InvalidArgumentError(`Expected a finite number ${range}.`);
    }
    return value;
  };
}

export function buildCommand(): Command {
  const count = integerIn(1, Number.MAX_SAFE_INTEGER);
  return new Command()
    .name("node dist/train.js")
    .description(
      "Train a Fashion-MNIST classifier on a pool of worker threads. Every flag has a default; " +
        "results are bit-identical for any --threads with the same --seed.",
    )
    .addOption(
      new Option("--net <name>", "network to train").choices(NET_NAMES).default("conv-net"),
    )
    .addOption(
      new Option("--threads <count>", `worker threads in the pool, 1 to ${MAX_THREADS}`)
        .argParser(integerIn(1, MAX_THREADS))
        .default(defaultThreadCount(), "available parallelism of this machine"),
    )
    .addOption(
      new Option("--optimizer <name>", "optimizer").choices(OPTIMIZER_NAMES).default("adam"),
    )
    .addOption(
      new Option(
        "--learning-rate <rate>",
        "initial learning rate, halved every 40 epochs (default: 0.005 for adam, 0.1 for sgd)",
      ).argParser(finiteNumber(0, false)),
    )
    .addOption(
      new Option("--weight-decay <factor>", "L2 weight decay added to the gradient")
        .argParser(finiteNumber(0, true))
        .default(1e-8),
    )
    .addOption(
      new Option("--mini-batch-size <images>", "images per optimizer step")
        .argParser(count)
        .default(1000),
    )
    .addOption(new Option("--epoch-count <count>", "epochs per trial").argParser(count).default(40))
    .addOption(
      new Option("--trial-count <count>", "independent trials; trial k uses seed + k")
        .argParser(count)
        .default(1),
    )
    .addOption(
      new Option("--seed <integer>", "seed of weights, shuffling and dropout")
        .argParser(integerIn(0, 2 ** 32 - 1))
        .default(0),
    )
    .addOption(
      new Option(
        "--train-count <images>",
        "train on the first N training images (default: all 60000)",
      ).argParser(count),
    )
    .addOption(
      new Option(
        "--test-count <images>",
        "evaluate on the first N test images (default: all 10000)",
      ).argParser(count),
    )
    .addOption(
      new Option(
        "--data-dir <directory>",
        "directory with the four Fashion-MNIST files (default: $FASHION_MNIST_DIR, then data/fashion_mnist/, then /usr/share/datasets/fashion-mnist/)",
      ),
    )
    .addOption(
      new Option("--csv-file-name <file>", "write per-epoch loss and accuracy as CSV to this file"),
    )
    .addOption(
      new Option("--log-file <file>", "append pino JSON events (one per line) to this file"),
    )
    .addOption(
      new Option(
        "--log-format <format>",
        "stdout: human lines (text) or only the JSON events (json)",
      )
        .choices(LOG_FORMATS)
        .default("text"),
    )
    .addOption(
      new Option(
        "--checkpoint-dir <directory>",
        "after every epoch write DIR/latest, and DIR/best when the test accuracy is the best so far",
      ),
    )
    .addOption(
      new Option(
        "--resume <directory>",
        "continue the run saved in DIR/latest and keep checkpointing there (its settings apply; --epoch-count may be raised)",
      ),
    )
    .addOption(
      new Option(
        "--save-weights <file>",
        "write the trained weights as safetensors (NAME-trial-K.safetensors with several trials)",
      ),
    )
    .addOption(
      new Option("--init-weights <file>", "start from the weights in this safetensors file"),
    )
    .addOption(
      new Option("--quiet", "no per-epoch lines on stdout and no progress bar").default(false),
    )
    .helpOption("-h, --help", "show every flag with its default")
    .allowExcessArguments(false);
}

export interface ParsedOptions {
  options: TrainOptions;
  /** Flags given on the command line (not defaults), by option name. */
  explicit: Set<keyof TrainOptions>;
}

/** Reads the parsed commander options into TrainOptions, filling the optimizer's learning rate. */
export function readOptions(command: Command): ParsedOptions {
  const raw = command.opts<Omit<TrainOptions, "learningRate"> & { learningRate?: number }>();
  const explicit = new Set<keyof TrainOptions>();
  for (const name of Object.keys(raw) as (keyof TrainOptions)[]) {
    if (command.getOptionValueSource(name) === "cli") explicit.add(name);
  }
  const options = { ...raw, learningRate: raw.learningRate ?? defaultLearningRate(raw.optimizer) };
  return { options, explicit };
}
