/**
 * RFC 9421 HTTP Message Signatures, the generic signing side: `@signature-params`, the signature
 * base (section 2.5) and the two header values. Nothing here is specific to Portcullis; the
 * gateway's own profile (which components, which parameters) is applied in `signer.ts`.
 */
import { serializeByteSequence, serializeInteger, serializeKey, serializeString } from "./structured-fields.js";

/** Derived components this implementation computes (RFC 9421 section 2.2). */
export const DERIVED_COMPONENTS = ["@method", "@target-uri", "@authority", "@scheme", "@request-target", "@path", "@query"] as const;

/**
 * Signature parameters (RFC 9421 section 2.3). They are serialized in the order the properties
 * were defined on the object, because the order is part of what is signed.
 */
export interface SignatureParameters {
  /** Creation time, integer unix seconds. */
  readonly created?: number;
  /** Expiry time, integer unix seconds. */
  readonly expires?: number;
  readonly nonce?: string;
  readonly alg?: string;
  readonly keyid?: string;
  readonly tag?: string;
}

/** Header fields for field components: a Headers object or a plain record (any name case). */
export type HeaderFields = Headers | Readonly<Record<string, string | readonly string[] | undefined>>;

/** The parts of a request the signature base is computed from. */
export interface MessageRequest {
  readonly method: string;
  readonly url: string | URL;
  /** Needed only when a header field (such as `content-digest`) is covered. */
  readonly headers?: HeaderFields;
}

const INTEGER_PARAMS = new Set(["created", "expires"]);
const STRING_PARAMS = new Set(["nonce", "alg", "keyid", "tag"]);
const FIELD_NAME = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/;
const DERIVED = new Set<string>(DERIVED_COMPONENTS);

function checkComponents(components: readonly string[]): void {
  const seen = new Set<string>();
  for (const name of components) {
    if (typeof name !== "string") throw new TypeError("component identifiers must be strings");
    if (name.startsWith("@") ? !DERIVED.has(name) : !FIELD_NAME.test(name)) {
      throw new TypeError(`unsupported component identifier ${JSON.stringify(name)} (field names must be lower case)`);
    }
    if (seen.has(name)) throw new TypeError(`component ${name} is listed twice`);
    seen.add(name);
  }
}

/**
 * The `@signature-params` value: the inner list of covered components followed by the
 * parameters, e.g. `("@method" "@path");created=1618884473;keyid="k"`. This is also the value of
 * the label's member in the Signature-Input header.
 */
export function serializeSignatureParams(components: readonly string[], params: SignatureParameters): string {
  checkComponents(components);
  let out = `(${components.map(serializeString).join(" ")})`;
  for (const [name, value] of Object.entries(params) as [string, unknown][]) {
    if (value === undefined) continue;
    if (INTEGER_PARAMS.has(name)) {
      if (typeof value !== "number" || value < 0) throw new TypeError(`signature parameter ${name} must be a non-negative integer`);
      out += `;${name}=${serializeInteger(value)}`;
    } else if (STRING_PARAMS.has(name)) {
      if (typeof value !== "string") throw new TypeError(`signature parameter ${name} must be a string`);
      out += `;${name}=${serializeString(value)}`;
    } else {
      throw new TypeError(`unknown signature parameter ${JSON.stringify(name)}`);
    }
  }
  return out;
}

/** `label=<signature params>`: the Signature-Input header value for one signature. */
export function serializeSignatureInput(label: string, components: readonly string[], params: SignatureParameters): string {
  return `${serializeKey(label)}=${serializeSignatureParams(components, params)}`;
}

/** `label=:<base64>:`: the Signature header value for one signature. */
export function serializeSignature(label: string, signature: Uint8Array): string {
  return `${serializeKey(label)}=${serializeByteSequence(signature)}`;
}

function trimOWS(value: string): string {
  return value.replace(/^[ \t]+|[ \t]+$/g, "");
}

/** A header field's value per RFC 9421 section 2.1: each value trimmed, repeats joined by ", ". */
function fieldValue(headers: HeaderFields | undefined, name: string): string | undefined {
  if (headers === undefined) return undefined;
  if (headers instanceof Headers) {
    const value = headers.get(name);
    return value === null ? undefined : trimOWS(value);
  }
  const values: string[] = [];
  for (const [key, value] of Object.entries(headers)) {
    if (key.toLowerCase() !== name || value === undefined) continue;
    if (typeof value === "string") values.push(trimOWS(value));
    else for (const v of value) values.push(trimOWS(v));
  }
  return values.length === 0 ? undefined : values.join(", ");
}

function derivedValue(url: URL, method: string, name: string): string {
  const path = url.pathname === "" ? "/" : url.pathname;
  switch (name) {
    case "@method":
      return method.toUpperCase();
    case "@authority":
      return url.host.toLowerCase();
    case "@scheme":
      return url.protocol.slice(0, -1).toLowerCase();
    case "@target-uri":
      return `${url.protocol}//${url.host}${path}${url.search}`;
    case "@request-target":
      return `${path}${url.search}`;
    case "@path":
      return path;
    case "@query":
      return url.search === "" ? "?" : url.search;
    default:
      throw new TypeError(`unsupported derived component ${name}`);
  }
}

/**
 * The signature base (RFC 9421 section 2.5): one `"<component>": <value>` line per covered
 * component, in order, then the `"@signature-params"` line; joined with "\n", no trailing
 * newline. Values come from the request URL (derived components, `@method` upper-cased) and from
 * `request.headers` (field components). A covered field that is absent is a TypeError.
 */
export function signatureBase(request: MessageRequest, components: readonly string[], params: SignatureParameters): string {
  const signatureParams = serializeSignatureParams(components, params);
  const url = typeof request.url === "string" ? new URL(request.url) : request.url;
  let base = "";
  for (const name of components) {
    const value = name.startsWith("@") ? derivedValue(url, request.method, name) : fieldValue(request.headers, name);
    if (value === undefined) throw new TypeError(`covered header field ${name} is not present`);
    if (/[\r\n]/.test(value)) throw new TypeError(`component ${name} contains a line break`);
    base += `"${name}": ${value}\n`;
  }
  return `${base}"@signature-params": ${signatureParams}`;
}
