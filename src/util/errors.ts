// Errors a user can act on. Library code throws UserError for bad input (a malformed file, a wrong argument, a missing
// corpus, a NaN loss); the CLI prints its message and hint and exits non-zero, never a stack trace.

export class UserError extends Error {
  readonly hint?: string;
  constructor(message: string, hint?: string) {
    super(message);
    this.name = 'UserError';
    this.hint = hint;
  }
}

// Assert an invariant with its values in the message: assert(T <= maxT, `sequence grew beyond the context: ${T} > ${maxT}`)
export function assert(cond: unknown, message: string | (() => string)): asserts cond {
  if (!cond) throw new Error(typeof message === 'string' ? message : message());
}

export function formatError(e: unknown): string {
  if (e instanceof UserError) return `error: ${e.message}` + (e.hint ? `\nHINT: ${e.hint}` : '');
  if (e instanceof Error) return `error: ${e.message}`;
  return `error: ${String(e)}`;
}
