import { type Denial, deny } from "../errors/catalogue.js";
import { InnerList, type Parameters, StructuredFieldError, parseDictionary, serializeInnerList } from "./structured-fields.js";

/**
 * RFC 9421 HTTP Message Signatures for requests: parsing Signature-Input / Signature, and the
 * signature base. This module is the generic mechanism (it verifies the RFC's own examples); the
 * policy Portcullis imposes on top (which components and parameters are required) lives in
 * `native.ts`.
 */

/** The parts of a request that derived components are computed from. */
export interface SignedRequest {
  readonly method: string;
  /** Host as sent, lower-cased, default port removed. */
  readonly authority: string | undefined;
  readonly scheme: string;
  /** The path as sent, percent-encoding untouched. */
  readonly path: string;
  /** The query as sent, without "?", or null when the target had none. */
  readonly query: string | null;
  /** Lower-cased header names, as node:http presents them. */
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
}

export interface SignatureParams {
  readonly created: number | undefined;
  readonly expires: number | undefined;
  readonly nonce: string | undefined;
  readonly keyid: string | undefined;
  readonly alg: string | undefined;
  readonly tag: string | undefined;
}

export interface ParsedSignature {
  readonly label: string;
  /** Covered component identifiers, in order (`@method`, `content-digest`…). */
  readonly components: readonly string[];
  readonly params: SignatureParams;
  /** The serialized `@signature-params` value: the last line of the signature base. */
  readonly signatureParams: string;
  readonly signature: Uint8Array;
}

const DERIVED = new Set(["@method", "@authority", "@path", "@query", "@target-uri", "@scheme", "@request-target"]);
const FIELD_NAME = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/;
const KNOWN_PARAMS = new Set(["created", "expires", "nonce", "keyid", "alg", "tag"]);

function single(value: string | string[] | undefined): string | undefined {
  if (value === undefined || typeof value === "string") return value;
  return value.join(", ");
}

function readParams(params: Parameters): SignatureParams | Denial {
  let created: number | undefined;
  let expires: number | undefined;
  let nonce: string | undefined;
  let keyid: string | undefined;
  let alg: string | undefined;
  let tag: string | undefined;
  for (const [name, value] of params) {
    if (!KNOWN_PARAMS.has(name)) return deny("SIGNATURE_PARAM_INVALID", `unknown parameter ${name}`);
    if (name === "created" || name === "expires") {
      if (typeof value !== "number" || value < 0) return deny("SIGNATURE_PARAM_INVALID", `${name} must be a non-negative integer`);
      if (name === "created") created = value;
      else expires = value;
    } else {
      if (typeof value !== "string") return deny("SIGNATURE_PARAM_INVALID", `${name} must be a string`);
      if (name === "nonce") nonce = value;
      else if (name === "keyid") keyid = value;
      else if (name === "alg") alg = value;
      else tag = value;
    }
  }
  return { created, expires, nonce, keyid, alg, tag };
}

/**
 * Parses the two signature headers. Portcullis accepts exactly one signature per request, under
 * the same label in both headers; anything else is a refusal with a precise code.
 */
export function parseSignatureHeaders(
  signatureInputHeader: string | string[] | undefined,
  signatureHeader: string | string[] | undefined,
): ParsedSignature | Denial {
  const inputText = single(signatureInputHeader);
  const sigText = single(signatureHeader);
  if (inputText === undefined || sigText === undefined) return deny("CREDENTIALS_MISSING");
  let inputs;
  let sigs;
  try {
    inputs = parseDictionary(inputText);
    sigs = parseDictionary(sigText);
  } catch (err) {
    const message = err instanceof StructuredFieldError ? err.message : "parse error";
    // A repeated label (two headers carrying the same label) is a duplication, not a typo.
    if (message.startsWith("duplicate dictionary key")) return deny("SIGNATURE_HEADER_DUPLICATED", message);
    return deny("SIGNATURE_HEADER_MALFORMED", message);
  }
  if (inputs.size !== 1 || sigs.size !== 1) {
    return deny("SIGNATURE_HEADER_DUPLICATED", `${inputs.size} signature inputs, ${sigs.size} signatures`);
  }
  const [label, input] = inputs.entries().next().value as [string, unknown];
  const sigMember = sigs.get(label);
  if (sigMember === undefined) return deny("SIGNATURE_LABEL_MISMATCH");
  if (!(input instanceof InnerList)) return deny("SIGNATURE_HEADER_MALFORMED", "Signature-Input member is not an inner list");
  if (sigMember instanceof InnerList || !(sigMember.value instanceof Uint8Array) || sigMember.params.size !== 0) {
    return deny("SIGNATURE_HEADER_MALFORMED", "Signature member is not a byte sequence");
  }

  const components: string[] = [];
  const seen = new Set<string>();
  for (const item of input.items) {
    if (typeof item.value !== "string") {
      return deny("SIGNATURE_COMPONENT_INVALID", "component identifiers must be strings");
    }
    const name = item.value;
    if (item.params.size !== 0) return deny("SIGNATURE_COMPONENT_INVALID", `component parameters are not supported (${name})`);
    if (seen.has(name)) return deny("SIGNATURE_COMPONENT_INVALID", `component ${name} is listed twice`);
    seen.add(name);
    if (name.startsWith("@") ? !DERIVED.has(name) : !FIELD_NAME.test(name)) {
      return deny("SIGNATURE_COMPONENT_INVALID", `unsupported component ${name}`);
    }
    components.push(name);
  }
  const params = readParams(input.params);
  if ("ok" in params) return params;
  let signatureParams: string;
  try {
    signatureParams = serializeInnerList(input);
  } catch {
    return deny("SIGNATURE_HEADER_MALFORMED", "signature parameters cannot be serialized");
  }
  return { label, components, params, signatureParams, signature: sigMember.value };
}

function componentValue(req: SignedRequest, name: string): string | undefined {
  switch (name) {
    case "@method":
      return req.method;
    case "@authority":
      return req.authority;
    case "@path":
      return req.path === "" ? "/" : req.path;
    case "@query":
      return `?${req.query ?? ""}`;
    case "@scheme":
      return req.scheme;
    case "@request-target":
      return req.query === null ? req.path : `${req.path}?${req.query}`;
    case "@target-uri":
      if (req.authority === undefined) return undefined;
      return `${req.scheme}://${req.authority}${req.path}${req.query === null ? "" : `?${req.query}`}`;
    default:
      return single(req.headers[name]);
  }
}

/**
 * Builds the signature base (RFC 9421 section 2.5): one line per covered component, then the
 * `@signature-params` line. Returns a denial naming the first covered component that is absent.
 *
 * The base is a byte string: node:http decodes request lines and header values as latin1, so
 * encoding the base as latin1 gives back exactly the bytes that were sent.
 */
export function signatureBase(req: SignedRequest, sig: ParsedSignature): string | Denial {
  let base = "";
  for (const name of sig.components) {
    const value = componentValue(req, name);
    if (value === undefined) return deny("SIGNATURE_COMPONENT_ABSENT", `covered component ${name} is absent`);
    base += `"${name}": ${value}\n`;
  }
  return `${base}"@signature-params": ${sig.signatureParams}`;
}

/** Normalises a Host header into the @authority value: lower case, default port removed. */
export function authorityOf(host: string | undefined, scheme: string): string | undefined {
  if (host === undefined || host === "") return undefined;
  const lower = host.toLowerCase();
  if (scheme === "https" && lower.endsWith(":443")) return lower.slice(0, -4);
  if (scheme === "http" && lower.endsWith(":80")) return lower.slice(0, -3);
  return lower;
}
