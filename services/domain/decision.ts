/**
 * What a decider returns: the events to append, or a typed rejection a person understands.
 */

export type RejectionKind =
  /** The input is malformed or out of range (HTTP 400). */
  | 'invalid'
  /** The entity does not exist (HTTP 404). */
  | 'not-found'
  /** The entity's state does not allow it (HTTP 409). */
  | 'conflict'
  /** No host can take it (HTTP 422). */
  | 'no-capacity';

export type Rejection = {
  readonly kind: RejectionKind;
  /** Stable machine-readable code, e.g. `invalid-transition`. */
  readonly code: string;
  readonly message: string;
  /** JSON-pointer-like path of the offending input field, when one is to blame. */
  readonly field: string | null;
  /** Extra facts for the caller (current state, placement reasons, ...). */
  readonly details: { readonly [key: string]: unknown } | null;
};

export type Decision<E> =
  | { readonly ok: true; readonly events: readonly E[] }
  | { readonly ok: false; readonly rejection: Rejection };

export function accept<E>(...events: E[]): Decision<E> {
  return { ok: true, events };
}

export function reject<E>(
  kind: RejectionKind,
  code: string,
  message: string,
  extra: { field?: string; details?: { readonly [key: string]: unknown } } = {},
): Decision<E> {
  return { ok: false, rejection: { kind, code, message, field: extra.field ?? null, details: extra.details ?? null } };
}

/** Exhaustiveness guard for `switch` over discriminated unions. */
export function unreachable(value: never): never {
  throw new Error(`unreachable: ${JSON.stringify(value)}`);
}

/** A validated value, or why not. */
export type Result<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly rejection: Rejection };

export function failure<T>(
  kind: RejectionKind,
  code: string,
  message: string,
  extra: { field?: string; details?: { readonly [key: string]: unknown } } = {},
): Result<T> {
  return { ok: false, rejection: { kind, code, message, field: extra.field ?? null, details: extra.details ?? null } };
}
