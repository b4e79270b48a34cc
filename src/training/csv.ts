// The per-epoch statistics file: for each trial a header line, one row per epoch, a blank line.
// Comma-separated with '#' comments, so gnuplot reads it as is (`plot "stats.csv" using 1:2`).
import { writeFileAtomically } from "../io/atomic-write.js";
import type { EpochResult } from "./trainer.js";

export const CSV_HEADER = "# epoch, train_loss, test_loss, train_accuracy, test_accuracy";

/** Formats one row; numbers in JavaScript's shortest round-trip form, so equal runs give equal files. */
export function formatCsvRow(result: EpochResult): string {
  const { epoch, trainLoss, testLoss, trainAccuracy, testAccuracy } = result;
  return [epoch, trainLoss, testLoss, trainAccuracy, testAccuracy].map(String).join(", ");
}

/** Collects rows per trial and rewrites the whole file after each epoch. */
export class CsvWriter {
  private readonly trials: string[][] = [];

  constructor(readonly path: string) {}

  /**
   * Keeps the rows of `text` (an earlier file of the same run) for epochs before a resume point:
   * every row of earlier trials, and epochs 1 .. completedEpochs of trial `trial`. Block k of the
   * file is trial k. Returns false, keeping nothing, when the text is not such a file.
   */
  continueFrom(text: string, trial: number, completedEpochs: number): boolean {
    const blocks = text.split(/\n\s*\n/).filter((block) => block.trim() !== "");
    const kept: string[][] = [];
    for (const [index, block] of blocks.entries()) {
      const [header, ...rows] = block.trim().split("\n");
      if (header !== CSV_HEADER) return false;
      const valid = rows.every(
        (row, i) => row.startsWith(`${i + 1}, `) && row.split(",").length === 5,
      );
      if (!valid) return false;
      if (index < trial) kept.push(rows);
      else if (index === trial) kept.push(rows.slice(0, completedEpochs));
    }
    this.trials.splice(0, this.trials.length, ...kept);
    return true;
  }

  add(result: EpochResult): void {
    while (this.trials.length <= result.trial) this.trials.push([]);
    this.trials[result.trial].push(formatCsvRow(result));
    this.write();
  }

  /** Writes to a temporary file and renames it, so readers see the old or the new file, never half. */
  private write(): void {
    const text = this.trials
      .filter((rows) => rows.length > 0)
      .map((rows) => `${CSV_HEADER}\n${rows.join("\n")}\n\n`)
      .join("");
    writeFileAtomically(this.path, text);
  }
}
