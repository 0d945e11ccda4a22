import { PortcullisApiError, createClient, type PortcullisClient } from "@portcullis/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminApi } from "../../src/admin/server.js";
import { silentLogger } from "../../src/log/logger.js";
import { Availability } from "../../src/storage/availability.js";
import { type TestCore, makeCore } from "../support/harness.js";

/**
 * The admin API while the durable store is known to be out (docs/failures.md): every route that
 * needs the store answers 503 DURABLE_STORE_UNAVAILABLE before it takes a step, the public ones
 * still answer, and nothing was written once the store is back. (The store's own coded error,
 * for an outage not known yet, is drilled on a real PostgreSQL in test/failures/drill-postgres.test.ts.)
 */

describe("admin API during an outage of the durable store", () => {
  let t: TestCore;
  let admin: AdminApi;
  let client: PortcullisClient;
  let spare: PortcullisClient;
  const availability = new Availability();

  beforeAll(async () => {
    t = await makeCore({ now: Date.now, availability, outageGraceMs: 600_000 });
    admin = new AdminApi({ core: t.core, logger: silentLogger() });
    const address = await admin.listen(0, "127.0.0.1");
    const baseUrl = `http://127.0.0.1:${address.port}`;
    const created = await t.createKey({ account: "ops", scopes: ["admin:*"], operator: true });
    client = createClient({ baseUrl, keyId: created.key.id, secret: created.secret ?? "" });
    const other = await t.createKey({ account: "ops", scopes: ["admin:*"], operator: true });
    spare = createClient({ baseUrl, keyId: other.key.id, secret: other.secret ?? "" });
  });
  afterAll(async () => {
    await admin.close(500);
    await t.cleanup();
  });

  async function refusal(p: Promise<unknown>): Promise<{ status: number; code: string }> {
    const err = await p.then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(PortcullisApiError);
    const e = err as PortcullisApiError;
    return { status: e.status, code: String(e.code) };
  }

  it("writes and reads are refused 503 DURABLE_STORE_UNAVAILABLE, nothing is written, and all works again once the store is back", async () => {
    const before = await client.json<{ keys: { id: string }[] }>("GET", "/portcullis/v1/keys?limit=1000");
    const victim = before.keys[0]?.id ?? "";
    availability.lost();
    const unavailable = { status: 503, code: "DURABLE_STORE_UNAVAILABLE" };
    expect(await refusal(client.json("POST", "/portcullis/v1/keys", { json: { account: "bot-1", scopes: ["read"] } }))).toEqual(unavailable);
    expect(await refusal(client.json("POST", `/portcullis/v1/keys/${victim}/revoke`, { json: { reason: "drill" } }))).toEqual(unavailable);
    expect(await refusal(client.json("GET", "/portcullis/v1/keys"))).toEqual(unavailable);
    // An admin key not cached before the outage cannot be checked at all.
    expect(await refusal(spare.json("GET", "/portcullis/v1/keys"))).toEqual({ status: 503, code: "KEY_STORE_UNAVAILABLE" });
    // The public routes need no store.
    expect(await client.json<{ status: string }>("GET", "/portcullis/v1/health")).toEqual({ status: "ok" });

    availability.regained();
    const after = await client.json<{ keys: { id: string; status: string }[] }>("GET", "/portcullis/v1/keys?limit=1000");
    expect(after.keys).toEqual(before.keys);
    expect(after.keys.every((k) => k.status === "active")).toBe(true);
    await client.json("POST", "/portcullis/v1/keys", { json: { account: "bot-1", scopes: ["read"] } });
  });
});
