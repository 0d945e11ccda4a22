/**
 * `gateway.tls` and `admin.tls` (docs/tls.md): what the configuration accepts, its defaults, and
 * what it refuses with CONFIG_INVALID naming the setting.
 */
import { describe, expect, it } from "vitest";
import { ConfigError, parseConfig } from "../../src/config/config.js";
import { DEFAULT_TLS_RELOAD_INTERVAL_MS } from "../../src/gateway/tls.js";

const routes = [{ method: "GET", path: "/api/v3/account", permission: "read" }];
const upstream = "http://127.0.0.1:9000";

function parse(gateway: Record<string, unknown>, admin: Record<string, unknown> = {}) {
  return parseConfig({ gateway: { upstream, ...gateway }, admin, routes }, "/srv/portcullis");
}

function refused(gateway: Record<string, unknown>, admin: Record<string, unknown> = {}): string {
  try {
    parse(gateway, admin);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).code).toBe("CONFIG_INVALID");
    return (err as Error).message;
  }
  throw new Error("expected a ConfigError");
}

describe("gateway.tls and admin.tls", () => {
  it("are off by default: plain HTTP, scheme http", () => {
    const config = parse({});
    expect(config.gateway.tls).toBeNull();
    expect(config.admin.tls).toBeNull();
    expect(config.gateway.scheme).toBe("http");
  });

  it("resolve paths against the config's directory, default to no client certificate and a 5 s poll, and make the scheme https", () => {
    const config = parse({ tls: { cert: "tls/gw.crt", key: "/etc/keys/gw.key" } }, { tls: { cert: "a.crt", key: "a.key", ca: "ca.crt", clientAuth: "required", reloadInterval: "off" } });
    expect(config.gateway.tls).toEqual({ certFile: "/srv/portcullis/tls/gw.crt", keyFile: "/etc/keys/gw.key", caFile: null, clientAuth: "none", reloadIntervalMs: DEFAULT_TLS_RELOAD_INTERVAL_MS });
    expect(DEFAULT_TLS_RELOAD_INTERVAL_MS).toBe(5_000);
    expect(config.gateway.scheme).toBe("https");
    expect(config.admin.tls).toEqual({ certFile: "/srv/portcullis/a.crt", keyFile: "/srv/portcullis/a.key", caFile: "/srv/portcullis/ca.crt", clientAuth: "required", reloadIntervalMs: null });
    expect(parse({ tls: { cert: "c", key: "k", ca: "ca", clientAuth: "optional", reloadInterval: "30s" } }).gateway.tls).toMatchObject({ clientAuth: "optional", reloadIntervalMs: 30_000 });
  });

  it("gateway.clientCertHeader: a header name (lower-cased), with trusted proxies; absent by default", () => {
    expect(parse({}).gateway.clientCertHeader).toBeNull();
    expect(parse({ clientCertHeader: "X-Client-Cert", trustedProxies: ["10.0.0.0/8"] }).gateway.clientCertHeader).toBe("x-client-cert");
  });

  it("refuses what is not a valid setting, naming it", () => {
    expect(refused({ tls: true })).toMatch(/^gateway.tls must be an object/);
    expect(refused({ tls: {} })).toMatch(/^gateway.tls.cert is required/);
    expect(refused({ tls: { cert: "c" } })).toMatch(/^gateway.tls.key is required/);
    expect(refused({ tls: { cert: "", key: "k" } })).toMatch(/^gateway.tls.cert is required/);
    expect(refused({ tls: { cert: "c", key: 1 } })).toMatch(/^gateway.tls.key is required/);
    expect(refused({ tls: { cert: "c", key: "k", ca: 5, clientAuth: "optional" } })).toMatch(/^gateway.tls.ca must be the path/);
    expect(refused({ tls: { cert: "c", key: "k", certificate: "x" } })).toMatch(/^gateway.tls.certificate is not a known setting/);
    expect(refused({ tls: { cert: "c", key: "k", clientAuth: "request" } })).toMatch(/clientAuth must be "none", "optional" or "required"/);
    expect(refused({ tls: { cert: "c", key: "k", clientAuth: "required" } })).toMatch(/^gateway.tls.ca is required with clientAuth "required"/);
    expect(refused({ tls: { cert: "c", key: "k", ca: "ca" } })).toMatch(/^gateway.tls.ca is only used with clientAuth/);
    for (const interval of ["0s", "500ms", "2h", "soon", 5]) {
      expect(refused({ tls: { cert: "c", key: "k", reloadInterval: interval } })).toMatch(/^gateway.tls.reloadInterval must be a duration/);
    }
    expect(refused({ scheme: "http", tls: { cert: "c", key: "k" } })).toMatch(/gateway.scheme must be "https" \(or absent\) when gateway.tls is set/);
    expect(refused({}, { tls: { cert: "c" } })).toMatch(/^admin.tls.key is required/);
    expect(refused({ clientCertHeader: "X-Client-Cert" })).toMatch(/^gateway.clientCertHeader needs gateway.trustedProxies/);
    expect(refused({ clientCertHeader: "X Client Cert", trustedProxies: ["10.0.0.0/8"] })).toMatch(/^gateway.clientCertHeader must be a header name/);
    expect(refused({}, { tls: { cert: "c", key: "k", clientAuth: "optional" } })).toMatch(/^admin.tls.ca is required/);
  });
});
