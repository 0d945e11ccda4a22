import { createHash } from "node:crypto";

/**
 * RFC 8785 (JSON Canonicalization Scheme) for the JSON a policy document is made of: object
 * members sorted by their names' UTF-16 code units, no whitespace, strings and numbers written as
 * ECMAScript's JSON.stringify writes them (RFC 8785 section 3.2.2 defines its serialization by
 * ECMAScript's). The digest of a policy version is SHA-256 over these bytes (UTF-8): what an
 * approver approves, whoever serialized the document.
 */
export function canonicalJson(value: unknown): string {
  if (value === null) return "null";
  switch (typeof value) {
    case "string":
      return JSON.stringify(value);
    case "boolean":
      return value ? "true" : "false";
    case "number":
      if (!Number.isFinite(value)) throw new TypeError("RFC 8785 has no encoding for a non-finite number");
      return JSON.stringify(value);
    case "object": {
      if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v)).join(",")}]`;
      const o = value as Record<string, unknown>;
      const names = Object.keys(o)
        .filter((k) => o[k] !== undefined)
        .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
      return `{${names.map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(",")}}`;
    }
    default:
      throw new TypeError(`RFC 8785 has no encoding for a ${typeof value}`);
  }
}

/** SHA-256 (hex) of the canonical JSON of `value`. */
export function canonicalDigest(value: unknown): string {
  return createHash("sha256").update(canonicalJson(value), "utf8").digest("hex");
}
