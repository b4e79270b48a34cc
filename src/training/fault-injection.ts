// Testing aid: TRAINER_FAULT_KILL_WORKER_AT_STEP=N makes one worker thread exit abruptly
// (process.exit inside the worker) while it computes a shard of training step N, counted from 1
// from the start of the process; N:K does it to K attempts of that step in a row. The
// coordinator reads the variable and marks the task, so a replacement worker never dies on its own.

export const FAULT_VARIABLE = "TRAINER_FAULT_KILL_WORKER_AT_STEP";

export interface WorkerFault {
  step: number;
  attempts: number;
}

/** Parses the variable; returns null when unset, throws an Error naming it when malformed. */
export function readWorkerFault(env: NodeJS.ProcessEnv = process.env): WorkerFault | null {
  const text = env[FAULT_VARIABLE];
  if (text === undefined || text === "") return null;
  const match = /^(\d+)(?::(\d+))?$/.exec(text.trim());
  const step = match ? Number(match[1]) : NaN;
  const attempts = match?.[2] !== undefined ? Number(match[2]) : 1;
  if (!match || step < 1 || attempts < 1) {
    throw new Error(`${FAULT_VARIABLE}="${text}" is invalid: expected N or N:K with N, K ≥ 1`);
  }
  return { step, attempts };
}
