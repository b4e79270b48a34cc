// Structured run events (pino, JSON lines) and the human-readable epoch line.
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";

import { pino, type Logger } from "pino";

import type { EpochResult } from "./training/trainer.js";

/**
 * Returns a pino logger that appends one JSON event per line to `path`, or a disabled logger when
 * no path is given. Writes are synchronous so an event is on disk before the run moves on.
 */
export function createEventLog(path: string | undefined): Logger {
  if (!path) return pino({ enabled: false });
  mkdirSync(dirname(path), { recursive: true });
  const destination = pino.destination({ dest: path, append: true, sync: true });
  return pino({ base: { pid: process.pid } }, destination);
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
