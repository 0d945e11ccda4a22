/**
 * Operator keys and account admin keys (issue 13, finding 6; OWASP API1 object-level, API3
 * property-level and API5 function-level authorization). An account admin key reaches only its own
 * account's keys — every other key is KEY_NOT_FOUND, as a key that does not exist — and grants only
 * what it holds itself (ADMIN_GRANT_EXCEEDED); an operator key reaches every account. Every admin
 * route is tried across accounts, over a real socket with the client SDK.
 */
import type { PortcullisClient } from "@portcullis/client";
import { rmSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ADMIN_ROUTES, AdminApi } from "../../src/admin/server.js";
import { PASSKEY_ROUTES } from "../../src/admin/passkeys.js";
import { APPROVAL_ROUTES } from "../../src/admin/approvals.js";
import { RISK_ROUTES } from "../../src/admin/risk.js";
import { silentLogger } from "../../src/log/logger.js";
import { oldDatabase } from "../support/old-database.js";
import { SqliteStore } from "../../src/storage/sqlite/store.js";
import { type TestCore, makeCore } from "../support/harness.js";
import { KEY_ROUTES, type Method, call as callAs, clientOf, refusal } from "../support/admin-clients.js";

interface KeyJson {
  id: string;
  account: string;
  scopes: string[];
  ipAllowlist: string[];
  status: string;
  label: string;
  revision: number;
  sessionEpoch: number;
  rotatedTo: string | null;
  limits: Record<string, number>;
  operator: boolean;
  secret?: string;
}

let t: TestCore;
let api: AdminApi;
let base: string;
/** Operator key (account ops): every account. */
let operator: PortcullisClient;
/** Account admin key of acct-a: admin:keys, read, trade; from 127.0.0.0/8 and 10.0.0.0/8. */
let accountAdmin: PortcullisClient;
let accountAdminId: string;
/** Keys the account admin must not reach: another account's, and an operator key in its own account. */
let foreign: string;
let hiddenOperator: string;
/** A key of acct-a with more than the account admin holds (withdraw), created by the operator. */
let strong: string;

const client = (created: { key: { id: string }; secret: string | null }): PortcullisClient => clientOf(base, created);

beforeAll(async () => {
  t = await makeCore({ now: Date.now });
  api = new AdminApi({ core: t.core, logger: silentLogger() });
  base = `http://127.0.0.1:${(await api.listen(0, "127.0.0.1")).port}`;
  operator = client(await t.createKey({ account: "ops", scopes: ["admin:*"], operator: true }));
  const admin = await t.createKey({ account: "acct-a", scopes: ["admin:keys", "read", "trade"], ipAllowlist: ["127.0.0.0/8", "10.0.0.0/8"] });
  accountAdminId = admin.key.id;
  accountAdmin = client(admin);
  foreign = (await t.createKey({ account: "acct-b", scopes: ["read", "trade", "withdraw"], label: "b's bot" })).key.id;
  hiddenOperator = (await t.createKey({ account: "acct-a", scopes: ["admin:keys"], operator: true })).key.id;
  strong = (await t.createKey({ account: "acct-a", scopes: ["read", "withdraw"] })).key.id;
});
afterAll(async () => {
  await api.close(500);
  await t.cleanup();
});

const call = (c: PortcullisClient, method: Method, path: string, json?: Record<string, unknown>): Promise<KeyJson> => callAs<KeyJson>(c, method, path, json);

describe("an account admin key and keys of other accounts", () => {
  it("covers every admin route that is not public", () => {
    const tested = new Set([
      ...KEY_ROUTES.map(([m, suffix]) => `${m} /portcullis/v1/keys/:id${suffix}`),
      "POST /portcullis/v1/keys",
      "GET /portcullis/v1/keys",
      ...APPROVAL_ROUTES.map((r) => `${r.method} ${r.path}`),
      // The risk routes' account isolation is test/exposure/service.test.ts's.
      ...RISK_ROUTES.map((r) => `${r.method} ${r.path}`),
      // The passkey routes reach only the caller's own key's passkeys: test/admin/passkeys.test.ts.
      ...PASSKEY_ROUTES.filter((r) => r.permission !== "public").map((r) => `${r.method} ${r.path}`),
    ]);
    // The policy and address routes (admin:policy, admin:addresses) are test/policy/admin.test.ts's;
    // the anomaly routes (admin:anomalies) test/anomaly/surfaces.test.ts's; the audit routes
    // (admin:audit) test/admin/audit.test.ts's; the live statistics (admin:stats, operator keys
    // only) test/console/stats.test.ts's.
    const guarded = ADMIN_ROUTES.filter((r) => r.permission !== "public" && r.permission !== "admin:policy" && r.permission !== "admin:addresses" && r.permission !== "admin:anomalies" && r.permission !== "admin:audit" && r.permission !== "admin:stats").map(
      (r) => `${r.method} ${r.path}`,
    );
    expect([...tested].sort()).toEqual([...guarded].sort());
  });

  it.each(KEY_ROUTES)("%s /keys/:id%s: another account's key, or an operator key, is KEY_NOT_FOUND like a key that does not exist", async (method, suffix, json) => {
    const unknown = await refusal(call(accountAdmin, method, `/portcullis/v1/keys/pck_test_v1_000000000000000000000000000000${suffix}`, json));
    expect(unknown).toMatchObject({ status: 404, code: "KEY_NOT_FOUND" });
    for (const id of [foreign, hiddenOperator]) {
      // Same status, code and message: the answer does not tell that the key exists.
      expect(await refusal(call(accountAdmin, method, `/portcullis/v1/keys/${id}${suffix}`, json))).toEqual(unknown);
    }
    // Nothing changed.
    expect(await call(operator, "GET", `/portcullis/v1/keys/${foreign}`)).toMatchObject({ status: "active", label: "b's bot", revision: 1, sessionEpoch: 0, rotatedTo: null, limits: {} });
    expect(await call(operator, "GET", `/portcullis/v1/keys/${hiddenOperator}`)).toMatchObject({ status: "active", revision: 1, sessionEpoch: 0, rotatedTo: null });
  });

  it.each(APPROVAL_ROUTES.map((r) => [r.method, r.path] as const))("%s %s: approvers and approvals need their own admin scopes (an account admin with admin:* is refused ADMIN_GRANT_EXCEEDED: test/approvals)", async (method, path) => {
    const concrete = path.replace(":name", "alice").replace(":id", "op_00000000000000000000000000000000");
    expect(await refusal(call(accountAdmin, method as Method, concrete, method === "GET" || method === "DELETE" ? undefined : {}))).toMatchObject({ status: 403, code: "SCOPE_MISSING" });
  });

  it("lists only its own account's keys, never operator keys; another account's list is empty", async () => {
    const own = await accountAdmin.json<{ keys: KeyJson[] }>("GET", "/portcullis/v1/keys");
    expect(own.keys.length).toBeGreaterThan(0);
    expect(own.keys.every((k) => k.account === "acct-a" && !k.operator)).toBe(true);
    expect(own.keys.map((k) => k.id)).toEqual(expect.arrayContaining([accountAdminId, strong]));
    expect(own.keys.map((k) => k.id)).not.toContain(hiddenOperator);
    expect((await accountAdmin.json<{ keys: KeyJson[] }>("GET", "/portcullis/v1/keys?account=acct-a")).keys).toEqual(own.keys);
    expect(await accountAdmin.json("GET", "/portcullis/v1/keys?account=acct-b")).toEqual({ keys: [], next: null });
    expect(await accountAdmin.json("GET", "/portcullis/v1/keys?account=ops")).toEqual({ keys: [], next: null });
  });

  it.each([
    ["in another account", { account: "acct-b", scopes: ["read"] }],
    ["with a scope it does not hold", { account: "acct-a", scopes: ["read", "trade", "withdraw"] }],
    ["with admin:* (it holds admin:keys)", { account: "acct-a", scopes: ["admin:*"] }],
    ["for any address (it is limited to its allowlist)", { account: "acct-a", scopes: ["read"], ipAllowlist: [] }],
    ["for addresses outside its allowlist", { account: "acct-a", scopes: ["read"], ipAllowlist: ["10.1.0.0/16", "192.168.0.0/16"] }],
    ["for a block wider than its own", { account: "acct-a", scopes: ["read"], ipAllowlist: ["10.0.0.0/7"] }],
    ["as an operator key", { account: "acct-a", scopes: ["read"], ipAllowlist: ["10.0.0.1"], operator: true }],
    ["with limit overrides", { account: "acct-a", scopes: ["read"], ipAllowlist: ["10.0.0.1"], limits: { "key-weight-1m": 5 } }],
  ])("cannot create a key %s (ADMIN_GRANT_EXCEEDED), and nothing is created", async (_name, json) => {
    const before = (await operator.json<{ keys: KeyJson[] }>("GET", "/portcullis/v1/keys?limit=1000")).keys.length;
    expect(await refusal(call(accountAdmin, "POST", "/portcullis/v1/keys", json))).toMatchObject({ status: 403, code: "ADMIN_GRANT_EXCEEDED" });
    expect((await operator.json<{ keys: KeyJson[] }>("GET", "/portcullis/v1/keys?limit=1000")).keys.length).toBe(before);
  });

  it("creates keys in its own account with what it holds, inside its own address range", async () => {
    const key = await call(accountAdmin, "POST", "/portcullis/v1/keys", { account: "acct-a", scopes: ["read", "trade"], ipAllowlist: ["10.1.0.0/16", "127.0.0.1"] });
    expect(key).toMatchObject({ account: "acct-a", scopes: ["read", "trade"], ipAllowlist: ["10.1.0.0/16", "127.0.0.1/32"], operator: false });
    expect(key.secret).toBeDefined();
    const admin2 = await call(accountAdmin, "POST", "/portcullis/v1/keys", { account: "acct-a", scopes: ["admin:keys"], ipAllowlist: ["127.0.0.1"] });
    expect(admin2.operator).toBe(false);
  });

  it("cannot widen a key of its own account beyond what it holds, nor set limit overrides", async () => {
    const own = await call(accountAdmin, "POST", "/portcullis/v1/keys", { account: "acct-a", scopes: ["read"], ipAllowlist: ["10.2.0.0/16"] });
    const path = `/portcullis/v1/keys/${own.id}`;
    expect(await refusal(call(accountAdmin, "PATCH", path, { scopes: ["read", "withdraw"] }))).toMatchObject({ status: 403, code: "ADMIN_GRANT_EXCEEDED" });
    expect(await refusal(call(accountAdmin, "PATCH", path, { ipAllowlist: [] }))).toMatchObject({ status: 403, code: "ADMIN_GRANT_EXCEEDED" });
    expect(await refusal(call(accountAdmin, "PUT", `${path}/limits`, { limits: { "key-weight-1m": 100 } }))).toMatchObject({ status: 403, code: "ADMIN_GRANT_EXCEEDED" });
    // Its own key's own escalation too.
    expect(await refusal(call(accountAdmin, "PATCH", `/portcullis/v1/keys/${accountAdminId}`, { scopes: ["admin:*"] }))).toMatchObject({ status: 403, code: "ADMIN_GRANT_EXCEEDED" });
    expect(await call(operator, "GET", path)).toMatchObject({ scopes: ["read"], ipAllowlist: ["10.2.0.0/16"], limits: {}, revision: 1 });
    // Within what it holds, it changes its keys.
    expect(await call(accountAdmin, "PATCH", path, { scopes: ["read", "trade"], ipAllowlist: ["10.2.3.0/24"], label: "narrower" })).toMatchObject({ scopes: ["read", "trade"], ipAllowlist: ["10.2.3.0/24"], label: "narrower" });
    expect(await call(accountAdmin, "PUT", `${path}/limits`, { limits: {} })).toMatchObject({ limits: {} });
  });

  it("cannot rotate a key of its account that holds more than it does (the successor's secret would be its)", async () => {
    expect(await refusal(call(accountAdmin, "POST", `/portcullis/v1/keys/${strong}/rotate`, { grace: "0" }))).toMatchObject({ status: 403, code: "ADMIN_GRANT_EXCEEDED" });
    expect(await call(operator, "GET", `/portcullis/v1/keys/${strong}`)).toMatchObject({ rotatedTo: null, revision: 1 });
  });

  it("manages every route on a key of its own account", async () => {
    const own = await call(accountAdmin, "POST", "/portcullis/v1/keys", { account: "acct-a", scopes: ["read"], ipAllowlist: ["10.3.0.0/16"] });
    const path = `/portcullis/v1/keys/${own.id}`;
    expect(await call(accountAdmin, "GET", path)).toMatchObject({ id: own.id });
    expect(await call(accountAdmin, "POST", `${path}/end-sessions`, {})).toMatchObject({ sessionEpoch: 1 });
    expect(await call(accountAdmin, "POST", `${path}/suspend`, {})).toMatchObject({ status: "suspended" });
    expect(await call(accountAdmin, "POST", `${path}/resume`)).toMatchObject({ status: "active" });
    const rotated = await call(accountAdmin, "POST", `${path}/rotate`, { grace: "0" });
    expect(rotated).toMatchObject({ account: "acct-a", scopes: ["read"], operator: false });
    expect(await call(accountAdmin, "POST", `/portcullis/v1/keys/${rotated.id}/revoke`, { reason: "done" })).toMatchObject({ status: "revoked" });
  });
});

describe("an operator key", () => {
  it("reaches every account: reads, changes and creates keys anywhere, with any scope, and creates operator keys", async () => {
    expect(await call(operator, "GET", `/portcullis/v1/keys/${foreign}`)).toMatchObject({ account: "acct-b" });
    const listed = await operator.json<{ keys: KeyJson[] }>("GET", "/portcullis/v1/keys?account=acct-b");
    expect(listed.keys.map((k) => k.id)).toContain(foreign);
    const minted = await call(operator, "POST", "/portcullis/v1/keys", { account: "acct-b", scopes: ["read", "trade", "withdraw"] });
    expect(minted).toMatchObject({ account: "acct-b", scopes: ["read", "trade", "withdraw"], operator: false });
    expect(await call(operator, "PATCH", `/portcullis/v1/keys/${minted.id}`, { label: "by the operator" })).toMatchObject({ label: "by the operator" });
    const op = await call(operator, "POST", "/portcullis/v1/keys", { account: "ops", scopes: ["admin:keys"], operator: true });
    expect(op.operator).toBe(true);
    // A successor inherits the flag.
    expect(await call(operator, "POST", `/portcullis/v1/keys/${op.id}/rotate`, { grace: "0" })).toMatchObject({ operator: true });
  });
});

describe("migration 7 on a database from before operator keys", () => {
  it("makes the admin keys it finds operator keys (they could reach every account), and no other key", async () => {
    const { dir, path, db: old } = await oldDatabase("portcullis-operator-old-", 6);
    try {
      const insert = old.prepare(
        `INSERT INTO keys (id, environment, account, label, algorithm, public_key, scopes, ip_allowlist, dialects, status, created_at, updated_at)
         VALUES (?, 'test', 'acct-old', '', 'ed25519', 'PEM', ?, '[]', '["native"]', 'active', 1, 1)`,
      );
      insert.run("pck_test_v1_admin", '["admin:keys"]');
      insert.run("pck_test_v1_wildcard", '["read","admin:*"]');
      insert.run("pck_test_v1_trader", '["read","trade"]');
      old.close();
      const store = new SqliteStore(path);
      try {
        const operatorOf = async (id: string): Promise<boolean | undefined> => (await store.keys.get(id))?.operator;
        expect(await operatorOf("pck_test_v1_admin")).toBe(true);
        expect(await operatorOf("pck_test_v1_wildcard")).toBe(true);
        expect(await operatorOf("pck_test_v1_trader")).toBe(false);
      } finally {
        await store.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
