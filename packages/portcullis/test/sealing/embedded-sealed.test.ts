/**
 * Sealed requests in embedded mode (docs/sealed-orders.md, "Where it applies"): the middleware for
 * node:http and the Fastify hook, real servers on loopback sockets, open a sealed order and hand
 * the app the plaintext under its own content type (node:http: `req.rawBody` and `req.headers`;
 * Fastify: its own JSON parser parses the plaintext).
 */
import { Aes128Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from "@hpke/core";
import Fastify from "fastify";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sealedAad } from "../../src/custody/hpke.js";
import { portcullisPreParsing } from "../../src/embedded/fastify.js";
import { type PortcullisRequest, createMiddleware } from "../../src/embedded/middleware.js";
import { type TestCore, makeCore, signRequest } from "../support/harness.js";

const suite = new CipherSuite({ kem: new DhkemX25519HkdfSha256(), kdf: new HkdfSha256(), aead: new Aes128Gcm() });
const ORDER = JSON.stringify({ symbol: "BTCUSDT", quantity: "1" });

let t: TestCore;
let key: { id: string; secret: string };
beforeAll(async () => {
  t = await makeCore({ sealing: true });
  const created = await t.createKey({ scopes: ["read", "trade"] });
  key = { id: created.key.id, secret: created.secret ?? "" };
});
afterAll(async () => {
  await t.cleanup();
});

async function listen(server: Server): Promise<string> {
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function sealedOrder(host: string): Promise<{ headers: Record<string, string>; body: Buffer }> {
  const hpkeKey = t.sealing?.published().keys[0];
  if (hpkeKey === undefined) throw new Error("no HPKE key");
  const nonce = `n${Math.random().toString(36).slice(2, 14)}`;
  const pk = await suite.kem.deserializePublicKey(Buffer.from(hpkeKey.publicKey, "base64url"));
  const { enc, ct } = await suite.seal({ recipientPublicKey: pk }, Buffer.from(ORDER), sealedAad(key.id, nonce, "POST", "/api/v3/order"));
  const body = Buffer.concat([Buffer.from(enc), Buffer.from(ct)]);
  const sealedHeaders = { "portcullis-sealed": hpkeKey.id, "portcullis-sealed-type": "application/json" };
  const headers = signRequest({
    method: "POST",
    url: "/api/v3/order",
    host,
    body,
    keyId: key.id,
    key: key.secret,
    created: t.clock.seconds,
    nonce,
    components: ["@method", "@authority", "@path", "@query", "content-digest", "portcullis-sealed", "portcullis-sealed-type"],
    headers: sealedHeaders,
  });
  return { headers: { ...headers, "content-type": "application/portcullis-sealed" }, body };
}

describe("sealed orders, embedded", () => {
  it("node:http: req.rawBody is the plaintext, req.headers the plaintext's", async () => {
    const mw = createMiddleware(t.core);
    const server = createServer((req, res) => {
      mw(req, res, () => {
        const r = req as PortcullisRequest;
        res.setHeader("content-type", "application/json");
        res.end(JSON.stringify({ body: r.rawBody?.toString(), type: req.headers["content-type"], length: req.headers["content-length"], sealed: req.headers["portcullis-sealed"] ?? null }));
      });
    });
    const host = await listen(server);
    try {
      const { headers, body } = await sealedOrder(host);
      const res = await request(`http://${host}/api/v3/order`, { method: "POST", headers, body });
      expect(res.statusCode).toBe(200);
      expect(await res.body.json()).toEqual({ body: ORDER, type: "application/json", length: String(ORDER.length), sealed: null });
    } finally {
      server.close();
    }
  });

  it("Fastify: its own JSON parser parses the plaintext", async () => {
    const app = Fastify();
    app.addHook("preParsing", portcullisPreParsing(t.core));
    app.post("/api/v3/order", (req) => ({ received: req.body }));
    await app.listen({ port: 0, host: "127.0.0.1" });
    const host = `127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    try {
      const { headers, body } = await sealedOrder(host);
      const res = await request(`http://${host}/api/v3/order`, { method: "POST", headers, body });
      const answer = await res.body.text();
      expect(res.statusCode, answer).toBe(200);
      expect(JSON.parse(answer)).toEqual({ received: JSON.parse(ORDER) as unknown });
    } finally {
      await app.close();
    }
  });
});
