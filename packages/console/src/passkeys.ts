import { type SessionAnswer, createSessionClient } from "@portcullis/client";
import { Api, ApiError, asApiError } from "./api.js";

/**
 * The browser's half of passkeys (docs/passkeys.md "The browser side"), with the raw WebAuthn
 * Level 3 API only: the server's options are JSON (base64url byte strings), which
 * `PublicKeyCredential.parse*OptionsFromJSON` turn into what `navigator.credentials` takes, and
 * `credential.toJSON()` is exactly what the server reads back. No library: Chromium 129+,
 * Firefox 119+ and Safari 18.4+ have both helpers; older browsers are told so.
 *
 * The browser's refusals are DOMExceptions without an API code; each gets a stable console code
 * (docs/console.md), so the UI shows one shape whatever refused.
 */

/** A passkey as the API answers it (sessions/passkeys.ts `passkeyView`). */
export interface Passkey {
  /** The credential id (base64url), also the `:id` of DELETE. */
  readonly id: string;
  readonly keyId: string;
  readonly label: string;
  readonly transports: readonly string[];
  readonly counter: number;
  readonly createdAt: number;
  readonly lastUsedAt: number | null;
}

/** At most this long, as the server checks (sessions/passkeys.ts MAX_PASSKEY_LABEL). */
export const MAX_PASSKEY_LABEL = 100;

/**
 * Why passkeys cannot work on this page, or null. WebAuthn has no relying party for an IP address:
 * a console opened at http://127.0.0.1:8081 must be opened by a name (`localhost`, or the name
 * `admin.origin` gives), and the browser would refuse with a bare SecurityError.
 */
export function passkeyObstacle(loc: { readonly hostname: string; readonly protocol: string; readonly port: string; readonly pathname: string } = location): {
  readonly reason: string;
  readonly localUrl: string | null;
} | null {
  if (isIpHost(loc.hostname)) {
    const loopback = /^127\./.test(loc.hostname) || loc.hostname === "[::1]" || loc.hostname === "::1";
    const localUrl = loopback ? `${loc.protocol}//localhost${loc.port === "" ? "" : `:${loc.port}`}${loc.pathname}` : null;
    return {
      reason: `This console is open at an IP address (${loc.hostname}), and WebAuthn has no passkeys for IP addresses: open it by a host name${loopback ? " (on this machine, localhost)" : ", the one admin.origin names"}.`,
      localUrl,
    };
  }
  if (!webauthnAvailable()) {
    return { reason: "This browser offers no passkeys on this page: WebAuthn needs a secure context (https, or localhost) and a browser with its JSON helpers (Chrome 129+, Firefox 119+, Safari 18.4+).", localUrl: null };
  }
  return null;
}

function isIpHost(hostname: string): boolean {
  return /^\d{1,3}(?:\.\d{1,3}){3}$/.test(hostname) || hostname.startsWith("[") || hostname.includes(":");
}

function webauthnAvailable(): boolean {
  return (
    typeof window !== "undefined" &&
    window.isSecureContext &&
    typeof PublicKeyCredential !== "undefined" &&
    typeof PublicKeyCredential.parseRequestOptionsFromJSON === "function" &&
    typeof PublicKeyCredential.parseCreationOptionsFromJSON === "function" &&
    typeof navigator.credentials !== "undefined"
  );
}

/** Asks the browser for an assertion over the server's request options; answers its JSON. */
export async function getAssertion(options: unknown): Promise<{ readonly json: unknown; readonly id: string }> {
  if (!webauthnAvailable()) throw new ApiError(0, "WEBAUTHN_UNAVAILABLE", "This browser offers no passkeys on this page (a secure context and WebAuthn's JSON helpers are needed).");
  let credential: Credential | null;
  try {
    credential = await navigator.credentials.get({ publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options as PublicKeyCredentialRequestOptionsJSON) });
  } catch (err) {
    throw browserError(err);
  }
  if (!(credential instanceof PublicKeyCredential)) throw new ApiError(0, "WEBAUTHN_NOT_ALLOWED", "The browser answered no passkey.");
  return { json: credential.toJSON() as unknown, id: credential.id };
}

/** Asks the browser to create a passkey over the server's creation options; answers its JSON. */
export async function createCredential(options: unknown): Promise<unknown> {
  if (!webauthnAvailable()) throw new ApiError(0, "WEBAUTHN_UNAVAILABLE", "This browser offers no passkeys on this page (a secure context and WebAuthn's JSON helpers are needed).");
  let credential: Credential | null;
  try {
    credential = await navigator.credentials.create({ publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options as PublicKeyCredentialCreationOptionsJSON) });
  } catch (err) {
    throw browserError(err);
  }
  if (!(credential instanceof PublicKeyCredential)) throw new ApiError(0, "WEBAUTHN_NOT_ALLOWED", "The browser created no passkey.");
  return credential.toJSON() as unknown;
}

/** The browser's refusal with a console code (the DOMException names of WebAuthn's algorithms). */
function browserError(err: unknown): ApiError {
  const name = err instanceof DOMException || err instanceof Error ? err.name : "";
  const message = err instanceof Error ? err.message : String(err);
  switch (name) {
    case "NotAllowedError":
      // Cancelled, timed out, or no passkey of this site on the device: the browser does not say which.
      return new ApiError(0, "WEBAUTHN_NOT_ALLOWED", `The passkey prompt was cancelled or timed out, or this device has no passkey for this site (${message}).`);
    case "InvalidStateError":
      return new ApiError(0, "WEBAUTHN_ALREADY_REGISTERED", "This authenticator already holds a passkey of this key.");
    case "SecurityError":
      return new ApiError(0, "WEBAUTHN_SECURITY_ERROR", `The browser refused this site as the passkey's relying party: open the console at the name admin.origin gives (${message}).`);
    case "NotSupportedError":
      return new ApiError(0, "WEBAUTHN_UNAVAILABLE", `No authenticator here supports what the server asks (${message}).`);
    default:
      return new ApiError(0, "WEBAUTHN_ERROR", message);
  }
}

const AUTH_OPTIONS = "/portcullis/v1/passkeys/authentication/options";
const AUTH = "/portcullis/v1/passkeys/authentication";

/**
 * Signs in with a passkey: request options (public), the browser's assertion, and the sign-in,
 * whose answer is a session of the passkey's key exactly as `POST /portcullis/v1/session` answers
 * it. From there the console is the same as after a credential-file sign-in: `Api.open` over a
 * session client that signs, refreshes and ends it the same way. The session's secret lives in
 * this page's memory only, as the logon's does.
 */
export async function signInWithPasskey(baseUrl: string = location.origin): Promise<Api> {
  try {
    const options = await postPublic(baseUrl, AUTH_OPTIONS, {});
    const assertion = await getAssertion(options);
    const session = await postPublic(baseUrl, AUTH, { credential: assertion.json });
    return await Api.open(createSessionClient({ baseUrl, session: session as SessionAnswer }), assertion.id);
  } catch (err) {
    throw asApiError(err);
  }
}

/** An unsigned JSON POST to a public route; a refusal is thrown with the API's code. */
async function postPublic(baseUrl: string, path: string, body: unknown): Promise<unknown> {
  const response = await fetch(`${baseUrl}${path}`, { method: "POST", headers: { "content-type": "application/json", accept: "application/json" }, body: JSON.stringify(body) });
  const text = await response.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = null;
  }
  if (!response.ok) {
    const o = typeof parsed === "object" && parsed !== null ? (parsed as { code?: unknown; message?: unknown }) : {};
    throw new ApiError(response.status, typeof o.code === "string" ? o.code : `HTTP_${String(response.status)}`, typeof o.message === "string" ? o.message : text.slice(0, 200));
  }
  if (typeof parsed !== "object" || parsed === null) throw new ApiError(response.status, "CLIENT_ERROR", `${path} did not answer JSON`);
  return parsed;
}

/** The signed-in key's passkeys, oldest first. */
export async function listPasskeys(api: Api): Promise<readonly Passkey[]> {
  return (await api.call<{ passkeys: Passkey[] }>("GET", "/portcullis/v1/passkeys")).passkeys;
}

/**
 * Registers a new passkey of the signed-in key: options, the browser's new credential,
 * registration — both calls signed by the key itself, as the API requires (a session may not mint
 * a credential that outlives it).
 */
export async function registerPasskey(api: Api, label: string): Promise<Passkey> {
  const options = await api.callWithKey<unknown>("POST", "/portcullis/v1/passkeys/registration/options", label === "" ? {} : { label });
  const credential = await createCredential(options);
  return api.callWithKey<Passkey>("POST", "/portcullis/v1/passkeys/registration", { credential });
}

export async function removePasskey(api: Api, id: string): Promise<Passkey> {
  return api.call<Passkey>("DELETE", `/portcullis/v1/passkeys/${encodeURIComponent(id)}`);
}
