import { describe, expect, it } from "vitest";
import { ConfigError, parseConfig } from "../../src/config/config.js";
import { DEMO_WEBSOCKET_ROUTES } from "@portcullis/demo-exchange";
import { WEBSOCKET_CLOSE_CODES, closeCodeFor } from "../../src/gateway/websocket/index.js";
import { errorCatalogue, type ErrorCode } from "../../src/errors/catalogue.js";
import { readFileSync } from "node:fs";

const base = { gateway: { upstream: "http://127.0.0.1:9000" }, routes: [{ method: "GET", path: "/a", permission: "read" }] };
const route = { path: "/ws", methods: { time: { permission: "public" } } };

function refused(websocket: unknown, extra: Record<string, unknown> = {}): string {
  try {
    parseConfig({ ...base, ...extra, websocket }, "/srv");
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error("expected a ConfigError");
}

describe("the websocket section of the config", () => {
  it("is optional (no routes), and compiles the demo's route with Binance's session methods added", () => {
    expect(parseConfig(base, "/srv").websocket.routes).toEqual([]);
    const c = parseConfig({ ...base, websocket: { routes: DEMO_WEBSOCKET_ROUTES, maxMessageBytes: 4096 } }, "/srv");
    const demo = c.websocket.routes[0];
    expect(demo?.dialect).toBe("binance");
    expect([...(demo?.methods.keys() ?? [])].sort()).toEqual(
      ["account.status", "openOrders.status", "order.cancel", "order.place", "order.status", "ping", "session.logon", "session.logout", "session.status", "time"],
    );
    expect(demo?.methods.get("order.place")?.route).toMatchObject({ permission: "trade", weight: 1, tags: ["order"] });
    // A logon is decided like the signed request it is; status and logout are public.
    expect(demo?.methods.get("session.logon")?.route).toMatchObject({ permission: "authenticated", weight: 2 });
    expect(demo?.methods.get("session.status")?.route).toMatchObject({ permission: null, weight: 2 });
    expect(demo?.signedUpgrade).toEqual({ method: "GET", path: "/ws-api/v3", permission: "authenticated", weight: 2 });
    expect(demo?.anonymousUpgrade).toEqual({ method: "GET", path: "/ws-api/v3", permission: "public", weight: 2, dialect: "binance" });
    expect(c.websocket).toMatchObject({ maxMessageBytes: 4096, pingIntervalMs: 30_000, maxPendingMessages: 64 });
  });

  it("refuses mistakes at startup, naming the route and the field", () => {
    expect(refused({ routes: [{ ...route, methods: { "order.place": { permission: "trad" } } }] })).toBe('websocket.routes[0] (/ws).methods.order.place: unknown permission "trad"');
    expect(refused({ routes: [route, route] })).toBe("websocket.routes[1] (/ws): path /ws is listed twice");
    expect(refused({ routes: [{ ...route, path: "/ws/:id" }] })).toBe("websocket.routes[0] (/ws/:id): a WebSocket path is exact (no :param or *)");
    expect(refused({ routes: [{ ...route, path: "/portcullis/ws" }] })).toContain("reserved for the gateway's own endpoints");
    expect(refused({ routes: [{ ...route, path: "/a/../b" }] })).toContain('bad path segment ".."');
    expect(refused({ routes: [{ ...route, dialect: "kraken" }] })).toContain('unknown dialect "kraken"');
    expect(refused({ routes: [{ ...route, dialect: "binance", methods: { "session.logon": { permission: "public" } } }] })).toBe(
      "websocket.routes[0] (/ws): session.logon is answered by the gateway on a Binance route and cannot be mapped",
    );
    expect(refused({ routes: [{ ...route, anonymous: "yes" }] })).toBe("websocket.routes[0] (/ws).anonymous must be true or false");
    expect(refused({ routes: [{ ...route, permission: "public" }] })).toContain('use "anonymous": true');
    expect(refused({ routes: [{ ...route, methods: {} }] })).toBe("websocket.routes[0] (/ws): methods must map at least one method");
    expect(refused({ routes: [{ ...route, methods: { "bad name": { permission: "read" } } }] })).toContain('bad method name "bad name"');
    expect(refused({ routes: [{ ...route, methods: { t: { permission: "read", tags: ["fast"] } } }] })).toContain('tags must be a list of "order" / "cancel"');
    expect(refused({ routes: [{ ...route, extra: 1 }] })).toContain('unknown field "extra"');
    expect(refused({ routes: [route], maxMessageBytes: 1 })).toBe("websocket.maxMessageBytes must be an integer from 64 to 16777216");
    expect(refused({ routes: [route], other: true })).toContain('websocket: unknown field "other"');
    expect(refused({ routes: [{ ...route, methods: { heavy: { permission: "read", weight: 5000 } } }] })).toBe(
      "WS /ws method heavy weighs 5000, more than limit key-weight-1m allows per window (1200): it could never be admitted",
    );
  });
});

describe("close codes", () => {
  it("are 4xxx for every end of an identity, with the error code as the reason, and documented", () => {
    expect(closeCodeFor("KEY_REVOKED")).toBe(4001);
    expect(closeCodeFor("SESSION_EXPIRED")).toBe(4002);
    expect(closeCodeFor("SCOPE_MISSING")).toBe(1008);
    const doc = readFileSync(new URL("../../../../docs/websocket.md", import.meta.url), "utf8");
    for (const [code, close] of Object.entries(WEBSOCKET_CLOSE_CODES) as [ErrorCode, number][]) {
      expect(errorCatalogue[code]).toBeDefined();
      expect(doc).toContain(`| ${String(close)} | \`${code}\` |`);
    }
  });
});
