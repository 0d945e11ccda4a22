/**
 * gateway/proxy.ts `upstreamRequestHeaders` remembers, per credential set, whether a header name
 * is dropped (at most a few hundred names): the answer must be the same whether it was computed
 * or remembered, for each credential set on its own, and past the cap.
 */
import { describe, expect, it } from "vitest";
import { upstreamRequestHeaders } from "../../src/gateway/proxy.js";

const DROPPED = ["X-Forwarded-For", "x_forwarded_host", "Portcullis-Account", "portcullis_identity", "X-Envoy-Original-Path", "Forwarded", "X-HTTP-Method-Override", "Connection", "Host", "Content-Length", "Proxy-Authorization"];

function forwardedNames(names: readonly string[], credentials: ReadonlySet<string>, connection?: string): string[] {
  const incoming: Record<string, string> = {};
  for (const name of names) incoming[name] = "v";
  if (connection !== undefined) incoming.connection = connection;
  return Object.keys(upstreamRequestHeaders(incoming, credentials));
}

describe("upstreamRequestHeaders: remembered answers", () => {
  it("drops the same names the first time and every time after, past the cap of remembered names", () => {
    const credentials = new Set(["x-mbx-apikey", "signature"]);
    const many = Array.from({ length: 600 }, (_, i) => `x-app-${String(i)}`);
    for (let round = 0; round < 3; round++) {
      expect(forwardedNames([...DROPPED, "X-MBX-APIKEY", "Signature", "accept"], credentials)).toEqual(["accept"]);
      expect(forwardedNames(many, credentials)).toEqual(many);
      // Names first seen past the cap are tested each time.
      expect(forwardedNames(["X-Forwarded-Late", "x_mbx_apikey", "x-late-ok"], credentials)).toEqual(["x-late-ok"]);
    }
  });

  it("answers for each credential set on its own", () => {
    const withKey = new Set(["x-mbx-apikey"]);
    const without = new Set<string>();
    expect(forwardedNames(["x-mbx-apikey", "accept"], withKey)).toEqual(["accept"]);
    expect(forwardedNames(["x-mbx-apikey", "accept"], without)).toEqual(["x-mbx-apikey", "accept"]);
    expect(forwardedNames(["x-mbx-apikey", "accept"], withKey)).toEqual(["accept"]);
  });

  it("a name the Connection header lists is dropped though it was remembered as forwarded", () => {
    const credentials = new Set<string>();
    expect(forwardedNames(["x-trace", "accept"], credentials)).toEqual(["x-trace", "accept"]);
    expect(forwardedNames(["x-trace", "accept"], credentials, "keep-alive, X_Trace")).toEqual(["accept"]);
    expect(forwardedNames(["x-trace", "accept"], credentials)).toEqual(["x-trace", "accept"]);
  });
});
