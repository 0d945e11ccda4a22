import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { ConfigError, DEFAULT_OUTAGE_GRACE_MS, parseConfig, parseConfigText } from "../../src/config/config.js";
import { stripJsonComments } from "../../src/config/jsonc.js";
import { STORE_FILE, StoreSettingsError, readStoreFile, sameStore, writeStoreFile } from "../../src/storage/location.js";

const base = { gateway: { upstream: "http://127.0.0.1:9000" }, routes: [{ method: "GET", path: "/a", permission: "read" }] };

function refused(store: unknown): string {
  try {
    parseConfig({ ...base, store }, "/srv");
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error("expected a ConfigError");
}

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe("config: store", () => {
  it("defaults to SQLite, with the poll interval and the outage grace", () => {
    expect(parseConfig(base, "/srv").store).toEqual({ backend: "sqlite", pollIntervalMs: 200, outageGraceMs: DEFAULT_OUTAGE_GRACE_MS });
    expect(parseConfig({ ...base, store: { backend: "sqlite", pollInterval: "1s", outageGrace: "off" } }, "/srv").store).toEqual({ backend: "sqlite", pollIntervalMs: 1000, outageGraceMs: 0 });
  });

  it("parses PostgreSQL with its schema and pool", () => {
    const c = parseConfig({ ...base, store: { backend: "postgres", url: "postgres://gw@db.internal:6432/venue", schema: "gw_live", poolSize: 20, outageGrace: "2m" } }, "/srv");
    expect(c.store).toEqual({ backend: "postgres", url: "postgres://gw@db.internal:6432/venue", schema: "gw_live", poolSize: 20, pollIntervalMs: 200, outageGraceMs: 120_000 });
    expect(parseConfig({ ...base, store: { backend: "postgres", url: "postgresql://db/venue" } }, "/srv").store).toMatchObject({ schema: "portcullis", poolSize: 10 });
  });

  it("refuses a password in the URL without repeating it", () => {
    const message = refused({ backend: "postgres", url: "postgres://gw:hunter2-secret@db/venue" });
    expect(message).toMatch(/must not hold a password.*PGPASSWORD/);
    expect(message).not.toContain("hunter2");
  });

  it.each([
    [{ backend: "mysql" }, /backend must be "sqlite" or "postgres"/],
    [{ backend: "postgres" }, /url is required/],
    [{ backend: "postgres", url: "http://db/venue" }, /must start with postgres:\/\//],
    [{ backend: "postgres", url: "postgres://db" }, /names no database/],
    [{ backend: "postgres", url: "postgres://db/venue?sslmode=disable" }, /must not carry parameters/],
    [{ backend: "postgres", url: "not a url" }, /is not a URL/],
    [{ backend: "postgres", url: "postgres://db/venue", schema: "Public" }, /schema must be lower-case/],
    [{ backend: "postgres", url: "postgres://db/venue", schema: "pg_catalog" }, /schema must be/],
    [{ backend: "postgres", url: "postgres://db/venue", poolSize: 0 }, /poolSize must be an integer from 1 to 1000/],
    [{ backend: "postgres", url: "postgres://db/venue", pool: 3 }, /store.pool: unknown setting/],
    [{ backend: "sqlite", url: "postgres://db/venue" }, /store.url: unknown setting with backend "sqlite"/],
    [{ outageGrace: "2h" }, /outageGrace must be at most 1h/],
    [{ outageGrace: 5 }, /outageGrace must be a duration/],
  ])("refuses %j", (store, message) => {
    expect(refused(store)).toMatch(message);
  });

  it("one store whatever the URL's spelling; another schema or database is another store", () => {
    const a = { backend: "postgres", url: "postgres://gw@DB:5432/venue", schema: "s", poolSize: 10 } as const;
    expect(sameStore(a, { ...a, url: "postgresql://gw@db/venue", poolSize: 2 })).toBe(true);
    expect(sameStore(a, { ...a, schema: "t" })).toBe(false);
    expect(sameStore(a, { ...a, url: "postgres://gw@db/other" })).toBe(false);
    expect(sameStore(a, { ...a, url: "postgres://other@db/venue" })).toBe(false);
    expect(sameStore(a, { backend: "sqlite" })).toBe(false);
    expect(sameStore({ backend: "sqlite" }, { backend: "sqlite" })).toBe(true);
  });

  it("a data directory names its store in store.json; none means SQLite; a bad one is refused", () => {
    const dir = mkdtempSync(join(tmpdir(), "pc-store-"));
    dirs.push(dir);
    expect(readStoreFile(dir)).toEqual({ backend: "sqlite" });
    writeStoreFile(dir, { backend: "postgres", url: "postgres://gw@db/venue", schema: "gw", poolSize: 4 });
    expect(readStoreFile(dir)).toEqual({ backend: "postgres", url: "postgres://gw@db/venue", schema: "gw", poolSize: 4 });
    expect(() => writeStoreFile(dir, { backend: "postgres", url: "postgres://gw@db/venue", schema: "gw", poolSize: 4 })).not.toThrow();
    writeFileSync(join(dir, STORE_FILE), "{ nope");
    expect(() => readStoreFile(dir)).toThrow(StoreSettingsError);
    writeFileSync(join(dir, STORE_FILE), JSON.stringify({ backend: "postgres", url: "postgres://gw:pw@db/venue" }));
    expect(() => readStoreFile(dir)).toThrow(/must not hold a password/);
  });
});

describe("config: comments", () => {
  it("reads // and /* */ comments outside strings, keeping strings that contain them", () => {
    const text = `// heading
{
  /* the gateway */
  "gateway": { "upstream": "http://127.0.0.1:9000/api//v1" }, // trailing
  "routes": [{ "method": "GET", "path": "/a/b", "permission": "read" /* inline */ }],
  "log": { "level": "info" } /* multi
  line */
}
`;
    const c = parseConfigText(text, "/srv");
    expect(c.gateway.upstream).toBe("http://127.0.0.1:9000/api//v1");
    expect(c.routes[0]?.path).toBe("/a/b");
    expect(JSON.parse(stripJsonComments('{"a": "x /* y */ z", "b": "//"} /* c */'))).toEqual({ a: "x /* y */ z", b: "//" });
  });

  it("keeps line and column: a JSON error after a comment points where it is in the file", () => {
    const text = '// one\n/* two\nthree */ { "a": 1,, }';
    const stripped = stripJsonComments(text);
    expect(stripped.length).toBe(text.length);
    expect(stripped.split("\n").length).toBe(3);
    expect(stripped.indexOf(",,")).toBe(text.indexOf(",,"));
  });

  it("handles escaped quotes inside strings, and leaves an unterminated comment to JSON's error", () => {
    expect(JSON.parse(stripJsonComments('{"a": "x\\" // not a comment"} // one'))).toEqual({ a: 'x" // not a comment' });
    expect(() => parseConfigText('{ "gateway": {} /* never closed', "/srv")).toThrow(ConfigError);
    expect(stripJsonComments('{"a":1}')).toBe('{"a":1}');
  });

  it("a trailing comma or an unquoted name stays an error", () => {
    expect(() => parseConfigText('{ "gateway": { "upstream": "http://a" }, }', "/srv")).toThrow(/not valid JSON/);
    expect(() => parseConfigText("{ gateway: {} }", "/srv")).toThrow(/not valid JSON/);
  });
});

