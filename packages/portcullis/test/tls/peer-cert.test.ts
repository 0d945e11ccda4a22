/**
 * net/client-cert.ts `peerCertThumbprint` over real TLS connections: the verified certificate of
 * the peer, remembered per connection; and a connection the client already reset (its request read,
 * then the socket destroyed before the first look) names none instead of throwing (node's
 * getPeerCertificate answers null on a destroyed socket: every surface calls this after awaiting
 * the body, so a TypeError there was a 500 and an "unhandled error" log with a stack).
 */
import { readFileSync } from "node:fs";
import { createServer as createHttpsServer } from "node:https";
import { type TLSSocket, connect, createServer } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { peerCertThumbprint } from "../../src/net/client-cert.js";
import { type TestPki, makePki } from "../support/tls.js";

let pki: TestPki;
beforeAll(() => {
  pki = makePki();
});
afterAll(() => {
  pki.cleanup();
});

/** One mutual-TLS connection with client1's certificate; `look` runs on the server's socket. */
async function serverSide<T>(look: (socket: TLSSocket) => T): Promise<T> {
  const server = createServer({ cert: readFileSync(pki.server.cert), key: readFileSync(pki.server.key), ca: readFileSync(pki.ca.cert), requestCert: true, rejectUnauthorized: false });
  const seen = new Promise<T>((resolve, reject) => {
    server.on("secureConnection", (socket: TLSSocket) => {
      try {
        resolve(look(socket));
      } catch (err) {
        reject(err instanceof Error ? err : new Error(String(err)));
      }
    });
  });
  await new Promise<void>((resolve) => {
    server.listen(0, "127.0.0.1", resolve);
  });
  const { port } = server.address() as { port: number };
  const socket = connect({ port, host: "127.0.0.1", cert: readFileSync(pki.client1.cert), key: readFileSync(pki.client1.key), ca: readFileSync(pki.ca.cert), rejectUnauthorized: false, maxVersion: "TLSv1.2" });
  socket.on("error", () => undefined);
  try {
    return await seen;
  } finally {
    socket.destroy();
    await new Promise<void>((resolve) => {
      server.close(() => {
        resolve();
      });
    });
  }
}

describe("peerCertThumbprint", () => {
  it("names the verified certificate, and keeps naming it for the connection", async () => {
    const [first, afterDestroy] = await serverSide((socket) => {
      const thumbprint = peerCertThumbprint(socket);
      socket.destroy();
      return [thumbprint, peerCertThumbprint(socket)];
    });
    expect(first).toBe(pki.client1.thumbprint);
    expect(afterDestroy).toBe(pki.client1.thumbprint);
  });

  it("a connection destroyed before the first look names none, and does not throw", async () => {
    const result = await serverSide((socket) => {
      socket.destroy();
      return { authorized: socket.authorized, thumbprint: peerCertThumbprint(socket) };
    });
    expect(result).toEqual({ authorized: true, thumbprint: null });
  });

  it("once looked at, a TLS 1.2 renegotiation closes the connection, on an application's own https server that allows it", async () => {
    // An application's server, as the embedded middleware runs under it: nothing refuses renegotiation.
    const looked: (string | null)[] = [];
    const app = createHttpsServer({ cert: readFileSync(pki.server.cert), key: readFileSync(pki.server.key), ca: readFileSync(pki.ca.cert), requestCert: true, rejectUnauthorized: false }, (req, res) => {
      looked.push(peerCertThumbprint(req.socket));
      res.end("ok");
    });
    await new Promise<void>((resolve) => {
      app.listen(0, "127.0.0.1", resolve);
    });
    const { port } = app.address() as { port: number };
    const socket = connect({ port, host: "127.0.0.1", cert: readFileSync(pki.client1.cert), key: readFileSync(pki.client1.key), ca: readFileSync(pki.ca.cert), rejectUnauthorized: false, maxVersion: "TLSv1.2" });
    socket.on("error", () => undefined);
    try {
      await new Promise<void>((resolve) => {
        socket.once("secureConnect", () => {
          socket.write("GET / HTTP/1.1\r\nHost: app.test\r\n\r\n");
        });
        socket.once("data", () => {
          resolve();
        });
      });
      expect(looked).toEqual([pki.client1.thumbprint]);
      const renegotiation = await new Promise<string>((resolve) => {
        socket.once("close", () => {
          resolve("closed");
        });
        socket.renegotiate({ rejectUnauthorized: false }, (err) => {
          if (err !== null) resolve("error");
          // Renegotiated: the connection would go on with a thumbprint remembered from before.
          else setImmediate(() => { resolve(socket.destroyed ? "closed" : "renegotiated"); });
        });
      });
      expect(renegotiation).not.toBe("renegotiated");
    } finally {
      socket.destroy();
      app.closeAllConnections();
      await new Promise<void>((resolve) => {
        app.close(() => {
          resolve();
        });
      });
    }
  });
});
