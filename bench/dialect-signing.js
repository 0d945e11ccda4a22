/**
 * Request signing for the dialect benchmark: one signer per exchange dialect, written directly
 * with node:crypto the way that venue's clients sign (the rules are in
 * packages/portcullis/src/dialects/<venue>/), plus the venue routes, the key-creation inputs and,
 * for every signed request, the exact bytes its raw primitive covers.
 *
 * A signer's `sign(ts)` takes a unique epoch-ms time (the caller hands out each value once) and
 * returns `{ request, raw }`: `request` in the pipeline's input shape (flat header strings, see
 * signing.js), `raw` what the case's primitive timer consumes. The raw bytes are the very bytes
 * that were signed (the signature is computed from them), so a request the pipeline allows
 * proves the pipeline covered the same bytes.
 */
import { Buffer } from "node:buffer";
import { constants, createHash, createHmac, generateKeyPairSync, sign, verify } from "node:crypto";
import { AUTHORITY, NonceSource, flat } from "./signing.js";

const SCOPES = ["read", "trade"];
const OKX_PASSPHRASE = "Bench-Passphrase-1";
const FORM = "application/x-www-form-urlencoded";
const JSON_TYPE = "application/json";
const EMPTY = Buffer.alloc(0);

const BINANCE_ACCOUNT = "/api/v3/account";
const BINANCE_ORDER = "/api/v3/order";
const KRAKEN_ADD_ORDER = "/0/private/AddOrder";
const COINBASE_ACCOUNTS = "/api/v3/brokerage/accounts";
const OKX_BALANCE = "/api/v5/account/balance";
const OKX_ORDER = "/api/v5/trade/order";
const BYBIT_BALANCE = "/v5/account/wallet-balance";
const BYBIT_ORDER = "/v5/order/create";

/** The dialect core's routes: each venue's read and trade endpoints used below. */
export const DIALECT_ROUTES = [
  { method: "GET", path: BINANCE_ACCOUNT, permission: "read", weight: 20, dialect: "binance" },
  { method: "POST", path: BINANCE_ORDER, permission: "trade", weight: 1, dialect: "binance" },
  { method: "POST", path: KRAKEN_ADD_ORDER, permission: "trade", weight: 1, dialect: "kraken" },
  { method: "GET", path: COINBASE_ACCOUNTS, permission: "read", weight: 1, dialect: "coinbase" },
  { method: "GET", path: OKX_BALANCE, permission: "read", weight: 1, dialect: "okx" },
  { method: "POST", path: OKX_ORDER, permission: "trade", weight: 1, dialect: "okx" },
  { method: "GET", path: BYBIT_BALANCE, permission: "read", weight: 1, dialect: "bybit" },
  { method: "POST", path: BYBIT_ORDER, permission: "trade", weight: 1, dialect: "bybit" },
];

const pem = (publicKey) => publicKey.export({ type: "spki", format: "pem" }).toString();

/**
 * The keys, by name: `pair` generates the key pair the client holds (none for HMAC keys, whose
 * secret the key service generates), `input` the key-creation input.
 */
export const KEY_DEFS = {
  binanceHmac: { label: "Binance HMAC", pair: null, input: () => ({ account: "bench", scopes: SCOPES, dialects: ["binance"] }) },
  binanceEd25519: {
    label: "Binance Ed25519",
    pair: () => generateKeyPairSync("ed25519"),
    input: (pair) => ({ account: "bench", scopes: SCOPES, dialects: ["binance"], algorithm: "ed25519", publicKey: pem(pair.publicKey) }),
  },
  kraken: { label: "Kraken", pair: null, input: () => ({ account: "bench", scopes: SCOPES, dialects: ["kraken"] }) },
  coinbaseEs256: {
    label: "Coinbase ES256",
    pair: () => generateKeyPairSync("ec", { namedCurve: "P-256" }),
    input: (pair) => ({ account: "bench", scopes: SCOPES, dialects: ["coinbase"], algorithm: "ecdsa-p256", publicKey: pem(pair.publicKey) }),
  },
  coinbaseEddsa: {
    label: "Coinbase EdDSA",
    pair: () => generateKeyPairSync("ed25519"),
    input: (pair) => ({ account: "bench", scopes: SCOPES, dialects: ["coinbase"], algorithm: "ed25519", publicKey: pem(pair.publicKey) }),
  },
  okx: { label: "OKX", pair: null, input: () => ({ account: "bench", scopes: SCOPES, dialects: ["okx"], passphrase: OKX_PASSPHRASE }) },
  bybitHmac: { label: "Bybit HMAC", pair: null, input: () => ({ account: "bench", scopes: SCOPES, dialects: ["bybit"] }) },
  bybitRsa: {
    label: "Bybit RSA",
    pair: () => generateKeyPairSync("rsa", { modulusLength: 2048 }),
    input: (pair) => ({ account: "bench", scopes: SCOPES, dialects: ["bybit"], algorithm: "rsa", publicKey: pem(pair.publicKey) }),
  },
};

/** The pipeline's input for one signed request (`url` and every header value flat strings). */
function pipelineRequest(method, url, headers, body) {
  return { method, url: flat(url), headers, body, socketAddress: "127.0.0.1" };
}

// --- raw primitives: each returns a function that runs the primitive over a batch of `raw`s ----

/** HMAC over one buffer per request (`raw` is the buffer). */
function hmacPrimitive(algorithm, keyBytes) {
  return (raws) => {
    let sink = 0;
    for (let i = 0; i < raws.length; i++) sink ^= createHmac(algorithm, keyBytes).update(raws[i]).digest()[0];
    return sink;
  };
}

/** One signature verification per request (`raw` is `{ data, signature }`); throws if one fails. */
function verifyPrimitive(algorithm, key) {
  return (raws) => {
    let ok = 0;
    for (let i = 0; i < raws.length; i++) if (verify(algorithm, raws[i].data, key, raws[i].signature)) ok++;
    if (ok !== raws.length) throw new Error(`raw primitive: ${raws.length - ok} signatures did not verify`);
    return ok;
  };
}

// --- Binance ------------------------------------------------------------------------------

const BINANCE_ORDER_PARAMS = "symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=0.010&price=64250.00";

/** GET /api/v3/account, query-signed (what @binance/connector sends). */
function binanceGet(keyId, signPayload) {
  return (ts) => {
    const payload = flat(`omitZeroBalances=true&recvWindow=5000&timestamp=${ts}`);
    const data = Buffer.from(payload, "latin1");
    const { text, raw } = signPayload(data);
    const request = pipelineRequest("GET", `${BINANCE_ACCOUNT}?${payload}&signature=${text}`, { host: AUTHORITY, "x-mbx-apikey": keyId }, EMPTY);
    return { request, raw };
  };
}

/** POST /api/v3/order, all parameters in the form body (a unique client order id each). */
function binancePost(keyId, signPayload) {
  let n = 0;
  return (ts) => {
    n += 1;
    const payload = `${BINANCE_ORDER_PARAMS}&newClientOrderId=bench${n}&recvWindow=5000&timestamp=${ts}`;
    const data = Buffer.from(payload, "latin1");
    const { text, raw } = signPayload(data);
    const body = Buffer.from(`${payload}&signature=${text}`, "latin1");
    const headers = { host: AUTHORITY, "x-mbx-apikey": keyId, "content-type": FORM, "content-length": flat(String(body.length)) };
    return { request: pipelineRequest("POST", BINANCE_ORDER, headers, body), raw };
  };
}

const binanceHmacSigner = (secret) => (data) => ({ text: createHmac("sha256", secret).update(data).digest("hex"), raw: data });

const binanceEd25519Signer = (privateKey) => (data) => {
  const signature = sign(null, data, privateKey);
  return { text: encodeURIComponent(signature.toString("base64")), raw: { data, signature } };
};

// --- Kraken -------------------------------------------------------------------------------

/** POST /0/private/AddOrder, form body, the nonce an increasing millisecond count (as ccxt sends). */
function krakenSigner(keyId, secret) {
  const secretBytes = Buffer.from(secret, "base64");
  const path = Buffer.from(KRAKEN_ADD_ORDER, "latin1");
  return (ts) => {
    const nonce = String(ts);
    const body = Buffer.from(`nonce=${nonce}&ordertype=limit&pair=XBTUSD&price=37500&type=buy&volume=1.25`, "latin1");
    const nonceBody = Buffer.concat([Buffer.from(nonce, "latin1"), body]);
    const inner = createHash("sha256").update(nonceBody).digest();
    const apiSign = createHmac("sha512", secretBytes).update(path).update(inner).digest("base64");
    const headers = { host: AUTHORITY, "api-key": keyId, "api-sign": flat(apiSign), "content-type": FORM, "content-length": flat(String(body.length)) };
    return { request: pipelineRequest("POST", KRAKEN_ADD_ORDER, headers, body), raw: nonceBody };
  };
}

/** Kraken's primitive: SHA-256(nonce + body), then HMAC-SHA512 over path + that digest. */
function krakenPrimitive(secret) {
  const secretBytes = Buffer.from(secret, "base64");
  const path = Buffer.from(KRAKEN_ADD_ORDER, "latin1");
  return (raws) => {
    let sink = 0;
    for (let i = 0; i < raws.length; i++) {
      const inner = createHash("sha256").update(raws[i]).digest();
      sink ^= createHmac("sha512", secretBytes).update(path).update(inner).digest()[0];
    }
    return sink;
  };
}

// --- Coinbase -----------------------------------------------------------------------------

const b64url = (text) => Buffer.from(text, "utf8").toString("base64url");

/**
 * GET /api/v3/brokerage/accounts with a CDP JWT (the header and claims Coinbase's SDKs send:
 * alg, kid, nonce, typ; sub, iss, nbf, exp, uri), valid for 120 s from the request's second.
 */
function coinbaseSigner(keyId, alg, privateKey) {
  const kid = `organizations/bench-org/apiKeys/${keyId}`;
  const nonces = new NonceSource();
  const uri = `GET ${AUTHORITY}${COINBASE_ACCOUNTS}`;
  const signOptions = alg === "ES256" ? { key: privateKey, dsaEncoding: "ieee-p1363" } : privateKey;
  return (ts) => {
    const nbf = Math.floor(ts / 1000);
    const header = b64url(JSON.stringify({ alg, kid, nonce: nonces.next(), typ: "JWT" }));
    const claims = b64url(JSON.stringify({ sub: kid, iss: "cdp", nbf, exp: nbf + 120, uri }));
    const data = Buffer.from(`${header}.${claims}`, "latin1");
    const signature = sign(alg === "ES256" ? "sha256" : null, data, signOptions);
    const headers = { host: AUTHORITY, authorization: flat(`Bearer ${header}.${claims}.${signature.toString("base64url")}`) };
    return { request: pipelineRequest("GET", COINBASE_ACCOUNTS, headers, EMPTY), raw: { data, signature } };
  };
}

// --- OKX ----------------------------------------------------------------------------------

const OKX_ORDER_BODY = '{"instId":"BTC-USDT","tdMode":"cash","side":"buy","ordType":"limit","px":"59000.5","sz":"0.01"}';

/** OKX: base64 HMAC-SHA256 over timestamp + METHOD + requestPath (query included) + body. */
function okxSigner(keyId, secret, method) {
  const secretBytes = Buffer.from(secret, "utf8");
  return (ts) => {
    const timestamp = new Date(ts).toISOString();
    const url = method === "GET" ? `${OKX_BALANCE}?ccy=BTC,USDT` : OKX_ORDER;
    const body = method === "GET" ? EMPTY : Buffer.from(OKX_ORDER_BODY, "latin1");
    const prehash = Buffer.concat([Buffer.from(timestamp + method + url, "latin1"), body]);
    const headers = {
      host: AUTHORITY,
      "ok-access-key": keyId,
      "ok-access-sign": flat(createHmac("sha256", secretBytes).update(prehash).digest("base64")),
      "ok-access-timestamp": flat(timestamp),
      "ok-access-passphrase": OKX_PASSPHRASE,
    };
    if (method === "POST") {
      headers["content-type"] = JSON_TYPE;
      headers["content-length"] = flat(String(body.length));
    }
    return { request: pipelineRequest(method, url, headers, body), raw: prehash };
  };
}

// --- Bybit --------------------------------------------------------------------------------

const BYBIT_ORDER_BODY = '{"category":"spot","symbol":"BTCUSDT","side":"Buy","orderType":"Limit","qty":"0.01","price":"59000.5"}';

/**
 * Bybit v5: timestamp + key + recv_window + (query string | body), HMAC-SHA256 in hex or
 * RSA-SHA256 in base64. `signText(data)` returns `{ text, raw }`.
 */
function bybitSigner(keyId, method, signText) {
  return (ts) => {
    const timestamp = String(ts);
    const query = "accountType=UNIFIED&coin=BTC,USDT";
    const body = method === "GET" ? EMPTY : Buffer.from(BYBIT_ORDER_BODY, "latin1");
    const data = Buffer.concat([Buffer.from(`${timestamp}${keyId}5000${method === "GET" ? query : ""}`, "latin1"), body]);
    const { text, raw } = signText(data);
    const headers = {
      host: AUTHORITY,
      "x-bapi-api-key": keyId,
      "x-bapi-timestamp": flat(timestamp),
      "x-bapi-recv-window": "5000",
      "x-bapi-sign": flat(text),
    };
    if (method === "POST") {
      headers["content-type"] = JSON_TYPE;
      headers["content-length"] = flat(String(body.length));
    }
    const url = method === "GET" ? `${BYBIT_BALANCE}?${query}` : BYBIT_ORDER;
    return { request: pipelineRequest(method, url, headers, body), raw };
  };
}

const bybitHmacSigner = (secret) => (data) => ({ text: createHmac("sha256", secret).update(data).digest("hex"), raw: data });

const bybitRsaSigner = (privateKey) => (data) => {
  const signature = sign("sha256", data, { key: privateKey, padding: constants.RSA_PKCS1_PADDING });
  return { text: signature.toString("base64"), raw: { data, signature } };
};

// --- the cases ----------------------------------------------------------------------------

/**
 * The measured cases, in report order. `key` names a KEY_DEFS entry; `cost` picks the batch
 * settings ("hmac": cheap, large batches; "signature": public-key verification, small batches);
 * `inFlight` is how many requests are in flight at once (1: each awaited before the next);
 * `target` whether the ≤ 4× target applies (false: informational). `signer(key)` and
 * `primitive(key)` take `{ id, secret, pair }`.
 */
export const DIALECT_CASES = [
  {
    id: "binance-hmac-get",
    scheme: "Binance, HMAC-SHA256",
    request: "GET /api/v3/account (query signed)",
    primitiveLabel: "HMAC-SHA256 of the payload (query without `signature`)",
    key: "binanceHmac",
    cost: "hmac",
    inFlight: 1,
    target: true,
    signer: (k) => binanceGet(k.id, binanceHmacSigner(k.secret)),
    primitive: (k) => hmacPrimitive("sha256", Buffer.from(k.secret, "utf8")),
  },
  {
    id: "binance-hmac-post",
    scheme: "Binance, HMAC-SHA256",
    request: "POST /api/v3/order (form body signed)",
    primitiveLabel: "HMAC-SHA256 of the payload (body without `signature`)",
    key: "binanceHmac",
    cost: "hmac",
    inFlight: 1,
    target: true,
    signer: (k) => binancePost(k.id, binanceHmacSigner(k.secret)),
    primitive: (k) => hmacPrimitive("sha256", Buffer.from(k.secret, "utf8")),
  },
  {
    id: "binance-ed25519-get",
    scheme: "Binance, Ed25519",
    request: "GET /api/v3/account (query signed)",
    primitiveLabel: "Ed25519 verify of the payload",
    key: "binanceEd25519",
    cost: "signature",
    inFlight: 1,
    target: true,
    signer: (k) => binanceGet(k.id, binanceEd25519Signer(k.pair.privateKey)),
    primitive: (k) => verifyPrimitive(null, k.pair.publicKey),
  },
  {
    id: "kraken-post",
    scheme: "Kraken, HMAC-SHA512",
    request: "POST /0/private/AddOrder (form body)",
    primitiveLabel: "SHA-256(nonce + body), then HMAC-SHA512 of path + that digest",
    key: "kraken",
    cost: "hmac",
    inFlight: 1,
    target: true,
    signer: (k) => krakenSigner(k.id, k.secret),
    primitive: (k) => krakenPrimitive(k.secret),
  },
  {
    id: "coinbase-es256-latency",
    scheme: "Coinbase CDP JWT, ES256",
    request: "GET /api/v3/brokerage/accounts, one at a time (latency)",
    primitiveLabel: "ECDSA P-256 verify of the JWT signing input",
    key: "coinbaseEs256",
    cost: "signature",
    inFlight: 1,
    target: true,
    signer: (k) => coinbaseSigner(k.id, "ES256", k.pair.privateKey),
    primitive: (k) => verifyPrimitive("sha256", { key: k.pair.publicKey, dsaEncoding: "ieee-p1363" }),
  },
  {
    id: "coinbase-es256-throughput",
    scheme: "Coinbase CDP JWT, ES256",
    request: "GET /api/v3/brokerage/accounts, 64 in flight (throughput)",
    primitiveLabel: "ECDSA P-256 verify of the JWT signing input",
    key: "coinbaseEs256",
    cost: "signature",
    inFlight: 64,
    target: false,
    signer: (k) => coinbaseSigner(k.id, "ES256", k.pair.privateKey),
    primitive: (k) => verifyPrimitive("sha256", { key: k.pair.publicKey, dsaEncoding: "ieee-p1363" }),
  },
  {
    id: "coinbase-eddsa-latency",
    scheme: "Coinbase CDP JWT, EdDSA",
    request: "GET /api/v3/brokerage/accounts, one at a time (latency)",
    primitiveLabel: "Ed25519 verify of the JWT signing input",
    key: "coinbaseEddsa",
    cost: "signature",
    inFlight: 1,
    target: true,
    signer: (k) => coinbaseSigner(k.id, "EdDSA", k.pair.privateKey),
    primitive: (k) => verifyPrimitive(null, k.pair.publicKey),
  },
  {
    id: "coinbase-eddsa-throughput",
    scheme: "Coinbase CDP JWT, EdDSA",
    request: "GET /api/v3/brokerage/accounts, 64 in flight (throughput)",
    primitiveLabel: "Ed25519 verify of the JWT signing input",
    key: "coinbaseEddsa",
    cost: "signature",
    inFlight: 64,
    target: false,
    signer: (k) => coinbaseSigner(k.id, "EdDSA", k.pair.privateKey),
    primitive: (k) => verifyPrimitive(null, k.pair.publicKey),
  },
  {
    id: "okx-get",
    scheme: "OKX, HMAC-SHA256 + passphrase",
    request: "GET /api/v5/account/balance?ccy=BTC,USDT",
    primitiveLabel: "HMAC-SHA256 of timestamp + method + path + body",
    key: "okx",
    cost: "hmac",
    inFlight: 1,
    target: true,
    signer: (k) => okxSigner(k.id, k.secret, "GET"),
    primitive: (k) => hmacPrimitive("sha256", Buffer.from(k.secret, "utf8")),
  },
  {
    id: "okx-post",
    scheme: "OKX, HMAC-SHA256 + passphrase",
    request: "POST /api/v5/trade/order (JSON body)",
    primitiveLabel: "HMAC-SHA256 of timestamp + method + path + body",
    key: "okx",
    cost: "hmac",
    inFlight: 1,
    target: true,
    signer: (k) => okxSigner(k.id, k.secret, "POST"),
    primitive: (k) => hmacPrimitive("sha256", Buffer.from(k.secret, "utf8")),
  },
  {
    id: "bybit-hmac-get",
    scheme: "Bybit, HMAC-SHA256",
    request: "GET /v5/account/wallet-balance (query signed)",
    primitiveLabel: "HMAC-SHA256 of timestamp + key + recvWindow + query",
    key: "bybitHmac",
    cost: "hmac",
    inFlight: 1,
    target: true,
    signer: (k) => bybitSigner(k.id, "GET", bybitHmacSigner(k.secret)),
    primitive: (k) => hmacPrimitive("sha256", Buffer.from(k.secret, "utf8")),
  },
  {
    id: "bybit-hmac-post",
    scheme: "Bybit, HMAC-SHA256",
    request: "POST /v5/order/create (JSON body)",
    primitiveLabel: "HMAC-SHA256 of timestamp + key + recvWindow + body",
    key: "bybitHmac",
    cost: "hmac",
    inFlight: 1,
    target: true,
    signer: (k) => bybitSigner(k.id, "POST", bybitHmacSigner(k.secret)),
    primitive: (k) => hmacPrimitive("sha256", Buffer.from(k.secret, "utf8")),
  },
  {
    id: "bybit-rsa-post",
    scheme: "Bybit, RSA-SHA256 (2048-bit)",
    request: "POST /v5/order/create (JSON body)",
    primitiveLabel: "RSA PKCS#1 v1.5 SHA-256 verify of timestamp + key + recvWindow + body",
    key: "bybitRsa",
    cost: "signature",
    inFlight: 1,
    target: true,
    signer: (k) => bybitSigner(k.id, "POST", bybitRsaSigner(k.pair.privateKey)),
    primitive: (k) => verifyPrimitive("sha256", { key: k.pair.publicKey, padding: constants.RSA_PKCS1_PADDING }),
  },
];

/** An OKX signer for the cold-start probe (a key nobody has used yet). */
export function okxColdSigner(keyId, secret) {
  return okxSigner(keyId, secret, "GET");
}
