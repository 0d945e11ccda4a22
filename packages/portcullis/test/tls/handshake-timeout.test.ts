/**
 * Slow TLS clients: a connection that never completes its TLS handshake is closed after the
 * listener's headers timeout, like a plain-HTTP client that never finishes its headers
 * (test/gateway/slow-clients.test.ts), not after node:tls's default 120 s handshake timeout.
 */
import { connect } from "node:net";
import { performance } from "node:perf_hooks";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { CONNECTIONS_CHECKING_INTERVAL_MS, ServerLifecycle } from "../../src/gateway/lifecycle.js";
import { TlsCredentials } from "../../src/gateway/tls.js";
import { type TestPki, makePki } from "../support/tls.js";

let pki: TestPki;
beforeAll(() => {
  pki = makePki();
});
afterAll(() => {
  pki.cleanup();
});

/** Opens a TCP connection, writes `bytes`, and resolves when the server closes it. */
function hold(port: number, bytes: Buffer): Promise<number> {
  return new Promise((resolve) => {
    const start = performance.now();
    const socket = connect(port, "127.0.0.1", () => {
      socket.write(bytes);
    });
    socket.on("data", () => undefined);
    socket.on("close", () => {
      resolve(performance.now() - start);
    });
    socket.on("error", () => undefined);
    // Far beyond what the test allows: a server that never closes fails on the timing below.
    socket.setTimeout(15_000, () => {
      socket.destroy();
    });
  });
}

describe("slow TLS clients", () => {
  let listener: ServerLifecycle | null = null;
  afterEach(async () => {
    await listener?.close(0);
    listener = null;
  });

  it("a connection that never completes its handshake is closed soon after the headers timeout", async () => {
    const tls = new TlsCredentials({ certFile: pki.server.cert, keyFile: pki.server.key, caFile: null, clientAuth: "none", reloadIntervalMs: null }, "gateway.tls");
    listener = new ServerLifecycle({ headersTimeout: 300, requestTimeout: 400, bodyLimit: 1024, tls }, (_req, res) => {
      res.end("ok");
    });
    const { port } = await listener.listen(0, "127.0.0.1");
    // Nothing at all, and the first bytes of a TLS record that never completes.
    const silent = await hold(port, Buffer.alloc(0));
    const partial = await hold(port, Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]));
    for (const ms of [silent, partial]) expect(ms).toBeLessThan(300 + CONNECTIONS_CHECKING_INTERVAL_MS + 1500);
  });
});
