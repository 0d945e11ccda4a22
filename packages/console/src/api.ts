import { type PortcullisClient, PortcullisApiError, type SessionClient, createClient, importPrivateKey } from "@portcullis/client";
import type { Credential } from "./credential.js";

/**
 * The console's one way to the admin API: a session of the user's own key (docs/console.md).
 * Sign-in imports the credential's private key as a non-extractable WebCrypto key and logs on with
 * it (a signed challenge: RFC 9421 with `created` and a single-use nonce); every later request is
 * signed with the session's HMAC, so there is no cookie and nothing for CSRF to ride on. The
 * non-extractable key stays in this page's memory (no script can read it back) for the one thing a
 * session may not do: register a passkey (`callWithKey`), which the API accepts only signed by the
 * key itself. A passkey sign-in has no key: it cannot register one.
 */

/** What the console shows of a refusal: the API's stable code and its message. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly fields?: Readonly<Record<string, unknown>>,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

/** Any failure as an ApiError (network failures and bugs get a code too, so the UI has one shape). */
export function asApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof PortcullisApiError) {
    const body = err.body;
    const fields = typeof body === "object" && body !== null && "fields" in body ? (body as { fields?: unknown }).fields : undefined;
    return new ApiError(
      err.status,
      typeof err.code === "string" ? err.code : `HTTP_${String(err.status)}`,
      err.message,
      typeof fields === "object" && fields !== null ? (fields as Record<string, unknown>) : undefined,
    );
  }
  if (err instanceof TypeError) return new ApiError(0, "CLIENT_ERROR", err.message);
  return new ApiError(0, "NETWORK_ERROR", err instanceof Error ? err.message : String(err));
}

export interface KeyRecord {
  readonly id: string;
  readonly account: string;
  readonly subAccount?: string | null;
  readonly label: string | null;
  readonly algorithm: string;
  readonly scopes: readonly string[];
  readonly ipAllowlist: readonly string[] | null;
  readonly status: string;
  readonly effectiveStatus?: string;
  readonly statusReason?: string | null;
  readonly expiresAt: number | null;
  readonly lastUsedAt: number | null;
  readonly createdAt: number;
  readonly operator?: boolean;
  readonly rotatedTo?: string | null;
  readonly guardrails?: Readonly<Record<string, unknown>> | null;
}

/** Who is signed in, as the console decides which pages to show (the API decides what is allowed). */
export interface Identity {
  readonly keyId: string;
  readonly account: string | null;
  readonly operator: boolean;
  readonly scopes: readonly string[];
  readonly expiresAt: number;
  /** The passkey this session was signed in with (its credential id), or null: the credential file. */
  readonly passkeyId: string | null;
}

export function holds(identity: Identity, permission: string): boolean {
  return identity.scopes.includes(permission) || (permission.startsWith("admin:") && identity.scopes.includes("admin:*"));
}

/** The signed-in session. `call` throws ApiError; `raw` answers the Response (streams, downloads). */
export class Api {
  private constructor(
    private readonly session: SessionClient,
    readonly identity: Identity,
    /** The key itself (non-extractable), for the calls a session may not make; null after a passkey sign-in. */
    private readonly keyClient: PortcullisClient | null,
  ) {}

  static async signIn(credential: Credential, baseUrl: string = location.origin): Promise<Api> {
    try {
      const privateKey = await importPrivateKey(credential.privateKey, "ed25519");
      const client = createClient({ baseUrl, keyId: credential.keyId, privateKey, algorithm: "ed25519" });
      return await Api.open(await client.logon({ ttl: "15m" }), null, client);
    } catch (err) {
      throw asApiError(err);
    }
  }

  /** Whether calls signed by the key itself can be made (a credential-file sign-in), not only the session's. */
  get signsWithKey(): boolean {
    return this.keyClient !== null;
  }

  /** A call signed by the key itself (registering a passkey); KEY_SIGNATURE_UNAVAILABLE after a passkey sign-in. */
  async callWithKey<T>(method: string, path: string, json?: unknown): Promise<T> {
    if (this.keyClient === null) throw new ApiError(0, "KEY_SIGNATURE_UNAVAILABLE", "sign in with the key's credential file: only the key itself may do this, not a session");
    try {
      return await this.keyClient.json<T>(method, path, json === undefined ? {} : { json });
    } catch (err) {
      throw asApiError(err);
    }
  }

  /**
   * The console over a session, however it was opened: the credential file's logon above, or a
   * passkey sign-in (passkeys.ts), whose answer is the same session (`createSessionClient`).
   * `passkeyId` is the passkey that signed in, if one did.
   */
  static async open(session: SessionClient, passkeyId: string | null, keyClient: PortcullisClient | null = null): Promise<Api> {
    const info = session.session;
    // The key's own record says whether it is an operator key and of which account. An account
    // admin key that may not read keys still signs in; it sees what its scopes allow.
    let record: KeyRecord | null;
    try {
      record = await session.json<KeyRecord>("GET", `/portcullis/v1/keys/${encodeURIComponent(info.apiKeyId)}`);
    } catch {
      record = null;
    }
    return new Api(session, {
      keyId: info.apiKeyId,
      account: record?.account ?? null,
      operator: record?.operator === true,
      scopes: info.scopes,
      expiresAt: info.expiresAt,
      passkeyId,
    }, keyClient);
  }

  get expiresAt(): number {
    return this.session.session.expiresAt;
  }

  async call<T>(method: string, path: string, json?: unknown, query?: Readonly<Record<string, string | number | undefined>>): Promise<T> {
    try {
      const q: Record<string, string | number> = {};
      for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined && v !== "") q[k] = v;
      return await this.session.json<T>(method, path, { ...(json === undefined ? {} : { json }), query: q });
    } catch (err) {
      throw asApiError(err);
    }
  }

  /** A signed request answering the Response itself; a non-2xx status is thrown as ApiError. */
  async raw(method: string, path: string, query?: Readonly<Record<string, string | number>>, signal?: AbortSignal): Promise<Response> {
    let response: Response;
    try {
      response = await this.session.request(method, path, { ...(query === undefined ? {} : { query }), ...(signal === undefined ? {} : { signal }) });
    } catch (err) {
      throw asApiError(err);
    }
    if (!response.ok) {
      const text = await response.text();
      let code = `HTTP_${String(response.status)}`;
      let message = text.slice(0, 200);
      try {
        const body = JSON.parse(text) as { code?: unknown; message?: unknown; error?: unknown };
        if (typeof body.code === "string") code = body.code;
        if (typeof body.message === "string") message = body.message;
      } catch {
        // not JSON: the status says it
      }
      throw new ApiError(response.status, code, message);
    }
    return response;
  }

  /** Refreshes the session now (the console does it on a timer while signed in). */
  async refresh(): Promise<void> {
    try {
      await this.session.refresh();
    } catch (err) {
      throw asApiError(err);
    }
  }

  async signOut(): Promise<void> {
    try {
      await this.session.logout();
    } catch {
      // The session is dropped here whatever the server said; it also expires by itself.
    }
  }
}
