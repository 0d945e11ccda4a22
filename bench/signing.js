/**
 * Request signing for the benchmarks: the native Portcullis scheme (RFC 9421, HMAC-SHA256) written
 * directly with node:crypto, so the load generator's per-request cost is one HMAC and a few string
 * concatenations. Used both to pre-generate requests for the in-process benchmark and, per
 * request, by the load generator of the gateway benchmark.
 */
import { Buffer } from "node:buffer";
import { createHash, createHmac, randomBytes, sign as signEd25519 } from "node:crypto";

/** The Host every benchmark request carries (and therefore its @authority). */
export const AUTHORITY = "gw.test";
export const GET_PATH = "/api/v3/account";
export const POST_PATH = "/api/v3/order";

/**
 * The route table of the benchmark core: one read route and one trade route, which places an
 * order (tagged `order`: with limits, it also counts against the order-count limits).
 */
export const ROUTES = [
  { method: "GET", path: GET_PATH, permission: "read", weight: 20 },
  { method: "POST", path: POST_PATH, permission: "trade", weight: 1, tags: ["order"] },
];

/** The key's scopes: `read` for the GET route, `trade` for the POST variant. */
export const SCOPES = ["read", "trade"];

/** A small order, as a trading bot would POST it (about 100 bytes of JSON). */
export const ORDER_BODY = Buffer.from(
  JSON.stringify({ symbol: "BTCUSDT", side: "BUY", type: "LIMIT", timeInForce: "GTC", quantity: "0.010", price: "64250.00" }),
);

/**
 * Node's HTTP parser hands header values to JavaScript as flat strings. Template literals and
 * concatenation produce ropes, which V8 flattens (copies) the first time they are read char by
 * char or hashed, a cost a real request never pays. Copying through a Buffer gives a flat string.
 */
export function flat(s) {
  return Buffer.from(s, "latin1").toString("latin1");
}

const GET_COMPONENTS = '("@method" "@authority" "@path" "@query")';
const POST_COMPONENTS = '("@method" "@authority" "@path" "@query" "content-digest")';
const ORDER_DIGEST = flat(`sha-256=:${createHash("sha256").update(ORDER_BODY).digest("base64")}:`);
const ORDER_LENGTH = flat(String(ORDER_BODY.length));

/**
 * Nonces unique within a process: a random prefix and a counter (cheaper than random bytes per
 * request, and just as unique for replay protection, which only needs no repeats).
 */
export class NonceSource {
  constructor() {
    this.prefix = randomBytes(9).toString("base64url");
    this.counter = 0;
  }

  next() {
    this.counter += 1;
    return `${this.prefix}${this.counter.toString(36)}`;
  }
}

/**
 * Signs requests for one key. `key` is the HMAC key: the secret's UTF-8 bytes (a Buffer) or a
 * secret KeyObject made from them.
 */
export class RequestSigner {
  constructor(keyId, key) {
    this.keyId = keyId;
    this.key = key;
    this.nonces = new NonceSource();
    this.alg = "hmac-sha256";
  }

  /** The signature over a flat signature base, base64. */
  signBase(base) {
    return createHmac("sha256", this.key).update(base).digest("base64");
  }

  /**
   * A signed request: `{ method, url, headers, base }`, where `base` is the flat signature base
   * that was signed and `headers` are what a client sends (every value a flat string).
   * `created` is in seconds.
   */
  sign(method, created) {
    const post = method === "POST";
    const path = post ? POST_PATH : GET_PATH;
    const params = `${post ? POST_COMPONENTS : GET_COMPONENTS};created=${created};nonce="${this.nonces.next()}";keyid="${this.keyId}";alg="${this.alg}"`;
    const base = flat(
      `"@method": ${method}\n"@authority": ${AUTHORITY}\n"@path": ${path}\n"@query": ?\n` +
        (post ? `"content-digest": ${ORDER_DIGEST}\n` : "") +
        `"@signature-params": ${params}`,
    );
    const signature = this.signBase(base);
    const headers = {
      host: AUTHORITY,
      "signature-input": flat(`sig1=${params}`),
      signature: flat(`sig1=:${signature}:`),
    };
    if (post) {
      headers["content-type"] = "application/json";
      headers["content-length"] = ORDER_LENGTH;
      headers["content-digest"] = ORDER_DIGEST;
    }
    return { method, url: path, headers, base };
  }
}

/** Signs requests for an Ed25519 key: `privateKey` is its private KeyObject (one signature each). */
export class Ed25519RequestSigner extends RequestSigner {
  constructor(keyId, privateKey) {
    super(keyId, privateKey);
    this.alg = "ed25519";
  }

  signBase(base) {
    return signEd25519(null, Buffer.from(base, "latin1"), this.key).toString("base64");
  }
}
