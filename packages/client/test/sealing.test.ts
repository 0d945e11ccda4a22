/**
 * Sealed orders in the SDK (src/sealing.ts, docs/sealed-orders.md): sealing is checked from outside
 * with @hpke/core directly (the gateway's suite) and node:crypto, and `request(..., { sealed: true })`
 * against a fake gateway that answers /portcullis/v1/hpke with a key pair this test holds: the body
 * opens only with the AAD of the request's own signature; the signature (verified here by hand)
 * covers Content-Digest of the sealed bytes and both sealed headers; the key is fetched once and
 * cached until its notAfter; SEALED_KEY_UNKNOWN makes the client fetch the key again and retry once.
 */
import { createHash, createHmac } from "node:crypto";
import { Aes128Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from "@hpke/core";
import { describe, expect, it } from "vitest";
import { createClient, hpkeKeyCache, parseHpkeKeys, sealBody, sealedAad } from "../src/entry/index.js";

const suite = new CipherSuite({ kem: new DhkemX25519HkdfSha256(), kdf: new HkdfSha256(), aead: new Aes128Gcm() });
const SUITE = { kem: "DHKEM(X25519, HKDF-SHA256)", kdf: "HKDF-SHA256", aead: "AES-128-GCM" };
const KEY_ID = "pck_test_v1_sealedbot";
const SECRET = "sealed-bot-secret";
const baseUrl = "https://gateway.test";

async function gatewayKey(id: string): Promise<{ id: string; publicKey: string; pair: CryptoKeyPair }> {
  const pair = await suite.kem.generateKeyPair();
  return { id, publicKey: Buffer.from(await suite.kem.serializePublicKey(pair.publicKey)).toString("base64url"), pair };
}

async function open(pair: CryptoKeyPair, body: Uint8Array, aad: Uint8Array): Promise<string> {
  const enc = body.slice(0, 32).buffer;
  const ct = body.slice(32).buffer;
  return Buffer.from(await suite.open({ recipientKey: pair, enc }, ct, aad)).toString("utf8");
}

describe("sealBody", () => {
  it("seals to the gateway's key, bound to keyid, nonce, method and target (enc 32 bytes, then ciphertext and tag)", async () => {
    const key = await gatewayKey("AAAAAAAAAAAAAAAA");
    const binding = { keyId: KEY_ID, nonce: "nonce-12345", method: "POST", target: "/api/v3/order?x=1" };
    const body = await sealBody({ ...key, notAfter: 0 }, Buffer.from('{"a":1}'), binding);
    expect(body.length).toBe(32 + 7 + 16);
    expect(Buffer.from(sealedAad(binding)).toString()).toBe(`portcullis-sealed-v1\n${KEY_ID}\nnonce-12345\nPOST\n/api/v3/order?x=1`);
    expect(await open(key.pair, body, sealedAad(binding))).toBe('{"a":1}');
    await expect(open(key.pair, body, sealedAad({ ...binding, nonce: "nonce-67890" }))).rejects.toThrow();
    await expect(open(key.pair, body, sealedAad({ ...binding, target: "/api/v3/order" }))).rejects.toThrow();
  });

  it("refuses a public key that is not 32 bytes", async () => {
    await expect(sealBody({ id: "x", publicKey: "AAAA", notAfter: 0 }, new Uint8Array(1), { keyId: "k", nonce: "n", method: "POST", target: "/" })).rejects.toThrow(TypeError);
  });
});

describe("parseHpkeKeys and hpkeKeyCache", () => {
  it("reads the keys, current first; refuses another suite or shape", () => {
    expect(parseHpkeKeys({ suite: SUITE, keys: [{ id: "a", publicKey: "b", notAfter: 1 }] })).toEqual([{ id: "a", publicKey: "b", notAfter: 1 }]);
    expect(() => parseHpkeKeys({ suite: { ...SUITE, aead: "ChaCha20Poly1305" }, keys: [] })).toThrow(TypeError);
    expect(() => parseHpkeKeys({ suite: SUITE, keys: [] })).toThrow(TypeError);
    expect(() => parseHpkeKeys({ suite: SUITE, keys: [{ id: 1 }] })).toThrow(TypeError);
  });

  it("fetches once for concurrent callers, caches until notAfter, and fetches again after invalidate", async () => {
    let now = 1_000;
    let loads = 0;
    const cache = hpkeKeyCache(() => {
      loads++;
      return Promise.resolve({ suite: SUITE, keys: [{ id: `k${loads}`, publicKey: "p", notAfter: 2_000 }] });
    }, () => now);
    const [a, b] = await Promise.all([cache.current(), cache.current()]);
    expect(a).toEqual(b);
    expect(loads).toBe(1);
    now = 1_999;
    expect((await cache.current()).id).toBe("k1");
    now = 2_000;
    expect((await cache.current()).id).toBe("k2");
    cache.invalidate();
    expect((await cache.current()).id).toBe("k3");
  });
});

/** A fake gateway: the time, the HPKE keys (`keys()` at each fetch), and an order endpoint answering `order()`. */
function fakeGateway(keys: () => { id: string; publicKey: string }[], order: (req: Request, body: Uint8Array) => Response | Promise<Response>) {
  const seen: { path: string; req: Request; body: Uint8Array }[] = [];
  const doFetch: typeof fetch = async (input, init) => {
    const req = new Request(input, init);
    const body = new Uint8Array(await req.clone().arrayBuffer());
    const path = new URL(req.url).pathname;
    seen.push({ path, req, body });
    if (path === "/portcullis/v1/time") return Response.json({ serverTime: Date.now() });
    if (path === "/portcullis/v1/hpke") return Response.json({ suite: SUITE, keys: keys().map((k) => ({ ...k, notAfter: Date.now() + 3_600_000 })) });
    return order(req, body);
  };
  return { doFetch, seen };
}

/** Verifies the native HMAC signature by hand over the components it names. */
function verifySignature(req: Request, body: Uint8Array): { components: string[]; keyid: string; nonce: string } {
  const input = req.headers.get("signature-input") ?? "";
  const m = /^sig1=(\(([^)]*)\);created=\d+;nonce="([^"]+)";keyid="([^"]+)";alg="hmac-sha256")$/.exec(input);
  if (m === null) throw new Error(`unexpected Signature-Input ${input}`);
  const components = (m[2] ?? "").split(" ").map((c) => c.slice(1, -1));
  const url = new URL(req.url);
  const value = (c: string): string => {
    if (c === "@method") return req.method;
    if (c === "@authority") return url.host;
    if (c === "@path") return url.pathname;
    if (c === "@query") return url.search === "" ? "?" : url.search;
    return req.headers.get(c) ?? "<absent>";
  };
  const base = `${components.map((c) => `"${c}": ${value(c)}\n`).join("")}"@signature-params": ${m[1] ?? ""}`;
  const expected = `sig1=:${createHmac("sha256", SECRET).update(base).digest("base64")}:`;
  expect(req.headers.get("signature")).toBe(expected);
  expect(req.headers.get("content-digest")).toBe(`sha-256=:${createHash("sha256").update(body).digest("base64")}:`);
  return { components, keyid: m[4] ?? "", nonce: m[3] ?? "" };
}

describe("client.request(..., { sealed: true })", () => {
  it("seals then signs: the body opens with the signature's own AAD, and the signature covers the sealed headers", async () => {
    const key = await gatewayKey("BBBBBBBBBBBBBBBB");
    let opened = "";
    const gw = fakeGateway(
      () => [key],
      async (req, body) => {
        const { components, keyid, nonce } = verifySignature(req, body);
        expect(components).toEqual(["@method", "@authority", "@path", "@query", "content-digest", "portcullis-sealed", "portcullis-sealed-type"]);
        expect(req.headers.get("content-type")).toBe("application/portcullis-sealed");
        expect(req.headers.get("portcullis-sealed")).toBe(key.id);
        expect(req.headers.get("portcullis-sealed-type")).toBe("application/json");
        const url = new URL(req.url);
        opened = await open(key.pair, body, sealedAad({ keyId: keyid, nonce, method: req.method, target: `${url.pathname}${url.search}` }));
        return Response.json({ ok: true });
      },
    );
    const client = createClient({ baseUrl, keyId: KEY_ID, secret: SECRET, fetch: gw.doFetch });
    await client.json("POST", "/api/v3/order", { query: { test: 1 }, json: { symbol: "BTCUSDT", quantity: "0.1" }, sealed: true });
    expect(opened).toBe('{"symbol":"BTCUSDT","quantity":"0.1"}');
    await client.json("POST", "/api/v3/order", { json: { n: 2 }, sealed: true });
    expect(opened).toBe('{"n":2}');
    // One key fetch for both.
    expect(gw.seen.filter((s) => s.path === "/portcullis/v1/hpke")).toHaveLength(1);
  });

  it("SEALED_KEY_UNKNOWN (the gateway rotated): fetches the key again and retries once with the new one", async () => {
    const old = await gatewayKey("CCCCCCCCCCCCCCCC");
    const next = await gatewayKey("DDDDDDDDDDDDDDDD");
    let current = old;
    const gw = fakeGateway(
      () => [current],
      (req) => {
        if (req.headers.get("portcullis-sealed") !== next.id) return Response.json({ code: "SEALED_KEY_UNKNOWN", message: "rotated" }, { status: 400 });
        return Response.json({ ok: true });
      },
    );
    const client = createClient({ baseUrl, keyId: KEY_ID, secret: SECRET, fetch: gw.doFetch });
    await client.request("POST", "/warm", { json: {}, sealed: true }).then((r) => r.body?.cancel());
    current = next;
    const res = await client.request("POST", "/api/v3/order", { json: { a: 1 }, sealed: true });
    expect(res.status).toBe(200);
    const orders = gw.seen.filter((s) => s.path === "/api/v3/order");
    expect(orders.map((o) => o.req.headers.get("portcullis-sealed"))).toEqual([old.id, next.id]);
    // A fresh nonce for the retry.
    expect(orders[0]?.req.headers.get("signature-input")).not.toBe(orders[1]?.req.headers.get("signature-input"));
  });

  it("needs a body with a content type", async () => {
    const gw = fakeGateway(() => [], () => Response.json({}));
    const client = createClient({ baseUrl, keyId: KEY_ID, secret: SECRET, fetch: gw.doFetch });
    await expect(client.request("POST", "/x", { sealed: true })).rejects.toThrow(TypeError);
    await expect(client.request("POST", "/x", { json: {}, sealed: "yes" as unknown as boolean })).rejects.toThrow(TypeError);
  });
});
