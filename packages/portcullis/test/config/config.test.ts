import { describe, expect, it } from "vitest";
import { ConfigError, DEFAULT_LIMITS, parseConfig } from "../../src/config/config.js";

const base = { gateway: { upstream: "http://127.0.0.1:9000" }, routes: [{ method: "GET", path: "/a", permission: "read" }] };

function refused(extra: Record<string, unknown>): string {
  try {
    parseConfig({ ...base, ...extra }, "/srv");
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error("expected a ConfigError");
}

describe("config", () => {
  it("fills defaults, resolving paths against the config file's directory", () => {
    const c = parseConfig(base, "/srv/portcullis");
    expect(c.dataDir).toBe("/srv/portcullis/data");
    expect(c.gateway).toMatchObject({ host: "0.0.0.0", port: 8080, bodyLimit: 1048576, scheme: "http", identitySecretFile: "/srv/portcullis/data/identity.secret", tls: null, clientCertHeader: null, drainDelayMs: 0, drainTimeoutMs: 10_000, readinessTimeoutMs: 1000 });
    expect(c.admin).toEqual({ enabled: true, host: "127.0.0.1", port: 8081, tls: null, origin: null, metrics: { enabled: true, public: false, tokenFile: null, sampleEvery: 64 }, console: true });
    expect(c.hot).toEqual({ backend: "memory" });
    expect(c.limits.specs.map((s) => s.name)).toEqual(["ip-weight-1m", "key-weight-1m", "account-weight-1m", "orders-10s", "orders-1d", "cancels-10s"]);
    expect(c.limits.specs.find((s) => s.name === "orders-1d")).toEqual({ name: "orders-1d", scope: "account", kind: "orders", limit: DEFAULT_LIMITS.orders[1].limit, windowMs: 86_400_000 });
  });

  it("parses limits, shields and the hot-state backend", () => {
    const c = parseConfig(
      {
        ...base,
        limits: {
          key: [{ name: "key-weight-10s", limit: 50, window: "10s" }],
          cancels: [{ name: "cxl", limit: 9, window: "1m" }],
          maxConcurrentPerKey: 8,
          ipv6Prefix: 56,
          shield: { strikes: 5, banBase: "1m" },
        },
        hot: { backend: "redis", url: "redis://10.0.0.5:6379", prefix: "gw1:" },
      },
      "/srv",
    );
    expect(c.limits.specs).toEqual([
      { name: "key-weight-10s", scope: "key", kind: "weight", limit: 50, windowMs: 10_000 },
      { name: "cxl", scope: "account", kind: "cancels", limit: 9, windowMs: 60_000 },
    ]);
    expect(c.limits.maxConcurrentPerKey).toBe(8);
    expect(c.limits.ipv6Prefix).toBe(56);
    expect(parseConfig(base, "/srv").limits.ipv6Prefix).toBe(64);
    expect(c.limits.shield).toMatchObject({ strikes: 5, banBaseMs: 60_000, banMaxMs: 3_600_000 });
    expect(c.hot).toEqual({ backend: "redis", url: "redis://10.0.0.5:6379", prefix: "gw1:" });
    expect(parseConfig({ ...base, limits: {} }, "/srv").limits.specs).toEqual([]);
  });

  it.each([
    [{ bogus: 1 }, /config\.bogus is not a known setting/],
    [{ gateway: {} }, /gateway\.upstream is required/],
    [{ gateway: { upstream: "http://x", port: 70000 } }, /gateway\.port must be an integer/],
    [{ gateway: { upstream: "http://x", trustedProxies: ["10.0.0.0/33"] } }, /gateway\.trustedProxies/],
    [{ gateway: { upstream: "http://x", drainDelay: "10m" } }, /gateway\.drainDelay must be at most 5m/],
    [{ gateway: { upstream: "http://x", drainTimeout: "soon" } }, /gateway\.drainTimeout must be a duration/],
    [{ gateway: { upstream: "http://x", readinessTimeout: "5ms" } }, /gateway\.readinessTimeout must be from 10ms to 1m/],
    [{ admin: { metrics: { public: "yes" } } }, /admin\.metrics\.public/],
    [{ admin: { metrics: { token: "x" } } }, /admin\.metrics\.token is not a known setting/],
    [{ admin: { metrics: { sampleEvery: -1 } } }, /admin\.metrics\.sampleEvery must be an integer/],
    [{ routes: [] }, /routes must be a non-empty list/],
    [{ routes: [{ method: "GET", path: "/a", permission: "superuser" }] }, /route #1 \(GET \/a\): unknown permission/],
    [{ routes: [{ method: "POST", path: "/a", permission: "trade", degradable: true }] }, /only public and read routes may be degradable/],
    [{ limits: { key: [{ name: "K", limit: 1, window: "1m" }] } }, /limits\.key\[0\]\.name/],
    [{ limits: { key: [{ name: "k", limit: 0, window: "1m" }] } }, /limits\.key\[0\]\.limit/],
    [{ limits: { key: [{ name: "k", limit: 1, window: "soon" }] } }, /limits\.key\[0\]\.window must be a duration/],
    [{ limits: { key: [{ name: "k", limit: 1 }] } }, /limits\.key\[0\]\.window is required/],
    [{ limits: { key: [{ name: "k", limit: 1, window: "1m" }], ip: [{ name: "k", limit: 1, window: "1m" }] } }, /used twice/],
    [{ limits: { perUser: [] } }, /limits\.perUser is not a known setting/],
    [{ limits: { ipv6Prefix: 31 } }, /limits\.ipv6Prefix must be an integer from 32 to 128/],
    [{ limits: { ipv6Prefix: 129 } }, /limits\.ipv6Prefix must be an integer from 32 to 128/],
    [{ limits: { ipv6Prefix: "64" } }, /limits\.ipv6Prefix must be an integer from 32 to 128/],
    [{ limits: { orders: [{ name: "orders-1d", limit: 200_000_000, window: "1d" }] } }, /limits\.orders\[0\]\.limit must be at most 104249991 for a window of 1d/],
    [
      { routes: [{ method: "GET", path: "/heavy", permission: "read", weight: 50 }], limits: { key: [{ name: "key-weight-1s", limit: 20, window: "1s" }] } },
      /route #1 \(GET \/heavy\) weighs 50, more than limit key-weight-1s allows per window \(20\)/,
    ],
    [{ hot: { backend: "memcached" } }, /hot\.backend/],
    [{ hot: { backend: "redis", url: "http://x" } }, /hot\.url/],
    [{ environment: "prod" }, /environment/],
    [{ log: { level: "loud" } }, /log\.level/],
  ])("refuses %j, naming the field", (extra, message) => {
    expect(refused(extra)).toMatch(message);
  });
});
