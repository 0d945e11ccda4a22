/**
 * No input from the network may cause a 5xx, a crash or a stack trace; and no secret may reach a
 * log line. Random requests (and random mutations of valid ones) through the gateway handler.
 */
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminApi } from "../../src/admin/server.js";
import { type TestGateway, makeGateway, captureLogger } from "../support/gateway.js";
import { signRequest } from "../support/harness.js";
import { inject } from "light-my-request";

let t: TestGateway;
let keyId: string;
let secret: string;
const secrets: string[] = [];

beforeAll(async () => {
  t = await makeGateway({ routes: [
    { method: "GET", path: "/public/time", permission: "public" },
    { method: ["GET", "POST", "DELETE"], path: "/api/v3/order", permission: "trade" },
    { method: "GET", path: "/api/v3/account", permission: "read" },
  ] }, { bodyLimit: 2048 });
  const created = await t.createKey({ scopes: ["read", "trade"] });
  keyId = created.key.id;
  secret = created.secret ?? "";
  secrets.push(secret);
});
afterAll(async () => {
  await t.close();
});

const headerName = fc.oneof(
  fc.constantFrom("signature", "signature-input", "content-digest", "host", "x-forwarded-for", "content-type", "portcullis-account", "connection"),
  fc.stringMatching(/^[a-z][a-z0-9-]{0,15}$/),
);
const headerValue = fc.oneof(
  fc.string({ maxLength: 60 }).map((s) => s.replace(/[\r\n\0]/g, "")),
  fc.constantFrom('sig1=("@method");created=1', "sig1=:AAAA:", 'sig1=("@method" "@path");keyid="pck_test_v1_x"', "sha-256=:AAAA:", "sig1=(((", ":::", "?1"),
);
const method = fc.constantFrom("GET", "POST", "DELETE", "PUT", "PATCH", "OPTIONS", "HEAD");
const path = fc.oneof(
  fc.constantFrom("/api/v3/order", "/api/v3/account", "/public/time", "/portcullis/v1/time", "/", "/api/v3/%6Frder", "/api//order", "/%zz", "/a/../b"),
  fc.stringMatching(/^\/[A-Za-z0-9%./_~-]{0,30}$/),
);
const query = fc.option(fc.string({ maxLength: 30 }).map((s) => encodeURIComponent(s)), { nil: undefined });

async function send(opts: { method: string; url: string; headers: Record<string, string>; payload?: string }): Promise<void> {
  const res = await t.inject({ method: opts.method, url: opts.url, headers: opts.headers, ...(opts.payload === undefined ? {} : { payload: opts.payload }) });
  expect(res.statusCode).toBeLessThan(500);
  if (res.statusCode >= 400 && opts.method !== "HEAD") {
    const body = res.json<{ code: string }>();
    expect(typeof body.code).toBe("string");
  }
  expect(res.payload).not.toMatch(/\bat .*\.(ts|js):\d+|Error:/);
}

describe("fuzzing the gateway", () => {
  it("random requests never produce a 5xx or a stack trace", async () => {
    await fc.assert(
      fc.asyncProperty(method, path, query, fc.array(fc.tuple(headerName, headerValue), { maxLength: 6 }), fc.option(fc.string({ maxLength: 300 }), { nil: undefined }), async (m, p, q, hs, body) => {
        const headers: Record<string, string> = {};
        for (const [k, v] of hs) headers[k] = v;
        await send({ method: m, url: q === undefined ? p : `${p}?${q}`, headers, ...(body === undefined || m === "GET" || m === "HEAD" ? {} : { payload: body }) });
      }),
      { numRuns: 600 },
    );
  });

  it("random mutations of a valid signed request never produce a 5xx", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom("signature", "signature-input", "content-digest", "host"),
        fc.nat(),
        fc.string({ minLength: 1, maxLength: 3 }),
        async (which, at, insert) => {
          const body = '{"symbol":"BTCUSDT"}';
          const headers: Record<string, string> = signRequest({ method: "POST", url: "/api/v3/order", keyId, key: secret, created: t.clock.seconds, body });
          const original = headers[which] ?? "";
          const i = at % (original.length + 1);
          headers[which] = (original.slice(0, i) + insert + original.slice(i)).replace(/[\r\n\0]/g, "");
          await send({ method: "POST", url: "/api/v3/order", headers, payload: body });
        },
      ),
      { numRuns: 600 },
    );
  });
});

describe("secrets never reach the logs", () => {
  it("after good, bad and admin requests, no log line holds a secret or a signature", async () => {
    const { logger, lines: adminLines } = captureLogger();
    const admin = new AdminApi({ core: t.core, logger, now: t.clock.now });
    const adminKey = await t.createKey({ account: "ops", scopes: ["admin:keys"], operator: true });
    secrets.push(adminKey.secret ?? "");
    const signatures: string[] = [];
    const good = signRequest({ method: "GET", url: "/api/v3/account", keyId, key: secret, created: t.clock.seconds });
    signatures.push(good.signature);
    await t.inject({ method: "GET", url: "/api/v3/account", headers: good });
    const wrong = signRequest({ method: "GET", url: "/api/v3/account", keyId, key: `${secret}0`, created: t.clock.seconds });
    signatures.push(wrong.signature);
    await t.inject({ method: "GET", url: "/api/v3/account", headers: wrong });
    // Admin: create a key (its secret is in the answer, and must be nowhere else).
    const body = JSON.stringify({ account: "logged", scopes: ["read"] });
    const signed = signRequest({ method: "POST", url: "/portcullis/v1/keys", keyId: adminKey.key.id, key: adminKey.secret ?? "", created: t.clock.seconds, body });
    const res = await inject(admin.handle, { method: "POST", url: "/portcullis/v1/keys", headers: signed, payload: body, remoteAddress: "127.0.0.1" });
    expect(res.statusCode).toBe(201);
    secrets.push(res.json<{ secret: string }>().secret);
    const all = [...t.logLines, ...adminLines].join("\n");
    expect(all.length).toBeGreaterThan(0);
    expect(all).toContain("request denied");
    for (const s of secrets) expect(all).not.toContain(s);
    for (const s of signatures) expect(all).not.toContain(s.slice(6, 30));
    await admin.close(100);
  });
});
