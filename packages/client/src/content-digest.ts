/** RFC 9530 Content-Digest for a request body: `sha-256=:<base64 SHA-256 of the exact bytes>:`. */
import { sha256 } from "./algorithms.js";
import { copyBytes, utf8 } from "./encoding.js";
import { serializeByteSequence } from "./structured-fields.js";

/** The Content-Digest header value for `body` (a string is hashed as its UTF-8 bytes). */
export async function contentDigest(body: string | Uint8Array): Promise<string> {
  const bytes = typeof body === "string" ? utf8(body) : copyBytes(body);
  return `sha-256=${serializeByteSequence(await sha256(bytes))}`;
}
