import { createClient } from "@portcullis/client";
import { createPrivateKey } from "node:crypto";
import { readFileSync } from "node:fs";
import { OperatorError, PortcullisError } from "../errors/catalogue.js";
import { unreachableReason } from "./errors.js";

export interface SignedRequestOptions {
  readonly method: string;
  readonly url: string;
  readonly keyId: string | undefined;
  readonly secret: string | undefined;
  readonly privateKeyFile: string | undefined;
  readonly body: string | undefined;
  readonly headers: readonly string[];
}

function invalid(message: string): PortcullisError {
  return new PortcullisError("VALIDATION_FAILED", message);
}

/**
 * `portcullis request`: signs one request with the client SDK (clock synced to the gateway) and
 * prints the status line and the body. Returns the HTTP status.
 */
export async function sendSignedRequest(opts: SignedRequestOptions): Promise<number> {
  let url: URL;
  try {
    url = new URL(opts.url);
  } catch {
    throw invalid(`not a URL: ${opts.url}`);
  }
  if (opts.keyId === undefined) throw invalid("a key id is needed: --key-id or $PORTCULLIS_KEY_ID");
  const headers: Record<string, string> = {};
  for (const h of opts.headers) {
    const colon = h.indexOf(":");
    if (colon <= 0) throw invalid(`header must look like "name: value": ${h}`);
    headers[h.slice(0, colon).trim().toLowerCase()] = h.slice(colon + 1).trim();
  }
  if (opts.body !== undefined && headers["content-type"] === undefined) {
    headers["content-type"] = opts.body.trimStart().startsWith("{") ? "application/json" : "application/x-www-form-urlencoded";
  }
  let client;
  if (opts.privateKeyFile !== undefined) {
    const pem = readFileSync(opts.privateKeyFile, "utf8");
    const type = createPrivateKey(pem).asymmetricKeyType;
    const algorithm = type === "ed25519" ? "ed25519" : type === "ec" ? "ecdsa-p256" : null;
    if (algorithm === null) throw invalid(`unsupported private key type ${String(type)} (use ed25519 or ecdsa-p256)`);
    client = createClient({ baseUrl: url.origin, keyId: opts.keyId, privateKey: pem, algorithm });
  } else {
    if (opts.secret === undefined) throw invalid("a secret is needed: --secret, $PORTCULLIS_SECRET or --private-key FILE");
    client = createClient({ baseUrl: url.origin, keyId: opts.keyId, secret: opts.secret });
  }
  const init: RequestInit = { method: opts.method.toUpperCase(), headers };
  if (opts.body !== undefined) init.body = opts.body;
  let res: Response;
  try {
    res = await client.fetch(url, init);
  } catch (err) {
    const reason = unreachableReason(err);
    if (reason === null) throw err;
    throw new OperatorError("GATEWAY_UNREACHABLE", `cannot reach the gateway at ${url.origin} (${reason}); is it running, and is that its address?`, { cause: err });
  }
  const text = await res.text();
  process.stdout.write(`HTTP ${res.status} ${res.statusText}\n${text}${text.endsWith("\n") ? "" : "\n"}`);
  return res.status;
}
