/**
 * Issue 13, finding 1: a replay after a restart. A real `portcullis start` process (memory hot
 * state) accepts a signed request, refuses it as a replay, is killed with SIGKILL and started
 * again on the same data directory: the same request must still be refused — by the fence
 * (REPLAY_FENCED) for a scheme with signed times, by the durable reservation (too low) for Kraken's
 * increasing nonces — while a request signed after the restart is accepted. A session that logged
 * out before the kill stays logged out.
 */
import { createHash, createHmac } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli, startCli } from "../support/cli.js";
import { startEchoUpstream } from "../support/gateway.js";
import { TEST_ROUTES, signRequest } from "../support/harness.js";
import type { RouteSpec } from "../../src/authz/routes.js";

const ROUTES: RouteSpec[] = [
  ...TEST_ROUTES,
  { method: "POST", path: "/0/private/Balance", permission: "read", dialect: "kraken" },
  { method: "GET", path: "/api/v3/myTrades", permission: "read", dialect: "binance" },
];

let dir: string;
let data: string;
let config: string;
let upstream: Awaited<ReturnType<typeof startEchoUpstream>>;
let native: { id: string; secret: string };
let kraken: { id: string; secret: string };
let binance: { id: string; secret: string };

interface Running {
  readonly gateway: string;
  readonly child: Awaited<ReturnType<typeof startCli>>["child"];
}

async function start(): Promise<Running> {
  const started = await startCli(["start", "--config", config], (line) => line.includes('"portcullis started"'));
  const info = JSON.parse(started.line) as { gateway: string };
  return { gateway: info.gateway, child: started.child };
}

async function kill(r: Running): Promise<void> {
  const exited = new Promise((resolve) => r.child.once("exit", resolve));
  r.child.kill("SIGKILL");
  await exited;
}

interface Sent {
  readonly method: "GET" | "POST";
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly body?: string;
}

async function send(gateway: string, req: Sent): Promise<{ status: number; body: string }> {
  const res = await request(`${gateway}${req.path}`, { method: req.method, headers: req.headers, ...(req.body === undefined ? {} : { body: req.body }) });
  return { status: res.statusCode, body: await res.body.text() };
}

function nativeRequest(gateway: string, createdSeconds: number, as: { id: string; secret: string } = native, method: "GET" | "POST" | "DELETE" = "GET", path = "/api/v3/account"): Sent {
  const host = gateway.replace("http://", "");
  return { method: method as "GET", path, headers: signRequest({ method, url: path, host, keyId: as.id, key: as.secret, created: createdSeconds }) };
}

function krakenRequest(nonce: bigint): Sent {
  const body = `nonce=${nonce}`;
  const path = "/0/private/Balance";
  const inner = createHash("sha256").update(String(nonce)).update(body).digest();
  const sign = createHmac("sha512", Buffer.from(kraken.secret, "base64")).update(path).update(inner).digest("base64");
  return { method: "POST", path, headers: { "api-key": kraken.id, "api-sign": sign, "content-type": "application/x-www-form-urlencoded" }, body };
}

function binanceRequest(timestamp: number): Sent {
  const query = `recvWindow=5000&timestamp=${timestamp}`;
  const signature = createHmac("sha256", binance.secret).update(query).digest("hex");
  return { method: "GET", path: `/api/v3/myTrades?${query}&signature=${signature}`, headers: { "x-mbx-apikey": binance.id } };
}

/** The time a signed time must be past so a restart started after it cannot fence it (whole seconds, the clock allowance). */
/** Waits until Date.now() ≥ ms: a timer may fire a millisecond early by the wall clock, hence the loop. */
async function waitPast(ms: number): Promise<void> {
  while (Date.now() < ms) await new Promise((resolve) => setTimeout(resolve, Math.max(1, ms - Date.now())));
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "portcullis-replay-restart-"));
  data = join(dir, "data");
  upstream = await startEchoUpstream();
  expect((await runCli(["init", "--data", data, "--environment", "test"])).code).toBe(0);
  const key = async (...flags: string[]): Promise<{ id: string; secret: string }> => {
    const res = await runCli(["keys", "create", "--data", data, "--account", "acct-restart", "--scopes", "read,trade", ...flags, "--json"]);
    expect(res.code, res.stderr).toBe(0);
    return JSON.parse(res.stdout) as { id: string; secret: string };
  };
  native = await key();
  kraken = await key("--dialect", "kraken");
  binance = await key("--dialect", "binance");
  config = join(dir, "portcullis.json");
  writeFileSync(
    config,
    JSON.stringify({
      dataDir: data,
      environment: "test",
      gateway: { host: "127.0.0.1", port: 0, upstream: upstream.url },
      admin: { enabled: false },
      routes: ROUTES,
      log: { level: "info" },
    }),
  );
});
afterAll(async () => {
  await upstream.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("replay after a restart (memory hot state, SIGKILL)", () => {
  it("a request accepted before the kill is refused after the restart, in every kind of scheme; new requests are accepted", async () => {
    // The first process ever to serve from this data directory: nothing before it to fence.
    const first = await start();
    const createdSeconds = Math.floor(Date.now() / 1000);
    const nativeReq = nativeRequest(first.gateway, createdSeconds);
    const nonce = BigInt(Date.now()) * 1000n;
    const krakenReq = krakenRequest(nonce);
    const binanceReq = binanceRequest(Date.now());
    for (const req of [nativeReq, krakenReq, binanceReq]) {
      const res = await send(first.gateway, req);
      expect(res.status, res.body).toBe(200);
    }
    // A session: logged on, used, logged out.
    const logon = await send(first.gateway, nativeRequest(first.gateway, createdSeconds, native, "POST", "/portcullis/v1/session"));
    expect(logon.status, logon.body).toBe(201);
    const session = JSON.parse(logon.body) as { keyid: string; secret: string };
    const asSession = { id: session.keyid, secret: session.secret };
    expect((await send(first.gateway, nativeRequest(first.gateway, createdSeconds, asSession))).status).toBe(200);
    expect((await send(first.gateway, nativeRequest(first.gateway, createdSeconds, asSession, "DELETE", "/portcullis/v1/session"))).status).toBe(204);
    expect(JSON.parse((await send(first.gateway, nativeRequest(first.gateway, createdSeconds, asSession))).body)).toMatchObject({ code: "SESSION_REVOKED" });
    // Refused as replays while the process lives.
    expect(JSON.parse((await send(first.gateway, nativeReq)).body)).toMatchObject({ code: "NONCE_REPLAYED" });
    expect(JSON.parse((await send(first.gateway, krakenReq)).body)).toEqual({ error: ["EAPI:Invalid nonce"] });
    expect(JSON.parse((await send(first.gateway, binanceReq)).body)).toMatchObject({ code: -1021 });
    await kill(first);

    // Same data directory, fresh memory. The requests are still inside their windows (5 s).
    const second = await start();
    try {
      const port = (url: string): string => url.replace(/^http:\/\/127\.0\.0\.1:/, "");
      // The native request carries its Host: sent to the new port, it is signed for the old one,
      // so it is re-signed for the new port with the same created time and nonce (same claim).
      const replayed = { ...nativeReq, headers: signRequest({ method: "GET", url: "/api/v3/account", host: `127.0.0.1:${port(second.gateway)}`, keyId: native.id, key: native.secret, created: createdSeconds, nonce: nonceOf(nativeReq) }) };
      const nativeAgain = await send(second.gateway, replayed);
      expect(nativeAgain.status).toBe(401);
      expect(JSON.parse(nativeAgain.body)).toMatchObject({ code: "REPLAY_FENCED" });
      const binanceAgain = await send(second.gateway, binanceReq);
      expect(binanceAgain.status).toBe(400);
      expect(JSON.parse(binanceAgain.body)).toEqual({ code: -1021, msg: "Timestamp for this request is outside of the recvWindow." });
      // Kraken's nonce has no time: the durable reservation made it too low.
      expect(JSON.parse((await send(second.gateway, krakenReq)).body)).toEqual({ error: ["EAPI:Invalid nonce"] });

      // New requests: a Kraken nonce above the reservation (a millisecond clock moves on by far
      // more than a second's worth between the two processes here: x1000 is microseconds), and
      // requests signed after the restart's start plus the clock allowance.
      expect((await send(second.gateway, krakenRequest(nonce + 10_000_000n))).status).toBe(200);
      // The second process began its memory before now; a created time (whole seconds) at least
      // the clock allowance (1 s) after that is never fenced.
      await waitPast(Math.ceil((Date.now() + 1_000) / 1000) * 1000);
      expect((await send(second.gateway, nativeRequest(second.gateway, Math.floor(Date.now() / 1000)))).status).toBe(200);
      expect((await send(second.gateway, binanceRequest(Date.now()))).status).toBe(200);
      // The logout outlived the restart.
      const afterLogout = await send(second.gateway, nativeRequest(second.gateway, Math.floor(Date.now() / 1000), asSession));
      expect(afterLogout.status).toBe(401);
      expect(JSON.parse(afterLogout.body)).toMatchObject({ code: "SESSION_REVOKED" });
    } finally {
      await kill(second);
    }
  }, 30_000);
});

function nonceOf(req: Sent): string {
  const input = req.headers["signature-input"] ?? "";
  const match = /;nonce="([^"]+)"/.exec(input);
  if (match?.[1] === undefined) throw new Error("no nonce in the signed request");
  return match[1];
}
