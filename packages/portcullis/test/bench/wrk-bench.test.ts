/**
 * Benchmark 17's harness (bench/wrk-bench.js), without load: the request file and its decoding,
 * the generated wrk Lua script, the parser of wrk's result line, /proc/<pid>/stat parsing, the
 * nginx config, the gateway's config sections (accepted by the real config parser, limits raised)
 * and the request-file sizing. One test runs the generated script in the real wrk (when installed)
 * for one second over one connection against a local server, to show that it sends every
 * pre-generated request once, in order, and that a run past the end of its file is a failure.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { parseConfig } from "../../src/index.js";

const MODULE = fileURLToPath(new URL("../../../../bench/wrk-bench.js", import.meta.url));

interface WrkRun {
  readonly requests: number;
  readonly rps: number;
  readonly p50: number;
  readonly p99: number;
  readonly status: number;
  readonly failures: number;
  readonly overflow: number;
  readonly loaded: number;
  readonly sent: number;
}

interface WrkBench {
  rawHttpRequest(r: { method: string; url: string; headers: Record<string, string>; body?: string }): string;
  encodeRequests(requests: readonly string[]): Buffer;
  decodeRequests(bytes: Buffer): string[];
  luaScript(file: string, options?: { cycle?: boolean }): string;
  parseWrkOutput(stdout: string): WrkRun;
  procStat(text: string): { ppid: number; ticks: number };
  nginxConfig(o: { dir: string; port: number; upstreamPort: number; authorizerPort?: number | null; shipped?: string | null }): string;
  templateShipped(text: string, o: { port: number; upstreamPort: number; authorizerPort: number }): string;
  NGINX_CONF: string;
  NGINX_AUTH_REQUEST_CONF: string;
  gatewaySections(extra?: Record<string, unknown>): Record<string, unknown>;
  requestsFor(rate: number, seconds: number): number;
  runWrk(o: { dir: string; port: number; requests: readonly string[]; cycle: boolean; seconds: number; connections: number }): Promise<WrkRun>;
  wrkSection(result: { settings: Record<string, number>; missing: Record<string, string>; runs: readonly Record<string, unknown>[]; primeFailures: number }): {
    failures: number;
    summary: string[][];
    text: string[];
  };
  WRK_BIN: string;
}

const bench = (await import(pathToFileURL(MODULE).href)) as WrkBench;

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** What wrk prints for a run with the generated script (its own summary, then the script's line). */
const SAMPLE = [
  "Running 3s test @ http://127.0.0.1:40123/",
  "  1 threads and 32 connections",
  "  Thread Stats   Avg      Stdev     Max   +/- Stdev",
  "    Latency     3.62ms    5.95ms  95.96ms   95.13%",
  "    Req/Sec    11.64k     4.70k   18.17k    63.33%",
  "  34719 requests in 3.01s, 10.96MB read",
  "  Non-2xx or 3xx responses: 7",
  "Requests/sec:  11528.03",
  "Transfer/sec:      3.64MB",
  'PORTCULLIS_WRK {"requests":34719,"durationUs":3011700,"bytes":11492000,"connect":0,"read":2,"write":0,"status":7,"timeout":1,"p50Us":2320,"p90Us":6030,"p99Us":26950,"maxUs":95960,"meanUs":3620.4,"loaded":120000,"sent":34751,"overflow":0}',
  "",
].join("\n");

describe("benchmark 17: the request file", () => {
  it("writes an HTTP/1.1 request as sent on the wire, with a content-length for a body", () => {
    expect(bench.rawHttpRequest({ method: "GET", url: "/a?b=1", headers: { host: "gw.test", signature: "sig1=:x:" } })).toBe("GET /a?b=1 HTTP/1.1\r\nhost: gw.test\r\nsignature: sig1=:x:\r\n\r\n");
    expect(bench.rawHttpRequest({ method: "POST", url: "/o", headers: { host: "h" }, body: "a=1\n" })).toBe("POST /o HTTP/1.1\r\nhost: h\r\ncontent-length: 4\r\n\r\na=1\n");
    // A content-length the caller set is not repeated.
    expect(bench.rawHttpRequest({ method: "POST", url: "/o", headers: { host: "h", "Content-Length": "2" }, body: "{}" }).match(/content-length/gi)).toHaveLength(1);
  });

  it("round-trips requests whose bytes hold newlines and digits, in order", () => {
    const requests = ["GET / HTTP/1.1\r\nhost: a\r\n\r\n", "POST /x HTTP/1.1\r\ncontent-length: 7\r\n\r\n12\n34\n5", "é\n"];
    const bytes = bench.encodeRequests(requests);
    expect(bytes.toString("latin1").startsWith("27\nGET / HTTP/1.1")).toBe(true);
    expect(bench.decodeRequests(bytes)).toEqual(requests);
  });

  it("refuses a damaged file", () => {
    expect(() => bench.decodeRequests(Buffer.from("5\nabc", "latin1"))).toThrow(/bad length/);
    expect(() => bench.decodeRequests(Buffer.from("abc", "latin1"))).toThrow(/no length/);
  });

  it("sizes a file at three times the rate reached, never below 5,000 req/s, plus 5,000", () => {
    expect(bench.requestsFor(1000, 3)).toBe(50_000);
    expect(bench.requestsFor(8000, 3)).toBe(77_000);
    expect(bench.requestsFor(8000.5, 1)).toBe(29_002);
  });
});

describe("benchmark 17: the wrk script and its output", () => {
  it("loads the named file and replays it once, or in a cycle", () => {
    const once = bench.luaScript("/tmp/portcullis-bench-wrk-x/requests.bin");
    expect(once).toContain('local path = "/tmp/portcullis-bench-wrk-x/requests.bin"');
    expect(once).toContain("local cycle = false");
    expect(once).toMatch(/function init\(args\)/);
    expect(once).toMatch(/function request\(\)/);
    expect(once).toMatch(/function done\(summary, latency, requests\)/);
    expect(once).toContain('"PORTCULLIS_WRK "');
    expect(bench.luaScript("/tmp/f", { cycle: true })).toContain("local cycle = true");
  });

  it("quotes the path for Lua, and refuses one it cannot quote", () => {
    expect(bench.luaScript('/tmp/a"b\\c')).toContain('local path = "/tmp/a\\"b\\\\c"');
    expect(() => bench.luaScript("/tmp/a\nb")).toThrow(/ASCII/);
    expect(() => bench.luaScript("/tmp/é")).toThrow(/ASCII/);
  });

  it("parses the script's result line: counts, rate, percentiles in ms, every failure", () => {
    const run = bench.parseWrkOutput(SAMPLE);
    expect(run.requests).toBe(34_719);
    expect(run.rps).toBeCloseTo(34_719 / 3.0117, 3);
    expect(run.p50).toBeCloseTo(2.32, 6);
    expect(run.p99).toBeCloseTo(26.95, 6);
    expect(run.status).toBe(7);
    expect(run.failures).toBe(7 + 2 + 1);
    expect(run.overflow).toBe(0);
    expect(run.sent).toBe(34_751);
  });

  it("throws when the result line is missing or incomplete", () => {
    expect(() => bench.parseWrkOutput("Running 3s test @ http://127.0.0.1:1/\n")).toThrow(/no result line/);
    expect(() => bench.parseWrkOutput('PORTCULLIS_WRK {"requests":1,"durationUs":1}\n')).toThrow(/missing/);
  });
});

describe("benchmark 17: servers and processes", () => {
  it("reads CPU ticks and the parent from /proc/<pid>/stat, a command name with spaces and parentheses included", () => {
    const line = "4242 (nginx: worker (x) 1) S 4241 4241 4241 0 -1 4194624 1292 0 0 0 731 212 0 0 20 0 1 0 1234 99999 1200 18446744073709551615";
    expect(bench.procStat(line)).toEqual({ ppid: 4241, ticks: 943 });
  });

  it("configures nginx as one worker, no access log, keep-alive to the upstream; the authorizer rows run the shipped configs, only their addresses templated", () => {
    const plain = bench.nginxConfig({ dir: "/tmp/n", port: 8081, upstreamPort: 9000 });
    expect(plain).toContain("worker_processes 1;");
    expect(plain).toContain("access_log off;");
    expect(plain).toMatch(/upstream backend \{\s*server 127\.0\.0\.1:9000;\s*keepalive 64;/);
    expect(plain).toContain("listen 127.0.0.1:8081;");
    expect(plain).toContain("proxy_http_version 1.1;");
    expect(plain).toContain('proxy_set_header Connection "";');
    expect(plain).not.toContain("auth_request");
    for (const file of [bench.NGINX_CONF, bench.NGINX_AUTH_REQUEST_CONF]) {
      const shipped = readFileSync(file, "utf8");
      const conf = bench.nginxConfig({ dir: "/tmp/n", port: 8082, upstreamPort: 9001, authorizerPort: 9100, shipped });
      expect(conf).toContain("worker_processes 1;");
      expect(conf).toContain("access_log off;");
      expect(conf).toMatch(/upstream portcullis \{\s*server 127\.0\.0\.1:9100;/);
      expect(conf).toMatch(/upstream venue_api \{\s*server 127\.0\.0\.1:9001;/);
      expect(conf).toContain("listen 127.0.0.1:8082;");
      // Nothing else of the shipped file changed.
      expect(conf).toContain(shipped.replace("server 127.0.0.1:8081;", "server 127.0.0.1:9100;").replace("server 127.0.0.1:9000;", "server 127.0.0.1:9001;").replace("listen 8080;", "listen 127.0.0.1:8082;"));
    }
    expect(bench.nginxConfig({ dir: "/tmp/n", port: 1, upstreamPort: 2, authorizerPort: 3, shipped: readFileSync(bench.NGINX_CONF, "utf8") })).toContain("error_page 399 = @venue;");
    expect(bench.nginxConfig({ dir: "/tmp/n", port: 1, upstreamPort: 2, authorizerPort: 3, shipped: readFileSync(bench.NGINX_AUTH_REQUEST_CONF, "utf8") })).toContain("auth_request /_portcullis/auth;");
    expect(() => bench.templateShipped("server {}", { port: 1, upstreamPort: 2, authorizerPort: 3 })).toThrow(/no longer has/);
  });

  it("gives the gateway a config the real parser accepts, every limit raised so that nothing is refused", () => {
    const dir = mkdtempSync(join(tmpdir(), "wrk-bench-test-"));
    dirs.push(dir);
    const sections = bench.gatewaySections();
    const config = parseConfig({ ...sections, dataDir: dir, gateway: { host: "127.0.0.1", port: 0, upstream: "http://127.0.0.1:1" }, admin: { enabled: false } }, dir);
    expect(config.limits.specs.length).toBeGreaterThanOrEqual(6);
    for (const spec of config.limits.specs) expect(spec.limit).toBe(100_000_000);
    expect(config.routes.map((r) => r.path)).toEqual(["/api/v3/account", "/api/v3/exchangeInfo"]);
  });
});

describe("benchmark 17: the report", () => {
  const settings = { rounds: 2, seconds: 3, warmupSeconds: 1, primeSeconds: 2, connections: 32, workers: 2 };
  /** A measured run: `cpuUs`, `p99` and `rps` given, the rest plausible. */
  const run = (round: number, mode: string, cpuUs: number, p99: number, rps: number, loopP99: number | null = 0.5) => ({
    round,
    mode,
    rps,
    p50: p99 / 4,
    p99,
    max: p99 * 2,
    cpuUs,
    requests: rps * 3,
    failures: 0,
    warmupFailures: 0,
    loop: loopP99 === null ? null : { p50: 0.1, p99: loopP99, max: 3 },
  });
  const missing = { authorizer: "not available in this build (x)", "auth-request": "not available in this build (x)", workers: "not available in this build (y)" };

  it("passes the targets on per-round ratios, and says in bold which rows did not run", () => {
    const runs = [0, 1].flatMap((r) => [
      run(r, "nginx", 30, 10, 12_000, null),
      run(r, "pass-through", 100, 20, 6000),
      run(r, "public", 110, 22, 5500),
      run(r, "signed-native", 120, 25, 5000),
      run(r, "signed-binance", 125, 26, 4900),
    ]);
    const section = bench.wrkSection({ settings, missing, runs, primeFailures: 0 });
    expect(section.failures).toBe(0);
    const results: Record<string, string | undefined> = Object.fromEntries(section.summary.map((row) => [row[0] ?? "", row[3]]));
    expect(results["wrk: Signed (native HMAC) / pass-through, CPU µs per request"]).toBe("**PASS**");
    expect(results["wrk: Signed (native HMAC) / pass-through, p99 latency"]).toBe("**PASS**");
    expect(results["wrk: Event-loop delay p99 at full load (signed native HMAC)"]).toBe("**PASS**");
    expect(results["wrk: Event-loop delay p99 at light load, 2 connections (signed native HMAC): the longest a task holds the loop"]).toBe("–");
    expect(results["wrk: nginx + Portcullis authorizer / Portcullis gateway alone, signed throughput"]).toBe("–");
    const text = section.text.join("\n");
    expect(text).toContain("| nginx reverse proxy (1 worker) | 12000 | 2.50 | 10.00 | 30.0 | – | – | – | 0 |");
    expect(text).toContain("**not available in this build (x)**");
    expect(text).toContain("**not available in this build (y)**");
    expect(text).toContain("**not measured here**");
  });

  it("judges the event loop at light load apart from full load, with the pass-through's delay beside both", () => {
    const runs = [0, 1].flatMap((r) => [
      run(r, "pass-through", 100, 20, 6000, 3.2),
      run(r, "signed-native", 120, 25, 5000, 4.1),
      run(r, "pass-through-light", 100, 2, 1500, 0.2),
      run(r, "signed-light", 120, 3, 1200, r === 0 ? 0.6 : 0.8),
    ]);
    const section = bench.wrkSection({ settings, missing, runs, primeFailures: 0 });
    const results: Record<string, string | undefined> = Object.fromEntries(section.summary.map((row) => [row[0] ?? "", row[3]]));
    expect(results["wrk: Event-loop delay p99 at full load (signed native HMAC)"]).toBe("**FAIL**");
    expect(results["wrk: Event-loop delay p99 at light load, 2 connections (signed native HMAC): the longest a task holds the loop"]).toBe("**PASS**");
    const text = section.text.join("\n");
    expect(text).toContain("| Event-loop delay p99 at light load, 2 connections (signed native HMAC): the longest a task holds the loop | 0.70 ms | ≤ 1 ms | **PASS** |");
    expect(text).toContain("| Event-loop delay p99 at full load, pass-through (the same 32 connections' queue, no security) | 3.20 ms | none (informational) | – |");
    expect(text).toContain("| Portcullis, signed requests (native RFC 9421 HMAC), 2 connections | 1200 |");
    const slow = bench.wrkSection({ settings, missing, runs: runs.map((x) => (x.mode === "signed-light" ? { ...x, loop: { p50: 0.1, p99: 1.5, max: 3 } } : x)), primeFailures: 0 });
    const slowResults: Record<string, string | undefined> = Object.fromEntries(slow.summary.map((row) => [row[0] ?? "", row[3]]));
    expect(slowResults["wrk: Event-loop delay p99 at light load, 2 connections (signed native HMAC): the longest a task holds the loop"]).toBe("**FAIL**");
  });

  it("judges HTTPS against plain HTTP on the signed gateway (issue 17), and says why when it could not run", () => {
    const runs = [0, 1].flatMap((r) => [run(r, "pass-through", 100, 20, 6000), run(r, "signed-native", 120, 25, 5000), run(r, "signed-https", 130, 27, r === 0 ? 4200 : 4000)]);
    const section = bench.wrkSection({ settings, missing, runs, primeFailures: 0 });
    const results: Record<string, string | undefined> = Object.fromEntries(section.summary.map((row) => [row[0] ?? "", row[3]]));
    expect(results["wrk: HTTPS / plain HTTP, signed native throughput with keep-alive (issue 17)"]).toBe("**PASS**");
    expect(section.text.join("\n")).toContain("| Portcullis over HTTPS (its own TLS), signed requests (native HMAC) | 4100 |");
    const slow = bench.wrkSection({ settings, missing, runs: runs.map((x) => (x.mode === "signed-https" ? { ...x, rps: 3500 } : x)), primeFailures: 0 });
    expect(Object.fromEntries(slow.summary.map((row) => [row[0] ?? "", row[3]]))["wrk: HTTPS / plain HTTP, signed native throughput with keep-alive (issue 17)"]).toBe("**FAIL**");
    const none = bench.wrkSection({ settings, missing: { ...missing, "signed-https": "openssl not found at /usr/bin/openssl" }, runs: runs.filter((x) => x.mode !== "signed-https"), primeFailures: 0 });
    expect(none.summary.find((row) => row[0] === "wrk: HTTPS / plain HTTP, signed native throughput with keep-alive (issue 17)")).toEqual([
      "wrk: HTTPS / plain HTTP, signed native throughput with keep-alive (issue 17)",
      "**openssl not found at /usr/bin/openssl**",
      "≥ 0.8×",
      "–",
    ]);
  });

  it("reports both authorizer rows, and the auth_request row's ratios as informational", () => {
    const runs = [0, 1].flatMap((r) => [
      run(r, "pass-through", 100, 20, 6000),
      run(r, "signed-native", 120, 25, 5000),
      run(r, "authorizer", 150, 20, 8000),
      run(r, "auth-request", 140, 18, 9000),
    ]);
    const section = bench.wrkSection({ settings, missing: { workers: "y" }, runs, primeFailures: 0 });
    const text = section.text.join("\n");
    expect(text).toContain("| nginx (docs/deploy/nginx.conf) + Portcullis authorizer, signed requests (native HMAC) | 8000 |");
    expect(text).toContain("| nginx auth_request (docs/deploy/nginx-auth-request.conf) + Portcullis authorizer, signed requests (native HMAC) | 9000 |");
    expect(text).toContain("| nginx auth_request + authorizer / Portcullis gateway alone, signed throughput | 1.80× (p10–p90 1.80–1.80) | none (informational) | – |");
    expect(text).toContain("| nginx auth_request + authorizer / nginx full request (nginx.conf) + authorizer, throughput | 1.13× (p10–p90 1.13–1.13) | none (informational) | – |");
    const results: Record<string, string | undefined> = Object.fromEntries(section.summary.map((row) => [row[0] ?? "", row[3]]));
    expect(results["wrk: nginx + Portcullis authorizer / Portcullis gateway alone, signed throughput"]).toBe("**PASS**");
  });

  it("fails a missed target, and counts every failed request of every run", () => {
    const runs = [0, 1].flatMap((r) => [run(r, "pass-through", 100, 20, 6000), { ...run(r, "signed-native", 140, 40, 5000, 2), failures: 3, warmupFailures: 1 }]);
    const section = bench.wrkSection({ settings, missing, runs, primeFailures: 2 });
    expect(section.failures).toBe(2 * 4 + 2);
    expect(section.summary.filter((row) => row[3] === "**FAIL**")).toHaveLength(3);
  });

  it("reports a benchmark that could not run loudly, in the summary and the text", () => {
    const why = "wrk not found at /usr/bin/wrk";
    const all = Object.fromEntries(["nginx", "pass-through", "public", "signed-native", "signed-binance", "authorizer", "auth-request", "workers"].map((m) => [m, why]));
    const section = bench.wrkSection({ settings, missing: all, runs: [], primeFailures: 0 });
    expect(section.summary[0]?.[3]).toBe(`**NOT RUN: ${why}**`);
    expect(section.text.join("\n")).toContain(`**NOT RUN on this machine: ${why}.**`);
  });
});

// Under CI nothing skips: .ci/run installs wrk, and a missing one fails here.
describe.runIf(existsSync(bench.WRK_BIN) || process.env.CI === "true")("benchmark 17: the script in the real wrk (one connection, one second)", () => {
  it("sends each pre-generated request once, in order; past the end it resends the last, counted as overflow", async () => {
    const seen: number[] = [];
    const server = createServer((req, res) => {
      const seq = Number(req.headers["x-seq"]);
      // The first time a number is seen it is answered 200; again, 409 (as a replay would be).
      const again = seen.includes(seq);
      seen.push(seq);
      req.resume();
      res.writeHead(again ? 409 : 200, { "content-length": "2" });
      res.end("ok");
    });
    await new Promise<void>((resolve) => {
      server.listen(0, "127.0.0.1", resolve);
    });
    const address = server.address();
    if (address === null || typeof address === "string") throw new Error("no port");
    const dir = mkdtempSync(join(tmpdir(), "wrk-bench-test-"));
    dirs.push(dir);
    const requests = Array.from({ length: 20 }, (_, i) => bench.rawHttpRequest({ method: "GET", url: `/r${i + 1}`, headers: { host: "gw.test", "x-seq": String(i + 1) } }));
    try {
      const run = await bench.runWrk({ dir, port: address.port, requests, cycle: false, seconds: 1, connections: 1 });
      expect(seen.slice(0, 20)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
      expect(seen.length).toBeGreaterThan(20);
      expect(new Set(seen.slice(20))).toEqual(new Set([20]));
      expect(run.loaded).toBe(20);
      expect(run.overflow).toBeGreaterThan(0);
      expect(run.status).toBe(run.requests - 20);
      expect(run.failures).toBeGreaterThanOrEqual(run.status);
    } finally {
      await new Promise<void>((resolve) => {
        server.close(() => {
          resolve();
        });
        server.closeAllConnections();
      });
    }
  }, 30_000);
});
