import { createClient } from "@portcullis/client/base";
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
  /** Seal the body to the gateway with HPKE (docs/sealed-orders.md). */
  readonly sealed?: boolean;
}

/** A secp256k1 private key as viem and wallets write it. */
const SECP256K1_HEX_RE = /^0x[0-9a-fA-F]{64}$/;

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
    const text = readFileSync(opts.privateKeyFile, "utf8").trim();
    if (SECP256K1_HEX_RE.test(text)) {
      client = createClient({ baseUrl: url.origin, keyId: opts.keyId, privateKey: text as `0x${string}`, algorithm: "secp256k1" });
    } else {
      const key = createPrivateKey(text);
      const type = key.asymmetricKeyType;
      const curve = key.asymmetricKeyDetails?.namedCurve;
      if (type === "ec" && curve === "secp256k1") {
        // WebCrypto has no secp256k1: the SDK signs with the key's 32 bytes, in hex.
        const hex: `0x${string}` = `0x${Buffer.from(key.export({ format: "jwk" }).d ?? "", "base64url").toString("hex")}`;
        client = createClient({ baseUrl: url.origin, keyId: opts.keyId, privateKey: hex, algorithm: "secp256k1" });
      } else {
        const algorithm = type === "ed25519" ? "ed25519" : type === "ec" && curve === "prime256v1" ? "ecdsa-p256" : null;
        if (algorithm === null) throw invalid(`unsupported private key type ${String(type)} (use ed25519, ecdsa-p256 or secp256k1)`);
        client = createClient({ baseUrl: url.origin, keyId: opts.keyId, privateKey: text, algorithm });
      }
    }
  } else {
    if (opts.secret === undefined) throw invalid("a secret is needed: --secret, $PORTCULLIS_SECRET or --private-key FILE");
    client = createClient({ baseUrl: url.origin, keyId: opts.keyId, secret: opts.secret });
  }
  if (opts.sealed === true && opts.body === undefined) throw invalid("--sealed seals the body: give the order's parameters with --data");
  const init: RequestInit & { sealed?: boolean } = { method: opts.method.toUpperCase(), headers };
  if (opts.body !== undefined) init.body = opts.body;
  if (opts.sealed === true) init.sealed = true;
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
