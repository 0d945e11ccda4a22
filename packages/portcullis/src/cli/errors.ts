import { PortcullisError, isOperatorError } from "../errors/catalogue.js";

/**
 * How the CLI reports a failure: one line on stderr, `CODE: message` (a JSON object with --json),
 * never a stack trace, and a non-zero exit status. Every code is in the error catalogue.
 */
export interface CliFailure {
  readonly code: string;
  readonly message: string;
  readonly exit: number;
}

const CONNECT_REASONS: Readonly<Record<string, string>> = {
  ECONNREFUSED: "connection refused",
  ECONNRESET: "connection reset",
  ENOTFOUND: "host not found",
  EAI_AGAIN: "host name lookup failed",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
  ETIMEDOUT: "timed out",
  UND_ERR_CONNECT_TIMEOUT: "connection timed out",
  UND_ERR_SOCKET: "connection closed",
};

function errnoOf(err: unknown): string | undefined {
  if (typeof err !== "object" || err === null) return undefined;
  const code: unknown = Reflect.get(err, "code");
  return typeof code === "string" ? code : undefined;
}

/**
 * Why a fetch got no answer at all (undici's `TypeError: fetch failed`, the socket error as its
 * cause), in a few words; null when `err` is something else (an answer, a bug).
 */
export function unreachableReason(err: unknown): string | null {
  if (!(err instanceof TypeError) || err.message !== "fetch failed") return null;
  let cause: unknown = err.cause;
  // A connection to "localhost" tries every address: the causes are in an AggregateError.
  if (cause instanceof AggregateError && cause.errors.length > 0) cause = cause.errors[0];
  const code = errnoOf(cause);
  if (code !== undefined) return CONNECT_REASONS[code] ?? code;
  return cause instanceof Error ? cause.message : "no answer";
}

/** The code, message and exit status the CLI reports for `err`. */
export function describeFailure(err: unknown): CliFailure {
  if (err instanceof PortcullisError) return { code: err.code, message: err.publicMessage, exit: 1 };
  if (isOperatorError(err)) return { code: err.code, message: err.message, exit: err.exit };
  const errno = errnoOf(err);
  if (err instanceof Error && errno !== undefined && typeof Reflect.get(err, "path") === "string") {
    // A file named on the command line (--public-key, --private-key, --out…).
    const path = String(Reflect.get(err, "path"));
    return { code: "FILE_ACCESS_FAILED", message: `cannot use ${path} (${errno === "ENOENT" ? "no such file" : errno === "EEXIST" ? "it already exists" : errno})`, exit: 1 };
  }
  // Our own fault: still one line, no stack trace (the message says what failed).
  return { code: "INTERNAL", message: err instanceof Error ? err.message : String(err), exit: 1 };
}

/**
 * Commander's own errors (unknown command or option, missing argument, bad option value) in the
 * same form: `USAGE_INVALID: message`; commander then prints the usage and exits with status 1.
 */
export function usageError(json: boolean): (text: string, write: (text: string) => void) => void {
  return (text, write) => {
    const message = text.trim().replace(/^error: /, "");
    write(json ? `${JSON.stringify({ error: { code: "USAGE_INVALID", message } })}\n` : `USAGE_INVALID: ${message}\n`);
  };
}

/** Prints `err` as the CLI's one-line failure and returns the exit status to use. */
export function reportFailure(err: unknown, json: boolean): number {
  const { code, message, exit } = describeFailure(err);
  process.stderr.write(json ? `${JSON.stringify({ error: { code, message } })}\n` : `${code}: ${message}\n`);
  return exit;
}

/**
 * A closed stdout (`portcullis keys list | head -1`) ends the command quietly with status 0, as a
 * Unix filter does; without this, the next write's EPIPE is an unhandled 'error' event and a
 * stack trace. Any other stream error is reported as a failure.
 */
export function exitQuietlyOnClosedOutput(): void {
  const onError = (err: NodeJS.ErrnoException): void => {
    if (err.code === "EPIPE" || err.code === "ERR_STREAM_DESTROYED") process.exit(0);
    process.exit(reportFailure(err, false));
  };
  process.stdout.on("error", onError);
  process.stderr.on("error", () => process.exit(process.exitCode ?? 1));
}
