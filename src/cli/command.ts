// Helpers shared by every command-line tool here: flag parsing with exit code 2 on a bad flag,
// and one error line per failure (exit code 2 for bad input, 1 with a stack trace for a bug).
import { writeFileSync } from "node:fs";

import { CommanderError, type Command } from "commander";

import { DataError } from "../data/index.js";
import { SafetensorsError } from "../io/safetensors.js";
import { CheckpointError } from "../training/checkpoint.js";
import { ExitCode, UsageError } from "./errors.js";

/**
 * Parses argv (without node and the script) into `command`. Exits with 0 after --help and with 2
 * on a bad flag; commander has printed the help text or the error by then.
 */
export function parseCommand(command: Command, argv: string[]): Command {
  command.exitOverride();
  // One line per error: the "Did you mean" suggestion and the --help hint join the message.
  command.showHelpAfterError(false);
  command.configureOutput({
    outputError: (text, write) =>
      write(`${text.trim().replace(/\s*\n\s*/g, " ")} (run with --help to see every flag)\n`),
  });
  try {
    command.parse(argv, { from: "user" });
  } catch (error) {
    if (error instanceof CommanderError) {
      process.exit(error.exitCode === 0 ? ExitCode.success : ExitCode.usage);
    }
    throw error;
  }
  return command;
}

/** True for the errors that report bad input (a flag, a data, weights or checkpoint file). */
export function isInputError(error: unknown): boolean {
  return (
    error instanceof UsageError ||
    error instanceof DataError ||
    error instanceof CheckpointError ||
    error instanceof SafetensorsError
  );
}

/** Prints one error line for `error` and returns its exit code; a bug also gets its stack trace. */
export function reportError(error: unknown): number {
  const { message, stack } = error as Error;
  if (isInputError(error)) {
    process.stderr.write(`error: ${message}\n`);
    return ExitCode.usage;
  }
  process.stderr.write(`error: ${stack ?? message}\n`);
  return ExitCode.failure;
}

/** Runs a tool's work and turns a thrown error into its exit code. */
export async function runTool(work: () => void | Promise<void>): Promise<number> {
  try {
    await work();
    return ExitCode.success;
  } catch (error) {
    return reportError(error);
  }
}

/** Writes an output file, turning a failure into a UsageError that names the path. */
export function writeOutputFile(path: string, text: string): void {
  try {
    writeFileSync(path, text);
  } catch (error) {
    throw new UsageError(`cannot write ${path}: ${(error as Error).message}`);
  }
}
