/**
 * Independent signers for the venue dialects, written from each venue's documentation with
 * node:crypto (never with the gateway's own code): each returns the credential headers, in the
 * order a client sends them, for one request. The dialect tests under test/dialects spell the
 * same algorithms out beside their refusal tables; the fuzz suite (test/fuzz) signs with these.
 */
import { createHash, createHmac, randomBytes, sign as cryptoSign, type KeyObject } from "node:crypto";

export type HeaderList = [string, string][];

function hmacHex(secret: string, payload: string | Buffer): string {
  return createHmac("sha256", Buffer.from(secret, "utf8")).update(payload).digest("hex");
}

/**
 * Binance SIGNED endpoints: `timestamp` (and `recvWindow`) appended to the parameters, and
 * `signature` = hex HMAC-SHA256 over query string + body as sent (`covered`). Returns `params`
 * with `signature=` appended.
 */
export function binanceSignParams(params: string, covered: string, secret: string): string {
  return `${params}${params === "" ? "" : "&"}signature=${hmacHex(secret, covered)}`;
}

/** Bybit v5: hex HMAC-SHA256 over timestamp + key + recv_window + (GET: query string | body). */
export function bybitHeaders(spec: {
  readonly method: string;
  readonly url: string;
  readonly body: string;
  readonly keyId: string;
  readonly secret: string;
  readonly time: number;
  readonly recvWindow: string | null;
}): HeaderList {
  const q = spec.url.indexOf("?");
  const payload = spec.method === "GET" ? (q < 0 ? "" : spec.url.slice(q + 1)) : spec.body;
  const timestamp = String(spec.time);
  const sign = hmacHex(spec.secret, timestamp + spec.keyId + (spec.recvWindow ?? "") + payload);
  const out: HeaderList = [
    ["X-BAPI-API-KEY", spec.keyId],
    ["X-BAPI-SIGN", sign],
    ["X-BAPI-TIMESTAMP", timestamp],
  ];
  if (spec.recvWindow !== null) out.push(["X-BAPI-RECV-WINDOW", spec.recvWindow]);
  return out;
}

/** OKX v5: base64(HMAC-SHA256(secret, ISO timestamp + METHOD + request target + body)), and the passphrase. */
export function okxHeaders(spec: {
  readonly method: string;
  readonly url: string;
  readonly body: string;
  readonly keyId: string;
  readonly secret: string;
  readonly passphrase: string;
  readonly time: number;
}): HeaderList {
  const timestamp = new Date(spec.time).toISOString();
  const sign = createHmac("sha256", spec.secret).update(timestamp + spec.method + spec.url + spec.body).digest("base64");
  return [
    ["OK-ACCESS-KEY", spec.keyId],
    ["OK-ACCESS-SIGN", sign],
    ["OK-ACCESS-TIMESTAMP", timestamp],
    ["OK-ACCESS-PASSPHRASE", spec.passphrase],
  ];
}

/** Kraken spot REST: base64(HMAC-SHA512(base64-decoded secret, URI path + SHA-256(nonce + POST data))). */
export function krakenHeaders(spec: { readonly path: string; readonly nonce: string; readonly body: string; readonly keyId: string; readonly secret: string }): HeaderList {
  const inner = createHash("sha256").update(spec.nonce).update(spec.body).digest();
  const sign = createHmac("sha512", Buffer.from(spec.secret, "base64")).update(spec.path).update(inner).digest("base64");
  return [
    ["API-Key", spec.keyId],
    ["API-Sign", sign],
  ];
}

/**
 * Coinbase CDP key: `Authorization: Bearer <JWT>`, the token put together by hand (header and
 * claims as Coinbase's SDKs write them) and signed ES256 (IEEE P1363) or EdDSA.
 */
export function coinbaseHeaders(spec: {
  readonly method: string;
  readonly host: string;
  readonly path: string;
  readonly keyId: string;
  readonly privateKey: KeyObject;
  readonly seconds: number;
}): HeaderList {
  const ed = spec.privateKey.asymmetricKeyType === "ed25519";
  const kid = `organizations/fuzz-org/apiKeys/${spec.keyId}`;
  const header = { alg: ed ? "EdDSA" : "ES256", kid, nonce: randomBytes(16).toString("hex"), typ: "JWT" };
  const claims = { sub: kid, iss: "cdp", nbf: spec.seconds, exp: spec.seconds + 120, uri: `${spec.method} ${spec.host}${spec.path}` };
  const input = `${Buffer.from(JSON.stringify(header)).toString("base64url")}.${Buffer.from(JSON.stringify(claims)).toString("base64url")}`;
  const signature = ed ? cryptoSign(null, Buffer.from(input), spec.privateKey) : cryptoSign("sha256", Buffer.from(input), { key: spec.privateKey, dsaEncoding: "ieee-p1363" });
  return [["Authorization", `Bearer ${input}.${signature.toString("base64url")}`]];
}
