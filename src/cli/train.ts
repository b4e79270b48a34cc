// dist/train.js: parse flags, check every input, train every trial, report each epoch, and
// stop cleanly on interrupts, divergence and repeated worker failures.
import { readFileSync } from "node:fs";

import cliProgress from "cli-progress";
import type { Logger } from "pino";

import { writeSafetensors } from "../io/safetensors.js";
import { createEventLog, formatEpochLine, machineFields } from "../log.js";
import { parameterViews } from "../model/plan.js";
import {
  BEST_CHECKPOINT,
  CHECKPOINT_FORMAT_VERSION,
  LATEST_CHECKPOINT,
  writeCheckpoint,
} from "../training/checkpoint.js";
import { CsvWriter } from "../training/csv.js";
import { DivergenceError, StepFailedError } from "../training/errors.js";
import {
  Trainer,
  type EpochResult,
  type TrialPosition,
  type TrialSnapshot,
} from "../training/trainer.js";
import { PACKAGE_VERSION } from "../version.js";
import { isInputError, parseCommand, reportError } from "./command.js";
import { ExitCode, UsageError } from "./errors.js";
import { buildCommand, readOptions, type ParsedOptions, type TrainOptions } from "./options.js";
import { prepareRun, type PreparedRun } from "./prepare.js";

/** Parses argv (without node and the script); exits with 0 after --help, 2 on a bad flag. */
function parseArguments(argv: string[]): ParsedOptions {
  return readOptions(parseCommand(buildCommand(), argv));
}

/** Watches SIGINT and SIGTERM: the first stops the run after the current step, and a second SIGINT exits at once. */
class InterruptWatch {
  signal: NodeJS.Signals | null = null;

  private readonly onSignal = (signal: NodeJS.Signals) => {
    if (this.signal === "SIGINT" && signal === "SIGINT") {
      process.stderr.write("\nsecond interrupt: exiting now\n");
      process.exit(ExitCode.sigint);
    }
    this.signal ??= signal;
    process.stderr.write(`\n${signal}: stopping after the current step\n`);
  };

  install(): void {
    process.on("SIGINT", this.onSignal);
    process.on("SIGTERM", this.onSignal);
  }

  uninstall(): void {
    process.off("SIGINT", this.onSignal);
    process.off("SIGTERM", this.onSignal);
  }

  get exitCode(): number {
    return this.signal === "SIGTERM" ? ExitCode.sigterm : ExitCode.sigint;
  }
}

/** Returns the weights path of a trial: the given path with one trial, NAME-trial-K.safetensors with several. */
export function weightsPath(path: string, trial: number, trialCount: number): string {
  if (trialCount === 1) return path;
  const base = path.endsWith(".safetensors") ? path.slice(0, -".safetensors".length) : path;
  return `${base}-trial-${trial}.safetensors`;
}

class Run {
  private readonly csv: CsvWriter | null;
  private bestTestAccuracy: number | null;
  private progress: cliProgress.SingleBar | null = null;
  private progressStart = { seconds: 0, batch: 0 };

  constructor(
    private readonly options: TrainOptions,
    private readonly prepared: PreparedRun,
    private readonly log: Logger,
    private readonly trainer: Trainer,
    private readonly interrupts: InterruptWatch,
  ) {
    this.csv = options.csvFileName ? new CsvWriter(options.csvFileName) : null;
    const position = prepared.checkpoint?.snapshot.position;
    if (this.csv && position) this.continueCsv(this.csv, position);
    this.bestTestAccuracy = prepared.checkpoint?.bestTestAccuracy ?? null;
  }

  /** On resume, keeps the rows an existing CSV file has for the epochs before the checkpoint. */
  private continueCsv(csv: CsvWriter, position: TrialPosition): void {
    let text: string;
    try {
      text = readFileSync(csv.path, "utf8");
    } catch {
      return; // No earlier file: the resumed run writes the rows of the epochs it completes.
    }
    if (!csv.continueFrom(text, position.trial, position.epoch)) {
      this.warn(`${csv.path} is not a statistics file of this run; it will be replaced`);
    }
  }

  private get humanOutput(): boolean {
    return this.options.logFormat === "text";
  }

  async execute(): Promise<number> {
    const { settings, checkpoint, initialWeights } = this.prepared;
    let resume: TrialSnapshot | undefined = checkpoint?.snapshot;
    let firstTrial = resume?.position.trial ?? 0;
    if (resume && resume.position.epoch >= settings.epochCount) {
      // The checkpoint ends a trial: go on with the next one, if any.
      firstTrial++;
      resume = undefined;
    }
    if (firstTrial >= settings.trialCount) {
      this.report(
        "the run in the checkpoint is already complete; raise --epoch-count to train longer",
      );
      return ExitCode.success;
    }

    try {
      for (let trial = firstTrial; trial < settings.trialCount; trial++) {
        const started = performance.now();
        const outcome = await this.trainer.runTrial(
          trial,
          {
            onEpoch: (result) => this.onEpoch(result),
            onStep: (position) => this.showProgress(position),
            shouldStop: () => this.interrupts.signal !== null,
            onRetry: ({ step, attempt, failed, error }) =>
              this.warn(
                `step ${step}: ${failed} shard(s) failed (attempt ${attempt}): ${error.message}; computing them again`,
              ),
          },
          { resume, initialWeights },
        );
        resume = undefined;
        this.stopProgress();
        if (!outcome.finished) return this.stopOnInterrupt();
        this.onTrialEnd(trial, outcome.results, (performance.now() - started) / 1000);
      }
    } finally {
      this.stopProgress();
    }
    return ExitCode.success;
  }

  private onEpoch(result: EpochResult): void {
    this.stopProgress();
    const { settings } = this.prepared;
    if (this.humanOutput && !this.options.quiet) {
      console.log(formatEpochLine(result, settings.epochCount, settings.trialCount));
    }
    this.log.info({ event: "epoch", ...result }, "epoch finished");
    this.csv?.add(result);

    const directory = this.options.checkpointDir;
    if (directory) {
      const isBest = this.bestTestAccuracy === null || result.testAccuracy > this.bestTestAccuracy;
      if (isBest) this.bestTestAccuracy = result.testAccuracy;
      this.saveCheckpoint(LATEST_CHECKPOINT);
      if (isBest) this.saveCheckpoint(BEST_CHECKPOINT);
    }
  }

  /** Throws a DivergenceError instead of letting non-finite weights reach a file. */
  private checkWeightsFinite(): void {
    if (Number.isFinite(this.trainer.weightNorm())) return;
    const { trial, epoch, batch } = this.trainer.snapshot().position;
    throw new DivergenceError(trial, epoch + 1, batch, "the weights are not finite");
  }

  private saveCheckpoint(name: string): void {
    this.checkWeightsFinite();
    const snapshot = this.trainer.snapshot();
    const path = writeCheckpoint(this.options.checkpointDir!, name, {
      formatVersion: CHECKPOINT_FORMAT_VERSION,
      packageVersion: PACKAGE_VERSION,
      settings: this.prepared.settings,
      dataDirectory: this.prepared.data.directory,
      bestTestAccuracy: this.bestTestAccuracy,
      snapshot,
    });
    this.log.info(
      { event: "checkpoint", name, path, position: snapshot.position },
      "checkpoint written",
    );
  }

  private onTrialEnd(trial: number, results: EpochResult[], seconds: number): void {
    const last = results[results.length - 1];
    this.log.info(
      {
        event: "trial-end",
        trial,
        epochs: results.length,
        trainLoss: last?.trainLoss,
        testLoss: last?.testLoss,
        trainAccuracy: last?.trainAccuracy,
        testAccuracy: last?.testAccuracy,
        weightNorm: last?.weightNorm,
        seconds,
      },
      "trial finished",
    );
    if (this.options.saveWeights) {
      this.checkWeightsFinite();
      const { settings } = this.prepared;
      const path = weightsPath(this.options.saveWeights, trial, settings.trialCount);
      const tensors: Record<string, { shape: number[]; data: Float32Array }> = {};
      const views = parameterViews(this.trainer.plan, this.trainer.weights);
      this.trainer.plan.parameters.forEach((tensor, i) => {
        tensors[tensor.name] = { shape: tensor.shape, data: views[i] };
      });
      writeSafetensors(path, tensors, { net: settings.net, version: PACKAGE_VERSION });
      this.log.info({ event: "weights-saved", trial, path }, "weights saved");
    }
  }

  private stopOnInterrupt(): number {
    const position = this.trainer.snapshot().position;
    const where = `trial ${position.trial + 1}, epoch ${position.epoch + 1}, mini-batch ${position.batch}`;
    const directory = this.options.checkpointDir;
    if (directory) this.saveCheckpoint(LATEST_CHECKPOINT);
    this.log.warn(
      { event: "interrupted", signal: this.interrupts.signal, position },
      `interrupted at ${where}`,
    );
    const next = directory
      ? `resume with: ${resumeCommand(this.options, directory)}`
      : "no --checkpoint-dir was given, so this run cannot be resumed";
    process.stderr.write(`interrupted by ${this.interrupts.signal} after ${where}; ${next}\n`);
    return this.interrupts.exitCode;
  }

  /** Draws the epoch's progress bar on stderr (terminals only), starting it at the first step. */
  private showProgress(position: TrialPosition): void {
    if (!this.humanOutput || this.options.quiet || !process.stderr.isTTY) return;
    const { settings } = this.prepared;
    if (!this.progress) {
      this.progress = new cliProgress.SingleBar(
        {
          stream: process.stderr,
          format:
            "epoch {epoch} {bar} {value}/{total} mini-batches | {rate} images/s | ETA {eta_formatted}",
          hideCursor: true,
          clearOnComplete: true,
        },
        cliProgress.Presets.shades_classic,
      );
      this.progressStart = { seconds: performance.now() / 1000, batch: position.batch - 1 };
      const epoch = `${position.epoch + 1}/${settings.epochCount}`;
      this.progress.start(this.trainer.batchCount(), position.batch - 1, { rate: "-", epoch });
    }
    const seconds = performance.now() / 1000 - this.progressStart.seconds;
    const images = (position.batch - this.progressStart.batch) * settings.miniBatchSize;
    this.progress.update(position.batch, {
      rate: String(Math.round(images / Math.max(seconds, 1e-3))),
    });
  }

  private stopProgress(): void {
    this.progress?.stop();
    this.progress = null;
  }

  private warn(message: string): void {
    process.stderr.write(`warning: ${message}\n`);
    this.log.warn({ event: "warning" }, message);
  }

  private report(message: string): void {
    if (this.humanOutput) console.log(message);
    this.log.info({ event: "notice" }, message);
  }
}

export async function main(argv: string[]): Promise<number> {
  const parsed = parseArguments(argv);
  // Installed first, so that a signal during start-up also ends with 130 or 143, not a kill.
  const interrupts = new InterruptWatch();
  interrupts.install();
  try {
    return await runCommand(parsed, interrupts);
  } finally {
    interrupts.uninstall();
  }
}

/** Returns the command that resumes this run into the same output files. */
export function resumeCommand(options: TrainOptions, directory: string): string {
  const words = ["node", "dist/train.js", "--resume", directory];
  const outputs: [string, string | undefined][] = [
    ["--csv-file-name", options.csvFileName],
    ["--log-file", options.logFile],
    ["--save-weights", options.saveWeights],
  ];
  for (const [flag, value] of outputs) if (value !== undefined) words.push(flag, value);
  if (options.logFormat !== "text") words.push("--log-format", options.logFormat);
  return words.map((word) => (/^[\w./:=+-]+$/.test(word) ? word : JSON.stringify(word))).join(" ");
}

async function runCommand(parsed: ParsedOptions, interrupts: InterruptWatch): Promise<number> {
  const { options } = parsed;
  // A resumed run goes on checkpointing where it resumed from, unless --checkpoint-dir names another.
  if (options.resume !== undefined && options.checkpointDir === undefined) {
    options.checkpointDir = options.resume;
  }

  let prepared: PreparedRun;
  let log: Logger;
  try {
    prepared = prepareRun(parsed);
    log = openEventLog(options);
  } catch (error) {
    return reportError(error);
  }

  for (const message of prepared.warnings) {
    process.stderr.write(`warning: ${message}\n`);
    log.warn({ event: "warning" }, message);
  }

  if (interrupts.signal) {
    process.stderr.write(`interrupted by ${interrupts.signal} before training started\n`);
    return interrupts.exitCode;
  }

  const trainer = new Trainer(prepared.settings, prepared.data, options.threads);
  try {
    if (options.logFormat === "text")
      console.log(`trainable parameters: ${trainer.parameterCount}`);
    log.info(
      {
        event: "run-start",
        settings: prepared.settings,
        threads: options.threads,
        dataDirectory: prepared.data.directory,
        parameterCount: trainer.parameterCount,
        resumedFrom: options.resume ?? null,
        position: prepared.checkpoint?.snapshot.position ?? null,
        version: PACKAGE_VERSION,
        ...machineFields(),
      },
      "run started",
    );
    const run = new Run(options, prepared, log, trainer, interrupts);
    return await run.execute();
  } catch (error) {
    return reportFailure(error as Error, log);
  } finally {
    await trainer.close();
  }
}

/** Opens the event log; a log file that cannot be opened is an input error (exit code 2). */
function openEventLog(options: TrainOptions): Logger {
  try {
    return createEventLog(options.logFile, options.logFormat === "json");
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new UsageError(
      `--log-file ${options.logFile}: cannot open it (${reason}). Name a writable file`,
    );
  }
}

function reportFailure(error: Error, log: Logger): number {
  if (error instanceof DivergenceError) {
    log.error(
      { event: "divergence", trial: error.trial, epoch: error.epoch, miniBatch: error.miniBatch },
      error.message,
    );
    process.stderr.write(`error: ${error.message}\n`);
    return ExitCode.divergence;
  }
  if (error instanceof StepFailedError) {
    log.error({ event: "error", err: error }, error.message);
    process.stderr.write(`error: ${error.message}; the last checkpoint (if any) is intact\n`);
    return ExitCode.stepFailed;
  }
  log.error({ event: "error", err: error, input: isInputError(error) }, error.message);
  return reportError(error);
}

process.exitCode = await main(process.argv.slice(2));
