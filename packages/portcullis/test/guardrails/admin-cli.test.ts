/**
 * Setting, changing, clearing and showing guardrails through the admin API (over a real socket,
 * with the client SDK) and the CLI (the real `portcullis` command on a data directory), and what
 * an account admin key may grant: guardrails only ever narrow its own (ADMIN_GRANT_EXCEEDED).
 */
import { PortcullisApiError, createClient, type PortcullisClient } from "@portcullis/client";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminApi } from "../../src/admin/server.js";
import type { KeyGuardrails } from "../../src/contract/keys.js";
import { silentLogger } from "../../src/log/logger.js";
import { runCli } from "../support/cli.js";
import { type TestCore, makeCore } from "../support/harness.js";

interface KeyJson {
  readonly id: string;
  readonly guardrails: KeyGuardrails | null;
  readonly secret?: string;
}

const NONE = { symbols: null, maxQuantity: null, maxNotional: null, priceBandPct: null, withdrawAssets: null, transferAssets: null, maxOpenNotional: null };

let t: TestCore;
let api: AdminApi;
let base: string;
let operator: PortcullisClient;
/** An account admin key of acct-a, itself bounded: BTCUSDT and ETHUSDT, 2 per order, withdraw USDT. */
let accountAdmin: PortcullisClient;
const ADMIN_GUARDRAILS = { symbols: ["BTCUSDT", "ETHUSDT"], maxQuantity: "2", withdrawAssets: ["USDT"] };

const client = (created: { key: { id: string }; secret: string | null }): PortcullisClient => createClient({ baseUrl: base, keyId: created.key.id, secret: created.secret ?? "" });

beforeAll(async () => {
  t = await makeCore({ now: Date.now });
  api = new AdminApi({ core: t.core, logger: silentLogger() });
  base = `http://127.0.0.1:${String((await api.listen(0, "127.0.0.1")).port)}`;
  operator = client(await t.createKey({ account: "ops", scopes: ["admin:*"], operator: true }));
  accountAdmin = client(await t.createKey({ account: "acct-a", scopes: ["admin:keys", "read", "trade", "withdraw"], guardrails: ADMIN_GUARDRAILS }));
});
afterAll(async () => {
  await api.close(500);
  await t.cleanup();
});

async function refusal(p: Promise<unknown>): Promise<{ status: number; code: string; message: string; fields?: Record<string, string> }> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(PortcullisApiError);
  const e = err as PortcullisApiError;
  const body = e.body as { message: string; fields?: Record<string, string> };
  return { status: e.status, code: String(e.code), message: body.message, ...(body.fields === undefined ? {} : { fields: body.fields }) };
}

describe("the admin API", () => {
  it("POST /keys takes guardrails, GET shows them, PATCH changes them as a merge patch and null clears them", async () => {
    const created = await operator.json<KeyJson>("POST", "/portcullis/v1/keys", { json: { account: "acct-z", scopes: ["trade"], guardrails: { symbols: ["btcusdt"], maxNotional: "50000", priceBandPct: 5 } } });
    expect(created.guardrails).toEqual({ ...NONE, symbols: ["BTCUSDT"], maxNotional: "50000", priceBandPct: "5" });
    expect((await operator.json<KeyJson>("GET", `/portcullis/v1/keys/${created.id}`)).guardrails).toEqual(created.guardrails);
    const changed = await operator.json<KeyJson>("PATCH", `/portcullis/v1/keys/${created.id}`, { json: { guardrails: { maxQuantity: "3", priceBandPct: null } } });
    expect(changed.guardrails).toEqual({ ...NONE, symbols: ["BTCUSDT"], maxNotional: "50000", maxQuantity: "3" });
    const cleared = await operator.json<KeyJson>("PATCH", `/portcullis/v1/keys/${created.id}`, { json: { guardrails: null } });
    expect(cleared.guardrails).toBeNull();
  });

  it("bad guardrails are VALIDATION_FAILED naming the field", async () => {
    const r = await refusal(operator.json("POST", "/portcullis/v1/keys", { json: { account: "acct-z", scopes: ["trade"], guardrails: { maxQuantity: 5, band: 1 } } }));
    expect(r).toMatchObject({ status: 400, code: "VALIDATION_FAILED" });
    expect(Object.keys(r.fields ?? {}).sort()).toEqual(["guardrails.band", "guardrails.maxQuantity"]);
  });
});

describe("an account admin key's guardrails bound what it grants", () => {
  it("creates a key with guardrails within its own", async () => {
    const created = await accountAdmin.json<KeyJson>("POST", "/portcullis/v1/keys", {
      json: { account: "acct-a", scopes: ["trade"], guardrails: { symbols: ["ETH-USDT"], maxQuantity: "1.5", withdrawAssets: ["USDT"], priceBandPct: "2" } },
    });
    expect(created.guardrails).toMatchObject({ symbols: ["ETH-USDT"], maxQuantity: "1.5" });
  });

  it("cannot create a key without guardrails, or with looser ones (ADMIN_GRANT_EXCEEDED, naming the fields)", async () => {
    const none = await refusal(accountAdmin.json("POST", "/portcullis/v1/keys", { json: { account: "acct-a", scopes: ["trade"] } }));
    expect(none).toMatchObject({ status: 403, code: "ADMIN_GRANT_EXCEEDED" });
    const looser = await refusal(
      accountAdmin.json("POST", "/portcullis/v1/keys", { json: { account: "acct-a", scopes: ["trade"], guardrails: { symbols: ["BTCUSDT", "SOLUSDT"], maxQuantity: "2.5", withdrawAssets: ["USDT"] } } }),
    );
    expect(looser.code).toBe("ADMIN_GRANT_EXCEEDED");
    expect(looser.message).not.toContain("SOLUSDT");
  });

  it("cannot loosen a key's guardrails by PATCH, nor rotate a key whose guardrails are looser than its own", async () => {
    const created = await accountAdmin.json<KeyJson>("POST", "/portcullis/v1/keys", { json: { account: "acct-a", scopes: ["trade"], guardrails: ADMIN_GUARDRAILS } });
    expect((await refusal(accountAdmin.json("PATCH", `/portcullis/v1/keys/${created.id}`, { json: { guardrails: { maxQuantity: "3" } } }))).code).toBe("ADMIN_GRANT_EXCEEDED");
    expect((await refusal(accountAdmin.json("PATCH", `/portcullis/v1/keys/${created.id}`, { json: { guardrails: null } }))).code).toBe("ADMIN_GRANT_EXCEEDED");
    const narrowed = await accountAdmin.json<KeyJson>("PATCH", `/portcullis/v1/keys/${created.id}`, { json: { guardrails: { maxQuantity: "1" } } });
    expect(narrowed.guardrails?.maxQuantity).toBe("1");
    // A key of its account that the operator made without guardrails: the account admin may not mint its successor.
    const free = await operator.json<KeyJson>("POST", "/portcullis/v1/keys", { json: { account: "acct-a", scopes: ["trade"] } });
    expect((await refusal(accountAdmin.json("POST", `/portcullis/v1/keys/${free.id}/rotate`, { json: {} }))).code).toBe("ADMIN_GRANT_EXCEEDED");
    const rotated = await accountAdmin.json<KeyJson>("POST", `/portcullis/v1/keys/${created.id}/rotate`, { json: {} });
    expect(rotated.guardrails).toEqual(narrowed.guardrails);
  });
});

describe("the CLI", () => {
  let dir: string;
  let data: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "portcullis-guard-cli-"));
    data = join(dir, "data");
    expect((await runCli(["init", "--data", data, "--environment", "test", "--json"])).code).toBe(0);
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  const asKey = (stdout: string): KeyJson => JSON.parse(stdout) as KeyJson;

  it("keys create sets guardrails from flags, keys show lists them, keys update changes, removes and clears them", async () => {
    const res = await runCli([
      "keys", "create", "--data", data, "--account", "bot", "--scopes", "trade,withdraw",
      "--symbols", "btcusdt,ETHUSDT", "--max-quantity", "2", "--max-notional", "50000", "--price-band", "5", "--withdraw-assets", "USDT,BTC", "--json",
    ]);
    expect(res.code, res.stderr).toBe(0);
    const key = asKey(res.stdout);
    expect(key.guardrails).toEqual({ symbols: ["BTCUSDT", "ETHUSDT"], maxQuantity: "2", maxNotional: "50000", priceBandPct: "5", withdrawAssets: ["BTC", "USDT"], transferAssets: null, maxOpenNotional: null });
    const shown = await runCli(["keys", "show", key.id, "--data", data]);
    expect(shown.stdout).toMatch(/guardrails\s+symbols BTCUSDT, ETHUSDT/);
    expect(shown.stdout).toMatch(/max quantity 2/);
    expect(shown.stdout).toMatch(/price band ±5 %/);
    expect(shown.stdout).toMatch(/withdraw BTC, USDT/);
    const updated = asKey((await runCli(["keys", "update", key.id, "--data", data, "--max-quantity", "3", "--symbols", "none", "--transfer-assets", "usdt", "--json"])).stdout);
    expect(updated.guardrails).toEqual({ symbols: null, maxQuantity: "3", maxNotional: "50000", priceBandPct: "5", withdrawAssets: ["BTC", "USDT"], transferAssets: ["USDT"], maxOpenNotional: null });
    const cleared = asKey((await runCli(["keys", "update", key.id, "--data", data, "--clear-guardrails", "--json"])).stdout);
    expect(cleared.guardrails).toBeNull();
    expect((await runCli(["keys", "show", key.id, "--data", data])).stdout).toMatch(/guardrails\s+none/);
  });

  it("bad flags are refused with the field named, and guardrail flags with --clear-guardrails are refused", async () => {
    const bad = await runCli(["keys", "create", "--data", data, "--account", "bot", "--scopes", "trade", "--max-quantity", "-1", "--price-band", "150", "--json"]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain("VALIDATION_FAILED");
    expect(bad.stderr).toContain("guardrails.maxQuantity");
    expect(bad.stderr).toContain("guardrails.priceBandPct");
    const key = asKey((await runCli(["keys", "create", "--data", data, "--account", "bot", "--scopes", "trade", "--json"])).stdout);
    expect(key.guardrails).toBeNull();
    const both = await runCli(["keys", "update", key.id, "--data", data, "--max-quantity", "1", "--clear-guardrails", "--json"]);
    expect(both.code).not.toBe(0);
    expect(both.stderr).toContain("VALIDATION_FAILED");
  });
});
