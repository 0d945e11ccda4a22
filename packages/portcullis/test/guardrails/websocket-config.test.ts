/**
 * WebSocket methods declare the operation their messages carry (gateway/websocket/config.ts), so
 * the guardrails apply on WebSocket as on the REST twin: on a Binance route `order.place` and
 * `order.cancel` declare theirs by default; a method may declare one explicitly, or none (null);
 * an operation the route's shape cannot read is a configuration error naming the method.
 */
import { describe, expect, it } from "vitest";
import { WebSocketConfigError, compileWebSocketSettings } from "../../src/gateway/websocket/config.js";

function methodRoute(dialect: string | undefined, methods: Record<string, unknown>, name: string) {
  const settings = compileWebSocketSettings({ routes: [{ path: "/ws", ...(dialect === undefined ? {} : { dialect }), methods }] });
  const method = settings.routes[0]?.methods.get(name);
  if (method === undefined) throw new Error(`no method ${name}`);
  return method.route;
}

describe("a WebSocket method's operation", () => {
  it("on a Binance route, order.place and order.cancel declare their REST twin's, read in Binance's shape", () => {
    const methods = { "order.place": { permission: "trade" }, "order.cancel": { permission: "trade" }, "account.status": { permission: "read" } };
    expect(methodRoute("binance", methods, "order.place")).toMatchObject({ operation: "order.place", dialect: "binance" });
    expect(methodRoute("binance", methods, "order.cancel")).toMatchObject({ operation: "order.cancel" });
    expect(methodRoute("binance", methods, "account.status")).toMatchObject({ operation: null });
    expect(methodRoute("binance", methods, "session.logon")).toMatchObject({ operation: null });
  });

  it("may be declared explicitly, or switched off with null", () => {
    expect(methodRoute("binance", { "order.place": { permission: "trade", operation: null } }, "order.place").operation).toBeNull();
    expect(methodRoute(undefined, { place: { permission: "trade", operation: "order.place" } }, "place")).toMatchObject({ operation: "order.place", dialect: null });
    expect(methodRoute(undefined, { "order.place": { permission: "trade" } }, "order.place").operation).toBeNull();
  });

  it("an operation the route's shape cannot read is WEBSOCKET_CONFIG_INVALID, naming the method", () => {
    const bad = (operation: unknown) => () => compileWebSocketSettings({ routes: [{ path: "/ws", dialect: "binance", methods: { x: { permission: "trade", operation } } }] });
    expect(bad("key.create")).toThrow(WebSocketConfigError);
    expect(bad("key.create")).toThrow(/methods\.x\.operation: "key\.create" is not an operation of the binance shape/);
    expect(bad("order.explode")).toThrow(WebSocketConfigError);
    expect(bad(5)).toThrow(WebSocketConfigError);
  });
});
