import { PortcullisError } from "./catalogue.js";

/**
 * What a parser of untrusted input returns: the value, or why the input is not valid. Parsers
 * never throw for bad input; a service or command that cannot go on turns the failure into a
 * `PortcullisError` with `invalidInput` (the admin API answers it as 400 VALIDATION_FAILED with
 * `fields`, the CLI prints it as `VALIDATION_FAILED: message`).
 */
export type Result<T> = Ok<T> | Invalid;

export interface Ok<T> {
  readonly ok: true;
  readonly value: T;
}

export interface Invalid {
  readonly ok: false;
  readonly code: "VALIDATION_FAILED";
  /** Every problem, in words a user can act on. */
  readonly message: string;
  /** Field → problem (empty when the input as a whole is wrong). */
  readonly fields: Readonly<Record<string, string>>;
}

export function ok<T>(value: T): Ok<T> {
  return { ok: true, value };
}

export function invalid(message: string, fields: Readonly<Record<string, string>> = {}): Invalid {
  return { ok: false, code: "VALIDATION_FAILED", message, fields };
}

/** The exception for a failed parse, where the caller cannot go on (a request handler, a command). */
export function invalidInput(failure: Invalid): PortcullisError {
  return new PortcullisError(failure.code, failure.message, Object.keys(failure.fields).length === 0 ? undefined : { ...failure.fields });
}

/** The value of a result, or the failure thrown as a `PortcullisError`. */
export function valueOrThrow<T>(result: Result<T>): T {
  if (!result.ok) throw invalidInput(result);
  return result.value;
}
