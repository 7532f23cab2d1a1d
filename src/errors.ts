/**
 * Every failure a user can see is a SlipwayError: what failed, where, and what to do.
 * Exit codes follow the CLI contract: 1 = refused or failed, 2 = usage.
 */
export class SlipwayError extends Error {
  readonly hint: string | undefined;
  readonly exitCode: 1 | 2;

  constructor(message: string, opts: { hint?: string; cause?: unknown; exitCode?: 1 | 2 } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'SlipwayError';
    this.hint = opts.hint;
    this.exitCode = opts.exitCode ?? 1;
  }
}

/** Bad command line or reference syntax. */
export class UsageError extends SlipwayError {
  constructor(message: string, hint?: string) {
    super(message, { hint, exitCode: 2 });
    this.name = 'UsageError';
  }
}

/** Content did not match what it claimed to be (digest, size, format). */
export class IntegrityError extends SlipwayError {
  constructor(message: string, hint?: string) {
    super(message, { hint });
    this.name = 'IntegrityError';
  }
}

/** An archive tried something unsafe or exceeded a limit. */
export class UnsafeArchiveError extends SlipwayError {
  constructor(message: string, hint?: string) {
    super(message, { hint });
    this.name = 'UnsafeArchiveError';
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
