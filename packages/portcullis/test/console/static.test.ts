/**
 * The console's static files on the admin listener (admin/console.ts): served from memory under
 * /console/, precompressed (brotli, gzip) by Accept-Encoding, cached by kind (assets immutable,
 * index.html no-store), with the contract's security headers; unknown app paths are index.html,
 * missing assets 404; no URL ever reaches the filesystem (traversal attempts over a raw socket,
 * since fetch would normalise them). A fake dist stands in for packages/console's build.
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { brotliDecompressSync, gunzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminApi } from "../../src/admin/server.js";
import { CONSOLE_CSP } from "../../src/admin/console.js";
import { createLogger, silentLogger } from "../../src/log/logger.js";
import { type TestCore, makeCore } from "../support/harness.js";

const INDEX = `<!doctype html><html><head><script type="module" src="/console/assets/index-abc123.js"></script><link rel="stylesheet" href="/console/assets/index-abc123.css"></head><body><div id="root"></div></body></html>`;
const SCRIPT = `console.log("portcullis console");\n`.repeat(200);
const STYLE = `body { font-family: system-ui; }\n`.repeat(100);

let t: TestCore;
let dist: string;
let secretDir: string;
let api: AdminApi;
let port: number;

interface Raw {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** A request whose path goes to the server byte for byte. */
function raw(method: string, path: string, headers: Record<string, string> = {}, p = port): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port: p, method, path, headers, insecureHTTPParser: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) });
      });
    });
    req.on("error", reject);
    req.end();
  });
}

const code = (r: Raw): string => (JSON.parse(r.body.toString("utf8")) as { code: string }).code;

beforeAll(async () => {
  t = await makeCore();
  dist = mkdtempSync(join(tmpdir(), "console-dist-"));
  mkdirSync(join(dist, "assets"));
  writeFileSync(join(dist, "index.html"), INDEX);
  writeFileSync(join(dist, "assets", "index-abc123.js"), SCRIPT);
  writeFileSync(join(dist, "assets", "index-abc123.css"), STYLE);
  writeFileSync(join(dist, "favicon.svg"), "<svg xmlns='http://www.w3.org/2000/svg'/>");
  writeFileSync(join(dist, ".env"), "SECRET=dotfile");
  // A file outside the dist, and a link to it inside: neither may ever be served.
  secretDir = mkdtempSync(join(tmpdir(), "console-secret-"));
  writeFileSync(join(secretDir, "secret.txt"), "TOP-SECRET-OUTSIDE");
  symlinkSync(join(secretDir, "secret.txt"), join(dist, "linked.txt"));
  api = new AdminApi({ core: t.core, logger: silentLogger(), console: { dir: dist } });
  port = (await api.listen(0, "127.0.0.1")).port;
});
afterAll(async () => {
  await api.close(500);
  await t.cleanup();
  rmSync(dist, { recursive: true, force: true });
  rmSync(secretDir, { recursive: true, force: true });
});

function expectSecurityHeaders(r: Raw): void {
  expect(r.headers["content-security-policy"]).toBe(CONSOLE_CSP);
  expect(r.headers["x-content-type-options"]).toBe("nosniff");
  expect(r.headers["referrer-policy"]).toBe("no-referrer");
  expect(r.headers["cross-origin-opener-policy"]).toBe("same-origin");
  expect(r.headers["x-frame-options"]).toBe("DENY");
}

describe("console static files", () => {
  it("the CSP is the contract's: self only, no inline script or style, not framable", () => {
    expect(CONSOLE_CSP).toContain("default-src 'self'");
    expect(CONSOLE_CSP).toContain("connect-src 'self'");
    expect(CONSOLE_CSP).toContain("frame-ancestors 'none'");
    expect(CONSOLE_CSP).not.toContain("unsafe-inline");
    expect(CONSOLE_CSP).not.toContain("unsafe-eval");
  });

  it("/ and /console redirect to /console/", async () => {
    for (const path of ["/", "/console", "/?x=1", "/console?y"]) {
      const r = await raw("GET", path);
      expect({ path, status: r.status, location: r.headers.location }).toEqual({ path, status: 302, location: "/console/" });
      expectSecurityHeaders(r);
    }
  });

  it("/console/ is index.html, no-store, with the security headers", async () => {
    const r = await raw("GET", "/console/");
    expect(r.status).toBe(200);
    expect(r.body.toString("utf8")).toBe(INDEX);
    expect(r.headers["content-type"]).toBe("text/html; charset=utf-8");
    expect(r.headers["cache-control"]).toBe("no-store");
    expect(r.headers["content-length"]).toBe(String(Buffer.byteLength(INDEX)));
    expectSecurityHeaders(r);
  });

  it("assets are immutable, and answered brotli, gzip or plain by Accept-Encoding", async () => {
    const path = "/console/assets/index-abc123.js";
    const plain = await raw("GET", path);
    expect(plain.status).toBe(200);
    expect(plain.headers["cache-control"]).toBe("public, max-age=31536000, immutable");
    expect(plain.headers["content-type"]).toBe("text/javascript; charset=utf-8");
    expect(plain.headers["content-encoding"]).toBeUndefined();
    expect(plain.headers.vary).toBe("accept-encoding");
    expect(plain.body.toString("utf8")).toBe(SCRIPT);
    const br = await raw("GET", path, { "accept-encoding": "gzip, deflate, br" });
    expect(br.headers["content-encoding"]).toBe("br");
    expect(brotliDecompressSync(br.body).toString("utf8")).toBe(SCRIPT);
    expect(br.body.length).toBeLessThan(SCRIPT.length / 10);
    const gz = await raw("GET", path, { "accept-encoding": "gzip" });
    expect(gz.headers["content-encoding"]).toBe("gzip");
    expect(gunzipSync(gz.body).toString("utf8")).toBe(SCRIPT);
    // br refused with q=0: gzip.
    expect((await raw("GET", path, { "accept-encoding": "br;q=0, gzip" })).headers["content-encoding"]).toBe("gzip");
    expect((await raw("GET", path, { "accept-encoding": "identity" })).headers["content-encoding"]).toBeUndefined();
    const css = await raw("GET", "/console/assets/index-abc123.css", { "accept-encoding": "br" });
    expect(css.headers["content-type"]).toBe("text/css; charset=utf-8");
    expect(brotliDecompressSync(css.body).toString("utf8")).toBe(STYLE);
  });

  it("HEAD answers the headers only; ETag revalidation answers 304", async () => {
    const head = await raw("HEAD", "/console/assets/index-abc123.js", { "accept-encoding": "br" });
    expect(head.status).toBe(200);
    expect(head.body.length).toBe(0);
    const etag = head.headers.etag as string;
    expect(etag).toMatch(/^"[\w-]+"$/);
    const again = await raw("GET", "/console/assets/index-abc123.js", { "accept-encoding": "br", "if-none-match": etag });
    expect(again.status).toBe(304);
    expect(again.body.length).toBe(0);
    // Another encoding is another entity.
    expect((await raw("GET", "/console/assets/index-abc123.js", { "accept-encoding": "gzip", "if-none-match": etag })).status).toBe(200);
  });

  it("an app route is index.html; a missing asset is 404 ROUTE_NOT_FOUND, never HTML", async () => {
    for (const path of ["/console/keys", "/console/keys/pck_test_v1_abc", "/console/audit?event=key.*"]) {
      const r = await raw("GET", path);
      expect({ path, status: r.status, body: r.body.toString("utf8") }).toEqual({ path, status: 200, body: INDEX });
      expect(r.headers["cache-control"]).toBe("no-store");
    }
    const missing = await raw("GET", "/console/assets/index-old999.js");
    expect(missing.status).toBe(404);
    expect(code(missing)).toBe("ROUTE_NOT_FOUND");
    expectSecurityHeaders(missing);
  });

  it("only GET and HEAD: other methods on /console/ are ROUTE_NOT_FOUND", async () => {
    for (const method of ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"]) {
      const r = await raw(method, "/console/index.html");
      expect({ method, status: r.status, code: code(r) }).toEqual({ method, status: 404, code: "ROUTE_NOT_FOUND" });
    }
  });

  it("traversal attempts never reach the filesystem: dot segments, encodings, backslashes, NUL", async () => {
    const attempts = [
      "/console/../../../../etc/passwd",
      "/console/assets/../../../etc/passwd",
      "/console/./index.html",
      "/console/%2e%2e/%2e%2e/etc/passwd",
      "/console/%2E%2E%2Fetc%2Fpasswd",
      "/console/..%2f..%2fetc%2fpasswd",
      "/console/..%5c..%5cetc%5cpasswd",
      "/console/..\\..\\etc\\passwd",
      "/console/index.html%00.js",
      "/console/assets/index-abc123.js%00",
    ];
    for (const path of attempts) {
      const r = await raw("GET", path);
      expect({ path, status: r.status, code: code(r) }).toEqual({ path, status: 400, code: "PATH_NOT_CANONICAL" });
    }
    // Not a climb but not a file either: the app's index, never another file's bytes.
    for (const path of ["/console/etc/passwd", "/console//etc/passwd", "/console/%252e%252e/etc/passwd", "/console/linked.txt", "/console/.env"]) {
      const r = await raw("GET", path);
      const text = r.body.toString("utf8");
      expect({ path, status: r.status }).toEqual({ path, status: 200 });
      expect(text).toBe(INDEX);
      expect(text).not.toContain("TOP-SECRET");
      expect(text).not.toContain("SECRET=dotfile");
      expect(text).not.toContain("root:");
    }
  });

  it("other admin paths are untouched: /portcullis/v1/time, and an unknown path is ROUTE_NOT_FOUND", async () => {
    const time = await raw("GET", "/portcullis/v1/time");
    expect(time.status).toBe(200);
    expect(time.headers["content-security-policy"]).toBeUndefined();
    expect(code(await raw("GET", "/consoles"))).toBe("ROUTE_NOT_FOUND");
    expect(code(await raw("POST", "/"))).toBe("ROUTE_NOT_FOUND");
  });
});

describe("console absent or unbuilt", () => {
  const cases: [string, (d: string) => { dir: string } | undefined, string | null][] = [
    ["no console configured", () => undefined, null],
    ["a directory that does not exist", (d) => ({ dir: join(d, "missing") }), "the directory does not exist"],
    ["a directory without index.html", (d) => {
      mkdirSync(join(d, "empty"), { recursive: true });
      return { dir: join(d, "empty") };
    }, "no index.html"],
  ];
  for (const [name, dirOf, logged] of cases) {
    it(`${name}: /console/ answers 404 CONSOLE_NOT_AVAILABLE, the admin API works`, async () => {
      const base = mkdtempSync(join(tmpdir(), "console-absent-"));
      const lines: { msg: string; reason?: string }[] = [];
      const capturing = createLogger({ level: "info" }, { write: (line: string) => lines.push(JSON.parse(line) as { msg: string; reason?: string }) });
      const other = new AdminApi({ core: t.core, logger: capturing, console: dirOf(base) });
      const p = (await other.listen(0, "127.0.0.1")).port;
      try {
        for (const path of ["/console/", "/console/keys", "/console/assets/x.js"]) {
          const r = await raw("GET", path, {}, p);
          expect({ path, status: r.status, code: code(r) }).toEqual({ path, status: 404, code: "CONSOLE_NOT_AVAILABLE" });
        }
        expect((await raw("GET", "/", {}, p)).headers.location).toBe("/console/");
        expect((await raw("GET", "/portcullis/v1/time", {}, p)).status).toBe(200);
        if (logged !== null) expect(lines.find((l) => l.msg.startsWith("console not available"))?.reason).toContain(logged);
      } finally {
        await other.close(500);
        rmSync(base, { recursive: true, force: true });
      }
    });
  }
});
