/**
 * RFC 8785 (JCS) canonical JSON and SHA-256, in the browser, to recompute an approval digest from
 * the facts the admin API sends (docs/approvals.md): the console never signs a digest it was
 * given, as `portcullis approvals approve` never does.
 *
 * The digest document holds strings, integers, booleans, null, arrays and objects; JCS then is
 * JSON.stringify's ECMAScript serialisation of strings and numbers with object members sorted by
 * their UTF-16 code units. A number that is not finite is refused, as the `canonicalize` package
 * the server uses refuses it.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value === "boolean" || typeof value === "string") return JSON.stringify(value);
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new TypeError("not canonicalizable JSON: a non-finite number");
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v === undefined ? null : v)).join(",")}]`;
  if (typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
    // Default sort compares UTF-16 code units, which is what RFC 8785 section 3.2.3 asks for.
    entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  throw new TypeError(`not canonicalizable JSON: ${typeof value}`);
}

export async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The approval digest of a digest document: SHA-256 (hex) of its canonical JSON. */
export function digestOfDocument(document: unknown): Promise<string> {
  return sha256Hex(canonicalJson(document));
}

/** The exact text an approver signs (holds/digest.ts `approvalMessage`). */
export function approvalMessage(decision: "approve" | "reject", digest: string): Uint8Array<ArrayBuffer> {
  if (!/^[0-9a-f]{64}$/.test(digest)) throw new TypeError("an approval digest is 64 lower-case hex digits");
  return new TextEncoder().encode(`portcullis-approval/v1 ${decision} ${digest}`);
}
