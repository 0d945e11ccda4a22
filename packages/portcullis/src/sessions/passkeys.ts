import { randomBytes } from "node:crypto";
import { isIP } from "node:net";
import {
  type AuthenticationResponseJSON,
  type AuthenticatorTransportFuture,
  type PublicKeyCredentialCreationOptionsJSON,
  type PublicKeyCredentialRequestOptionsJSON,
  type RegistrationResponseJSON,
  generateAuthenticationOptions,
  generateRegistrationOptions,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
} from "@simplewebauthn/server";
import { isJsonObject, parseJson, unknownMembers } from "../contract/json.js";
import type { KeyRecord } from "../contract/keys.js";
import { PortcullisError } from "../errors/catalogue.js";
import type { PasskeyRow, PasskeyStore } from "../storage/types.js";

/**
 * Passkeys (WebAuthn) as a way to sign in to the console as an API key (docs/passkeys.md). The
 * ceremonies, over @simplewebauthn/server: a key's holder, already signed in with the key,
 * registers a passkey to it; later the passkey alone signs in, and the admin API issues a session
 * of that key (admin/passkeys.ts). This module checks the WebAuthn side only; whether the key may
 * still sign in (status, expiry, allowlist) is the admin API's, with the pipeline's own checks.
 *
 * Challenges are random (256 bits), stored (PasskeyStore.putChallenge) and spent at most once by
 * whichever process receives the answer first (takeChallenge): a replayed answer finds no
 * challenge. Registration challenges live 5 minutes and are bound to the key that asked;
 * sign-in challenges live 2 minutes and are bound to nothing (discoverable credentials: the
 * browser offers whichever passkey the user picks).
 */

/** COSE algorithms accepted: Ed25519 (-8), then ES256 (-7). */
export const PASSKEY_ALGORITHMS: readonly number[] = [-8, -7];
export const REGISTRATION_CHALLENGE_MS = 5 * 60_000;
export const AUTHENTICATION_CHALLENGE_MS = 2 * 60_000;
/** Passkeys one key may have. */
export const MAX_PASSKEYS_PER_KEY = 10;
/** A label's length, in characters. */
export const MAX_PASSKEY_LABEL = 100;

export interface PasskeyServiceOptions {
  readonly store: PasskeyStore;
  /**
   * The origins the console is served from (the admin listener's, `admin.origin`): exact
   * `scheme://host[:port]`, every one with the same host, which is the relying party id. Null: not
   * known yet (set with `useOrigins` once the listener is up).
   */
  readonly origins: readonly string[] | null;
  /** The relying party's name, shown by the authenticator. Default "Portcullis". */
  readonly rpName?: string;
}

/** The relying party: its id (a host name) and the origins its pages are served from. */
export interface RelyingParty {
  readonly id: string;
  readonly origins: readonly string[];
}

/**
 * Checks a list of console origins (a programming or configuration mistake throws TypeError):
 * each an http(s) origin exactly as a browser writes it, all on one host, which is the RP id.
 */
export function relyingParty(origins: readonly string[]): RelyingParty {
  if (origins.length === 0) throw new TypeError("at least one origin is needed");
  let host: string | null = null;
  for (const origin of origins) {
    let url: URL;
    try {
      url = new URL(origin);
    } catch {
      throw new TypeError(`not an origin: ${origin}`);
    }
    if ((url.protocol !== "https:" && url.protocol !== "http:") || url.origin !== origin) {
      throw new TypeError(`not an origin (scheme://host[:port], as a browser writes it, no path): ${origin}`);
    }
    if (host !== null && url.hostname !== host) throw new TypeError(`every origin must be on one host (${host}), not ${url.hostname}`);
    host = url.hostname;
  }
  if (host === null || /^[0-9.]+$/.test(host) || host.startsWith("[")) throw new TypeError("the origins' host must be a domain name (WebAuthn has no IP-address relying parties): use localhost, not 127.0.0.1");
  return { id: host, origins: [...origins] };
}

/** Addresses a browser reaches as `localhost` (WebAuthn has no IP-address relying parties). */
const LOOPBACK: ReadonlySet<string> = new Set(["127.0.0.1", "::1", "0.0.0.0", "::", "localhost", ""]);

/**
 * The console's origin when `admin.origin` is not configured: the listener's scheme, its host
 * (`localhost` for a loopback or unspecified address) and the port it is listening on; null when
 * the host is another IP address, which cannot be a relying party (`admin.origin` must then name
 * the console's host).
 */
export function listenerOrigin(address: { readonly port: number }, host: string, tls: boolean): string | null {
  if (!LOOPBACK.has(host) && (isIP(host) !== 0 || host.startsWith("["))) return null;
  const name = LOOPBACK.has(host) ? "localhost" : host;
  const scheme = tls ? "https" : "http";
  const port = (tls && address.port === 443) || (!tls && address.port === 80) ? "" : `:${address.port}`;
  return `${scheme}://${name}${port}`;
}

/** A passkey as the admin API shows it (the public key is left out: it is of no use to a reader). */
export interface PasskeyView {
  readonly id: string;
  readonly keyId: string;
  readonly label: string;
  readonly transports: readonly string[];
  readonly counter: number;
  readonly createdAt: number;
  readonly lastUsedAt: number | null;
}

export function passkeyView(row: PasskeyRow): PasskeyView {
  return { id: row.id, keyId: row.keyId, label: row.label, transports: row.transports, counter: row.counter, createdAt: row.createdAt, lastUsedAt: row.lastUsedAt };
}

/** A sign-in the passkey proved: the credential (its counter advanced). */
export interface PasskeySignIn {
  readonly passkey: PasskeyRow;
}

/** Thrown (with the code PASSKEY_COUNTER_REGRESSED) after the clone is known, so the caller can audit it. */
export class PasskeyCloneError extends PortcullisError {
  constructor(
    readonly passkey: PasskeyRow,
    readonly presented: number,
  ) {
    super("PASSKEY_COUNTER_REGRESSED");
  }
}

// --- the browser's answers, read strictly -------------------------------------------------------

const B64URL = /^[A-Za-z0-9_-]*$/;
const TOP_FIELDS: ReadonlySet<string> = new Set(["id", "rawId", "type", "response", "authenticatorAttachment", "clientExtensionResults"]);
const REGISTRATION_FIELDS: ReadonlySet<string> = new Set(["clientDataJSON", "attestationObject", "authenticatorData", "transports", "publicKey", "publicKeyAlgorithm"]);
const AUTHENTICATION_FIELDS: ReadonlySet<string> = new Set(["clientDataJSON", "authenticatorData", "signature", "userHandle"]);
/** Credential ids are at most 1023 bytes (WebAuthn L3 §5.1). */
const MAX_ID = 1366;
const TRANSPORTS: ReadonlySet<string> = new Set(["ble", "cable", "hybrid", "internal", "nfc", "smart-card", "usb"]);

function invalid(field: string, what: string): never {
  throw new PortcullisError("VALIDATION_FAILED", `credential.${field}: ${what}`, { [`credential.${field}`]: what });
}

function b64(o: Record<string, unknown>, field: string, path: string, max: number, optional = false): string | undefined {
  const v = o[field];
  if (v === undefined && optional) return undefined;
  if (typeof v !== "string" || v.length === 0 || v.length > max || !B64URL.test(v)) invalid(path, `base64url, 1 to ${max} characters`);
  return v;
}

/** The common members; throws VALIDATION_FAILED naming the field at fault. */
function credentialFrame(raw: unknown, fields: ReadonlySet<string>): { id: string; response: Record<string, unknown>; top: Record<string, unknown> } {
  if (!isJsonObject(raw)) invalid("", "an object (the PublicKeyCredential's toJSON())");
  const top = raw as Record<string, unknown>;
  const extra = unknownMembers(top, TOP_FIELDS);
  if (extra.length > 0) invalid(extra[0] ?? "", "unknown field");
  const id = b64(top, "id", "id", MAX_ID) ?? "";
  if (top.rawId !== id) invalid("rawId", "the same as id");
  if (top.type !== "public-key") invalid("type", '"public-key"');
  if (top.authenticatorAttachment !== undefined && top.authenticatorAttachment !== null && top.authenticatorAttachment !== "platform" && top.authenticatorAttachment !== "cross-platform") {
    invalid("authenticatorAttachment", '"platform" or "cross-platform"');
  }
  if (top.clientExtensionResults !== undefined && !isJsonObject(top.clientExtensionResults)) invalid("clientExtensionResults", "an object");
  if (!isJsonObject(top.response)) invalid("response", "an object");
  const response = top.response as Record<string, unknown>;
  const unknown = unknownMembers(response, fields);
  if (unknown.length > 0) invalid(`response.${unknown[0] ?? ""}`, "unknown field");
  b64(response, "clientDataJSON", "response.clientDataJSON", 4096);
  return { id, response, top };
}

/** A registration answer (`navigator.credentials.create()`'s credential, toJSON()). */
export function parseRegistrationCredential(raw: unknown): RegistrationResponseJSON {
  const { response } = credentialFrame(raw, REGISTRATION_FIELDS);
  b64(response, "attestationObject", "response.attestationObject", 16_384);
  b64(response, "authenticatorData", "response.authenticatorData", 16_384, true);
  b64(response, "publicKey", "response.publicKey", 4096, true);
  if (response.publicKeyAlgorithm !== undefined && !Number.isSafeInteger(response.publicKeyAlgorithm)) invalid("response.publicKeyAlgorithm", "an integer");
  const transports = response.transports;
  if (transports !== undefined && (!Array.isArray(transports) || transports.length > TRANSPORTS.size || !transports.every((t): t is string => typeof t === "string" && TRANSPORTS.has(t)))) {
    invalid("response.transports", `a list of ${[...TRANSPORTS].join(", ")}`);
  }
  return raw as RegistrationResponseJSON;
}

/** A sign-in answer (`navigator.credentials.get()`'s credential, toJSON()). */
export function parseAuthenticationCredential(raw: unknown): AuthenticationResponseJSON {
  const { response } = credentialFrame(raw, AUTHENTICATION_FIELDS);
  b64(response, "authenticatorData", "response.authenticatorData", 16_384);
  b64(response, "signature", "response.signature", 2048);
  if (response.userHandle !== undefined && response.userHandle !== null) b64(response, "userHandle", "response.userHandle", 128);
  return raw as AuthenticationResponseJSON;
}

/** The challenge the browser signed (from clientDataJSON), or null when it cannot be read. */
function signedChallenge(clientDataJSON: string): string | null {
  try {
    const data = parseJson(Buffer.from(clientDataJSON, "base64url").toString("utf8"));
    if (!isJsonObject(data)) return null;
    const challenge = (data as Record<string, unknown>).challenge;
    return typeof challenge === "string" && challenge.length > 0 && challenge.length <= 128 && B64URL.test(challenge) ? challenge : null;
  } catch {
    return null;
  }
}

// --- the ceremonies -------------------------------------------------------------------------------

export class PasskeyService {
  private readonly store: PasskeyStore;
  private readonly rpName: string;
  private rp: RelyingParty | null;

  constructor(options: PasskeyServiceOptions) {
    this.store = options.store;
    this.rpName = options.rpName ?? "Portcullis";
    this.rp = options.origins === null ? null : relyingParty(options.origins);
  }

  /** Sets the console's origins (when they are derived from the listener's address, once it is up). */
  useOrigins(origins: readonly string[]): void {
    this.rp = relyingParty(origins);
  }

  /** The relying party, or null while the origins are not known (the routes are then not found). */
  get relyingParty(): RelyingParty | null {
    return this.rp;
  }

  private party(): RelyingParty {
    if (this.rp === null) throw new PortcullisError("ROUTE_NOT_FOUND", "passkeys are not configured on this listener (admin.origin)");
    return this.rp;
  }

  /**
   * Creation options for a new passkey of `key` (the caller's own), labelled `label`. The
   * challenge is stored, bound to the key, for 5 minutes.
   */
  async registrationOptions(key: KeyRecord, label: string, now: number): Promise<PublicKeyCredentialCreationOptionsJSON> {
    const rp = this.party();
    const existing = await this.store.list(key.id);
    if (existing.length >= MAX_PASSKEYS_PER_KEY) throw new PortcullisError("PASSKEY_LIMIT_REACHED");
    const handle = await this.store.userHandle(key.id, randomBytes(32).toString("base64url"));
    const options = await generateRegistrationOptions({
      rpName: this.rpName,
      rpID: rp.id,
      userName: key.id,
      userID: Buffer.from(handle, "base64url"),
      userDisplayName: key.label === "" ? `${key.account} (${key.id})` : `${key.label} (${key.account})`,
      challenge: randomBytes(32),
      timeout: REGISTRATION_CHALLENGE_MS,
      attestationType: "none",
      excludeCredentials: existing.map((p) => ({ id: p.id, transports: p.transports as AuthenticatorTransportFuture[] })),
      authenticatorSelection: { residentKey: "preferred", userVerification: "required" },
      supportedAlgorithmIDs: [...PASSKEY_ALGORITHMS],
    });
    await this.store.putChallenge({ challenge: options.challenge, ceremony: "registration", keyId: key.id, label, expiresAt: now + REGISTRATION_CHALLENGE_MS }, now);
    return options;
  }

  /** Verifies a registration answer from `key`'s holder and stores the passkey (audited by `actor`). */
  async register(key: KeyRecord, credential: RegistrationResponseJSON, actor: string, now: number): Promise<PasskeyRow> {
    const rp = this.party();
    const challenge = signedChallenge(credential.response.clientDataJSON);
    if (challenge === null) throw new PortcullisError("PASSKEY_VERIFICATION_FAILED", "clientDataJSON cannot be read");
    const issued = await this.store.takeChallenge(challenge, now);
    if (issued === undefined || issued.ceremony !== "registration" || issued.keyId !== key.id) throw new PortcullisError("PASSKEY_CHALLENGE_INVALID");
    let info;
    try {
      const verified = await verifyRegistrationResponse({
        response: credential,
        expectedChallenge: challenge,
        expectedOrigin: [...rp.origins],
        expectedRPID: rp.id,
        requireUserVerification: true,
        supportedAlgorithmIDs: [...PASSKEY_ALGORITHMS],
      });
      if (!verified.verified) throw new Error("not verified");
      info = verified.registrationInfo;
    } catch (err) {
      throw new PortcullisError("PASSKEY_VERIFICATION_FAILED", `the registration did not verify: ${err instanceof Error ? err.message : "unknown reason"}`);
    }
    if ((await this.store.list(key.id)).length >= MAX_PASSKEYS_PER_KEY) throw new PortcullisError("PASSKEY_LIMIT_REACHED");
    const row: PasskeyRow = {
      id: info.credential.id,
      keyId: key.id,
      account: key.account,
      publicKey: Buffer.from(info.credential.publicKey).toString("base64url"),
      counter: info.credential.counter,
      transports: (credential.response.transports ?? []).filter((t) => TRANSPORTS.has(t)),
      label: issued.label ?? "",
      createdAt: now,
      lastUsedAt: null,
    };
    if (!(await this.store.insert(row, actor))) throw new PortcullisError("PASSKEY_EXISTS");
    return row;
  }

  list(keyId: string): Promise<PasskeyRow[]> {
    return this.store.list(keyId);
  }

  /** Removes `keyId`'s passkey `id` (PASSKEY_NOT_FOUND: none such for that key). */
  async remove(id: string, keyId: string, actor: string, now: number): Promise<PasskeyRow> {
    const removed = await this.store.remove(id, keyId, actor, now);
    if (removed === undefined) throw new PortcullisError("PASSKEY_NOT_FOUND");
    return removed;
  }

  /** Request options for a sign-in: a challenge for 2 minutes, any discoverable passkey. */
  async authenticationOptions(now: number): Promise<PublicKeyCredentialRequestOptionsJSON> {
    const rp = this.party();
    const options = await generateAuthenticationOptions({ rpID: rp.id, challenge: randomBytes(32), timeout: AUTHENTICATION_CHALLENGE_MS, userVerification: "required" });
    await this.store.putChallenge({ challenge: options.challenge, ceremony: "authentication", keyId: null, label: null, expiresAt: now + AUTHENTICATION_CHALLENGE_MS }, now);
    return options;
  }

  /**
   * Verifies a sign-in answer: the challenge (spent now), the credential, the origin and RP id,
   * user verification, the signature, and the signature counter, which must increase when either
   * side has one (else PasskeyCloneError). The passkey, its counter advanced.
   */
  async authenticate(credential: AuthenticationResponseJSON, now: number): Promise<PasskeySignIn> {
    const rp = this.party();
    const challenge = signedChallenge(credential.response.clientDataJSON);
    if (challenge === null) throw new PortcullisError("PASSKEY_VERIFICATION_FAILED", "clientDataJSON cannot be read");
    const issued = await this.store.takeChallenge(challenge, now);
    if (issued === undefined || issued.ceremony !== "authentication") throw new PortcullisError("PASSKEY_CHALLENGE_INVALID");
    const passkey = await this.store.get(credential.id);
    if (passkey === undefined) throw new PortcullisError("PASSKEY_UNKNOWN");
    // A discoverable credential names its user: it must be the passkey's key's (WebAuthn §7.2
    // step 6). The key has its handle since its first registration options, so this only reads it.
    const userHandle = credential.response.userHandle;
    if (typeof userHandle === "string" && userHandle !== (await this.store.userHandle(passkey.keyId, randomBytes(32).toString("base64url")))) {
      throw new PortcullisError("PASSKEY_VERIFICATION_FAILED");
    }
    let counter: number;
    try {
      const verified = await verifyAuthenticationResponse({
        response: credential,
        expectedChallenge: challenge,
        expectedOrigin: [...rp.origins],
        expectedRPID: rp.id,
        // The counter is checked below, so a regression has its own code and audit entry.
        credential: { id: passkey.id, publicKey: Buffer.from(passkey.publicKey, "base64url"), counter: 0, transports: passkey.transports as AuthenticatorTransportFuture[] },
        requireUserVerification: true,
      });
      if (!verified.verified) throw new Error("not verified");
      counter = verified.authenticationInfo.newCounter;
    } catch {
      // Why is not told to an unauthenticated caller (the public message is the catalogue's).
      throw new PortcullisError("PASSKEY_VERIFICATION_FAILED");
    }
    if ((counter > 0 || passkey.counter > 0) && counter <= passkey.counter) throw new PasskeyCloneError(passkey, counter);
    // Of two sign-ins with one counter value, one wins; the other is a copy.
    if (!(await this.store.advance(passkey.id, passkey.counter, counter, now))) throw new PasskeyCloneError(passkey, counter);
    return { passkey: { ...passkey, counter, lastUsedAt: now } };
  }
}
