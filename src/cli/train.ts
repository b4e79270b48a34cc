// dist/train.js: parse flags, load the data, train every trial, report each epoch.
import { CommanderError } from "commander";
import type { Logger } from "pino";

import {
  DataError,
  loadFashionMnist,
  locateDataDirectory,
  type FashionMnist,
} from "../data/index.js";
import { createEventLog, formatEpochLine } from "../log.js";
import { CsvWriter } from "../training/csv.js";
import { Trainer, type TrainingSettings } from "../training/trainer.js";
import { PACKAGE_VERSION } from "../version.js";
import { ExitCode, UsageError } from "./errors.js";
import { buildCommand, readOptions, type TrainOptions } from "./options.js";

/** Parses argv (without node and the script); exits with 0 after --help, 2 on a bad flag. */
function parseArguments(argv: string[]): TrainOptions {
  const command = buildCommand().exitOverride();
  try {
    command.parse(argv, { from: "user" });
  } catch (error) {
    if (error instanceof CommanderError) {
      // commander has already printed its message (or the help text) to stderr or stdout.
      process.exit(error.exitCode === 0 ? ExitCode.success : ExitCode.usage);
    }
    throw error;
  }
  return readOptions(command);
}

/** Checks the requested subset sizes against the data and settles the mini-batch size. */
function resolveSettings(
  options: TrainOptions,
  data: FashionMnist,
  warn: (message: string) => void,
): TrainingSettings {
  const trainCount = options.trainCount ?? data.train.count;
  const testCount = options.testCount ?? data.test.count;
  if (trainCount > data.train.count) {
    throw new UsageError(
      `--train-count ${trainCount} is larger than the training set (${data.train.count} images): pass at most ${data.train.count}`,
    );
  }
  if (testCount > data.test.count) {
    throw new UsageError(
      `--test-count ${testCount} is larger than the test set (${data.test.count} images): pass at most ${data.test.count}`,
    );
  }
  let miniBatchSize = options.miniBatchSize;
  if (miniBatchSize > trainCount) {
    warn(
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

async function train(options: TrainOptions, log: Logger): Promise<void> {
  const warn = (message: string) => {
    process.stderr.write(`warning: ${message}\n`);
    log.warn({ event: "warning" }, message);
  };

  const directory = locateDataDirectory({ dataDir: options.dataDir });
  const data = loadFashionMnist(directory);
  const settings = resolveSettings(options, data, warn);
  const csv = options.csvFileName ? new CsvWriter(options.csvFileName) : null;

  const trainer = new Trainer(settings, data, options.threads);
  try {
    console.log(`trainable parameters: ${trainer.parameterCount}`);
    log.info(
      {
        event: "run-start",
        settings,
        threads: options.threads,
        dataDirectory: directory,
        parameterCount: trainer.parameterCount,
        version: PACKAGE_VERSION,
        node: process.version,
      },
      "run started",
    );

    for (let trial = 0; trial < settings.trialCount; trial++) {
      const started = performance.now();
      const results = await trainer.runTrial(trial, (result) => {
        if (!options.quiet)
          console.log(formatEpochLine(result, settings.epochCount, settings.trialCount));
        log.info({ event: "epoch", ...result }, "epoch finished");
        csv?.add(result);
      });
      const last = results[results.length - 1];
      log.info(
        {
          event: "trial-end",
          trial,
          epochs: results.length,
          trainLoss: last.trainLoss,
          testLoss: last.testLoss,
          trainAccuracy: last.trainAccuracy,
          testAccuracy: last.testAccuracy,
          weightNorm: last.weightNorm,
          seconds: (performance.now() - started) / 1000,
        },
        "trial finished",
      );
    }
  } finally {
    await trainer.close();
  }
}

export async function main(argv: string[]): Promise<number> {
  const options = parseArguments(argv);
  let log: Logger;
  try {
    log = createEventLog(options.logFile);
  } catch (error) {
    process.stderr.write(
      `error: cannot open --log-file ${options.logFile}: ${(error as Error).message}\n`,
    );
    return ExitCode.usage;
  }

  try {
    await train(options, log);
    return ExitCode.success;
  } catch (error) {
    const usage = error instanceof UsageError || error instanceof DataError;
    log.error({ event: "error", err: error }, (error as Error).message);
    process.stderr.write(`error: ${(error as Error).message}\n`);
    if (!usage) process.stderr.write(`${(error as Error).stack ?? ""}\n`);
    return usage ? ExitCode.usage : ExitCode.failure;
  }
}

process.exitCode = await main(process.argv.slice(2));
