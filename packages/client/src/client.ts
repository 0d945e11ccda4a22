/**
 * A small HTTP client for a Portcullis gateway: resolves paths against the base URL, signs every
 * request (RFC 9421, see `signer.ts`), keeps the signature's `created` in step with the gateway's
 * clock, and turns refusals into `PortcullisApiError`.
 */
import type { SignatureAlgorithm } from "./algorithms.js";
import { copyBytes, utf8 } from "./encoding.js";
import { PortcullisApiError, apiError, errorCode, parseBody } from "./errors.js";
import { type HmacSignerOptions, type KeyPairSignerOptions, type Secp256k1SignerOptions, type Signer, createSigner, generateNonce } from "./signer.js";
import { HPKE_PATH, type HpkeKeyCache, SEALED_CONTENT_TYPE, SEALED_HEADER, SEALED_TYPE_HEADER, hpkeKeyCache, sealBody } from "./sealing.js";

/** The gateway's public time endpoint, relative to the base URL. Answers `{ "serverTime": <epoch ms> }`. */
export const TIME_PATH = "/portcullis/v1/time";

/** A refusal of a sealed request that a fresh copy of the gateway's key answers: one refetch and one retry. */
const KEY_REFUSALS = new Set<unknown>(["SEALED_KEY_UNKNOWN"]);

/** Gateway refusals that mean "your clock is off": answered by one resync and one retry. */
const CLOCK_REFUSALS = new Set<unknown>(["CREATED_TOO_OLD", "CREATED_IN_FUTURE"]);

export interface ClientOnlyOptions {
  /** The gateway, e.g. `https://gateway.example.com` (a path prefix is allowed; no query). */
  readonly baseUrl: string | URL;
  /** The fetch implementation. Default: `globalThis.fetch`. */
  readonly fetch?: typeof fetch;
  /**
   * Sync with the gateway's clock before the first signed request, and resync and retry once when
   * the gateway refuses a request's `created` time. Default true.
   */
  readonly syncTime?: boolean;
  /** The local clock, epoch milliseconds. Default `Date.now`; replaceable for tests. */
  readonly now?: () => number;
}

export type ClientOptions = (HmacSignerOptions | KeyPairSignerOptions | Secp256k1SignerOptions) & ClientOnlyOptions;

export interface RequestOptions {
  /** Added to the URL's query string (application/x-www-form-urlencoded serialization). */
  readonly query?: Readonly<Record<string, string | number>>;
  /** Sent as an application/x-www-form-urlencoded body. */
  readonly form?: Readonly<Record<string, string | number>>;
  /** Sent as an application/json body (JSON.stringify). */
  readonly json?: unknown;
  readonly headers?: HeadersInit;
  readonly signal?: AbortSignal;
  /**
   * Seal the body to the gateway (docs/sealed-orders.md): HPKE to the gateway's current key
   * (fetched from /portcullis/v1/hpke and cached until it rotates), bound to this request's
   * signature, so only the gateway reads it; the venue receives the plaintext. Needs a body.
   */
  readonly sealed?: boolean;
}

export interface PortcullisClient {
  /** The normalised base URL, without a trailing slash. */
  readonly baseUrl: string;
  readonly keyId: string;
  /** The RFC 9421 `alg` the client signs with. */
  readonly algorithm: SignatureAlgorithm;
  /** Gateway clock minus local clock, in ms (0 until synced). */
  readonly clockOffset: number;
  /** Asks the gateway for its time; stores and returns the clock offset in ms. */
  syncTime(): Promise<number>;
  /**
   * Signs and sends. `input` may be a path relative to the base URL; body: string, Uint8Array or
   * none. `sealed: true` seals the body as `RequestOptions.sealed` does (it needs a Content-Type).
   */
  fetch(input: string | URL, init?: RequestInit & { readonly sealed?: boolean }): Promise<Response>;
  /** Builds, signs and sends a request. */
  request(method: string, path: string, options?: RequestOptions): Promise<Response>;
  /** Like `request`, then parses the JSON answer; throws `PortcullisApiError` on a non-2xx status. */
  json<T = unknown>(method: string, path: string, options?: RequestOptions): Promise<T>;
  /**
   * Logs on (POST /portcullis/v1/session, signed with this key) and resolves to a client that
   * signs with the session instead: an HMAC per request, whatever this key's type. Not available
   * on a session client.
   */
  logon(options?: LogonOptions): Promise<SessionClient>;
}

/** What a session may be (every field optional: the key's own settings). */
export interface LogonOptions {
  /** Narrower scopes than the key's, e.g. `["read"]` for a read-only session. */
  readonly scopes?: readonly string[];
  /** A shorter lifetime than the key's session lifetime, e.g. "5m". */
  readonly ttl?: string;
  /** Bind the session to this client's address. */
  readonly bindAddress?: boolean;
  /**
   * Refresh the session when a request is about to be signed this close to its expiry (ms).
   * Default: a fifth of its lifetime. The refresh happens before the request, never in a timer,
   * so an idle bot keeps no timer running.
   */
  readonly refreshMarginMs?: number;
  /** When the session reaches its maximum lifetime (24 h), log on again with the key. Default true. */
  readonly relogon?: boolean;
}

/** The gateway's answer to a logon or refresh. */
export interface SessionInfo {
  /** The session's key id: the token every request of the session carries. */
  readonly keyid: string;
  readonly expiresAt: number;
  readonly scopes: readonly string[];
  /** The API key that logged on. */
  readonly apiKeyId: string;
  readonly boundAddress: string | null;
}

/** A client signing with a session; `keyId` follows the session's current token. */
export interface SessionClient extends Omit<PortcullisClient, "logon"> {
  /** The current session (changes on refresh). */
  readonly session: SessionInfo;
  /** Refreshes now (it also happens by itself before requests near the expiry). */
  refresh(): Promise<SessionInfo>;
  /** Logs out (DELETE /portcullis/v1/session); the session is refused everywhere from now on. */
  logout(): Promise<void>;
}

const ABSOLUTE = /^https?:\/\//i;

function normaliseBaseUrl(value: unknown): string {
  if (typeof value !== "string" && !(value instanceof URL)) throw new TypeError("baseUrl is required (the gateway's URL)");
  let url: URL;
  try {
    url = new URL(String(value));
  } catch {
    throw new TypeError(`baseUrl ${JSON.stringify(String(value))} is not an absolute URL`);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") throw new TypeError("baseUrl must be an http(s) URL");
  if (url.username !== "" || url.password !== "") throw new TypeError("baseUrl must not contain credentials");
  if (url.search !== "" || url.hash !== "") throw new TypeError("baseUrl must not have a query or fragment");
  return `${url.protocol}//${url.host}${url.pathname.replace(/\/+$/, "")}`;
}

function toBodyBytes(body: unknown): Uint8Array<ArrayBuffer> | undefined {
  if (body === undefined || body === null) return undefined;
  if (typeof body === "string") return utf8(body);
  // A private copy: the bytes signed are the bytes sent, whatever the caller does meanwhile.
  if (body instanceof Uint8Array) return copyBytes(body);
  throw new TypeError("body must be a string or a Uint8Array (the exact bytes are signed)");
}

function formValue(name: string, value: unknown): string {
  if (typeof value === "string") return value;
  if (typeof value === "number" && Number.isFinite(value)) return String(value);
  throw new TypeError(`${name} must be a string or a finite number`);
}

/** The clock offset a client and its sessions share: one sync serves them all. */
interface Clock {
  offset: number;
  synced: boolean;
  inflight: Promise<number> | undefined;
}

interface Transport {
  readonly baseUrl: string;
  readonly doFetch: typeof fetch;
  readonly now: () => number;
  readonly syncEnabled: boolean;
  readonly clock: Clock;
  /** The gateway's HPKE key, shared by a client and its sessions. */
  readonly hpke: HpkeKeyCache;
}

/** The transport of `options` (checked: TypeError for a bad option). */
function makeTransport(options: ClientOnlyOptions): Transport {
  const baseUrl = normaliseBaseUrl(options.baseUrl);
  if (options.fetch !== undefined && typeof options.fetch !== "function") throw new TypeError("fetch must be a function");
  if (options.fetch === undefined && typeof globalThis.fetch !== "function") throw new TypeError("no global fetch; pass options.fetch");
  if (options.now !== undefined && typeof options.now !== "function") throw new TypeError("now must be a function");
  if (options.syncTime !== undefined && typeof options.syncTime !== "boolean") throw new TypeError("syncTime must be a boolean");
  const doFetch: typeof fetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
  const now = options.now ?? Date.now;
  const clock: Clock = { offset: 0, synced: false, inflight: undefined };
  const hpke = hpkeKeyCache(async () => {
    const response = await doFetch(`${baseUrl}${HPKE_PATH}`, { method: "GET", headers: { accept: "application/json" } });
    const text = await response.text();
    if (!response.ok) throw apiError(response, text);
    return parseBody(text);
  }, () => now() + clock.offset);
  return { baseUrl, doFetch, now, syncEnabled: options.syncTime ?? true, clock, hpke };
}

/** Creates a client for one gateway and one API key. Throws TypeError for bad options. */
export function createClient(options: ClientOptions): PortcullisClient {
  if (typeof options !== "object" || (options as unknown) === null) throw new TypeError("client options must be an object");
  const baseUrl = normaliseBaseUrl(options.baseUrl);
  const signer = createSigner(options);
  const transport = makeTransport(options);
  const core = signingClient(transport, () => signer);
  return {
    baseUrl,
    get clockOffset() {
      return core.clockOffset;
    },
    keyId: signer.keyId,
    algorithm: signer.algorithm,
    syncTime: core.syncTime,
    fetch: core.fetch,
    request: core.request,
    json: core.json,
    logon: (logonOptions = {}) => openSession(transport, core, logonOptions),
  };
}

type CoreClient = Omit<PortcullisClient, "keyId" | "algorithm" | "logon">;

/** The signing HTTP client over `transport`, signing with whatever `signer()` is at the time. */
function signingClient(transport: Transport, signer: () => Signer, beforeSend: () => Promise<void> = () => Promise.resolve()): CoreClient {
  const { baseUrl, doFetch, now, syncEnabled, clock, hpke } = transport;

  async function sync(): Promise<number> {
    const t0 = now();
    const response = await doFetch(`${baseUrl}${TIME_PATH}`, { method: "GET", headers: { accept: "application/json" } });
    const t1 = now();
    const text = await response.text();
    if (!response.ok) throw apiError(response, text);
    const body = parseBody(text);
    const serverTime = typeof body === "object" && body !== null ? (body as { serverTime?: unknown }).serverTime : undefined;
    if (typeof serverTime !== "number" || !Number.isFinite(serverTime)) {
      throw new PortcullisApiError(response.status, undefined, `${TIME_PATH} did not answer {"serverTime": <epoch ms>}`, undefined, body);
    }
    // The server read its clock somewhere in the round trip; the midpoint is the best estimate.
    clock.offset = Math.round(serverTime - (t0 + t1) / 2);
    clock.synced = true;
    return clock.offset;
  }

  function syncTime(): Promise<number> {
    clock.inflight ??= sync().finally(() => {
      clock.inflight = undefined;
    });
    return clock.inflight;
  }

  function resolve(input: string | URL): URL {
    if (input instanceof URL) return new URL(input.href);
    if (typeof input !== "string") throw new TypeError("input must be a path, a URL string or a URL");
    if (ABSOLUTE.test(input)) return new URL(input);
    return new URL(`${baseUrl}${input.startsWith("/") ? "" : "/"}${input}`);
  }

  async function attempt(url: URL, method: string, headers: Headers, body: Uint8Array<ArrayBuffer> | undefined, init: RequestInit, sealed: boolean): Promise<Response> {
    const created = Math.floor((now() + clock.offset) / 1000);
    const sent = new Headers(headers);
    let signature;
    if (sealed) {
      // Seal first (bound to this signature's keyid and nonce), then sign the sealed bytes and headers.
      const type = headers.get("content-type");
      if (body === undefined || body.length === 0 || type === null) throw new TypeError("a sealed request needs a body and its content type");
      const key = await hpke.current();
      const nonce = generateNonce();
      const current = signer();
      body = await sealBody(key, body, { keyId: current.keyId, nonce, method, target: `${url.pathname}${url.search}` });
      const covered = { [SEALED_HEADER]: key.id, [SEALED_TYPE_HEADER]: type };
      sent.set("content-type", SEALED_CONTENT_TYPE);
      sent.set(SEALED_HEADER, key.id);
      sent.set(SEALED_TYPE_HEADER, type);
      signature = await current.sign({ method, url, body }, { created, nonce, headers: covered });
    } else {
      signature = await signer().sign({ method, url, body: body ?? null }, { created });
    }
    sent.set("signature-input", signature["signature-input"]);
    sent.set("signature", signature.signature);
    if (signature["content-digest"] !== undefined) sent.set("content-digest", signature["content-digest"]);
    return doFetch(url.href, { ...init, method, headers: sent, body: body ?? null });
  }

  async function isClockRefusal(response: Response): Promise<boolean> {
    if (response.status !== 401) return false;
    try {
      return CLOCK_REFUSALS.has(errorCode(parseBody(await response.clone().text())));
    } catch {
      return false;
    }
  }

  async function isKeyRefusal(response: Response): Promise<boolean> {
    if (response.status !== 400) return false;
    try {
      return KEY_REFUSALS.has(errorCode(parseBody(await response.clone().text())));
    } catch {
      return false;
    }
  }

  async function send(url: URL, method: string, headers: Headers, body: Uint8Array<ArrayBuffer> | undefined, init: RequestInit, sealed = false): Promise<Response> {
    if (syncEnabled && !clock.synced) await syncTime();
    await beforeSend();
    let response = await attempt(url, method, headers, body, init, sealed);
    if (sealed && (await isKeyRefusal(response))) {
      // The gateway rotated its key: refused before anything was done, so one retry with its new key is safe.
      await response.body?.cancel();
      hpke.invalidate();
      response = await attempt(url, method, headers, body, init, sealed);
    }
    if (!syncEnabled || !(await isClockRefusal(response))) return response;
    // The gateway refused before doing anything, so sending again (with a fresh nonce) is safe.
    await response.body?.cancel();
    await syncTime();
    return attempt(url, method, headers, body, init, sealed);
  }

  function clientFetch(input: string | URL, init: RequestInit & { readonly sealed?: boolean } = {}): Promise<Response> {
    try {
      const url = resolve(input);
      const method = (init.method ?? "GET").toUpperCase();
      const body = toBodyBytes(init.body);
      const headers = new Headers(init.headers);
      // What fetch would have added for a string body, since the bytes are sent instead.
      if (typeof init.body === "string" && !headers.has("content-type")) headers.set("content-type", "text/plain;charset=UTF-8");
      if (init.sealed !== undefined && typeof init.sealed !== "boolean") throw new TypeError("sealed must be a boolean");
      return send(url, method, headers, body, init, init.sealed === true);
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }

  function request(method: string, path: string, opts: RequestOptions = {}): Promise<Response> {
    try {
      const url = resolve(path);
      for (const [name, value] of Object.entries(opts.query ?? {})) url.searchParams.append(name, formValue(`query.${name}`, value));
      const headers = new Headers(opts.headers);
      let body: string | undefined;
      if (opts.form !== undefined && opts.json !== undefined) throw new TypeError("give form or json, not both");
      if (opts.form !== undefined) {
        const form = new URLSearchParams();
        for (const [name, value] of Object.entries(opts.form)) form.append(name, formValue(`form.${name}`, value));
        body = form.toString();
        if (!headers.has("content-type")) headers.set("content-type", "application/x-www-form-urlencoded");
      } else if (opts.json !== undefined) {
        body = JSON.stringify(opts.json);
        if (!headers.has("content-type")) headers.set("content-type", "application/json");
      }
      const init: RequestInit = opts.signal === undefined ? {} : { signal: opts.signal };
      if (opts.sealed !== undefined && typeof opts.sealed !== "boolean") throw new TypeError("sealed must be a boolean");
      return send(url, method.toUpperCase(), headers, toBodyBytes(body), init, opts.sealed === true);
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }

  async function json<T = unknown>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    const headers = new Headers(opts.headers);
    if (!headers.has("accept")) headers.set("accept", "application/json");
    const response = await request(method, path, { ...opts, headers });
    const text = await response.text();
    if (!response.ok) throw apiError(response, text);
    // An empty 2xx answer (204) has no value; anything else must be JSON.
    return (text === "" ? undefined : JSON.parse(text)) as T;
  }

  return {
    baseUrl,
    get clockOffset() {
      return clock.offset;
    },
    syncTime,
    fetch: clientFetch,
    request,
    json,
  };
}

const SESSION_PATH = "/portcullis/v1/session";

function asSession(body: unknown): SessionInfo & { readonly secret: string } {
  const o = typeof body === "object" && body !== null ? (body as Record<string, unknown>) : {};
  const { keyid, secret, expiresAt, scopes, apiKeyId, boundAddress } = o;
  if (typeof keyid !== "string" || typeof secret !== "string" || typeof expiresAt !== "number" || typeof apiKeyId !== "string" || !Array.isArray(scopes)) {
    throw new PortcullisApiError(200, undefined, `${SESSION_PATH} did not answer a session`, undefined, body);
  }
  return { keyid, secret, expiresAt, scopes: scopes.filter((x): x is string => typeof x === "string"), apiKeyId, boundAddress: typeof boundAddress === "string" ? boundAddress : null };
}

function checkLogonOptions(o: LogonOptions): void {
  if (typeof o !== "object" || (o as unknown) === null) throw new TypeError("logon options must be an object");
  if (o.scopes !== undefined && (!Array.isArray(o.scopes) || !o.scopes.every((x) => typeof x === "string"))) throw new TypeError("scopes must be a list of strings");
  if (o.ttl !== undefined && typeof o.ttl !== "string") throw new TypeError('ttl must be a duration string such as "5m"');
  if (o.bindAddress !== undefined && typeof o.bindAddress !== "boolean") throw new TypeError("bindAddress must be a boolean");
  if (o.refreshMarginMs !== undefined && (!Number.isSafeInteger(o.refreshMarginMs) || o.refreshMarginMs < 0)) throw new TypeError("refreshMarginMs must be a non-negative integer");
  if (o.relogon !== undefined && typeof o.relogon !== "boolean") throw new TypeError("relogon must be a boolean");
}

/** Refusals of a refresh after which only a new logon helps. */
const RELOGON = new Set<unknown>(["SESSION_LIFETIME_EXCEEDED", "SESSION_EXPIRED"]);

async function openSession(transport: Transport, keyClient: CoreClient, options: LogonOptions): Promise<SessionClient> {
  checkLogonOptions(options);
  const logonBody: Record<string, unknown> = {};
  if (options.scopes !== undefined) logonBody.scopes = options.scopes;
  if (options.ttl !== undefined) logonBody.ttl = options.ttl;
  if (options.bindAddress !== undefined) logonBody.bindAddress = options.bindAddress;
  const logon = async (): Promise<SessionInfo & { readonly secret: string }> => asSession(await keyClient.json("POST", SESSION_PATH, { json: logonBody }));
  return sessionClient(transport, await logon(), options.relogon === false ? null : logon, options.refreshMarginMs);
}

/** What a session-opening answer carries: `POST /portcullis/v1/session`'s body, secret included. */
export interface SessionAnswer {
  readonly keyid: string;
  readonly secret: string;
  readonly expiresAt: number;
  readonly scopes: readonly string[];
  readonly apiKeyId: string;
  readonly boundAddress?: string | null;
}

export interface SessionClientOptions extends ClientOnlyOptions {
  /** The session, as the endpoint that opened it answered (e.g. a passkey sign-in). */
  readonly session: SessionAnswer;
  /** As in `LogonOptions`: refresh this close to the expiry. Default: a fifth of the remaining lifetime. */
  readonly refreshMarginMs?: number;
}

/**
 * A session client for a session opened by something other than this SDK's `logon` — the
 * console's passkey sign-in (`POST /portcullis/v1/passkeys/authentication` answers what
 * `POST /portcullis/v1/session` does) — so it is signed, refreshed and ended exactly as a logon's.
 * With no key to log on again, it ends at the session's maximum lifetime. Throws TypeError for
 * bad options or a session of the wrong shape.
 */
export function createSessionClient(options: SessionClientOptions): SessionClient {
  if (typeof options !== "object" || (options as unknown) === null) throw new TypeError("session client options must be an object");
  if (options.refreshMarginMs !== undefined && (!Number.isSafeInteger(options.refreshMarginMs) || options.refreshMarginMs < 0)) {
    throw new TypeError("refreshMarginMs must be a non-negative integer");
  }
  let session: SessionInfo & { readonly secret: string };
  try {
    session = asSession(options.session);
  } catch {
    throw new TypeError("session must be { keyid, secret, expiresAt, scopes, apiKeyId } as the session endpoints answer it");
  }
  return sessionClient(makeTransport(options), session, null, options.refreshMarginMs);
}

/** The session client over `first`; `logon` (or null: none) opens a new one at the maximum lifetime. */
function sessionClient(
  transport: Transport,
  first: SessionInfo & { readonly secret: string },
  logon: (() => Promise<SessionInfo & { readonly secret: string }>) | null,
  refreshMarginMs: number | undefined,
): SessionClient {
  let state = first;
  let signer = createSigner({ keyId: state.keyid, secret: state.secret });
  let lifetime = state.expiresAt - (transport.now() + transport.clock.offset);
  let refreshing: Promise<SessionInfo> | undefined;
  let ended = false;
  const adopt = (next: SessionInfo & { readonly secret: string }): SessionInfo => {
    if (next.secret !== state.secret || next.keyid !== state.keyid) signer = createSigner({ keyId: next.keyid, secret: next.secret });
    state = next;
    return info();
  };
  const info = (): SessionInfo => ({ keyid: state.keyid, expiresAt: state.expiresAt, scopes: state.scopes, apiKeyId: state.apiKeyId, boundAddress: state.boundAddress });

  // Requests of the session itself (refresh, logout) must not trigger a refresh.
  const direct = signingClient(transport, () => signer);
  const refreshNow = async (): Promise<SessionInfo> => {
    try {
      return adopt(asSession(await direct.json("POST", `${SESSION_PATH}/refresh`)));
    } catch (err) {
      if (logon === null || !(err instanceof PortcullisApiError) || !RELOGON.has(err.code)) throw err;
      const fresh = await logon();
      lifetime = fresh.expiresAt - (transport.now() + transport.clock.offset);
      return adopt(fresh);
    }
  };
  const refresh = (): Promise<SessionInfo> => {
    refreshing ??= refreshNow().finally(() => {
      refreshing = undefined;
    });
    return refreshing;
  };
  const beforeSend = async (): Promise<void> => {
    if (ended) return;
    const margin = refreshMarginMs ?? Math.floor(lifetime / 5);
    if (transport.now() + transport.clock.offset + margin >= state.expiresAt) await refresh();
  };
  const core = signingClient(transport, () => signer, beforeSend);
  return {
    baseUrl: core.baseUrl,
    get clockOffset() {
      return core.clockOffset;
    },
    syncTime: core.syncTime,
    fetch: core.fetch,
    request: core.request,
    json: core.json,
    get keyId() {
      return state.keyid;
    },
    algorithm: "hmac-sha256",
    get session() {
      return info();
    },
    refresh,
    async logout() {
      ended = true;
      const response = await direct.request("DELETE", SESSION_PATH);
      const text = await response.text();
      if (!response.ok) throw apiError(response, text);
    },
  };
}
