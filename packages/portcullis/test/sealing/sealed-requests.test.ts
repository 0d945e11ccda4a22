/**
 * The sealed order flow through the gateway (docs/sealed-orders.md): a real core on a temporary
 * data directory, its HPKE keyring on a frozen clock, the gateway in process (light-my-request)
 * forwarding to a real echo upstream on a loopback port. Requests are sealed here with @hpke/core
 * and signed by the test's own RFC 9421 signer (not the client SDK; the SDK has its own test
 * against the demo exchange).
 *
 * Asserted: GET /portcullis/v1/hpke; a sealed order is decoded and judged by the guardrails from
 * its plaintext, and the upstream receives the plaintext with its own content type and length and
 * none of the sealed headers, Content-Digest or signature; every refusal code (SEALED_MALFORMED,
 * SEALED_KEY_UNKNOWN, SEALED_OPEN_FAILED, SEALED_NOT_COVERED, SEALED_NOT_SUPPORTED) with its
 * effect (nothing forwarded); a sealed body replayed under another signature (nonce, key, target)
 * does not open; rotation and grace on the frozen clock; sessions; the authorizer refuses; the
 * plaintext never reaches the logs nor the audit log.
 */
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { Aes128Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from "@hpke/core";
import { inject, type Response } from "light-my-request";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RouteSpec } from "../../src/authz/routes.js";
import { sealedAad } from "../../src/custody/hpke.js";
import { Authorizer } from "../../src/gateway/authorizer.js";
import { IdentitySigner } from "../../src/gateway/identity.js";
import { Forwarder } from "../../src/gateway/proxy.js";
import { Gateway } from "../../src/gateway/server.js";
import { SessionEndpoints } from "../../src/gateway/session-endpoints.js";
import { silentLogger } from "../../src/log/logger.js";
import { IDENTITY_SECRET, captureLogger, startEchoUpstream } from "../support/gateway.js";
import { type TestCore, makeCore, signRequest } from "../support/harness.js";

const ROUTES: RouteSpec[] = [
  { method: "GET", path: "/public/time", permission: "public" },
  { method: "POST", path: "/public/echo", permission: "public" },
  { method: "POST", path: "/v1/orders", permission: "trade", operation: "order.place" },
  { method: "POST", path: "/v1/notes", permission: "trade" },
];
const HOST = "gateway.test";
/** In every plaintext: the logs and the audit log must never hold it. */
const MARKER = "PLAINTEXT-MARKER-7f3a9c";
const ORDER = JSON.stringify({ symbol: "BTCUSDT", side: "buy", type: "limit", quantity: "0.5", price: "30000", clientOrderId: MARKER });

const suite = new CipherSuite({ kem: new DhkemX25519HkdfSha256(), kdf: new HkdfSha256(), aead: new Aes128Gcm() });

let t: TestCore;
let gateway: Gateway;
let upstream: Awaited<ReturnType<typeof startEchoUpstream>>;
let logLines: string[];
let key: { id: string; secret: string };
let other: { id: string; secret: string };

beforeAll(async () => {
  upstream = await startEchoUpstream();
  const captured = captureLogger();
  logLines = captured.lines;
  t = await makeCore({ routes: ROUTES, sessions: true, sealing: true, logger: captured.logger });
  gateway = new Gateway({
    pipeline: t.core.pipeline,
    forwarder: new Forwarder({ upstream: upstream.url }),
    identity: new IdentitySigner(IDENTITY_SECRET),
    logger: captured.logger,
    now: t.clock.now,
    audit: t.core.audit,
    sessions: new SessionEndpoints(t.core),
    sealing: t.sealing,
  });
  const created = await t.createKey({ scopes: ["read", "trade"], guardrails: { maxQuantity: "1" } });
  key = { id: created.key.id, secret: created.secret ?? "" };
  const second = await t.createKey({ scopes: ["read", "trade"] });
  other = { id: second.key.id, secret: second.secret ?? "" };
});

afterAll(async () => {
  await gateway.close(100);
  await upstream.close();
  await t.cleanup();
});

function send(method: string, url: string, headers: Record<string, string>, payload?: Buffer | string): Promise<Response> {
  return inject(gateway.handle, { method: method as "POST", url, headers, remoteAddress: "127.0.0.1", ...(payload === undefined ? {} : { payload }) });
}

interface HpkeAnswer {
  readonly suite: Record<string, string>;
  readonly keys: { id: string; publicKey: string; notAfter: number }[];
}

async function hpkeKeys(): Promise<HpkeAnswer> {
  const res = await send("GET", "/portcullis/v1/hpke", { host: HOST });
  expect(res.statusCode).toBe(200);
  return res.json();
}

async function seal(publicKey: string, plaintext: string, aad: Uint8Array): Promise<Buffer> {
  const pk = await suite.kem.deserializePublicKey(Buffer.from(publicKey, "base64url"));
  const { enc, ct } = await suite.seal({ recipientPublicKey: pk }, Buffer.from(plaintext), aad);
  return Buffer.concat([Buffer.from(enc), Buffer.from(ct)]);
}

interface SealedSpec {
  readonly url?: string;
  readonly plaintext?: string;
  readonly type?: string | null;
  readonly signer?: { id: string; secret: string };
  readonly nonce?: string;
  /** Seal for this binding instead of the request's own. */
  readonly aad?: { keyId?: string; nonce?: string; method?: string; url?: string };
  readonly hpkeKey?: { id: string; publicKey: string };
  readonly components?: readonly string[];
  readonly tamper?: (body: Buffer) => Buffer;
  readonly headers?: Record<string, string>;
}

/** A sealed request, sealed then signed as a correct client would (unless told otherwise). */
async function sealed(spec: SealedSpec = {}): Promise<{ headers: Record<string, string>; body: Buffer; url: string }> {
  const url = spec.url ?? "/v1/orders";
  const signer = spec.signer ?? key;
  const nonce = spec.nonce ?? `n${Math.random().toString(36).slice(2, 14)}`;
  const hpkeKey = spec.hpkeKey ?? (await hpkeKeys()).keys[0];
  if (hpkeKey === undefined) throw new Error("no HPKE key");
  const aad = sealedAad(spec.aad?.keyId ?? signer.id, spec.aad?.nonce ?? nonce, spec.aad?.method ?? "POST", spec.aad?.url ?? url);
  let body = await seal(hpkeKey.publicKey, spec.plaintext ?? ORDER, aad);
  if (spec.tamper !== undefined) body = spec.tamper(body);
  const type = spec.type === undefined ? "application/json" : spec.type;
  const sealedHeaders: Record<string, string> = { "portcullis-sealed": hpkeKey.id, ...(type === null ? {} : { "portcullis-sealed-type": type }), ...spec.headers };
  const components = spec.components ?? ["@method", "@authority", "@path", "@query", "content-digest", ...Object.keys(sealedHeaders).filter((h) => h.startsWith("portcullis-sealed"))];
  const headers = signRequest({ method: "POST", url, host: HOST, body, keyId: signer.id, key: signer.secret, created: t.clock.seconds, nonce, components, headers: sealedHeaders });
  return { headers: { "content-type": "application/portcullis-sealed", ...headers }, body, url };
}

async function post(request: { headers: Record<string, string>; body: Buffer; url: string }): Promise<Response> {
  return send("POST", request.url, request.headers, request.body);
}

describe("GET /portcullis/v1/hpke", () => {
  it("answers the suite and the current key, cacheable until it rotates", async () => {
    const res = await send("GET", "/portcullis/v1/hpke", { host: HOST });
    expect(res.statusCode).toBe(200);
    expect(res.headers["cache-control"]).toBe("public, max-age=86400");
    const body = res.json<HpkeAnswer>();
    expect(body.suite).toEqual({ kem: "DHKEM(X25519, HKDF-SHA256)", kdf: "HKDF-SHA256", aead: "AES-128-GCM" });
    expect(body.keys).toHaveLength(1);
    const [current] = body.keys;
    expect(current?.id).toMatch(/^[A-Za-z0-9_-]{16}$/);
    expect(Buffer.from(current?.publicKey ?? "", "base64url")).toHaveLength(32);
    expect(current?.notAfter).toBe(t.clock.ms + 24 * 3_600_000);
  });
});

describe("a sealed order", () => {
  it("is opened after the signature, decoded and judged from its plaintext, and forwarded as plaintext", async () => {
    const before = upstream.requests.length;
    const res = await post(await sealed());
    expect(res.statusCode, res.body).toBe(200);
    const got = upstream.requests[before];
    expect(got?.body).toBe(ORDER);
    expect(got?.headers["content-type"]).toBe("application/json");
    expect(got?.headers["content-length"]).toBe(String(Buffer.byteLength(ORDER)));
    for (const name of ["portcullis-sealed", "portcullis-sealed-type", "content-digest", "signature", "signature-input"]) expect(got?.headers[name]).toBeUndefined();
    // The identity headers are over the plaintext the upstream received.
    expect(got?.headers["portcullis-key-id"]).toBe(key.id);
  });

  it("is refused by the guardrails from its plaintext (GUARDRAIL_QUANTITY) and forwards nothing", async () => {
    const before = upstream.requests.length;
    const res = await post(await sealed({ plaintext: JSON.stringify({ symbol: "BTCUSDT", side: "buy", type: "limit", quantity: "2", price: "30000", clientOrderId: MARKER }) }));
    expect(res.statusCode).toBe(403);
    expect(res.json()).toMatchObject({ code: "GUARDRAIL_QUANTITY" });
    expect(upstream.requests.length).toBe(before);
  });

  it("on a route without an operation is opened and forwarded with its own type", async () => {
    const before = upstream.requests.length;
    const res = await post(await sealed({ url: "/v1/notes?x=1", plaintext: `note=${MARKER}`, type: "application/x-www-form-urlencoded" }));
    expect(res.statusCode, res.body).toBe(200);
    expect(upstream.requests[before]?.body).toBe(`note=${MARKER}`);
    expect(upstream.requests[before]?.headers["content-type"]).toBe("application/x-www-form-urlencoded");
  });

  it("signed by a session opens (the AAD's keyid is the session's token)", async () => {
    const logon = signRequest({ method: "POST", url: "/portcullis/v1/session", host: HOST, body: "{}", keyId: key.id, key: key.secret, created: t.clock.seconds });
    const opened = await send("POST", "/portcullis/v1/session", { ...logon, "content-type": "application/json" }, "{}");
    expect(opened.statusCode, opened.body).toBe(201);
    const session = opened.json<{ keyid: string; secret: string }>();
    const before = upstream.requests.length;
    const res = await post(await sealed({ signer: { id: session.keyid, secret: session.secret } }));
    expect(res.statusCode, res.body).toBe(200);
    expect(upstream.requests[before]?.body).toBe(ORDER);
  });
});

describe("refusals", () => {
  async function refused(request: { headers: Record<string, string>; body: Buffer; url: string }, status: number, code: string): Promise<void> {
    const before = upstream.requests.length;
    const res = await post(request);
    expect(res.statusCode, res.body).toBe(status);
    expect(res.json()).toMatchObject({ code });
    expect(upstream.requests.length).toBe(before);
  }

  it("tampered ciphertext: SEALED_OPEN_FAILED (the signature is over the tampered bytes, so it verifies)", async () => {
    await refused(
      await sealed({
        tamper: (b) => {
          const out = Buffer.from(b);
          out[out.length - 1] = (out[out.length - 1] ?? 0) ^ 1;
          return out;
        },
      }),
      400,
      "SEALED_OPEN_FAILED",
    );
  });

  it("a sealed body under another signature does not open: another nonce, another key, another method or target", async () => {
    await refused(await sealed({ aad: { nonce: "another-nonce-1" } }), 400, "SEALED_OPEN_FAILED");
    await refused(await sealed({ aad: { keyId: key.id }, signer: other }), 400, "SEALED_OPEN_FAILED");
    await refused(await sealed({ aad: { method: "PUT" } }), 400, "SEALED_OPEN_FAILED");
    await refused(await sealed({ aad: { url: "/v1/orders?x=1" } }), 400, "SEALED_OPEN_FAILED");
  });

  it("the same sealed bytes replayed under a fresh signature of another key: SEALED_OPEN_FAILED", async () => {
    const first = await sealed();
    const res = await post(first);
    expect(res.statusCode).toBe(200);
    // Another key re-signs the captured sealed body (a fresh nonce, its own content digest).
    const resigned = signRequest({
      method: "POST",
      url: first.url,
      host: HOST,
      body: first.body,
      keyId: other.id,
      key: other.secret,
      created: t.clock.seconds,
      components: ["@method", "@authority", "@path", "@query", "content-digest", "portcullis-sealed", "portcullis-sealed-type"],
      headers: { "portcullis-sealed": first.headers["portcullis-sealed"] ?? "", "portcullis-sealed-type": "application/json" },
    });
    await refused({ headers: { "content-type": "application/portcullis-sealed", ...resigned }, body: first.body, url: first.url }, 400, "SEALED_OPEN_FAILED");
  });

  it("the sealed headers not covered by the signature: SEALED_NOT_COVERED", async () => {
    await refused(await sealed({ components: ["@method", "@authority", "@path", "@query", "content-digest"] }), 400, "SEALED_NOT_COVERED");
    await refused(await sealed({ components: ["@method", "@authority", "@path", "@query", "content-digest", "portcullis-sealed"] }), 400, "SEALED_NOT_COVERED");
  });

  it("malformed: no Portcullis-Sealed-Type, another content type, a body too short, a key id of the wrong form", async () => {
    await refused(await sealed({ type: null }), 400, "SEALED_MALFORMED");
    await refused(await sealed({ type: "application/portcullis-sealed" }), 400, "SEALED_MALFORMED");
    const plainType = await sealed();
    await refused({ ...plainType, headers: { ...plainType.headers, "content-type": "application/json" } }, 400, "SEALED_MALFORMED");
    await refused(await sealed({ tamper: (b) => b.subarray(0, 40) }), 400, "SEALED_MALFORMED");
    const current = (await hpkeKeys()).keys[0];
    await refused(await sealed({ hpkeKey: { id: "not a key id!", publicKey: current?.publicKey ?? "" } }), 400, "SEALED_MALFORMED");
  });

  it("an unknown key id: SEALED_KEY_UNKNOWN", async () => {
    const current = (await hpkeKeys()).keys[0];
    await refused(await sealed({ hpkeKey: { id: "AAAAAAAAAAAAAAAA", publicKey: current?.publicKey ?? "" } }), 400, "SEALED_KEY_UNKNOWN");
  });

  it("a sealed request on a public route: SEALED_NOT_SUPPORTED (nothing would open it)", async () => {
    const before = upstream.requests.length;
    const res = await send("POST", "/public/echo", { host: HOST, "content-type": "application/portcullis-sealed", "portcullis-sealed": "AAAAAAAAAAAAAAAA", "portcullis-sealed-type": "application/json" }, Buffer.alloc(64));
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ code: "SEALED_NOT_SUPPORTED" });
    expect(upstream.requests.length).toBe(before);
  });

  it("through the authorizer (the proxy forwards the body itself): SEALED_NOT_SUPPORTED", async () => {
    const authorizer = new Authorizer({ pipeline: t.core.pipeline, identity: new IdentitySigner(IDENTITY_SECRET), logger: silentLogger(), trustedProxies: ["127.0.0.1/32"], now: t.clock.now, audit: t.core.audit });
    try {
      const request = await sealed();
      const res = await inject(authorizer.handle, { method: "POST", url: request.url, headers: request.headers, payload: request.body, remoteAddress: "127.0.0.1" });
      expect(res.statusCode).toBe(400);
      expect(res.json()).toMatchObject({ code: "SEALED_NOT_SUPPORTED" });
    } finally {
      await authorizer.close(100);
    }
  });
});

describe("rotation, on the frozen clock", () => {
  it("the previous key is accepted for the grace after the next one is made, then refused SEALED_KEY_UNKNOWN", async () => {
    const old = (await hpkeKeys()).keys[0];
    if (old === undefined) throw new Error("no key");
    // Signed fresh each time (the clock moves); sealed to the old key.
    t.clock.advance(24 * 3_600_000);
    await t.sealing?.refresh();
    const listed = await hpkeKeys();
    expect(listed.keys.map((k) => k.id)).toEqual([expect.not.stringMatching(old.id) as string, old.id]);
    t.clock.advance(10 * 60_000 - 1_000);
    expect((await post(await sealed({ hpkeKey: old }))).statusCode).toBe(200);
    t.clock.advance(1_000);
    const res = await post(await sealed({ hpkeKey: old }));
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ code: "SEALED_KEY_UNKNOWN" });
    // The new key works; the old one is no longer published.
    expect((await post(await sealed())).statusCode).toBe(200);
    expect((await hpkeKeys()).keys.map((k) => k.id)).not.toContain(old.id);
  });
});

describe("the plaintext is never written down", () => {
  it("is in no log line and nowhere in the data directory (audit log included)", async () => {
    await t.core.audit.flush();
    expect(logLines.length).toBeGreaterThan(0);
    for (const line of logLines) expect(line).not.toContain(MARKER);
    const files = readdirSync(t.dataDir, { recursive: true, withFileTypes: true }).filter((f) => f.isFile());
    expect(files.length).toBeGreaterThan(0);
    for (const f of files) expect(readFileSync(join(f.parentPath, f.name)).includes(MARKER), f.name).toBe(false);
  });
});

describe("sealing off", () => {
  it("a core without a keyring refuses a sealed request SEALED_NOT_SUPPORTED and serves no /portcullis/v1/hpke", async () => {
    const off = await makeCore({ routes: ROUTES });
    const gw = new Gateway({ pipeline: off.core.pipeline, forwarder: new Forwarder({ upstream: upstream.url }), identity: new IdentitySigner(IDENTITY_SECRET), logger: silentLogger(), now: off.clock.now });
    try {
      const created = await off.createKey({ scopes: ["trade"] });
      const request = await sealed({ signer: { id: created.key.id, secret: created.secret ?? "" } });
      const signedAgain = signRequest({
        method: "POST",
        url: request.url,
        host: HOST,
        body: request.body,
        keyId: created.key.id,
        key: created.secret ?? "",
        created: off.clock.seconds,
        components: ["@method", "@authority", "@path", "@query", "content-digest", "portcullis-sealed", "portcullis-sealed-type"],
        headers: { "portcullis-sealed": request.headers["portcullis-sealed"] ?? "", "portcullis-sealed-type": "application/json" },
      });
      const res = await inject(gw.handle, { method: "POST", url: request.url, headers: { "content-type": "application/portcullis-sealed", ...signedAgain }, payload: request.body, remoteAddress: "127.0.0.1" });
      expect(res.statusCode).toBe(400);
      expect(res.json()).toMatchObject({ code: "SEALED_NOT_SUPPORTED" });
      expect((await inject(gw.handle, { method: "GET", url: "/portcullis/v1/hpke", headers: { host: HOST }, remoteAddress: "127.0.0.1" })).statusCode).toBe(404);
    } finally {
      await gw.close(100);
      await off.cleanup();
    }
  });
});
