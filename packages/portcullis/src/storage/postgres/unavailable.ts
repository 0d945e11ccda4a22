import type pg from "pg";
import { PortcullisError } from "../../errors/catalogue.js";

/**
 * Errors that mean "PostgreSQL cannot be reached" rather than "this statement was refused": the
 * connection failed, broke, or timed out, or the server is shutting down or starting up. They are
 * what an outage looks like from a client (docs/failures.md).
 */
const NETWORK_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "ENOTFOUND", "EHOSTUNREACH", "ENETUNREACH", "EAI_AGAIN", "ECONNABORTED", "EHOSTDOWN"]);
/**
 * SQLSTATEs of a server going away, not there yet, or not letting this process in: admin_shutdown,
 * crash_shutdown, cannot_connect_now; too_many_connections; invalid_authorization_specification,
 * invalid_password (credentials changed under a running gateway).
 */
const SERVER_CODES = new Set(["57P01", "57P02", "57P03", "53300", "28000", "28P01"]);
/**
 * node-postgres's own messages for a connection that failed or timed out (they carry no code), and
 * the server's refusals of a new connection that share a code with other errors (a database that
 * does not allow connections is 55000).
 */
const CLIENT_MESSAGES =
  /Connection terminated|timeout exceeded when trying to connect|Query read timeout|connection error and is not queryable|Client was closed and is not queryable|Connection closed|does not (currently )?allow connections|the database system is (starting up|shutting down|not yet accepting connections|in recovery mode)/i;

export function isConnectionError(err: unknown): boolean {
  if (err instanceof DurableStoreUnavailable) return true;
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === "string") {
    if (NETWORK_CODES.has(code) || SERVER_CODES.has(code)) return true;
    // Class 08: connection exception.
    if (/^08[0-9A-Z]{3}$/.test(code)) return true;
  }
  return CLIENT_MESSAGES.test(err.message);
}

/**
 * The durable store could not be reached: a request code (DURABLE_STORE_UNAVAILABLE, 503), so
 * that a surface answers it as a coded refusal rather than an internal fault. The public message
 * is the catalogue's; `message` (logs only) names the server and the cause, never a password.
 */
export class DurableStoreUnavailable extends PortcullisError {
  constructor(detail: string, options?: ErrorOptions) {
    super("DURABLE_STORE_UNAVAILABLE");
    this.name = "DurableStoreUnavailable";
    this.message = detail;
    if (options?.cause !== undefined) this.cause = options.cause;
  }
}

type QueryFn = (...args: unknown[]) => unknown;
type ConnectFn = (callback?: unknown) => unknown;

function isPromise(value: unknown): value is Promise<unknown> {
  return typeof value === "object" && value !== null && typeof (value as { then?: unknown }).then === "function";
}

/**
 * Makes every promise a pool and its clients answer reject with `convert(err)` in place of a
 * connection error (node-postgres throws many shapes of them), so every caller — key service,
 * audit log, policy, admin API — sees one coded error and the store learns of the outage in one
 * place. Callback-style calls (the pool's own, inside `pool.query`) are passed through untouched.
 * `connecting`: the error kept `pool.connect()` from opening a connection (always unavailability).
 */
export function guardPool(pool: pg.Pool, convert: (err: unknown, connecting: boolean) => unknown): void {
  const guarded = new WeakSet<object>();
  const rethrow = (err: unknown): never => {
    throw convert(err, false);
  };
  // Whatever keeps a connection from being opened means the server cannot be used now.
  const refused = (err: unknown): never => {
    throw convert(err, true);
  };
  const guardQuery = (target: { query: unknown }): void => {
    const original = (target.query as QueryFn).bind(target);
    target.query = (...args: unknown[]): unknown => {
      let out: unknown;
      try {
        out = original(...args);
      } catch (err) {
        return rethrow(err);
      }
      return isPromise(out) ? out.catch(rethrow) : out;
    };
  };
  guardQuery(pool);
  const connect = (pool.connect as ConnectFn).bind(pool);
  (pool as unknown as { connect: ConnectFn }).connect = (callback?: unknown): unknown => {
    if (callback !== undefined) return connect(callback);
    const out = connect();
    if (!isPromise(out)) return out;
    return out.then((client: unknown) => {
      if (typeof client === "object" && client !== null && !guarded.has(client)) {
        guarded.add(client);
        guardQuery(client as { query: unknown });
        // The pool listens for errors of idle clients only: a checked-out client whose connection
        // is closed by the server between two statements (a fast shutdown during a transaction)
        // would emit an 'error' nobody hears, and crash the process. Heard here, it is one more
        // sign of an outage; the client's next statement fails and the pool discards it.
        (client as { on(event: "error", listener: (err: unknown) => void): unknown }).on("error", (err: unknown) => {
          convert(err, false);
        });
      }
      return client;
    }, refused);
  };
}
