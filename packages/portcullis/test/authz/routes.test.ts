import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { RouteTable, RouteTableError, type RouteSpec, isCanonicalPath } from "../../src/authz/routes.js";
import { grantedPermissions } from "../../src/contract/permissions.js";

const table = new RouteTable([
  { method: "GET", path: "/api/v3/time", permission: "public" },
  { method: "GET", path: "/api/v3/account", permission: "read", weight: 20 },
  { method: ["POST", "DELETE"], path: "/api/v3/order", permission: "trade", tags: ["order"] },
  { method: "GET", path: "/api/v3/orders/:id", permission: "read" },
  { method: "GET", path: "/api/v3/orders/open", permission: "read", weight: 3 },
  { method: "GET", path: "/files/*", permission: "read", weight: 7 },
  { method: "GET", path: "/files/special/:name", permission: "trade" },
]);

describe("route table: matching", () => {
  it("maps static routes, and methods separately", () => {
    expect(table.match("GET", "/api/v3/account")?.permission).toBe("read");
    expect(table.match("GET", "/api/v3/account")?.weight).toBe(20);
    expect(table.match("POST", "/api/v3/order")?.tags).toEqual(["order"]);
    expect(table.match("DELETE", "/api/v3/order")?.permission).toBe("trade");
    expect(table.match("PUT", "/api/v3/order")).toBeUndefined();
    expect(table.match("GET", "/api/v3/time")?.permission).toBeNull();
  });

  it("denies anything unmapped (default deny)", () => {
    for (const [m, p] of [
      ["GET", "/api/v3/accounts"],
      ["GET", "/api/v3"],
      ["GET", "/"],
      ["GET", "/api/v3/order"],
      ["GET", "/files"],
    ] as const) {
      expect(table.match(m, p)).toBeUndefined();
    }
  });

  it("prefers literal over parameter over wildcard", () => {
    expect(table.match("GET", "/api/v3/orders/open")?.weight).toBe(3);
    expect(table.match("GET", "/api/v3/orders/123")?.pattern).toBe("/api/v3/orders/:id");
    expect(table.match("GET", "/files/special/x")?.permission).toBe("trade");
    expect(table.match("GET", "/files/special/x/y")?.weight).toBe(7);
    expect(table.match("GET", "/files/special")?.weight).toBe(7);
    expect(table.match("GET", "/files/a/b/c")?.weight).toBe(7);
  });
});

describe("route table: validation at startup names the route", () => {
  const cases: [string, RouteSpec[], RegExp][] = [
    ["unknown permission", [{ method: "GET", path: "/a", permission: "trading" }], /route #1 \(GET \/a\): unknown permission "trading"/],
    ["bad method", [{ method: "get", path: "/a", permission: "read" }], /bad method "get"/],
    ["bad path", [{ method: "GET", path: "a", permission: "read" }], /path must start with/],
    ["dot segment", [{ method: "GET", path: "/a/../b", permission: "read" }], /bad path segment "\.\."/],
    ["wildcard not last", [{ method: "GET", path: "/a/*/b", permission: "read" }], /only be the last segment/],
    ["reserved prefix", [{ method: "GET", path: "/portcullis/v1/x", permission: "read" }], /reserved/],
    ["bad weight", [{ method: "GET", path: "/a", permission: "read", weight: -1 }], /weight/],
    [
      "duplicate",
      [
        { method: "GET", path: "/a/:x", permission: "read" },
        { method: "GET", path: "/a/:y", permission: "trade" },
      ],
      /route #1 \(GET \/a\/:x\) and route #2 \(GET \/a\/:y\) are duplicates/,
    ],
    [
      "ambiguous overlap",
      [
        { method: "GET", path: "/a/:x/c", permission: "read" },
        { method: "GET", path: "/a/b/:y", permission: "trade" },
      ],
      /route #1 \(GET \/a\/:x\/c\) and route #2 \(GET \/a\/b\/:y\) overlap ambiguously/,
    ],
    [
      "ambiguous wildcard",
      [
        { method: "GET", path: "/a/*", permission: "read" },
        { method: "GET", path: "/:x/b", permission: "trade" },
      ],
      /overlap ambiguously/,
    ],
  ];
  it.each(cases)("%s", (_name, specs, message) => {
    expect(() => new RouteTable(specs)).toThrow(RouteTableError);
    expect(() => new RouteTable(specs)).toThrow(message);
  });

  it("accepts overlapping routes when one is more specific everywhere", () => {
    expect(
      () =>
        new RouteTable([
          { method: "GET", path: "/a/:x", permission: "read" },
          { method: "GET", path: "/a/b", permission: "trade" },
          { method: "GET", path: "/a/*", permission: "read" },
          { method: "POST", path: "/a/:x", permission: "trade" },
        ]),
    ).not.toThrow();
  });
});

describe("canonical paths", () => {
  it.each(["/", "/a", "/api/v3/order", "/a/b%20c", "/a/%C3%A9", "/a:b@c"])("accepts %j", (p) => {
    expect(isCanonicalPath(p)).toBe(true);
  });
  it.each(["", "a", "//a", "/a//b", "/a/", "/./a", "/a/..", "/a/../b", "/%61", "/a%2e", "/a%2F", "/a/b%2fc", "/a%zz", "/a%4", "/a b", "/a\\b", "/a#b", "/\u00e9"])(
    "refuses %j",
    (p) => {
      expect(isCanonicalPath(p)).toBe(false);
    },
  );

  it("never lets a refused path reach a route through another spelling", () => {
    // Any path that decodes to a mapped route but is not literally that route is refused.
    fc.assert(
      fc.property(fc.constantFrom("/api/v3/order", "/api/v3/account"), fc.nat({ max: 10 }), (path, pos) => {
        const i = 1 + (pos % (path.length - 1));
        const ch = path.charCodeAt(i);
        const encoded = `${path.slice(0, i)}%${ch.toString(16).toUpperCase().padStart(2, "0")}${path.slice(i + 1)}`;
        expect(isCanonicalPath(encoded)).toBe(false);
      }),
    );
  });
});

describe("permissions", () => {
  it("grants exactly the named permissions; admin:* grants every admin permission", () => {
    expect([...grantedPermissions(["trade"])]).toEqual(["trade"]);
    expect(grantedPermissions(["admin:*"]).has("admin:keys")).toBe(true);
    expect(grantedPermissions(["admin:*"]).has("trade")).toBe(false);
    expect(grantedPermissions(["read", "bogus"]).has("bogus")).toBe(false);
  });
});
