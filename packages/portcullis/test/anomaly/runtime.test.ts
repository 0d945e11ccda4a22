/**
 * Wiring: a configured runtime (`behaviour` with a webhook) exposes the responder; a score it is
 * handed suspends the key, the admin API lists and undoes the action, and the signed alert reaches
 * a real receiver, verifiable with the key the admin API publishes.
 */
import { createClient } from "@portcullis/client";
import { createHash, createPublicKey, verify } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { type IncomingMessage, type Server, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_LIMITS, parseConfig } from "../../src/config/config.js";
import type { AnomalyActionRecord } from "../../src/contract/behaviour.js";
import { initDataDir } from "../../src/core/data-dir.js";
import { valueOrThrow } from "../../src/errors/result.js";
import { parseCreateKeyInput } from "../../src/keys/input.js";
import { silentLogger } from "../../src/log/logger.js";
import { type RunningPortcullis, startPortcullis, urlOf } from "../../src/runtime/runtime.js";
import { score } from "./support.js";

let dir: string;
let running: RunningPortcullis;
let receiver: Server;
let hookUrl: string;
const received: { headers: IncomingMessage["headers"]; body: Buffer }[] = [];
let waiter: (() => void) | null = null;

beforeAll(async () => {
  receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      received.push({ headers: req.headers, body: Buffer.concat(chunks) });
      res.statusCode = 200;
      res.end();
      waiter?.();
    });
  });
  await new Promise<void>((resolve) => {
    receiver.listen(0, "127.0.0.1", resolve);
  });
  hookUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
  dir = mkdtempSync(join(tmpdir(), "portcullis-anomaly-runtime-"));
  await initDataDir(dir, "test");
  const config = parseConfig(
    {
      dataDir: dir,
      environment: "test",
      gateway: { host: "127.0.0.1", port: 0, upstream: "http://127.0.0.1:9", serverTiming: false },
      admin: { host: "127.0.0.1", port: 0 },
      routes: [{ method: "GET", path: "/api/v3/account", permission: "read" }],
      limits: DEFAULT_LIMITS,
      behaviour: { webhook: { url: hookUrl, timeout: "5s" } },
    },
    dir,
  );
  running = await startPortcullis(config, silentLogger());
}, 60_000);

afterAll(async () => {
  await running.close(1000);
  await new Promise<void>((resolve) => {
    receiver.close(() => {
      resolve();
    });
  });
  rmSync(dir, { recursive: true, force: true });
});

describe("the runtime's responder", () => {
  it("suspends on a score, alerts the webhook (signed), and the admin API undoes it", async () => {
    const keys = running.core.keys;
    const victim = await keys.create(valueOrThrow(parseCreateKeyInput({ account: "acct-1", scopes: ["read"] }, Date.now())), "test");
    const op = await keys.create(valueOrThrow(parseCreateKeyInput({ account: "ops", scopes: ["admin:anomalies"], operator: true }, Date.now())), "test");
    const delivered = new Promise<void>((resolve) => {
      waiter = resolve;
    });
    const action = await running.anomalies.respond(score(victim.key.id, 97, Date.now()));
    expect(action?.action).toBe("suspend");
    expect((await keys.get(victim.key.id)).status).toBe("suspended");
    await delivered;

    const admin = createClient({ baseUrl: urlOf(running.adminAddress ?? running.gatewayAddress), keyId: op.key.id, secret: op.secret ?? "" });
    const published = await admin.json<{ publicKey: string }>("GET", "/portcullis/v1/anomalies/webhook-key");
    const got = received[0];
    expect(got).toBeDefined();
    if (got === undefined) return;
    expect(got.headers["content-digest"]).toBe(`sha-256=:${createHash("sha256").update(got.body).digest("base64")}:`);
    const params = /^portcullis=(.*)$/.exec(String(got.headers["signature-input"]))?.[1] ?? "";
    const base = `"@method": POST\n"@target-uri": ${hookUrl}\n"content-digest": ${String(got.headers["content-digest"])}\n"content-type": application/json\n"@signature-params": ${params}`;
    const signature = Buffer.from(/^portcullis=:(.*):$/.exec(String(got.headers.signature))?.[1] ?? "", "base64");
    expect(verify(null, Buffer.from(base), createPublicKey(published.publicKey), signature)).toBe(true);
    expect((JSON.parse(got.body.toString()) as { action: AnomalyActionRecord }).action.id).toBe(action?.id);

    const listed = await admin.json<{ actions: AnomalyActionRecord[] }>("GET", `/portcullis/v1/anomalies?key=${victim.key.id}`);
    expect(listed.actions.map((a) => a.id)).toEqual([action?.id]);
    await admin.json("POST", `/portcullis/v1/anomalies/${action?.id ?? ""}/undo`);
    expect((await keys.get(victim.key.id)).status).toBe("active");
  });
});
