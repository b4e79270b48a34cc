/** A problem with the command line or its inputs: reported as one line, exit code 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

export const ExitCode = {
  success: 0,
  /** An unexpected failure (a bug): the message comes with its stack trace. */
  failure: 1,
  /** An invalid flag, data file, checkpoint or weights file. */
  usage: 2,
  /** The loss or gradient became non-finite. */
  divergence: 3,
  /** The same training step failed on the pool on every attempt. */
  stepFailed: 4,
  /** Stopped by SIGINT (128 + 2). */
  sigint: 130,
  /** Stopped by SIGTERM (128 + 15). */
  sigterm: 143,
} as const;
