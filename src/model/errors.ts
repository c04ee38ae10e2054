// One error class for the whole program: a stable code, a one-line message, a hint, and whether
// it is the user's fault (exit 2, nothing changed) or a failure while acting on the host (exit 1).

/** The longest message or hint kept; user input quoted in a message may be megabytes long. */
export const MAX_MESSAGE = 1000;

/**
 * A message as one printable line: control characters (line breaks, NUL, escape sequences) that
 * user input quoted in it may carry are written as \xNN, and an overlong text is cut with "…".
 */
export function oneLine(text: string): string {
  // eslint-disable-next-line no-control-regex
  const s = text.replace(/[\x00-\x1f\x7f-\x9f\u2028\u2029]/g, (c) =>
    c.charCodeAt(0) > 0xff
      ? `\\u${c.charCodeAt(0).toString(16)}`
      : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`,
  );
  return s.length > MAX_MESSAGE ? `${s.slice(0, MAX_MESSAGE - 1)}…` : s;
}

export type ErrorKind = 'input' | 'failure';

export class KvmnetError extends Error {
  readonly code: string;
  readonly hint: string | undefined;
  readonly kind: ErrorKind;
  /** The definition field at fault, as a dotted path (e.g. "dhcpHosts.1.ip"), when one is. */
  readonly field: string | undefined;

  constructor(
    code: string,
    message: string,
    opts: { hint?: string; kind?: ErrorKind; cause?: unknown; field?: string } = {},
  ) {
    super(oneLine(message), opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'KvmnetError';
    this.code = code;
    this.hint = opts.hint === undefined ? undefined : oneLine(opts.hint);
    this.kind = opts.kind ?? 'input';
    this.field = opts.field;
  }

  get exitCode(): number {
    return this.kind === 'input' ? 2 : 1;
  }

  toJSON(): { code: string; message: string; hint?: string } {
    return this.hint === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, hint: this.hint };
  }
}

/** Bad input: exit code 2, nothing was changed. */
export function inputError(code: string, message: string, hint?: string): KvmnetError {
  return new KvmnetError(code, message, hint === undefined ? {} : { hint });
}

/** Bad input in one field of a definition (see KvmnetError.field). */
export function fieldError(field: string, code: string, message: string, hint: string): KvmnetError {
  return new KvmnetError(code, message, { hint, field });
}

/** A failure while acting on the host: exit code 1 (after rollback). */
export function failure(
  code: string,
  message: string,
  opts: { hint?: string; cause?: unknown } = {},
): KvmnetError {
  return new KvmnetError(code, message, { ...opts, kind: 'failure' });
}

/**
 * A record's own entry, never one inherited from Object.prototype: a name such as "constructor"
 * or "toString" that a user typed must not find a function.
 */
export function own<T>(rec: Record<string, T>, key: string): T | undefined {
  return Object.hasOwn(rec, key) ? rec[key] : undefined;
}
