/**
 * The handler behind a real node:http server: signed requests over a socket, a streamed body
 * over the cap (413, and the server keeps serving), and a client that disconnects mid-body (no
 * answer, no internal fault).
 */
import { createServer, type Server } from "node:http";
import { connect, type AddressInfo } from "node:net";
import { Readable } from "node:stream";
import { request } from "undici";
import { afterEach, describe, expect, it } from "vitest";
import { createDemoExchange, type DemoExchange } from "../src/exchange/index.js";
import { IdentitySigner } from "portcullis";
import { SECRET } from "./harness.js";

let server: Server | undefined;

afterEach(async () => {
  const s = server;
  server = undefined;
  if (s !== undefined) await new Promise<void>((resolve) => s.close(() => { resolve(); }));
});

async function start(): Promise<{ base: string; port: number; exchange: DemoExchange; faults: unknown[] }> {
  const faults: unknown[] = [];
  const exchange = createDemoExchange({ identitySecret: SECRET, onError: (e) => faults.push(e) });
  const s = createServer(exchange.handler);
  server = s;
  await new Promise<void>((resolve) => s.listen(0, "127.0.0.1", resolve));
  const { port } = s.address() as AddressInfo;
  return { base: `http://127.0.0.1:${port}`, port, exchange, faults };
}

describe("over a real socket", () => {
  it("serves public and signed private requests", async () => {
    const { base, faults } = await start();
    const time = await request(`${base}/api/v3/time`);
    expect(time.statusCode).toBe(200);
    expect(await time.body.json()).toHaveProperty("serverTime");

    const target = "/api/v3/order";
    const headers: Record<string, string> = {};
    const body = "symbol=BTCUSDT&side=BUY&type=MARKET&quantity=0.1";
    new IdentitySigner(SECRET).write(
      headers,
      "POST",
      target,
      Buffer.from(body),
      { requestId: "r1", keyId: "k1", account: "alice", subAccount: null, scopes: ["trade"], clientIp: "127.0.0.1", timestamp: Date.now() },
      "trade",
    );
    const order = await request(`${base}${target}`, {
      method: "POST",
      headers: { ...headers, "content-type": "application/x-www-form-urlencoded" },
      body,
    });
    expect(order.statusCode).toBe(200);
    expect(await order.body.json()).toMatchObject({ status: "FILLED", cummulativeQuoteQty: "6001.00000000" });
    expect(faults).toEqual([]);
  });

  it("answers 413 to a streamed body over the cap and keeps serving", async () => {
    const { base, faults } = await start();
    async function* chunks(): AsyncGenerator<Buffer> {
      for (let i = 0; i < 40; i++) {
        await Promise.resolve();
        yield Buffer.alloc(4096, 0x61);
      }
    }
    const big = await request(`${base}/api/v3/depth?symbol=BTCUSDT`, {
      method: "GET",
      body: Readable.from(chunks()),
      headers: { "content-type": "application/x-www-form-urlencoded" },
    });
    expect(big.statusCode).toBe(413);
    expect(await big.body.json()).toMatchObject({ code: -1101 });
    const after = await request(`${base}/api/v3/depth?symbol=BTCUSDT&limit=1`);
    expect(after.statusCode).toBe(200);
    await after.body.dump();
    expect(faults).toEqual([]);
  });

  it("a client that disconnects mid-body is not an internal fault", async () => {
    const { base, port, faults } = await start();
    await new Promise<void>((resolve) => {
      const socket = connect(port, "127.0.0.1", () => {
        socket.write("GET /api/v3/depth?symbol=BTCUSDT HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc");
        setTimeout(() => {
          socket.destroy();
          resolve();
        }, 30);
      });
    });
    await new Promise((resolve) => setTimeout(resolve, 30));
    const after = await request(`${base}/api/v3/time`);
    expect(after.statusCode).toBe(200);
    await after.body.dump();
    expect(faults).toEqual([]);
  });
});
