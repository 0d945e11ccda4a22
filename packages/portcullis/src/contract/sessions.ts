import type { Environment } from "./ids.js";

/** What a session token (sessions/token.ts) carries: its claims, signed by the gateway at logon. */
export interface SessionClaims {
  /** Format version. */
  readonly v: 1;
  /** The session's id: 128 random bits, base64url. A refreshed token keeps it. */
  readonly sid: string;
  /** The API key that logged on. */
  readonly key: string;
  readonly env: Environment;
  /** The key's session epoch at logon: the token is void once the key's epoch moves on. */
  readonly ep: number;
  /** The session's scopes: the key's, or fewer (never more). */
  readonly scp: readonly string[];
  /** Issued at (epoch ms). */
  readonly iat: number;
  /** Expires at (epoch ms). */
  readonly exp: number;
  /** When the session first logged on (epoch ms): refreshes never take it past auth + 24 h. */
  readonly auth: number;
  /** The address the session is bound to (the logon's client address), if any. */
  readonly ip?: string;
  /** The signing key version. */
  readonly kid: string;
}
