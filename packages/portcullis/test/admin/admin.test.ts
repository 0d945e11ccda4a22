/**
 * The admin API over a real socket, driven by the client SDK with an admin key: key management,
 * its refusals, and revocation reaching the gateway's pipeline at once.
 */
import { PortcullisApiError, createClient, type PortcullisClient } from "@portcullis/client";
import { generateKeyPairSync } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminApi } from "../../src/admin/server.js";
import { silentLogger } from "../../src/log/logger.js";
import { type TestCore, makeCore, signRequest } from "../support/harness.js";

interface KeyJson {
  id: string;
  account: string;
  scopes: string[];
  status: string;
  effectiveStatus: string;
  statusReason: string | null;
  algorithm: string;
  limits: Record<string, number>;
  secret?: string;
}

let t: TestCore;
let admin: AdminApi;
let base: string;
let client: PortcullisClient;
let adminKeyId: string;
let adminSecret: string;

beforeAll(async () => {
  t = await makeCore({
    now: Date.now,
    limits: {
      specs: [
        { name: "key-weight-1m", scope: "key", kind: "weight", limit: 10_000, windowMs: 60_000 },
        { name: "orders-10s", scope: "account", kind: "orders", limit: 1_000, windowMs: 10_000 },
        { name: "orders-1d", scope: "account", kind: "orders", limit: 100_000, windowMs: 86_400_000 },
      ],
    },
  });
  admin = new AdminApi({ core: t.core, logger: silentLogger() });
  const address = await admin.listen(0, "127.0.0.1");
  base = `http://127.0.0.1:${address.port}`;
  const created = await t.createKey({ account: "ops", scopes: ["admin:*"], operator: true });
  adminKeyId = created.key.id;
  adminSecret = created.secret ?? "";
  client = createClient({ baseUrl: base, keyId: adminKeyId, secret: adminSecret });
});
afterAll(async () => {
  await admin.close(500);
  await t.cleanup();
});

async function apiError(p: Promise<unknown>): Promise<PortcullisApiError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(PortcullisApiError);
  return err as PortcullisApiError;
}

describe("admin API", () => {
  it("creates an HMAC key and returns its secret once", async () => {
    const key = await client.json<KeyJson>("POST", "/portcullis/v1/keys", { json: { account: "bot-1", scopes: ["read", "trade"], label: "bot" } });
    expect(key.id).toMatch(/^pck_test_v1_/);
    expect(key.secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const shown = await client.json<KeyJson>("GET", `/portcullis/v1/keys/${key.id}`);
    expect(shown.secret).toBeUndefined();
    expect(shown).toMatchObject({ account: "bot-1", scopes: ["read", "trade"], status: "active" });
  });

  it("creates an asymmetric key from a public key; never returns a secret", async () => {
    const publicKey = generateKeyPairSync("ed25519").publicKey.export({ type: "spki", format: "pem" }).toString();
    const key = await client.json<KeyJson>("POST", "/portcullis/v1/keys", { json: { account: "bot-2", scopes: ["read"], publicKey } });
    expect(key.algorithm).toBe("ed25519");
    expect(key.secret).toBeUndefined();
  });

  it("lists keys by account and status, with a cursor", async () => {
    for (let i = 0; i < 3; i++) await client.json("POST", "/portcullis/v1/keys", { json: { account: "lister", scopes: ["read"] } });
    const page = await client.json<{ keys: KeyJson[]; next: string | null }>("GET", "/portcullis/v1/keys?account=lister&limit=2");
    expect(page.keys.length).toBe(2);
    expect(page.next).toBe(page.keys[1]?.id);
    const rest = await client.json<{ keys: KeyJson[]; next: string | null }>("GET", `/portcullis/v1/keys?account=lister&limit=2&after=${page.next ?? ""}`);
    expect(rest.keys.length).toBe(1);
    expect(rest.next).toBeNull();
  });

  it("suspends, resumes and revokes, recording the reason", async () => {
    const key = await client.json<KeyJson>("POST", "/portcullis/v1/keys", { json: { account: "bot-3", scopes: ["read"] } });
    const suspended = await client.json<KeyJson>("POST", `/portcullis/v1/keys/${key.id}/suspend`, { json: { reason: "anomaly" } });
    expect(suspended).toMatchObject({ status: "suspended", statusReason: "anomaly" });
    expect((await client.json<KeyJson>("POST", `/portcullis/v1/keys/${key.id}/resume`)).status).toBe("active");
    expect((await client.json<KeyJson>("POST", `/portcullis/v1/keys/${key.id}/revoke`, { json: { reason: "leaked" } })).status).toBe("revoked");
    const conflict = await apiError(client.json("POST", `/portcullis/v1/keys/${key.id}/resume`));
    expect({ status: conflict.status, code: conflict.code }).toEqual({ status: 409, code: "KEY_STATE_CONFLICT" });
  });

  it("a key revoked through the admin API is refused by the pipeline at once", async () => {
    const key = await client.json<KeyJson>("POST", "/portcullis/v1/keys", { json: { account: "bot-4", scopes: ["read"] } });
    const verify = async (): Promise<string | null> => {
      const headers = signRequest({ method: "GET", url: "/api/v3/account", keyId: key.id, key: key.secret ?? "", created: Math.floor(Date.now() / 1000) });
      const ctx = await t.core.verify({ method: "GET", url: "/api/v3/account", headers, body: Buffer.alloc(0), socketAddress: "127.0.0.1" });
      return ctx.denial?.code ?? null;
    };
    expect(await verify()).toBeNull();
    await client.json("POST", `/portcullis/v1/keys/${key.id}/revoke`);
    expect(await verify()).toBe("KEY_REVOKED");
  });

  it.each([
    ["unknown key", "GET", "/portcullis/v1/keys/pck_test_v1_000000000000000000000000000000", undefined, 404, "KEY_NOT_FOUND"],
    ["bad scopes", "POST", "/portcullis/v1/keys", { account: "x", scopes: ["root"] }, 400, "VALIDATION_FAILED"],
    ["missing account", "POST", "/portcullis/v1/keys", { scopes: ["read"] }, 400, "VALIDATION_FAILED"],
    ["a non-object body", "POST", "/portcullis/v1/keys", [1, 2], 400, "VALIDATION_FAILED"],
    ["bad status filter", "GET", "/portcullis/v1/keys?status=bogus", undefined, 400, "VALIDATION_FAILED"],
    ["bad limit", "GET", "/portcullis/v1/keys?limit=0", undefined, 400, "VALIDATION_FAILED"],
    ["bad reason", "POST", `/portcullis/v1/keys/pck_test_v1_000000000000000000000000000000/revoke`, { reason: 5 }, 400, "VALIDATION_FAILED"],
    ["unmapped admin route", "DELETE", "/portcullis/v1/keys", undefined, 404, "ROUTE_NOT_FOUND"],
  ] as const)("refuses %s", async (_name, method, path, json, status, code) => {
    const err = await apiError(client.json(method, path, json === undefined ? {} : { json }));
    expect({ status: err.status, code: err.code }).toEqual({ status, code });
  });

  it.each(["__proto__", "constructor", "toString", "hasOwnProperty"])("refuses a body member named %s on every route that reads a body, changing nothing", async (name) => {
    const key = await client.json<KeyJson>("POST", "/portcullis/v1/keys", { json: { account: "proto-1", scopes: ["read"], label: "before" } });
    const bodies: readonly (readonly ["POST" | "PATCH" | "PUT", string, Record<string, unknown>])[] = [
      ["POST", "/portcullis/v1/keys", { account: "proto-2", scopes: ["read"] }],
      ["PATCH", `/portcullis/v1/keys/${key.id}`, { label: "after" }],
      ["POST", `/portcullis/v1/keys/${key.id}/revoke`, { reason: "r" }],
      ["POST", `/portcullis/v1/keys/${key.id}/suspend`, {}],
      ["POST", `/portcullis/v1/keys/${key.id}/end-sessions`, {}],
      ["POST", `/portcullis/v1/keys/${key.id}/rotate`, { grace: "1h" }],
      ["PUT", `/portcullis/v1/keys/${key.id}/limits`, { limits: {} }],
    ];
    for (const [method, path, base] of bodies) {
      // Defined, not assigned: JSON.stringify writes "__proto__" as a member.
      const json = Object.defineProperty({ ...base }, name, { value: { polluted: true }, enumerable: true });
      const err = await apiError(client.json(method, path, { json }));
      expect({ route: `${method} ${path}`, status: err.status, code: err.code }).toEqual({ route: `${method} ${path}`, status: 400, code: "VALIDATION_FAILED" });
      expect((err.body as { fields: Record<string, string> }).fields[name]).toBe("unknown field");
    }
    expect(await client.json<KeyJson>("GET", `/portcullis/v1/keys/${key.id}`)).toMatchObject({ status: "active", label: "before", limits: {} });
    expect((await client.json<{ keys: KeyJson[] }>("GET", "/portcullis/v1/keys?account=proto-2")).keys).toEqual([]);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it("sets a key's limit overrides, replaces them, and clears them", async () => {
    const key = await client.json<KeyJson>("POST", "/portcullis/v1/keys", { json: { account: "mm-1", scopes: ["read", "trade"], limits: { "orders-10s": 5_000 } } });
    expect(key.limits).toEqual({ "orders-10s": 5_000 });
    const set = await client.json<KeyJson>("PUT", `/portcullis/v1/keys/${key.id}/limits`, { json: { limits: { "key-weight-1m": 60_000 } } });
    expect(set.limits).toEqual({ "key-weight-1m": 60_000 });
    expect((await client.json<KeyJson>("GET", `/portcullis/v1/keys/${key.id}`)).limits).toEqual({ "key-weight-1m": 60_000 });
    expect((await client.json<KeyJson>("PUT", `/portcullis/v1/keys/${key.id}/limits`, { json: { limits: {} } })).limits).toEqual({});
  });

  it.each([
    ["an unknown limit name", { limits: { "key-weight-1h": 5 } }, /unknown limit "key-weight-1h" \(configured: key-weight-1m, orders-10s, orders-1d\)/],
    ["a limit that is not a positive integer", { limits: { "key-weight-1m": 0 } }, /positive integer/],
    ["a limit beyond exact arithmetic for its window", { limits: { "orders-1d": 500_000_000 } }, /orders-1d must be at most 104249991 for its window/],
    ["no limits object", { overrides: {} }, /an object of limit names/],
  ])("refuses %s as an override, changing nothing", async (_name, json, message) => {
    const key = await client.json<KeyJson>("POST", "/portcullis/v1/keys", { json: { account: "mm-2", scopes: ["read"], limits: { "key-weight-1m": 20_000 } } });
    const err = await apiError(client.json("PUT", `/portcullis/v1/keys/${key.id}/limits`, { json }));
    expect({ status: err.status, code: err.code }).toEqual({ status: 400, code: "VALIDATION_FAILED" });
    expect((err.body as { fields: { limits: string } }).fields.limits).toMatch(message);
    expect((await client.json<KeyJson>("GET", `/portcullis/v1/keys/${key.id}`)).limits).toEqual({ "key-weight-1m": 20_000 });
  });

  it("refuses overrides for a key that does not exist (KEY_NOT_FOUND)", async () => {
    const err = await apiError(client.json("PUT", "/portcullis/v1/keys/pck_test_v1_000000000000000000000000000000/limits", { json: { limits: {} } }));
    expect({ status: err.status, code: err.code }).toEqual({ status: 404, code: "KEY_NOT_FOUND" });
  });

  it.each([
    ["PATCH", "", { scopes: ["read"], holder: "x" }, 400, "VALIDATION_FAILED"],
    ["PATCH", "", [], 400, "VALIDATION_FAILED"],
    ["POST", "/rotate", { grace: "1y" }, 400, "VALIDATION_FAILED"],
    ["POST", "/rotate", { publicKey: "-----BEGIN PRIVATE KEY-----" }, 400, "VALIDATION_FAILED"],
    ["POST", "/end-sessions", { reason: 5 }, 400, "VALIDATION_FAILED"],
  ])("refuses a bad %s /keys/:id%s body (%j), changing nothing", async (method, action, json, status, code) => {
    const key = await client.json<KeyJson & { revision: number }>("POST", "/portcullis/v1/keys", { json: { account: "mm-3", scopes: ["read", "trade"] } });
    const err = await apiError(client.json(method, `/portcullis/v1/keys/${key.id}${action}`, { json }));
    expect({ status: err.status, code: err.code }).toEqual({ status, code });
    expect(await client.json<KeyJson & { revision: number }>("GET", `/portcullis/v1/keys/${key.id}`)).toMatchObject({ revision: key.revision, scopes: ["read", "trade"] });
  });

  it("updates, rotates and ends the sessions of a key", async () => {
    const key = await client.json<KeyJson>("POST", "/portcullis/v1/keys", { json: { account: "mm-4", scopes: ["read", "trade"] } });
    expect(await client.json("PATCH", `/portcullis/v1/keys/${key.id}`, { json: { scopes: ["read"], sessionTtl: "1h" } })).toMatchObject({ scopes: ["read"], sessionTtlMs: 3_600_000, sessionEpoch: 1 });
    expect(await client.json("POST", `/portcullis/v1/keys/${key.id}/end-sessions`, { json: {} })).toMatchObject({ sessionEpoch: 2 });
    const successor = await client.json<KeyJson & { predecessor: KeyJson & { rotatedTo: string } }>("POST", `/portcullis/v1/keys/${key.id}/rotate`, { json: { grace: "10m" } });
    expect(successor.secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(successor.predecessor.rotatedTo).toBe(successor.id);
    const again = await apiError(client.json("POST", `/portcullis/v1/keys/${key.id}/rotate`, { json: {} }));
    expect({ status: again.status, code: again.code }).toEqual({ status: 409, code: "KEY_STATE_CONFLICT" });
  });

  it("names each invalid field", async () => {
    const err = await apiError(client.json("POST", "/portcullis/v1/keys", { json: { account: "", scopes: [], windowMs: 1 } }));
    expect(Object.keys((err.body as { fields: Record<string, string> }).fields).sort()).toEqual(["account", "scopes", "windowMs"]);
  });

  it("refuses malformed JSON", async () => {
    const headers = signRequest({ method: "POST", url: "/portcullis/v1/keys", keyId: adminKeyId, key: adminSecret, created: Math.floor(Date.now() / 1000), host: new URL(base).host, body: "{nope" });
    const res = await fetch(`${base}/portcullis/v1/keys`, { method: "POST", headers, body: "{nope" });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { code: string }).code).toBe("JSON_MALFORMED");
  });

  it("refuses a key without an admin scope", async () => {
    const trader = await t.createKey({ scopes: ["read", "trade", "withdraw"] });
    const c = createClient({ baseUrl: base, keyId: trader.key.id, secret: trader.secret ?? "" });
    const err = await apiError(c.json("GET", "/portcullis/v1/keys"));
    expect({ status: err.status, code: err.code }).toEqual({ status: 403, code: "SCOPE_MISSING" });
  });

  it("refuses an unsigned request", async () => {
    const res = await fetch(`${base}/portcullis/v1/keys`);
    expect(res.status).toBe(401);
    expect(((await res.json()) as { code: string }).code).toBe("CREDENTIALS_MISSING");
  });

  it("answers the time without credentials", async () => {
    const res = await fetch(`${base}/portcullis/v1/time`);
    const body = (await res.json()) as { serverTime: number };
    expect(Math.abs(body.serverTime - Date.now())).toBeLessThan(5_000);
  });
});
