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
 *
 * Well-formed headers in canonical form (what every signer produces) take a fast path that reads
 * them without building the generic structured-field tree; anything else goes through the strict
 * general parser, which gives the same answer or a precise refusal.
 */
export function parseSignatureHeaders(
  signatureInputHeader: string | string[] | undefined,
  signatureHeader: string | string[] | undefined,
): ParsedSignature | Denial {
  const inputText = single(signatureInputHeader);
  const sigText = single(signatureHeader);
  if (inputText === undefined || sigText === undefined) return deny("CREDENTIALS_MISSING");
  return parseCanonical(inputText, sigText) ?? parseGeneral(inputText, sigText);
}

// Canonical RFC 8941 serialization of one Signature-Input member whose components are plain
// strings and whose parameters are integers or strings (no escapes): exactly what signers emit.
// Because the text is canonical, it is its own serialization: the @signature-params value.
const SF_STRING = '"[\\x20\\x21\\x23-\\x5b\\x5d-\\x7e]*"';
const SF_KEY = "[a-z*][a-z0-9_.*-]*";
const CANONICAL_INPUT = new RegExp(
  `^(${SF_KEY})=(\\((?:${SF_STRING}(?: ${SF_STRING})*)?\\)((?:;${SF_KEY}=(?:-?(?:0|[1-9][0-9]{0,14})|${SF_STRING}))*))$`,
);
const CANONICAL_SIGNATURE = /^([a-z*][a-z0-9_.*-]*)=:((?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?):$/;

/** Validated component lists, by their text: signers send the same few lists over and over. */
const componentLists = new Map<string, readonly string[] | Denial>();
const COMPONENT_LIST_CACHE_MAX = 256;

function componentsOf(listText: string): readonly string[] | Denial {
  const cached = componentLists.get(listText);
  if (cached !== undefined) return cached;
  const names = listText === "" ? [] : listText.slice(1, -1).split('" "');
  const result = validateComponents(names);
  if (componentLists.size < COMPONENT_LIST_CACHE_MAX) componentLists.set(listText, Array.isArray(result) ? Object.freeze(result) : result);
  return result;
}

function validateComponents(names: readonly string[]): string[] | Denial {
  const seen = new Set<string>();
  for (const name of names) {
    if (seen.has(name)) return deny("SIGNATURE_COMPONENT_INVALID", `component ${name} is listed twice`);
    seen.add(name);
    if (name.startsWith("@") ? !DERIVED.has(name) : !FIELD_NAME.test(name)) {
      return deny("SIGNATURE_COMPONENT_INVALID", `unsupported component ${name}`);
    }
  }
  return [...names];
}

/** The fast path (exported for the test that checks it agrees with the general parser). */
export function parseCanonical(inputText: string, sigText: string): ParsedSignature | null {
  const input = CANONICAL_INPUT.exec(inputText);
  if (input === null) return null;
  const sig = CANONICAL_SIGNATURE.exec(sigText);
  if (sig === null) return null;
  const label = input[1] ?? "";
  const signatureParams = input[2] ?? "";
  const paramText = input[3] ?? "";
  // Anything wrong is left to the general parser, which names the problem: the fast path only
  // ever answers for a request that is well-formed.
  if (sig[1] !== label) return null;
  const components = componentsOf(signatureParams.slice(1, signatureParams.length - paramText.length - 1));
  if (!Array.isArray(components)) return null;
  let created: number | undefined;
  let expires: number | undefined;
  let nonce: string | undefined;
  let keyid: string | undefined;
  let alg: string | undefined;
  let tag: string | undefined;
  const n = paramText.length;
  let pos = 0;
  while (pos < n) {
    const eq = paramText.indexOf("=", pos);
    const name = paramText.slice(pos + 1, eq);
    let end: number;
    let text: string | undefined;
    let num: number | undefined;
    if (paramText.charCodeAt(eq + 1) === 0x22) {
      end = paramText.indexOf('"', eq + 2) + 1;
      text = paramText.slice(eq + 2, end - 1);
    } else {
      end = paramText.indexOf(";", eq);
      if (end < 0) end = n;
      num = Number(paramText.slice(eq + 1, end));
    }
    pos = end;
    switch (name) {
      case "created":
      case "expires":
        if (num === undefined || num < 0 || (name === "created" ? created : expires) !== undefined) return null;
        if (name === "created") created = num;
        else expires = num;
        break;
      case "nonce":
      case "keyid":
      case "alg":
      case "tag":
        if (text === undefined) return null;
        if (name === "nonce") {
          if (nonce !== undefined) return null;
          nonce = text;
        } else if (name === "keyid") {
          if (keyid !== undefined) return null;
          keyid = text;
        } else if (name === "alg") {
          if (alg !== undefined) return null;
          alg = text;
        } else {
          if (tag !== undefined) return null;
          tag = text;
        }
        break;
      default:
        return null;
    }
  }
  return {
    label,
    components,
    params: { created, expires, nonce, keyid, alg, tag },
    signatureParams,
    signature: Buffer.from(sig[2] ?? "", "base64"),
  };
}

/** The strict general path (exported for the same test). */
export function parseGeneral(inputText: string, sigText: string): ParsedSignature | Denial {
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

  const names: string[] = [];
  for (const item of input.items) {
    if (typeof item.value !== "string") {
      return deny("SIGNATURE_COMPONENT_INVALID", "component identifiers must be strings");
    }
    if (item.params.size !== 0) return deny("SIGNATURE_COMPONENT_INVALID", `component parameters are not supported (${item.value})`);
    names.push(item.value);
  }
  const components = validateComponents(names);
  if (!Array.isArray(components)) return components;
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
  // Built with join: one flat string, which the HMAC reads without flattening a rope first.
  const parts: string[] = [];
  for (const name of sig.components) {
    const value = componentValue(req, name);
    if (value === undefined) return deny("SIGNATURE_COMPONENT_ABSENT", `covered component ${name} is absent`);
    parts.push('"', name, '": ', value, "\n");
  }
  parts.push('"@signature-params": ', sig.signatureParams);
  return parts.join("");
}

/** Normalises a Host header into the @authority value: lower case, default port removed. */
export function authorityOf(host: string | undefined, scheme: string): string | undefined {
  if (host === undefined || host === "") return undefined;
  const lower = host.toLowerCase();
  if (scheme === "https" && lower.endsWith(":443")) return lower.slice(0, -4);
  if (scheme === "http" && lower.endsWith(":80")) return lower.slice(0, -3);
  return lower;
}
