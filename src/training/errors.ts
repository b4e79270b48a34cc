// Failures of a training run that the command line maps to distinct exit codes.

/** A non-finite loss or gradient: the run stops at once (exit code 3). */
export class DivergenceError extends Error {
  override name = "DivergenceError";

  constructor(
    readonly trial: number,
    /** Counted from 1. */
    readonly epoch: number,
    /** Mini-batch within the epoch, counted from 1. */
    readonly miniBatch: number,
    what: string,
  ) {
    super(
      `training diverged: ${what} in trial ${trial + 1}, epoch ${epoch}, mini-batch ${miniBatch}; ` +
        "lower --learning-rate (or switch --optimizer) and start again",
    );
  }
}

/** The same step failed on the pool on every attempt (exit code 4). */
export class StepFailedError extends Error {
  override name = "StepFailedError";
}
