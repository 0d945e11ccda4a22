/**
 * maxOpenNotional as input (docs/guardrails.md, "Open notional"): keys/input.ts validates it as
 * the other caps, the admin API takes and patches it, the CLI sets it with --max-open-notional and
 * `keys show` lists it, an account admin may only grant it at most its own, and the risk profile
 * reports it as its exposure's maxOpenNotional.
 */
import { PortcullisApiError, createClient, type PortcullisClient } from "@portcullis/client";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminApi } from "../../src/admin/server.js";
import { looserGuardrails } from "../../src/admin/reach.js";
import type { KeyGuardrails } from "../../src/contract/keys.js";
import { mergeGuardrails, parseCreateKeyInput } from "../../src/keys/input.js";
import { silentLogger } from "../../src/log/logger.js";
import { runCli } from "../support/cli.js";
import { type TestCore, makeCore } from "../support/harness.js";

const NOW = Date.UTC(2026, 11, 6);
const NONE: KeyGuardrails = { symbols: null, maxQuantity: null, maxNotional: null, priceBandPct: null, withdrawAssets: null, transferAssets: null, maxOpenNotional: null };

function create(guardrails: unknown) {
  return parseCreateKeyInput({ account: "acct-1", scopes: ["trade"], guardrails }, NOW);
}

describe("maxOpenNotional input", () => {
  it("is a plain decimal above zero, kept as written", () => {
    const r = create({ maxOpenNotional: "0250000.50" });
    expect(r.ok && r.value.guardrails).toEqual({ ...NONE, maxOpenNotional: "250000.50" });
  });

  it.each([
    ["a JSON number", 1000],
    ["zero", "0"],
    ["a negative amount", "-5"],
    ["an exponent", "1e6"],
    ["a list", ["1000"]],
  ])("refuses %s as VALIDATION_FAILED naming guardrails.maxOpenNotional", (_name, value) => {
    const r = create({ maxOpenNotional: value });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.code).toBe("VALIDATION_FAILED");
    expect(Object.keys(r.fields)).toEqual(["guardrails.maxOpenNotional"]);
  });

  it("merges as a patch; alone it keeps the guardrails, removed last it leaves none; a stored record without it reads as none set", () => {
    expect(mergeGuardrails(null, { maxOpenNotional: "1000" })).toEqual({ ...NONE, maxOpenNotional: "1000" });
    expect(mergeGuardrails({ ...NONE, maxOpenNotional: "1000" }, { maxOpenNotional: null })).toBeNull();
    const older = { symbols: ["BTCUSDT"], maxQuantity: null, maxNotional: null, priceBandPct: null, withdrawAssets: null, transferAssets: null } as unknown as KeyGuardrails;
    expect(mergeGuardrails(older, { maxQuantity: "1" })).toEqual({ ...NONE, symbols: ["BTCUSDT"], maxQuantity: "1" });
  });

  it("an account admin with the cap grants only a cap at most its own", () => {
    const own = { ...NONE, maxOpenNotional: "10000" };
    expect(looserGuardrails({ ...NONE, maxOpenNotional: "9999.99" }, own)).toEqual([]);
    expect(looserGuardrails({ ...NONE, maxOpenNotional: "10000.01" }, own)).toEqual(["maxOpenNotional"]);
    expect(looserGuardrails({ ...NONE, maxNotional: "1" }, own)).toEqual(["maxOpenNotional"]);
    expect(looserGuardrails(null, own)).toEqual(["maxOpenNotional"]);
  });
});

describe("the admin API and the CLI", () => {
  let t: TestCore;
  let api: AdminApi;
  let operator: PortcullisClient;
  let dir: string;

  beforeAll(async () => {
    t = await makeCore({ now: Date.now });
    api = new AdminApi({ core: t.core, logger: silentLogger() });
    const base = `http://127.0.0.1:${String((await api.listen(0, "127.0.0.1")).port)}`;
    const created = await t.createKey({ account: "ops", scopes: ["admin:*"], operator: true });
    operator = createClient({ baseUrl: base, keyId: created.key.id, secret: created.secret ?? "" });
    dir = mkdtempSync(join(tmpdir(), "pc-open-notional-"));
  });
  afterAll(async () => {
    await api.close(500);
    await t.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it("POST /keys takes maxOpenNotional, PATCH changes and removes it; a JSON number is VALIDATION_FAILED", async () => {
    const created = await operator.json<{ id: string; guardrails: KeyGuardrails | null }>("POST", "/portcullis/v1/keys", { json: { account: "acct-z", scopes: ["trade"], guardrails: { maxOpenNotional: "25000" } } });
    expect(created.guardrails).toEqual({ ...NONE, maxOpenNotional: "25000" });
    const patched = await operator.json<{ guardrails: KeyGuardrails | null }>("PATCH", `/portcullis/v1/keys/${created.id}`, { json: { guardrails: { maxOpenNotional: "30000", maxNotional: "5000" } } });
    expect(patched.guardrails).toEqual({ ...NONE, maxOpenNotional: "30000", maxNotional: "5000" });
    const removed = await operator.json<{ guardrails: KeyGuardrails | null }>("PATCH", `/portcullis/v1/keys/${created.id}`, { json: { guardrails: { maxOpenNotional: null } } });
    expect(removed.guardrails).toEqual({ ...NONE, maxNotional: "5000" });
    const err = await operator.json("POST", "/portcullis/v1/keys", { json: { account: "acct-z", scopes: ["trade"], guardrails: { maxOpenNotional: 25000 } } }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(PortcullisApiError);
    expect((err as PortcullisApiError).code).toBe("VALIDATION_FAILED");
    expect(Object.keys(((err as PortcullisApiError).body as { fields?: Record<string, string> }).fields ?? {})).toEqual(["guardrails.maxOpenNotional"]);
  });

  it("keys create --max-open-notional, keys show, keys update --max-open-notional none; a bad value is refused", async () => {
    const data = join(dir, "data");
    expect((await runCli(["init", "--data", data, "--environment", "test", "--json"])).code).toBe(0);
    const made = await runCli(["keys", "create", "--data", data, "--account", "bot", "--scopes", "trade", "--max-open-notional", "50000", "--json"]);
    expect(made.code, made.stderr).toBe(0);
    const key = JSON.parse(made.stdout) as { id: string; guardrails: KeyGuardrails | null };
    expect(key.guardrails).toEqual({ ...NONE, maxOpenNotional: "50000" });
    expect((await runCli(["keys", "show", key.id, "--data", data])).stdout).toMatch(/guardrails\s+max open notional 50000/);
    const cleared = await runCli(["keys", "update", key.id, "--data", data, "--max-open-notional", "none", "--json"]);
    expect((JSON.parse(cleared.stdout) as { guardrails: unknown }).guardrails).toBeNull();
    const bad = await runCli(["keys", "create", "--data", data, "--account", "bot", "--scopes", "trade", "--max-open-notional", "0", "--json"]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain("VALIDATION_FAILED");
    expect(bad.stderr).toContain("guardrails.maxOpenNotional");
  });
});
