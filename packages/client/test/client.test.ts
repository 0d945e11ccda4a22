/**
 * createClient against a small local HTTP server that records what arrives on the wire: time sync,
 * retry once on a clock refusal, errors, and bodies signed exactly as sent.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type ClientOptions, createClient, createSessionClient, generateKeyPair, PortcullisApiError } from "../src/entry/index.js";
import { type WireRequest, parseNative, sha256Digest, verifyWire } from "./support.js";

const KEY_ID = "pck_test_v1_5Jx0sQ2fT9aLmB7cN1dE4gHk3Xq9Zp";
const SECRET = "pcs_secret_Zm9vYmFyYmF6cXV4";
const HMAC = { alg: "hmac-sha256", secret: SECRET } as const;

/** The local clock the tests give the client, far from the fake server clock. */
const LOCAL_MS = 1_000_000_000_000;
const SERVER_MS = 1_700_000_000_500;

interface Recorded extends WireRequest {
  readonly headers: Record<string, string | undefined>;
}

type Reply = { status: number; body: string; contentType?: string; headers?: Record<string, string> };

let server: Server;
let baseUrl: string;
let recorded: Recorded[];
/** Answers for /portcullis/v1/time, one per call (the last one repeats). */
let times: number[];
/** Answers for everything else, one per call (the last one repeats). */
let replies: Reply[];

function next<T>(queue: T[]): T {
  const head = queue.length > 1 ? queue.shift() : queue[0];
  if (head === undefined) throw new Error("no reply queued");
  return head;
}

function handle(req: IncomingMessage, res: ServerResponse): void {
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", () => {
    const headers: Record<string, string | undefined> = {};
    for (const [name, value] of Object.entries(req.headers)) headers[name] = Array.isArray(value) ? value.join(", ") : value;
    recorded.push({ method: req.method ?? "", authority: req.headers.host ?? "", target: req.url ?? "", body: Buffer.concat(chunks), headers });
    if (req.url === "/portcullis/v1/time") {
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ serverTime: next(times) }));
      return;
    }
    const reply = next(replies);
    res.writeHead(reply.status, { "content-type": reply.contentType ?? "application/json", ...reply.headers }).end(reply.body);
  });
}

beforeAll(async () => {
  server = createServer(handle);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve, reject) => {
    server.close((err) => {
      if (err) reject(err);
      else resolve();
    });
  });
});

beforeEach(() => {
  recorded = [];
  times = [SERVER_MS];
  replies = [{ status: 200, body: '{"ok":true}' }];
});

function client(extra: Partial<ClientOptions> = {}) {
  return createClient({ baseUrl, keyId: KEY_ID, secret: SECRET, now: () => LOCAL_MS, ...extra });
}

const signed = () => recorded.filter((r) => r.target !== "/portcullis/v1/time");
const timeCalls = () => recorded.filter((r) => r.target === "/portcullis/v1/time");

function only<T>(list: readonly T[]): T {
  expect(list).toHaveLength(1);
  const [item] = list;
  if (item === undefined) throw new Error("empty");
  return item;
}

describe("time sync", () => {
  it("syncs once before the first signed request and applies the offset to created", async () => {
    const c = client();
    expect(c.clockOffset).toBe(0);
    expect(await c.json("GET", "/api/v3/account")).toEqual({ ok: true });
    await c.json("GET", "/api/v3/account");
    expect(c.clockOffset).toBe(SERVER_MS - LOCAL_MS);
    expect(timeCalls()).toHaveLength(1);
    expect(recorded.map((r) => r.target)).toEqual(["/portcullis/v1/time", "/api/v3/account", "/api/v3/account"]);
    for (const r of signed()) {
      expect(parseNative(r.headers).created).toBe(1_700_000_000);
      expect(verifyWire(r, HMAC)).toBe(true);
    }
    expect(only(timeCalls()).headers["signature-input"]).toBeUndefined();
  });

  it("uses the midpoint of the round trip", async () => {
    const clock = [LOCAL_MS, LOCAL_MS + 300];
    const c = client({ now: () => clock.shift() ?? LOCAL_MS + 1_000 });
    expect(await c.syncTime()).toBe(SERVER_MS - (LOCAL_MS + 150));
  });

  it("shares one sync between concurrent first requests", async () => {
    const c = client();
    await Promise.all([c.request("GET", "/a"), c.request("GET", "/b"), c.request("GET", "/c")]);
    expect(timeCalls()).toHaveLength(1);
    expect(signed().map((r) => r.target).sort()).toEqual(["/a", "/b", "/c"]);
  });

  it("does not sync when syncTime is false: created comes from the local clock", async () => {
    const c = client({ syncTime: false });
    await c.request("GET", "/api/v3/account");
    expect(timeCalls()).toHaveLength(0);
    expect(parseNative(only(signed()).headers).created).toBe(1_000_000_000);
  });

  it("rejects when the time endpoint fails, and tries again on the next request", async () => {
    const c = client({ baseUrl: `${baseUrl}/nowhere` });
    replies = [{ status: 404, body: '{"code":"ROUTE_NOT_FOUND","message":"No route.","requestId":"r1"}' }];
    await expect(c.request("GET", "/x")).rejects.toMatchObject({ name: "PortcullisApiError", status: 404, code: "ROUTE_NOT_FOUND" });
    await expect(c.request("GET", "/x")).rejects.toBeInstanceOf(PortcullisApiError);
    expect(recorded.map((r) => r.target)).toEqual(["/nowhere/portcullis/v1/time", "/nowhere/portcullis/v1/time"]);
  });

  it("refuses a time answer without a numeric serverTime", async () => {
    const c = createClient({
      baseUrl,
      keyId: KEY_ID,
      secret: SECRET,
      fetch: () => Promise.resolve(new Response('{"serverTime":"soon"}', { status: 200 })),
    });
    await expect(c.syncTime()).rejects.toThrow(/serverTime/);
  });
});

describe("retry on a clock refusal", () => {
  const tooOld = { status: 401, body: '{"code":"CREATED_TOO_OLD","message":"check your clock","requestId":"req_1"}' };

  it("resyncs once and retries once with a fresh nonce and the new offset", async () => {
    times = [SERVER_MS, SERVER_MS + 60_000];
    replies = [tooOld, { status: 200, body: '{"orderId":7}' }];
    const c = client();
    const result = await c.json("POST", "/api/v3/order", { json: { symbol: "BTCUSDT", qty: "1" } });
    expect(result).toEqual({ orderId: 7 });
    expect(recorded.map((r) => r.target)).toEqual(["/portcullis/v1/time", "/api/v3/order", "/portcullis/v1/time", "/api/v3/order"]);
    const [first, second] = signed().map((r) => ({ r, p: parseNative(r.headers) }));
    if (first === undefined || second === undefined) throw new Error("two signed requests expected");
    expect(first.p.created).toBe(1_700_000_000);
    expect(second.p.created).toBe(1_700_000_060);
    expect(second.p.nonce).not.toBe(first.p.nonce);
    expect(second.r.body.toString()).toBe('{"symbol":"BTCUSDT","qty":"1"}');
    expect(second.r.body.equals(first.r.body)).toBe(true);
    expect(verifyWire(first.r, HMAC)).toBe(true);
    expect(verifyWire(second.r, HMAC)).toBe(true);
  });

  it("retries CREATED_IN_FUTURE too, but only once", async () => {
    replies = [{ status: 401, body: '{"code":"CREATED_IN_FUTURE","message":"future"}' }];
    const c = client();
    const error = await c.json("GET", "/api/v3/account").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PortcullisApiError);
    expect(error).toMatchObject({ status: 401, code: "CREATED_IN_FUTURE", message: "future" });
    expect(signed()).toHaveLength(2);
    expect(timeCalls()).toHaveLength(2);
  });

  it("does not retry other 401s, or when syncTime is false", async () => {
    replies = [{ status: 401, body: '{"code":"SIGNATURE_INVALID","message":"no"}' }];
    expect((await client().request("GET", "/a")).status).toBe(401);
    expect(signed()).toHaveLength(1);

    recorded = [];
    replies = [tooOld];
    const response = await client({ syncTime: false }).request("GET", "/a");
    expect(response.status).toBe(401);
    expect(await response.json()).toEqual(JSON.parse(tooOld.body));
    expect(recorded).toHaveLength(1);
  });
});

describe("PortcullisApiError", () => {
  it("carries the gateway's status, code, message, requestId and body", async () => {
    const body = { code: "SCOPE_MISSING", message: "This API key does not have the permission this route requires.", requestId: "req_9f3" };
    replies = [{ status: 403, body: JSON.stringify(body) }];
    const error = await client().json("DELETE", "/api/v3/order", { query: { orderId: 1 } }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PortcullisApiError);
    expect(error).toBeInstanceOf(Error);
    expect(error).toMatchObject({ name: "PortcullisApiError", status: 403, code: "SCOPE_MISSING", message: body.message, requestId: "req_9f3", body });
  });

  it("takes a venue's numeric code and msg, and the request id header", async () => {
    replies = [{ status: 400, body: '{"code":-1121,"msg":"Invalid symbol."}', headers: { "portcullis-request-id": "req_hdr" } }];
    const error = await client().json("GET", "/api/v3/ticker", { query: { symbol: "NOPE" } }).catch((e: unknown) => e);
    expect(error).toMatchObject({ status: 400, code: -1121, message: "Invalid symbol.", requestId: "req_hdr", body: { code: -1121, msg: "Invalid symbol." } });
  });

  it("keeps a non-JSON body as text", async () => {
    replies = [{ status: 502, body: "upstream down", contentType: "text/plain" }];
    const error = await client().json("GET", "/x").catch((e: unknown) => e);
    expect(error).toMatchObject({ status: 502, code: undefined, message: "HTTP 502 Bad Gateway", requestId: undefined, body: "upstream down" });
  });
});

describe("bodies are signed exactly as sent", () => {
  it("form: application/x-www-form-urlencoded, query appended, digest and signature verify", async () => {
    await client().request("POST", "/api/v3/order?test=1", {
      query: { symbol: "BTC USDT", recvWindow: 5000 },
      form: { symbol: "BTCUSDT", side: "BUY", quantity: 0.5, note: "a b&c=\u00e9" },
    });
    const r = only(signed());
    expect(r.method).toBe("POST");
    expect(r.target).toBe("/api/v3/order?test=1&symbol=BTC+USDT&recvWindow=5000");
    expect(r.headers["content-type"]).toBe("application/x-www-form-urlencoded");
    expect(r.body.toString("latin1")).toBe("symbol=BTCUSDT&side=BUY&quantity=0.5&note=a+b%26c%3D%C3%A9");
    expect(r.headers["content-digest"]).toBe(sha256Digest(r.body));
    expect(verifyWire(r, HMAC)).toBe(true);
    expect(verifyWire({ ...r, target: "/api/v3/order?test=1&symbol=BTC+USDT&recvWindow=5001" }, HMAC)).toBe(false);
  });

  it("json: application/json, UTF-8 bytes", async () => {
    await client().request("PUT", "api/v3/order", { json: { note: "caf\u00e9 \u{1F680}", n: 1 }, headers: { "x-extra": "1" } });
    const r = only(signed());
    expect(r.target).toBe("/api/v3/order");
    expect(r.headers["content-type"]).toBe("application/json");
    expect(r.headers["x-extra"]).toBe("1");
    expect(r.body.equals(Buffer.from('{"note":"caf\u00e9 \u{1F680}","n":1}', "utf8"))).toBe(true);
    expect(verifyWire(r, HMAC)).toBe(true);
  });

  it("fetch: relative path, lower-case method, string and Uint8Array bodies", async () => {
    const c = client();
    await c.fetch("/api/v3/order?symbol=ETHUSDT", { method: "post", body: "price=1\u00e9" });
    const bytes = new Uint8Array([0, 1, 2, 255, 254]);
    await c.fetch(new URL(`${baseUrl}/raw`), { method: "PATCH", body: bytes, headers: { "content-type": "application/octet-stream" } });
    const [text, raw] = signed();
    if (text === undefined || raw === undefined) throw new Error("two requests expected");
    expect(text.method).toBe("POST");
    expect(text.target).toBe("/api/v3/order?symbol=ETHUSDT");
    expect(text.headers["content-type"]).toBe("text/plain;charset=UTF-8");
    expect(text.body.equals(Buffer.from("price=1\u00e9", "utf8"))).toBe(true);
    expect(verifyWire(text, HMAC)).toBe(true);
    expect(raw.method).toBe("PATCH");
    expect(raw.body.equals(Buffer.from(bytes))).toBe(true);
    expect(verifyWire(raw, HMAC)).toBe(true);
  });

  it("GET without a body has no content-digest", async () => {
    await client().fetch("/api/v3/time");
    const r = only(signed());
    expect(r.method).toBe("GET");
    expect(r.headers["content-digest"]).toBeUndefined();
    expect(r.headers["signature-input"]).toMatch(/^sig1=\("@method" "@authority" "@path" "@query"\);/);
    expect(verifyWire(r, HMAC)).toBe(true);
  });

  it("signs with a generated ed25519 key", async () => {
    const pair = await generateKeyPair("ed25519");
    const c = createClient({ baseUrl: `${baseUrl}/`, keyId: KEY_ID, privateKey: pair.privateKeyPem, algorithm: "ed25519", now: () => LOCAL_MS });
    expect(c.baseUrl).toBe(baseUrl);
    expect(c.algorithm).toBe("ed25519");
    await c.request("POST", "/api/v3/order", { form: { symbol: "BTCUSDT" } });
    const r = only(signed());
    expect(parseNative(r.headers).alg).toBe("ed25519");
    expect(verifyWire(r, { alg: "ed25519", publicKey: pair.publicKeyPem })).toBe(true);
  });

  it("refuses bodies it cannot sign byte for byte, and form with json", async () => {
    const c = client();
    await expect(c.fetch("/x", { method: "POST", body: new URLSearchParams({ a: "1" }) })).rejects.toThrow(TypeError);
    await expect(c.fetch("/x", { method: "POST", body: new Blob(["a"]) })).rejects.toThrow(TypeError);
    await expect(c.request("POST", "/x", { form: { a: 1 }, json: {} })).rejects.toThrow(TypeError);
    await expect(c.request("GET", "/x", { query: { a: Number.NaN } })).rejects.toThrow(TypeError);
    expect(recorded).toHaveLength(0);
  });
});

describe("createClient options", () => {
  const bad = (options: unknown) => () => createClient(options as ClientOptions);

  it("throws TypeError for programmer mistakes", () => {
    expect(bad({ keyId: KEY_ID, secret: SECRET })).toThrow(/baseUrl/);
    expect(bad({ baseUrl: "/relative", keyId: KEY_ID, secret: SECRET })).toThrow(TypeError);
    expect(bad({ baseUrl: "ftp://x.test", keyId: KEY_ID, secret: SECRET })).toThrow(TypeError);
    expect(bad({ baseUrl: "https://u:p@x.test", keyId: KEY_ID, secret: SECRET })).toThrow(TypeError);
    expect(bad({ baseUrl: "https://x.test/?a=1", keyId: KEY_ID, secret: SECRET })).toThrow(TypeError);
    expect(bad({ baseUrl, secret: SECRET })).toThrow(/keyId/);
    expect(bad({ baseUrl, keyId: KEY_ID, secret: "" })).toThrow(TypeError);
    expect(bad({ baseUrl, keyId: KEY_ID, privateKey: "x", algorithm: "rsa" })).toThrow(TypeError);
    expect(bad({ baseUrl, keyId: KEY_ID, secret: SECRET, fetch: "nope" })).toThrow(TypeError);
    expect(bad({ baseUrl, keyId: KEY_ID, secret: SECRET, syncTime: "yes" })).toThrow(TypeError);
    expect(bad(null)).toThrow(TypeError);
  });

  it("uses an injected fetch", async () => {
    const calls: string[] = [];
    const c = createClient({
      baseUrl: "https://gateway.example.com/prefix",
      keyId: KEY_ID,
      secret: SECRET,
      now: () => LOCAL_MS,
      fetch: (input, init) => {
        const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
        calls.push(`${init?.method ?? "GET"} ${url}`);
        const isTime = url.endsWith("/portcullis/v1/time");
        return Promise.resolve(new Response(isTime ? JSON.stringify({ serverTime: LOCAL_MS + 5_000 }) : "[]", { status: 200 }));
      },
    });
    expect(await c.json("GET", "/api/v3/openOrders")).toEqual([]);
    expect(c.clockOffset).toBe(5_000);
    expect(calls).toEqual(["GET https://gateway.example.com/prefix/portcullis/v1/time", "GET https://gateway.example.com/prefix/api/v3/openOrders"]);
  });
});

describe("createSessionClient (a session opened elsewhere, e.g. a passkey sign-in)", () => {
  const SESSION = { keyid: "pst_first_token", secret: "pss_first_secret_Zm9v", expiresAt: SERVER_MS + 15 * 60_000, scopes: ["admin:*"], apiKeyId: KEY_ID, boundAddress: null };

  it("signs with the session's secret, adopts a refreshed one, and logs out", async () => {
    const c = createSessionClient({ baseUrl, session: SESSION, now: () => SERVER_MS });
    expect(c.keyId).toBe("pst_first_token");
    expect(c.session).toEqual({ keyid: "pst_first_token", expiresAt: SESSION.expiresAt, scopes: ["admin:*"], apiKeyId: KEY_ID, boundAddress: null });
    await c.json("GET", "/portcullis/v1/passkeys");
    const first = only(signed());
    expect(parseNative(first.headers).keyid).toBe("pst_first_token");
    expect(verifyWire(first, { alg: "hmac-sha256", secret: SESSION.secret })).toBe(true);

    replies = [{ status: 200, body: JSON.stringify({ ...SESSION, keyid: "pst_second_token", secret: "pss_second_secret_YmFy", expiresAt: SESSION.expiresAt + 60_000 }) }];
    expect((await c.refresh()).keyid).toBe("pst_second_token");
    replies = [{ status: 200, body: '{"ok":true}' }];
    await c.json("GET", "/portcullis/v1/passkeys");
    const [, refresh, after] = signed();
    expect(refresh?.target).toBe("/portcullis/v1/session/refresh");
    expect(after === undefined ? false : verifyWire(after, { alg: "hmac-sha256", secret: "pss_second_secret_YmFy" })).toBe(true);

    await c.logout();
    const out = signed().at(-1);
    expect(out?.method).toBe("DELETE");
    expect(out?.target).toBe("/portcullis/v1/session");
  });

  it("does not log on again when the session reaches its maximum lifetime (there is no key): the refusal is thrown", async () => {
    const c = createSessionClient({ baseUrl, session: SESSION, now: () => SERVER_MS });
    replies = [{ status: 401, body: '{"code":"SESSION_LIFETIME_EXCEEDED","message":"The session reached its maximum lifetime.","requestId":"r1"}' }];
    await expect(c.refresh()).rejects.toMatchObject({ status: 401, code: "SESSION_LIFETIME_EXCEEDED" });
    expect(signed().map((r) => r.target)).toEqual(["/portcullis/v1/session/refresh"]);
  });

  it("throws TypeError for a session of the wrong shape or a bad option", () => {
    expect(() => createSessionClient({ baseUrl, session: { ...SESSION, secret: 1 } as unknown as typeof SESSION })).toThrow(TypeError);
    expect(() => createSessionClient({ baseUrl, session: null as unknown as typeof SESSION })).toThrow(TypeError);
    expect(() => createSessionClient({ baseUrl: "ftp://x", session: SESSION })).toThrow(TypeError);
    expect(() => createSessionClient({ baseUrl, session: SESSION, refreshMarginMs: -1 })).toThrow(TypeError);
  });
});
