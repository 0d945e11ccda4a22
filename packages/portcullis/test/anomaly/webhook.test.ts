/**
 * The alert webhook against a real local HTTP receiver that verifies what it gets on its own, with
 * node:crypto only (not the project's RFC 9421 code): the Content-Digest against the body, then the
 * Ed25519 signature over a signature base it builds itself, with the public key the CLI publishes.
 * A tampered body fails; a refused delivery is retried; a full queue drops the oldest.
 */
import { createHash, createPublicKey, verify, type KeyObject } from "node:crypto";
import { type IncomingMessage, type Server, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AlertWebhook, signWebhook, webhookBody } from "../../src/anomaly/webhook.js";
import type { AnomalyActionRecord } from "../../src/contract/behaviour.js";
import { runCli } from "../support/cli.js";
import { type AnomalyFixture, anomalyFixture, score } from "./support.js";

interface Received {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingMessage["headers"];
  readonly body: Buffer;
}

let f: AnomalyFixture;
let server: Server;
let received: Received[];
/** The receiver's answers, in order; then 204. */
let answers: number[];
let hookUrl: string;

beforeEach(async () => {
  f = await anomalyFixture();
  received = [];
  answers = [];
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      received.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, body: Buffer.concat(chunks) });
      res.statusCode = answers.shift() ?? 204;
      res.end();
    });
  });
  await new Promise<void>((resolve) => {
    server.listen(0, "127.0.0.1", resolve);
  });
  hookUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/siem/portcullis?tenant=t1`;
});

afterEach(async () => {
  await new Promise<void>((resolve) => {
    server.close(() => {
      resolve();
    });
  });
  await f.cleanup();
});

/** The receiver's check, written from RFC 9421 / RFC 9530 with node:crypto alone. */
function receiverVerifies(r: Received, publicKey: KeyObject, url: string): { ok: boolean; why: string } {
  const digest = `sha-256=:${createHash("sha256").update(r.body).digest("base64")}:`;
  if (r.headers["content-digest"] !== digest) return { ok: false, why: "content-digest" };
  const input = r.headers["signature-input"];
  const sig = r.headers.signature;
  if (typeof input !== "string" || typeof sig !== "string") return { ok: false, why: "headers" };
  const m = /^portcullis=(\("@method" "@target-uri" "content-digest" "content-type"\);created=(\d+);keyid="([^"]+)";alg="ed25519")$/.exec(input);
  const s = /^portcullis=:([A-Za-z0-9+/=]+):$/.exec(sig);
  if (m === null || s === null) return { ok: false, why: "signature headers" };
  const base = [
    `"@method": ${r.method}`,
    `"@target-uri": ${url}`,
    `"content-digest": ${r.headers["content-digest"]}`,
    `"content-type": ${r.headers["content-type"] ?? ""}`,
    `"@signature-params": ${m[1] ?? ""}`,
  ].join("\n");
  return verify(null, Buffer.from(base, "utf8"), publicKey, Buffer.from(s[1] ?? "", "base64")) ? { ok: true, why: "" } : { ok: false, why: "signature" };
}

async function publishedKey(): Promise<{ key: KeyObject; kid: string }> {
  const out = await runCli(["anomalies", "webhook-key", "--data", f.dir, "--json"]);
  expect(out.code, out.stderr).toBe(0);
  const view = JSON.parse(out.stdout) as { kid: string; publicKey: string; jwk: { x: string; crv: string } };
  expect(view.jwk.crv).toBe("Ed25519");
  const key = createPublicKey(view.publicKey);
  // The JWK is the same key.
  expect(createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: view.jwk.x }, format: "jwk" }).export({ type: "spki", format: "pem" })).toBe(view.publicKey);
  return { key, kid: view.kid };
}

async function action(value = 96): Promise<AnomalyActionRecord> {
  const id = await f.key();
  const r = await f.responder.respond(score(id, value, f.clock.ms));
  if (r === null) throw new Error("no action");
  return r;
}

describe("the signed alert webhook", () => {
  it("a real receiver verifies the signature with the published key; a tampered body fails", async () => {
    const { key, kid } = await publishedKey();
    const hook = new AlertWebhook({ settings: { url: hookUrl, timeoutMs: 5000 }, signer: f.data.signingKeys, now: f.clock.now });
    const record = await action();
    hook.send(record, "anomaly.action");
    await hook.flush();
    expect(hook.stats).toMatchObject({ delivered: 1, failed: 0, dropped: 0 });
    expect(received).toHaveLength(1);
    const got = received[0] as Received;
    expect(got.method).toBe("POST");
    expect(got.url).toBe("/siem/portcullis?tenant=t1");
    expect(got.headers["content-type"]).toBe("application/json");
    expect(got.headers["signature-input"]).toContain(`keyid="${kid}"`);
    expect(got.headers["signature-input"]).toContain(`created=${f.clock.seconds}`);
    expect(receiverVerifies(got, key, hookUrl)).toEqual({ ok: true, why: "" });
    const body = JSON.parse(got.body.toString("utf8")) as { event: string; action: AnomalyActionRecord };
    expect(body).toEqual({ event: "anomaly.action", action: record });

    // Tampered: another body under the same headers fails the digest; with the digest recomputed, the signature.
    const tampered = Buffer.from(got.body.toString("utf8").replace('"suspend"', '"record"'));
    expect(tampered.equals(got.body)).toBe(false);
    expect(receiverVerifies({ ...got, body: tampered }, key, hookUrl)).toEqual({ ok: false, why: "content-digest" });
    const redigested = { ...got.headers, "content-digest": `sha-256=:${createHash("sha256").update(tampered).digest("base64")}:` };
    expect(receiverVerifies({ ...got, body: tampered, headers: redigested }, key, hookUrl)).toEqual({ ok: false, why: "signature" });
    // Sent to another URL (a replay elsewhere): the target URI is signed.
    expect(receiverVerifies(got, key, hookUrl.replace("t1", "t2"))).toEqual({ ok: false, why: "signature" });
    await hook.close();
  });

  it("the body carries the action record and no secret", async () => {
    const record = await action(85);
    const body = webhookBody(record, "anomaly.action");
    expect(body).not.toMatch(/secret|signature|passphrase/i);
    const headers = await signWebhook(hookUrl, body, await f.data.signingKeys.open("webhook"), 1_700_000_000);
    expect(Object.keys(headers).sort()).toEqual(["content-digest", "content-type", "signature", "signature-input"]);
  });

  it("a refused delivery is retried (each attempt signed afresh); one refused every time is given up", async () => {
    const { key } = await publishedKey();
    answers = [503, 500];
    const hook = new AlertWebhook({ settings: { url: hookUrl, timeoutMs: 5000 }, signer: f.data.signingKeys, backoffMs: 0, attempts: 3 });
    hook.send(await action(), "anomaly.action");
    await hook.flush();
    expect(hook.stats).toMatchObject({ delivered: 1, retried: 2, failed: 0 });
    expect(received).toHaveLength(3);
    for (const r of received) expect(receiverVerifies(r, key, hookUrl).ok).toBe(true);

    answers = [500, 500, 500];
    hook.send(await action(), "anomaly.action");
    await hook.flush();
    expect(hook.stats).toMatchObject({ delivered: 1, failed: 1 });
    await hook.close();
  });

  it("an unreachable receiver: send never throws nor blocks; given up after its attempts", async () => {
    const hook = new AlertWebhook({ settings: { url: "http://127.0.0.1:1/hook", timeoutMs: 1000 }, signer: f.data.signingKeys, backoffMs: 0, attempts: 2 });
    const record = await action();
    expect(() => {
      hook.send(record, "anomaly.action");
    }).not.toThrow();
    await hook.flush();
    expect(hook.stats).toMatchObject({ delivered: 0, failed: 1 });
    await hook.close();
  });

  it("a full queue drops the oldest waiting alert (the one being delivered is kept)", async () => {
    const hook = new AlertWebhook({ settings: { url: hookUrl, timeoutMs: 5000 }, signer: f.data.signingKeys, queueLimit: 2 });
    const records = [await action(), await action(), await action(), await action()];
    for (const r of records) hook.send(r, "anomaly.action");
    await hook.flush();
    expect(hook.stats).toMatchObject({ delivered: 3, dropped: 1, waiting: 0 });
    const ids = received.map((r) => (JSON.parse(r.body.toString("utf8")) as { action: { id: string } }).action.id);
    expect(ids).toEqual([records[0]?.id, records[2]?.id, records[3]?.id]);
    await hook.close();
  });

  it("refuses bad options at construction (TypeError)", () => {
    expect(() => new AlertWebhook({ settings: { url: hookUrl, timeoutMs: 5000 }, signer: f.data.signingKeys, queueLimit: 0 })).toThrow(TypeError);
    expect(() => new AlertWebhook({ settings: { url: hookUrl, timeoutMs: 5000 }, signer: f.data.signingKeys, attempts: 1.5 })).toThrow(TypeError);
  });
});
