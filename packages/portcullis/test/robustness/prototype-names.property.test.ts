/**
 * Every parser of untrusted JSON, fed every name of `Object.prototype` (`__proto__`,
 * `constructor`, `toString`, `hasOwnProperty`, `valueOf`…) as a member name, at the top level and
 * in each nested object it reads, with any JSON value: each refuses cleanly with its own code,
 * never accepts, never throws a TypeError, and never changes `Object.prototype`.
 *
 * `__proto__` used to pass the admin API's unknown-field check: the field errors were a plain
 * object, and `errors["__proto__"] = "unknown field"` set its prototype instead of adding a field.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ConfigError, parseConfigText } from "../../src/config/config.js";
import { parseAuditConfig } from "../../src/audit/config.js";
import { parseCustodyConfig } from "../../src/custody/config.js";
import { parseJson, record } from "../../src/contract/json.js";
import { parseBearerToken } from "../../src/dialects/coinbase/token.js";
import { PortcullisError } from "../../src/errors/catalogue.js";
import type { Result } from "../../src/errors/result.js";
import { parseJsonBody } from "../../src/gateway/http.js";
import { parseLogon } from "../../src/gateway/session-endpoints.js";
import { isBadMessage, parseMessage } from "../../src/gateway/websocket/messages.js";
import { parseCreateKeyInput, parseLimitsInput, parseReasonInput, parseRotateKeyInput, parseUpdateKeyInput } from "../../src/keys/input.js";

const NAMES = Object.getOwnPropertyNames(Object.prototype);
const PROTOTYPE_BEFORE = Object.getOwnPropertyNames(Object.prototype).sort();
const NOW = 1_750_000_000_000;
const ACCEPTED = "accepted";

type Path = readonly (string | number)[];

interface JsonParser {
  /** Where the parser reads untrusted JSON. */
  readonly name: string;
  /** The code of its refusal. */
  readonly code: string;
  /** A document it accepts. */
  readonly base: unknown;
  /** The objects of `base` that a member is added to (the top level is []). */
  readonly places: readonly Path[];
  /** The code it refuses `text` with, or ACCEPTED. */
  run(text: string): string;
}

const body = (text: string): unknown => parseJsonBody(Buffer.from(text));
const resultCode = (r: Result<unknown>): string => (r.ok ? ACCEPTED : r.code);
function thrownCode(f: () => unknown): string {
  try {
    f();
    return ACCEPTED;
  } catch (err) {
    if (err instanceof PortcullisError) return err.code;
    if (err instanceof ConfigError) return err.code;
    throw err;
  }
}
const b64 = (text: string): string => Buffer.from(text).toString("base64url");

const KID = "pck_test_v1_0123456789abcdef";
const CLAIMS = { sub: KID, iss: "cdp", nbf: 1_750_000_000, exp: 1_750_000_120, uri: "GET api.coinbase.com/api/v3/brokerage/accounts" };
const HEADER = { alg: "ES256", kid: KID, nonce: "0123456789abcdef", typ: "JWT" };
const tokenCode = (header: string, claims: string): string => {
  const parsed = parseBearerToken(`Bearer ${b64(header)}.${b64(claims)}.AAAA`);
  return "compact" in parsed ? ACCEPTED : parsed.code;
};

const CONFIG = {
  dataDir: "./data",
  gateway: { upstream: "http://127.0.0.1:9000" },
  admin: { enabled: true },
  signatures: { windowMs: 5000 },
  routes: [{ method: "GET", path: "/a", permission: "read" }],
  limits: { key: [{ name: "key-weight-1m", limit: 1200, window: "1m" }], shield: { strikes: 5 } },
  sessions: { enabled: true },
  store: { pollInterval: "1s" },
  hot: { backend: "memory" },
  log: { level: "info" },
  custody: { provider: "keyring" },
  audit: { requests: "all" },
  websocket: { routes: [{ path: "/ws", methods: { time: { permission: "public" } } }] },
};

/** Every parser of untrusted JSON in Portcullis. */
const PARSERS: readonly JsonParser[] = [
  {
    name: "admin API POST /keys: parseCreateKeyInput",
    code: "VALIDATION_FAILED",
    base: { account: "acct-1", scopes: ["read"], limits: { "key-weight-1m": 5 } },
    places: [[], ["limits"]],
    run: (text) => resultCode(parseCreateKeyInput(body(text), NOW)),
  },
  {
    name: "admin API PATCH /keys/:id: parseUpdateKeyInput",
    code: "VALIDATION_FAILED",
    base: { label: "bot" },
    places: [[]],
    run: (text) => resultCode(parseUpdateKeyInput(body(text))),
  },
  {
    name: "admin API POST /keys/:id/rotate: parseRotateKeyInput",
    code: "VALIDATION_FAILED",
    base: { grace: "1h" },
    places: [[]],
    run: (text) => resultCode(parseRotateKeyInput(body(text))),
  },
  {
    name: "admin API revoke, suspend, end-sessions: parseReasonInput",
    code: "VALIDATION_FAILED",
    base: { reason: "leaked" },
    places: [[]],
    run: (text) => resultCode(parseReasonInput(body(text))),
  },
  {
    name: "admin API PUT /keys/:id/limits: parseLimitsInput",
    code: "VALIDATION_FAILED",
    base: { limits: { "key-weight-1m": 5 } },
    places: [[], ["limits"]],
    run: (text) => resultCode(parseLimitsInput(body(text))),
  },
  {
    name: "session logon body: parseLogon",
    code: "VALIDATION_FAILED",
    base: { ttl: "5m", bindAddress: true },
    places: [[]],
    run: (text) => thrownCode(() => parseLogon(body(text))),
  },
  {
    name: "WebSocket message: parseMessage",
    code: "MESSAGE_MALFORMED",
    base: { id: 1, method: "order.place", params: { symbol: "BTCUSDT", quantity: 1 } },
    places: [[], ["params"]],
    run: (text) => {
      const message = parseMessage(Buffer.from(text), false);
      return isBadMessage(message) ? message.denial.code : ACCEPTED;
    },
  },
  {
    name: "Coinbase JWT header and claims: parseBearerToken",
    code: "TOKEN_MALFORMED",
    base: { header: HEADER, claims: CLAIMS },
    places: [["header"], ["claims"]],
    run: (text) => {
      const both = parseJson(text) as { header: unknown; claims: unknown };
      return tokenCode(JSON.stringify(both.header), JSON.stringify(both.claims));
    },
  },
  {
    name: "config file: parseConfigText",
    code: "CONFIG_INVALID",
    base: CONFIG,
    places: [
      [],
      ["gateway"],
      ["admin"],
      ["signatures"],
      ["routes", 0],
      ["limits"],
      ["limits", "key", 0],
      ["limits", "shield"],
      ["sessions"],
      ["store"],
      ["hot"],
      ["log"],
      ["custody"],
      ["audit"],
      ["websocket"],
      ["websocket", "routes", 0],
      ["websocket", "routes", 0, "methods"],
      ["websocket", "routes", 0, "methods", "time"],
    ],
    run: (text) => thrownCode(() => parseConfigText(text, "/srv")),
  },
  {
    name: "config custody section: parseCustodyConfig",
    code: "VALIDATION_FAILED",
    base: { provider: "pkcs11", module: "/usr/lib/softhsm/libsofthsm2.so", tokenLabel: "portcullis" },
    places: [[]],
    run: (text) => resultCode(parseCustodyConfig(parseJson(text), "/srv")),
  },
  {
    name: "config audit section: parseAuditConfig",
    code: "VALIDATION_FAILED",
    base: { requests: "all", batchWindowMs: 50 },
    places: [[]],
    run: (text) => resultCode(parseAuditConfig(parseJson(text), "/srv/data")),
  },
];

/**
 * The JSON text of `base` with the member `name: value` added to the object at `path`. The member
 * is defined, not assigned, so `__proto__` is written as a member like any other.
 */
function withMember(base: unknown, path: Path, name: string, value: unknown): string {
  const copy = JSON.parse(JSON.stringify(base)) as unknown;
  let target = copy;
  for (const step of path) target = (target as Record<string, unknown>)[String(step)];
  Object.defineProperty(target, name, { value, enumerable: true, writable: true, configurable: true });
  return JSON.stringify(copy);
}

function expectPrototypeUntouched(): void {
  expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(PROTOTYPE_BEFORE);
}

const value = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }),
  fc.constant({ polluted: true }),
  fc.constant({ toString: "x", valueOf: 1 }),
  fc.constant("unknown field"),
);

describe("parsers of untrusted JSON and the names of Object.prototype", () => {
  it.each(PARSERS.map((p) => [p.name, p] as const))("%s accepts its base document", (_name, parser) => {
    expect(parser.run(JSON.stringify(parser.base))).toBe(ACCEPTED);
  });

  it("every parser refuses every Object.prototype name, at the top level and nested, with its own code", () => {
    const cases = PARSERS.flatMap((parser) => parser.places.map((path) => ({ parser, path })));
    fc.assert(
      fc.property(fc.constantFrom(...cases), fc.constantFrom(...NAMES), value, ({ parser, path }, name, v) => {
        const text = withMember(parser.base, path, name, v);
        expect(parser.run(text), `${parser.name} at ${JSON.stringify(path)}: ${text}`).toBe(parser.code);
        expectPrototypeUntouched();
      }),
      { numRuns: 2000 },
    );
  });

  it("every name, every place: refused (exhaustively, with an object value)", () => {
    for (const parser of PARSERS) {
      for (const path of parser.places) {
        for (const name of NAMES) {
          const text = withMember(parser.base, path, name, { polluted: true });
          expect(parser.run(text), `${parser.name} at ${JSON.stringify(path)}: ${text}`).toBe(parser.code);
        }
      }
    }
    expectPrototypeUntouched();
  });

  it("names the unknown field __proto__ in the refusal's fields", () => {
    const refused = parseCreateKeyInput(body('{"account":"acct-1","scopes":["read"],"__proto__":{"polluted":true}}'), NOW);
    expect(refused.ok).toBe(false);
    if (refused.ok) return;
    expect(Object.keys(refused.fields)).toEqual(["__proto__"]);
    expect(refused.message).toContain("__proto__: unknown field");
    let logon: unknown = null;
    try {
      parseLogon(body('{"__proto__":1}'));
    } catch (err) {
      logon = err;
    }
    expect(logon).toBeInstanceOf(PortcullisError);
    expect(Object.keys((logon as PortcullisError).fields ?? {})).toEqual(["__proto__"]);
  });

  it("parseJson gives objects without a prototype; arrays keep theirs", () => {
    const parsed = parseJson('{"a":{"b":[{"c":1}]},"__proto__":{"polluted":true}}') as Record<string, unknown>;
    expect(Object.getPrototypeOf(parsed)).toBeNull();
    expect(Object.hasOwn(parsed, "__proto__")).toBe(true);
    const a = parsed.a as { b: Record<string, unknown>[] };
    expect(Object.getPrototypeOf(a)).toBeNull();
    expect(Array.isArray(a.b)).toBe(true);
    expect(Object.getPrototypeOf(a.b[0])).toBeNull();
    expect(parsed.constructor).toBeUndefined();
    const r = record<string>();
    r["__proto__"] = "x";
    expect(Object.keys(r)).toEqual(["__proto__"]);
    expectPrototypeUntouched();
  });

  it("a config error names the field, it is not a TypeError", () => {
    expect(() => parseConfigText('{"gateway":{"upstream":"http://x"},"routes":[{"method":{"a":1},"path":"/a","permission":{"b":2}}]}', "/srv")).toThrow(ConfigError);
  });
});
