/**
 * Graceful drain of a real `portcullis start` process on SIGTERM (docs/operations-endpoints.md):
 * the probes turn 503 DRAINING at once while the listener still accepts (gateway.drainDelay),
 * then it stops accepting; the request in flight all along is answered; the audit log is
 * flushed (its entry is in the store, the chain verifies); the process exits 0.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli, startCli } from "../support/cli.js";
import { signRequest } from "../support/harness.js";
import { ROUTES, call, dataDir, starterConfig, until } from "./support.js";

/** An upstream that holds every request until the test releases it. */
async function holdingUpstream(): Promise<{ url: string; arrived: Promise<void>; release(): void; close(): Promise<void> }> {
  const held: ServerResponse[] = [];
  let arrived: () => void = () => undefined;
  const arrival = new Promise<void>((resolve) => {
    arrived = resolve;
  });
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    held.push(res);
    arrived();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    arrived: arrival,
    release() {
      for (const res of held.splice(0)) {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ ok: true }));
      }
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => { resolve(); });
      }),
  };
}

describe("portcullis start on SIGTERM", () => {
  let d: Awaited<ReturnType<typeof dataDir>>;
  let upstream: Awaited<ReturnType<typeof holdingUpstream>>;
  let key: { id: string; secret: string };
  let configFile: string;

  beforeAll(async () => {
    d = await dataDir("drain");
    upstream = await holdingUpstream();
    const created = JSON.parse((await runCli(["keys", "create", "--data", d.data, "--account", "acct-1", "--scopes", "read", "--json"])).stdout) as { id: string; secret: string };
    key = { id: created.id, secret: created.secret };
    const starter = starterConfig(d.data);
    configFile = join(d.data, "drain.json");
    writeFileSync(
      configFile,
      JSON.stringify({
        ...starter,
        gateway: { ...(starter.gateway as object), host: "127.0.0.1", port: 0, upstream: upstream.url, drainDelay: "300ms", drainTimeout: "20s" },
        admin: { enabled: false },
        routes: ROUTES,
        log: { level: "info" },
      }),
    );
  });
  afterAll(async () => {
    await upstream.close();
    d.cleanup();
  });

  it("turns healthz 503, stops accepting, answers the request in flight, flushes the audit log and exits 0", async () => {
    const g = await startCli(["start", "--config", configFile], (line) => line.includes("portcullis started"));
    const base = (JSON.parse(g.line) as { gateway: string }).gateway;
    const output: string[] = [g.line];
    g.child.stdout.on("data", (chunk: Buffer) => output.push(chunk.toString("utf8")));
    const exited = new Promise<number | null>((resolve) => {
      g.child.once("exit", (code) => { resolve(code); });
    });
    expect((await call(`${base}/portcullis/v1/healthz`)).status).toBe(200);

    // A request in flight: the upstream holds it.
    const headers = signRequest({ method: "GET", url: "/api/v3/account", keyId: key.id, key: key.secret, created: Math.floor(Date.now() / 1000), host: new URL(base).host });
    const inFlight = call(`${base}/api/v3/account`, { headers });
    await upstream.arrived;

    g.child.kill("SIGTERM");
    // Draining: the probe answers 503 on a new connection while the listener still accepts.
    const draining = await until(() => call(`${base}/portcullis/v1/healthz`), (r) => r.status === 503, 5_000);
    expect([draining.status, draining.json?.code]).toEqual([503, "DRAINING"]);
    // After the delay it stops accepting: a new connection is refused.
    const refused = await until(
      () => call(`${base}/portcullis/v1/healthz`).then(() => "answered", (err: unknown) => ((err as { code?: string }).code ?? String(err))),
      (r) => r !== "answered",
      5_000,
    );
    expect(refused).toBe("ECONNREFUSED");
    expect(g.child.exitCode).toBeNull();

    // The request in flight is answered once the upstream answers; then the process exits 0.
    upstream.release();
    const answer = await inFlight;
    expect(answer.status).toBe(200);
    const requestId = String(answer.headers["portcullis-request-id"]);
    expect(await exited).toBe(0);
    const log = output.join("");
    expect(log).toContain("portcullis stopped");
    const stopped = log.split("\n").find((l) => l.includes("portcullis stopped")) ?? "";
    expect((JSON.parse(stopped) as { audit: { committed: number; dropped: number; buffered: number } }).audit).toMatchObject({ dropped: 0, buffered: 0 });

    // The audit log was flushed: the request's entry is in the store, and the chain verifies.
    const entries = await runCli(["audit", "query", "--data", d.data, "--event", "request.allow", "--json"]);
    expect(entries.code).toBe(0);
    expect(entries.stdout).toContain(requestId);
    expect((await runCli(["audit", "verify", "--data", d.data])).code).toBe(0);
  });
});
