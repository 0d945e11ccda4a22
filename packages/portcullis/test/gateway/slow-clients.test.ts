/**
 * Slow clients (found by the soak, bench/soak.js): node:http enforces `headersTimeout` and
 * `requestTimeout` only when it sweeps its connections, every 30 s by default, so a client that
 * never finished its headers held a gateway socket for up to 40 s against a 10 s headers timeout.
 * The gateway's and the admin API's listener (ServerLifecycle) sweep every second: a connection
 * past its timeout is answered (JSON) and closed within about a second of it.
 */
import { connect } from "node:net";
import { performance } from "node:perf_hooks";
import { afterEach, describe, expect, it } from "vitest";
import { CONNECTIONS_CHECKING_INTERVAL_MS, ServerLifecycle } from "../../src/gateway/lifecycle.js";

/** Writes `chunks` and keeps the socket open; resolves with what came back and when it closed. */
function hold(port: number, chunks: readonly string[]): Promise<{ received: string; ms: number }> {
  return new Promise((resolve, reject) => {
    const start = performance.now();
    let received = "";
    const socket = connect(port, "127.0.0.1", () => {
      for (const chunk of chunks) socket.write(chunk);
    });
    socket.on("data", (d: Buffer) => (received += d.toString("latin1")));
    socket.on("close", () => {
      resolve({ received, ms: performance.now() - start });
    });
    socket.on("error", reject);
    // Far beyond what the test allows: a server that never closes fails on the timing below.
    socket.setTimeout(15_000, () => socket.destroy());
  });
}

describe("slow clients", () => {
  let listener: ServerLifecycle | null = null;

  afterEach(async () => {
    await listener?.close(0);
    listener = null;
  });

  async function start(timeouts: { headersTimeout: number; requestTimeout: number }): Promise<number> {
    listener = new ServerLifecycle({ ...timeouts, bodyLimit: 1024 }, (_req, res) => {
      res.end("ok");
    });
    return (await listener.listen(0, "127.0.0.1")).port;
  }

  it("a client whose headers never end is answered and closed about a second after the headers timeout", async () => {
    const port = await start({ headersTimeout: 300, requestTimeout: 400 });
    const { received, ms } = await hold(port, ["GET /x HTTP/1.1\r\nHost: gw.test\r\n", "X-Slow: 1\r\n"]);
    expect(ms).toBeLessThan(300 + CONNECTIONS_CHECKING_INTERVAL_MS + 1500);
    expect(received).toMatch(/^HTTP\/1\.1 4\d\d /);
    expect(received).toContain('"code":"HTTP_MALFORMED"');
  });

  it("a client whose body never ends is closed about a second after the request timeout", async () => {
    const port = await start({ headersTimeout: 300, requestTimeout: 400 });
    const { ms } = await hold(port, ["POST /x HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 100\r\n\r\n", "{\"a\":"]);
    expect(ms).toBeLessThan(400 + CONNECTIONS_CHECKING_INTERVAL_MS + 1500);
  });

  it("a client that finishes in time is served", async () => {
    const port = await start({ headersTimeout: 300, requestTimeout: 400 });
    const { received } = await hold(port, ["GET /x HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n"]);
    expect(received).toMatch(/^HTTP\/1\.1 200 /);
  });
});
