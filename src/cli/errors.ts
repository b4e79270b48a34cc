/** A problem with the command line or its inputs: reported as one line, exit code 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

export const ExitCode = {
  success: 0,
  failure: 1,
  usage: 2,
} as const;
