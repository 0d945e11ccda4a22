/**
 * HTTPS on the gateway and the admin API (docs/tls.md), through `startPortcullis` on a config as
 * `portcullis start` reads it, with certificates made at run time by openssl (support/tls.ts):
 * requests through the gateway to an upstream, TLS 1.1 refused, a reload that swaps the served
 * certificate while a keep-alive connection opened before keeps working, a bad reload kept out,
 * mutual TLS required on the admin listener, certificate-bound keys (right certificate, none,
 * another, one of another CA) and their sessions.
 */
import { chmodSync, copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { Agent, type RequestOptions, request as httpsRequest } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TLSSocket, connect as tlsConnect } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/config.js";
import { initDataDir } from "../../src/core/data-dir.js";
import { isCatalogueCode } from "../../src/errors/catalogue.js";
import { type RunningPortcullis, startPortcullis } from "../../src/runtime/runtime.js";
import { captureLogger, startEchoUpstream } from "../support/gateway.js";
import { TEST_ROUTES, signRequest } from "../support/harness.js";
import { type CertPair, type TestPki, makePki } from "../support/tls.js";

interface Answer {
  readonly status: number;
  readonly json: Record<string, unknown>;
  /** The certificate the server presented (fingerprint256). */
  readonly served: string;
  readonly socket: TLSSocket;
}

interface Call {
  readonly port: number;
  readonly method?: string;
  readonly path: string;
  readonly headers?: Record<string, string>;
  readonly body?: string;
  /** The client certificate to present. */
  readonly client?: CertPair;
  readonly agent?: Agent | false;
  readonly extra?: RequestOptions;
}

let pki: TestPki;

function call(c: Call): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: "127.0.0.1",
        port: c.port,
        method: c.method ?? "GET",
        path: c.path,
        headers: { ...(c.headers ?? {}), ...(c.body === undefined ? {} : { "content-length": String(Buffer.byteLength(c.body)) }) },
        ca: pki.ca.certPem,
        agent: c.agent ?? false,
        ...(c.client === undefined ? {} : { cert: c.client.certPem, key: c.client.keyPem }),
        ...c.extra,
      },
      (res) => {
        const chunks: Buffer[] = [];
        const socket = res.socket;
        if (!(socket instanceof TLSSocket)) throw new TypeError("not a TLS socket");
        const served = socket.getPeerCertificate().fingerprint256;
        res.on("data", (d: Buffer) => chunks.push(d));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let json: Record<string, unknown>;
          try {
            json = JSON.parse(text) as Record<string, unknown>;
          } catch {
            json = { text };
          }
          resolve({ status: res.statusCode ?? 0, json, served, socket });
        });
      },
    );
    req.on("error", reject);
    req.end(c.body);
  });
}

/** A native signed request to the gateway (or admin API) at `port`, signed with an HMAC key or session. */
function signed(port: number, keyId: string, secret: string, method: string, path: string, body?: string): { headers: Record<string, string>; body?: string } {
  const headers = signRequest({ method, url: path, host: `127.0.0.1:${port}`, keyId, key: secret, created: Math.floor(Date.now() / 1000), ...(body === undefined ? {} : { body }) });
  return { headers: { ...headers, ...(body === undefined ? {} : { "content-type": "application/json" }) }, ...(body === undefined ? {} : { body }) };
}

/** The error a handshake ends with (null: it completed and the server answered). */
async function handshakeError(options: { port: number; client?: CertPair; minVersion?: "TLSv1" | "TLSv1.2"; maxVersion?: "TLSv1.1" | "TLSv1.2" | "TLSv1.3"; ciphers?: string }): Promise<{ code: string | null; protocol: string | null }> {
  return new Promise((resolve) => {
    const socket = tlsConnect({
      host: "127.0.0.1",
      port: options.port,
      ca: pki.ca.certPem,
      ...(options.client === undefined ? {} : { cert: options.client.certPem, key: options.client.keyPem }),
      ...(options.minVersion === undefined ? {} : { minVersion: options.minVersion }),
      ...(options.maxVersion === undefined ? {} : { maxVersion: options.maxVersion }),
      ...(options.ciphers === undefined ? {} : { ciphers: options.ciphers }),
    });
    let protocol: string | null = null;
    socket.once("secureConnect", () => {
      protocol = socket.getProtocol();
      // Under TLS 1.3 the server's verdict on a client certificate comes after the client's
      // handshake ends: a request shows whether the connection is served.
      socket.write("GET /portcullis/v1/time HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    });
    let data = "";
    socket.on("data", (d: Buffer) => (data += d.toString()));
    socket.once("error", (err: NodeJS.ErrnoException) => {
      socket.destroy();
      resolve({ code: err.code ?? err.message, protocol });
    });
    socket.once("close", () => {
      resolve({ code: data.startsWith("HTTP/1.1 ") ? null : "CLOSED_WITHOUT_ANSWER", protocol });
    });
  });
}

describe("HTTPS gateway and admin API", () => {
  let dir: string;
  let tlsDir: string;
  let running: RunningPortcullis;
  let upstream: Awaited<ReturnType<typeof startEchoUpstream>>;
  let logLines: string[];
  let gw: number;
  let admin: number;
  let operator: { id: string; secret: string };

  beforeAll(async () => {
    pki = makePki();
    dir = mkdtempSync(join(tmpdir(), "portcullis-tls-runtime-"));
    tlsDir = mkdtempSync(join(tmpdir(), "portcullis-tls-files-"));
    // The gateway serves copies, so a test can replace them in place.
    copyFileSync(pki.server.cert, join(tlsDir, "gateway.crt"));
    copyFileSync(pki.server.key, join(tlsDir, "gateway.key"));
    await initDataDir(dir, "test");
    upstream = await startEchoUpstream();
    const captured = captureLogger();
    logLines = captured.lines;
    const config = parseConfig(
      {
        dataDir: dir,
        environment: "test",
        gateway: {
          host: "127.0.0.1",
          port: 0,
          upstream: upstream.url,
          tls: { cert: join(tlsDir, "gateway.crt"), key: join(tlsDir, "gateway.key"), ca: pki.ca.cert, clientAuth: "optional", reloadInterval: "off" },
        },
        admin: { host: "127.0.0.1", port: 0, tls: { cert: pki.server.cert, key: pki.server.key, ca: pki.ca.cert, clientAuth: "required", reloadInterval: "off" } },
        routes: TEST_ROUTES,
      },
      dir,
    );
    running = await startPortcullis(config, captured.logger);
    gw = running.gatewayAddress.port;
    admin = running.adminAddress?.port ?? 0;
    const created = await running.core.keys.create(
      { account: "ops", subAccount: null, label: "", scopes: ["admin:*"], ipAllowlist: [], algorithm: undefined, publicKey: undefined, expiresAt: null, windowMs: null, dialects: ["native"], passphrase: undefined, limits: {}, sessionTtlMs: null, sessionBindAddress: false, maxAgeMs: null, operator: true, owner: null, guardrails: null, certThumbprint: null },
      "test",
    );
    operator = { id: created.key.id, secret: created.secret ?? "" };
  });

  afterAll(async () => {
    await running.close(500);
    await upstream.close();
    rmSync(dir, { recursive: true, force: true });
    rmSync(tlsDir, { recursive: true, force: true });
    pki.cleanup();
  });

  /** Creates a key through the admin API (over mutual TLS, as the admin listener requires). */
  async function createKey(input: Record<string, unknown>): Promise<Answer> {
    const body = JSON.stringify({ account: "acct-1", scopes: ["read", "trade"], ...input });
    const s = signed(admin, operator.id, operator.secret, "POST", "/portcullis/v1/keys", body);
    return call({ port: admin, method: "POST", path: "/portcullis/v1/keys", client: pki.client1, ...s });
  }

  it("forwards a signed request over HTTPS to the upstream, with X-Forwarded-Proto https", async () => {
    const created = await createKey({});
    expect(created.status).toBe(201);
    const key = created.json as { id: string; certThumbprint: string | null; secret: string };
    expect(key.certThumbprint).toBeNull();
    const answer = await call({ port: gw, path: "/api/v3/account", ...signed(gw, key.id, key.secret, "GET", "/api/v3/account") });
    expect(answer.status).toBe(200);
    expect(answer.json).toMatchObject({ ok: true, url: "/api/v3/account" });
    expect(answer.served).toBe(pki.server.fingerprint256);
    expect(answer.socket.getProtocol()).toBe("TLSv1.3");
    const seen = upstream.requests.at(-1);
    expect(seen?.headers["x-forwarded-proto"]).toBe("https");
    expect(seen?.headers["portcullis-key-id"]).toBe(key.id);
  });

  it("speaks TLS 1.2 and 1.3, and refuses TLS 1.1 with a protocol_version alert", async () => {
    expect(await handshakeError({ port: gw, maxVersion: "TLSv1.2" })).toEqual({ code: null, protocol: "TLSv1.2" });
    expect(await handshakeError({ port: gw })).toEqual({ code: null, protocol: "TLSv1.3" });
    // The client offers TLS 1.0-1.1 only (its own security level lowered so that it can): the
    // server answers with an alert, the handshake never completes.
    const old = await handshakeError({ port: gw, minVersion: "TLSv1", maxVersion: "TLSv1.1", ciphers: "DEFAULT@SECLEVEL=0" });
    expect(old.protocol).toBeNull();
    expect(old.code).toMatch(/ALERT_PROTOCOL_VERSION|UNSUPPORTED_PROTOCOL/);
  });

  it("refuses a TLS 1.2 renegotiation", async () => {
    const outcome = await new Promise<string>((resolve) => {
      const socket = tlsConnect({ host: "127.0.0.1", port: gw, ca: pki.ca.certPem, maxVersion: "TLSv1.2" });
      socket.once("error", () => {
        resolve("error");
      });
      socket.once("close", () => {
        resolve("closed");
      });
      socket.once("secureConnect", () => {
        socket.renegotiate({ rejectUnauthorized: true }, (err) => {
          if (err !== null) resolve("error");
          else {
            resolve("renegotiated");
            socket.destroy();
          }
        });
      });
    });
    expect(outcome).not.toBe("renegotiated");
  });

  it("the admin listener requires a client certificate of the CA: none, or another CA's, fails the handshake", async () => {
    expect((await handshakeError({ port: admin })).code).not.toBeNull();
    expect((await handshakeError({ port: admin, client: pki.stranger })).code).not.toBeNull();
    expect(await handshakeError({ port: admin, client: pki.client2 })).toMatchObject({ code: null, protocol: "TLSv1.3" });
    // Through to the admin API: an unsigned request is the API's refusal, not the handshake's.
    const unsigned = await call({ port: admin, path: "/portcullis/v1/keys", client: pki.client2 });
    expect(unsigned).toMatchObject({ status: 401, json: { code: "CREDENTIALS_MISSING" } });
  });

  it("a key bound to a client certificate (admin API field): only that certificate is let through", async () => {
    const created = await createKey({ certThumbprint: pki.client1.thumbprint });
    expect(created.status).toBe(201);
    const { secret, ...key } = created.json as { id: string; certThumbprint: string; secret: string };
    expect(key.certThumbprint).toBe(pki.client1.thumbprint);
    const shown = await call({ port: admin, path: `/portcullis/v1/keys/${key.id}`, client: pki.client2, ...signed(admin, operator.id, operator.secret, "GET", `/portcullis/v1/keys/${key.id}`) });
    expect(shown.json).toMatchObject({ id: key.id, certThumbprint: pki.client1.thumbprint });

    const get = (client?: CertPair): Promise<Answer> => call({ port: gw, path: "/api/v3/account", ...(client === undefined ? {} : { client }), ...signed(gw, key.id, secret, "GET", "/api/v3/account") });
    const before = upstream.requests.length;
    expect(await get(pki.client1)).toMatchObject({ status: 200, json: { ok: true } });
    expect(upstream.requests.length).toBe(before + 1);
    for (const other of [undefined, pki.client2, pki.stranger]) {
      const refused = await get(other);
      expect(refused).toMatchObject({ status: 401, json: { code: "KEY_CERT_MISMATCH" } });
    }
    // Nothing refused reached the upstream.
    expect(upstream.requests.length).toBe(before + 1);
  });

  it("the admin API refuses a thumbprint that is not one", async () => {
    const refused = await createKey({ certThumbprint: "AA:BB" });
    expect(refused).toMatchObject({ status: 400, json: { code: "VALIDATION_FAILED", fields: { certThumbprint: expect.stringContaining("base64url") as unknown } } });
    // The same 32 bytes with the spare bits of the last character set: no certificate is ever named so.
    const real = pki.client1.thumbprint;
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const last = alphabet.indexOf(real.slice(-1));
    expect(last % 4).toBe(0);
    const noncanonical = `${real.slice(0, 42)}${alphabet[last + 1] ?? ""}`;
    expect(Buffer.from(noncanonical, "base64url")).toEqual(Buffer.from(real, "base64url"));
    const aliased = await createKey({ certThumbprint: noncanonical });
    expect(aliased).toMatchObject({ status: 400, json: { code: "VALIDATION_FAILED", fields: { certThumbprint: expect.stringContaining("base64url") as unknown } } });
  });

  it("a session of a bound key inherits the binding", async () => {
    const created = await createKey({ certThumbprint: pki.client1.thumbprint });
    const { secret, ...key } = created.json as { id: string; secret: string };
    const logon = (client?: CertPair): Promise<Answer> => call({ port: gw, method: "POST", path: "/portcullis/v1/session", ...(client === undefined ? {} : { client }), ...signed(gw, key.id, secret, "POST", "/portcullis/v1/session", "{}") });
    expect(await logon()).toMatchObject({ status: 401, json: { code: "KEY_CERT_MISMATCH" } });
    expect(await logon(pki.client2)).toMatchObject({ status: 401, json: { code: "KEY_CERT_MISMATCH" } });
    const session = await logon(pki.client1);
    expect(session.status).toBe(201);
    const { keyid, secret: sessionSecret } = session.json as { keyid: string; secret: string };
    const get = (client?: CertPair): Promise<Answer> => call({ port: gw, path: "/api/v3/account", ...(client === undefined ? {} : { client }), ...signed(gw, keyid, sessionSecret, "GET", "/api/v3/account") });
    expect(await get(pki.client1)).toMatchObject({ status: 200, json: { ok: true } });
    expect(await get(pki.client2)).toMatchObject({ status: 401, json: { code: "KEY_CERT_MISMATCH" } });
    expect(await get()).toMatchObject({ status: 401, json: { code: "KEY_CERT_MISMATCH" } });
  });

  it("reload swaps the served certificate; a keep-alive connection opened before keeps working", async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1, ca: pki.ca.certPem });
    try {
      const first = await call({ port: gw, path: "/portcullis/v1/time", agent });
      expect(first.status).toBe(200);
      expect(first.served).toBe(pki.server.fingerprint256);
      // Nothing changed: the poll's step does nothing.
      expect(running.tls.gateway?.reloadIfChanged()).toBe(false);

      copyFileSync(pki.server2.cert, join(tlsDir, "gateway.crt"));
      copyFileSync(pki.server2.key, join(tlsDir, "gateway.key"));
      expect(running.reloadTls()).toBe(true);
      expect(running.tls.gateway?.fingerprint256).toBe(pki.server2.fingerprint256);

      const again = await call({ port: gw, path: "/portcullis/v1/time", agent });
      expect(again.status).toBe(200);
      expect(again.socket).toBe(first.socket);
      expect(again.served).toBe(pki.server.fingerprint256);
      const fresh = await call({ port: gw, path: "/portcullis/v1/time" });
      expect(fresh.served).toBe(pki.server2.fingerprint256);

      // The file poll's step notices a change by itself (here: back to the first certificate).
      copyFileSync(pki.server.cert, join(tlsDir, "gateway.crt"));
      copyFileSync(pki.server.key, join(tlsDir, "gateway.key"));
      expect(running.tls.gateway?.reloadIfChanged()).toBe(true);
      expect((await call({ port: gw, path: "/portcullis/v1/time" })).served).toBe(pki.server.fingerprint256);
    } finally {
      agent.destroy();
    }
  });

  it("a reload of a bad PEM keeps the certificate in service and logs TLS_RELOAD_FAILED, without key material", async () => {
    const keyText = readFileSync(join(tlsDir, "gateway.key"), "utf8");
    // A key of another certificate, then a file that is not PEM at all.
    copyFileSync(pki.client2.key, join(tlsDir, "gateway.key"));
    expect(running.reloadTls()).toBe(false);
    writeFileSync(join(tlsDir, "gateway.key"), "-----BEGIN PRIVATE KEY-----\nnot base64 at all\n-----END PRIVATE KEY-----\n");
    expect(running.tls.gateway?.reloadIfChanged()).toBe(false);
    // The same bad files are not retried (nor warned about) at every poll.
    expect(running.tls.gateway?.reloadIfChanged()).toBe(false);
    expect((await call({ port: gw, path: "/portcullis/v1/time" })).served).toBe(pki.server.fingerprint256);
    const warnings = logLines.filter((l) => l.includes("TLS_RELOAD_FAILED"));
    expect(warnings.length).toBe(2);
    expect(warnings[0]).toMatch(/does not match the certificate/);
    expect(isCatalogueCode("TLS_RELOAD_FAILED")).toBe(true);
    const body = (pem: string): string => pem.replace(/-----[^-]+-----/g, "").replace(/\s+/g, "").slice(0, 40);
    for (const secret of [body(keyText), body(pki.client2.keyPem.toString("utf8")), body(pki.server2.keyPem.toString("utf8"))]) {
      expect(logLines.join("\n")).not.toContain(secret);
    }
    writeFileSync(join(tlsDir, "gateway.key"), keyText);
    expect(running.tls.gateway?.reloadIfChanged()).toBe(true);
  });
});

describe("a start with bad TLS material", () => {
  it("fails with TLS_MATERIAL_INVALID before the data directory is opened: no file left behind", async () => {
    pki = makePki();
    const dir = mkdtempSync(join(tmpdir(), "portcullis-tls-bad-"));
    try {
      await initDataDir(dir, "test");
      const garbage = join(pki.dir, "garbage.crt");
      writeFileSync(garbage, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
      const openKey = join(pki.dir, "open.key");
      copyFileSync(pki.server.key, openKey);
      chmodSync(openKey, 0o644);
      const before = readdirSync(dir).sort();
      const start = (tls: Record<string, unknown>): Promise<unknown> =>
        startPortcullis(parseConfig({ dataDir: dir, environment: "test", gateway: { host: "127.0.0.1", port: 0, upstream: "http://127.0.0.1:9", tls }, admin: { enabled: false }, routes: TEST_ROUTES }, dir), captureLogger().logger).then(
          async (r) => {
            await r.close(0);
            return null;
          },
          (err: unknown) => err,
        );
      const cases: [Record<string, unknown>, RegExp][] = [
        [{ cert: garbage, key: pki.server.key }, /is not a PEM certificate/],
        [{ cert: pki.server.cert, key: pki.client1.key }, /does not match the certificate/],
        [{ cert: pki.server.cert, key: garbage }, /is not a usable PEM private key/],
        [{ cert: join(pki.dir, "absent.crt"), key: pki.server.key }, /cannot read the certificate .*ENOENT/],
        [{ cert: pki.server.cert, key: openKey }, /is open to every user \(mode 0644\)/],
        [{ cert: pki.server.cert, key: pki.server.key, ca: garbage, clientAuth: "optional" }, /CA certificate .* is not a PEM certificate/],
      ];
      for (const [tls, message] of cases) {
        const err = (await start(tls)) as { code?: string; message?: string } | null;
        expect(err?.code).toBe("TLS_MATERIAL_INVALID");
        expect(err?.message).toMatch(message);
        expect(err?.message).not.toContain(pki.client1.keyPem.toString("utf8").split("\n")[1]);
        expect(readdirSync(dir).sort()).toEqual(before);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
      pki.cleanup();
    }
  });
});
