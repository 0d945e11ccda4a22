import { createHash, timingSafeEqual } from "node:crypto";
import { type Denial, deny } from "../errors/catalogue.js";
import { InnerList, StructuredFieldError, parseDictionary } from "./structured-fields.js";

/**
 * RFC 9530 Content-Digest, checked against the exact body bytes. Every supported algorithm the
 * header lists must match; unknown algorithms are ignored; at least one supported one must be
 * present.
 */
const SUPPORTED: Readonly<Record<string, string>> = { "sha-256": "sha256", "sha-512": "sha512" };

export function checkContentDigest(header: string | string[] | undefined, body: Buffer): Denial | null {
  if (header === undefined) return deny("CONTENT_DIGEST_MISSING");
  let dict;
  try {
    dict = parseDictionary(typeof header === "string" ? header : header.join(", "));
  } catch (err) {
    return deny("CONTENT_DIGEST_MALFORMED", err instanceof StructuredFieldError ? err.message : undefined);
  }
  let checked = 0;
  for (const [name, member] of dict) {
    const hash = SUPPORTED[name];
    if (hash === undefined) continue;
    if (member instanceof InnerList || !(member.value instanceof Uint8Array)) {
      return deny("CONTENT_DIGEST_MALFORMED", `${name} is not a byte sequence`);
    }
    const actual = createHash(hash).update(body).digest();
    if (actual.length !== member.value.length || !timingSafeEqual(actual, member.value)) {
      return deny("CONTENT_DIGEST_MISMATCH", `${name} does not match the body`);
    }
    checked++;
  }
  return checked === 0 ? deny("CONTENT_DIGEST_UNSUPPORTED") : null;
}

