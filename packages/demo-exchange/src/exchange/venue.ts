import type { IncomingMessage, ServerResponse } from "node:http";
import type { RouteSpec } from "portcullis";
import { grantedPermissions, type PortcullisIdentity } from "portcullis/upstream";
import type { Engine } from "./engine.js";

/**
 * A venue: one exchange's API shape (paths, parameters, answers, errors) over the demo's one
 * matching engine and ledger. The Binance shape is the exchange's original surface (index.ts and
 * endpoints.ts); the others plug in here, each in its own file under venues/.
 */
export interface VenueRequest {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly method: string;
  readonly path: string;
  /** The raw query string, without "?". */
  readonly query: string;
  readonly route: RouteSpec;
  readonly engine: Engine;
  /** The request's time, epoch ms. */
  readonly now: number;
  /**
   * The gateway's verified identity for the request (its headers checked against the body), or
   * null when absent or invalid. Reading it throws the body's error when the body could not be read.
   */
  readonly identity: PortcullisIdentity | null;
  /** Reads the (capped) body; rejects with the exchange's body errors. */
  readBody(): Promise<Buffer>;
}

export interface Venue {
  readonly name: string;
  /** The venue's routes, for the gateway's route table (with the venue's `dialect`). */
  readonly routes: readonly RouteSpec[];
  /** Answers one request for one of its routes, in the venue's own format (errors included). */
  handle(request: VenueRequest): Promise<void>;
}

/** Accounts the exchange accepts from the gateway: 1-256 printable ASCII, no edge spaces. */
export const ACCOUNT_RE = /^[!-~](?:[ -~]{0,254}[!-~])?$/;

/**
 * The account a private request acts for: the identity's account when the identity grants the
 * route's permission, else null (the venue answers with its own "invalid key" error). Opens the
 * account (demo balances) on first sight.
 */
export function accountFor(request: VenueRequest): string | null {
  const identity = request.identity;
  if (identity === null || !ACCOUNT_RE.test(identity.account)) return null;
  if (!grantedPermissions(identity.scopes).has(request.route.permission)) return null;
  request.engine.openAccount(identity.account);
  return identity.account;
}

/** Writes a JSON answer. */
export function sendVenueJson(res: ServerResponse, status: number, body: unknown, headers: Readonly<Record<string, string>> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json;charset=UTF-8", "content-length": Buffer.byteLength(text), ...headers });
  res.end(text);
}
