/**
 * The default limits include an account weight budget shared by all of the account's keys: an
 * account does not get more budget by opening more keys (issue 13, finding 9). Through the gateway,
 * with the limits a config without a `limits` section gets (the ones `portcullis init` and the
 * demo write out), on a frozen clock.
 */
import { afterEach, describe, expect, it } from "vitest";
import type { RouteSpec } from "../../src/authz/routes.js";
import { DEFAULT_LIMITS, parseConfig } from "../../src/config/config.js";
import { type TestGateway, makeGateway } from "../support/gateway.js";
import { signRequest } from "../support/harness.js";

/** 1200 / 200: six requests spend a key's default budget. */
const WEIGHT = 200;
const ROUTES: RouteSpec[] = [{ method: "GET", path: "/api/v3/account", permission: "read", weight: WEIGHT }];

let t: TestGateway | null = null;
afterEach(async () => {
  await t?.close();
  t = null;
});

const code = (res: { body: string }): string => (JSON.parse(res.body) as { code: string }).code;

describe("the default account weight limit", () => {
  it("is in the defaults: 2400 a minute per account, twice a key's 1200", () => {
    expect(DEFAULT_LIMITS.account).toEqual([{ name: "account-weight-1m", limit: 2400, window: "1m" }]);
    const specs = parseConfig({ gateway: { upstream: "http://127.0.0.1:9000" }, routes: ROUTES }, "/srv").limits.specs;
    expect(specs.filter((s) => s.scope === "account" && s.kind === "weight")).toEqual([
      { name: "account-weight-1m", scope: "account", kind: "weight", limit: 2400, windowMs: 60_000 },
    ]);
  });

  it("three keys of one account share one account budget; another account has its own", async () => {
    const limits = parseConfig({ gateway: { upstream: "http://127.0.0.1:9000" }, routes: ROUTES }, "/srv").limits;
    const g = await makeGateway({ routes: ROUTES, limits });
    t = g;
    const keys = await Promise.all([1, 2, 3].map(() => g.createKey({ account: "shared", scopes: ["read"] })));
    let ip = 0;
    const call = async (k: { key: { id: string }; secret: string | null }) => {
      const headers = signRequest({ method: "GET", url: "/api/v3/account", keyId: k.key.id, key: k.secret ?? "", created: g.clock.seconds });
      // A new address each time: only the key and account budgets are in play.
      return g.inject({ method: "GET", url: "/api/v3/account", headers, remoteAddress: `10.0.0.${++ip}` });
    };
    const [a, b, c] = keys as [(typeof keys)[0], (typeof keys)[0], (typeof keys)[0]];
    // Each of the first two keys spends its own budget (1200 = 6 × 200)…
    for (const k of [a, b]) {
      for (let i = 0; i < 6; i++) expect((await call(k)).statusCode).toBe(200);
      expect(code(await call(k))).toBe("RATE_LIMITED");
    }
    // …and with them the account's 2400: the third key, untouched, is refused by the account limit.
    const refused = await call(c);
    expect(refused.statusCode).toBe(429);
    expect(code(refused)).toBe("RATE_LIMITED");
    expect(refused.headers["ratelimit-policy"]).toContain('"account-weight-1m";q=2400');
    // Another account's key is not affected.
    const other = await g.createKey({ account: "other", scopes: ["read"] });
    expect((await call(other)).statusCode).toBe(200);
    // A minute later the budgets have refilled.
    g.clock.advance(60_000);
    expect((await call(c)).statusCode).toBe(200);
  });
});
