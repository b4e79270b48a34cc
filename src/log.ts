// Structured run events (pino, JSON lines) and the human-readable epoch line.
import { execFileSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { cpus } from "node:os";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";

import { pino, type DestinationStream, type Logger } from "pino";

import type { EpochResult } from "./training/trainer.js";

/**
 * Returns a pino logger that appends one JSON event per line to `path` (when given) and, with
 * `toStdout`, writes the same events to stdout. Writes are synchronous, so every event is whole
 * and on its way out before the run moves on, even when the process exits right after.
 */
export function createEventLog(path: string | undefined, toStdout: boolean): Logger {
  const streams: { stream: DestinationStream }[] = [];
  if (path) {
    mkdirSync(dirname(path), { recursive: true });
    streams.push({ stream: pino.destination({ dest: path, append: true, sync: true }) });
  }
  if (toStdout) streams.push({ stream: pino.destination({ dest: 1, sync: true }) });
  if (streams.length === 0) return pino({ enabled: false });
  return pino({ base: { pid: process.pid } }, pino.multistream(streams));
}

/** Formats one epoch as a line for a person reading the terminal. */
export function formatEpochLine(
  result: EpochResult,
  epochCount: number,
  trialCount: number,
): string {
  const trial = trialCount > 1 ? `trial ${result.trial + 1}/${trialCount} ` : "";
  return (
    `${trial}epoch ${result.epoch}/${epochCount}  ` +
    `train loss ${result.trainLoss.toFixed(4)} accuracy ${result.trainAccuracy.toFixed(4)}  ` +
    `test loss ${result.testLoss.toFixed(4)} accuracy ${result.testAccuracy.toFixed(4)}  ` +
    `|w| ${result.weightNorm.toFixed(2)}  ` +
    `${result.seconds.toFixed(1)} s, ${Math.round(result.imagesPerSecond)} images/s`
  );
}

/** CPU model, Node version and the git commit of the checkout (null outside a git checkout). */
export function machineFields() {
  return {
    node: process.version,
    cpuModel: cpus()[0]?.model ?? "unknown",
    cpuCount: cpus().length,
    gitCommit: gitCommit(),
  };
}

function gitCommit(): string | null {
  try {
    const repository = fileURLToPath(new URL("../..", import.meta.url));
    const output = execFileSync("git", ["rev-parse", "HEAD"], {
      cwd: repository,
      stdio: ["ignore", "pipe", "ignore"],
      timeout: 5000,
    });
    return output.toString().trim() || null;
  } catch {
    return null;
  }
}
