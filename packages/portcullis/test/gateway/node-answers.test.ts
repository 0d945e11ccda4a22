/**
 * What node:http would answer itself (issue 13, finding 11), over raw sockets, for the gateway and
 * the admin API: an HTTP/1.1 request without Host, an Expect other than 100-continue, and
 * 100-continue itself, answered in the JSON error format with a code, never a stack trace.
 */
import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminApi } from "../../src/admin/server.js";
import { silentLogger } from "../../src/log/logger.js";
import { type TestGateway, makeGateway } from "../support/gateway.js";
import { signRequest } from "../support/harness.js";

interface Answer {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: string;
  /** Everything received, interim answers (100 Continue) included. */
  readonly raw: string;
}

function parse(raw: string): Answer {
  // The final answer follows any 1xx interim answers.
  let rest = raw;
  while (/^HTTP\/1\.1 1\d\d /.test(rest)) rest = rest.slice(rest.indexOf("\r\n\r\n") + 4);
  const split = rest.indexOf("\r\n\r\n");
  const [statusLine = "", ...lines] = rest.slice(0, split).split("\r\n");
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(":");
    headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { status: Number(statusLine.split(" ")[1]), headers, body: rest.slice(split + 4), raw };
}

/**
 * Sends `head`; then `body` once the server answered 100 Continue (when `waitForContinue`), or at
 * once. Resolves with everything received once the server closes.
 */
function exchange(port: number, head: string, body = "", waitForContinue = false): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1", () => {
      socket.write(head);
      if (!waitForContinue) socket.write(body);
    });
    let out = "";
    let sent = !waitForContinue;
    socket.on("data", (d: Buffer) => {
      out += d.toString("latin1");
      if (!sent && out.startsWith("HTTP/1.1 100 Continue\r\n\r\n")) {
        sent = true;
        socket.write(body);
      }
    });
    socket.on("close", () => {
      resolve(parse(out));
    });
    socket.on("error", reject);
    socket.setTimeout(3000, () => socket.destroy());
  });
}

/** The documented JSON error: the code, a message, a request id; no stack trace. */
function expectJsonError(answer: Answer, status: number, code: string): void {
  expect(answer.status).toBe(status);
  expect(answer.headers["content-type"]).toBe("application/json; charset=utf-8");
  const body = JSON.parse(answer.body) as Record<string, unknown>;
  expect(body).toMatchObject({ code, message: expect.any(String) as unknown, requestId: expect.any(String) as unknown });
  expect(Object.keys(body).sort()).toEqual(["code", "message", "requestId"]);
  expect(answer.raw).not.toMatch(/\bat .*\.(ts|js):\d+/);
  expect(answer.headers.connection).toBe("close");
}

describe.each(["gateway", "admin API"] as const)("the %s answers what node:http would answer itself", (surface) => {
  let g: TestGateway;
  let admin: AdminApi | null = null;
  let port: number;
  beforeAll(async () => {
    g = await makeGateway({}, { bodyLimit: 1024 });
    if (surface === "gateway") port = (await g.gateway.listen(0, "127.0.0.1")).port;
    else {
      admin = new AdminApi({ core: g.core, logger: silentLogger() });
      port = (await admin.listen(0, "127.0.0.1")).port;
    }
  });
  afterAll(async () => {
    await admin?.close(100);
    await g.close();
  });

  it("an HTTP/1.1 request without Host: 400 HTTP_MALFORMED in JSON", async () => {
    expectJsonError(await exchange(port, "GET /public/time HTTP/1.1\r\nConnection: close\r\n\r\n"), 400, "HTTP_MALFORMED");
    expectJsonError(await exchange(port, "POST /v1/keys HTTP/1.1\r\nContent-Length: 2\r\n\r\n", "{}"), 400, "HTTP_MALFORMED");
  });

  it("an HTTP/1.1 request without Host that expects 100-continue: refused, with no 100 Continue first", async () => {
    const answer = await exchange(port, "POST /public/time HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n", "{}", true);
    expectJsonError(answer, 400, "HTTP_MALFORMED");
    expect(answer.raw).not.toMatch(/^HTTP\/1\.1 100/);
  });

  it.each(["fruit", "100-continue, fruit", "200-ok", ""])("Expect: %j is 417 EXPECTATION_FAILED in JSON", async (expectation) => {
    expectJsonError(await exchange(port, `GET /public/time HTTP/1.1\r\nHost: x\r\nExpect: ${expectation}\r\nConnection: close\r\n\r\n`), 417, "EXPECTATION_FAILED");
  });

  it("an HTTP/1.0 request needs no Host, and its expectations are ignored (RFC 9110 section 10.1.1)", async () => {
    const answer = await exchange(port, "GET /public/time HTTP/1.0\r\nExpect: fruit\r\n\r\n");
    expect(answer.status).not.toBe(417);
    expect(answer.status).not.toBe(400);
    expect(answer.raw).not.toMatch(/^HTTP\/1\.1 100/);
  });

  it("Expect: 100-continue above the body limit: refused before the body is invited", async () => {
    const answer = await exchange(port, "POST /api/v3/order HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 999999\r\n\r\n", "", true);
    expectJsonError(answer, 413, "BODY_TOO_LARGE");
    expect(answer.raw).not.toMatch(/^HTTP\/1\.1 100/);
  });
});

describe("Expect: 100-continue through the gateway", () => {
  let g: TestGateway;
  let port: number;
  beforeAll(async () => {
    g = await makeGateway();
    port = (await g.gateway.listen(0, "127.0.0.1")).port;
  });
  afterAll(async () => {
    await g.close();
  });

  it("a signed order: 100 Continue, then the body, forwarded without Expect, and the upstream's answer", async () => {
    const created = await g.createKey({ scopes: ["trade"] });
    const body = "symbol=BTCUSDT&side=BUY&quantity=1";
    const signed = signRequest({ method: "POST", url: "/api/v3/order", host: "gateway.test", body, keyId: created.key.id, key: created.secret ?? "", created: g.clock.seconds });
    const lines = Object.entries(signed)
      .map(([n, v]) => `${n}: ${v}\r\n`)
      .join("");
    const answer = await exchange(port, `POST /api/v3/order HTTP/1.1\r\n${lines}Expect: 100-continue\r\nContent-Length: ${String(body.length)}\r\nConnection: close\r\n\r\n`, body, true);
    expect(answer.raw).toMatch(/^HTTP\/1\.1 100 Continue\r\n\r\n/);
    expect(answer.status).toBe(200);
    const rec = g.upstream.requests.at(-1);
    expect(rec).toMatchObject({ method: "POST", url: "/api/v3/order", body });
    expect(rec?.headers.expect).toBeUndefined();
  });

  it("an HTTP/1.0 request's Expect is not forwarded either", async () => {
    const answer = await exchange(port, "GET /public/time HTTP/1.0\r\nHost: x\r\nExpect: 100-continue\r\n\r\n");
    expect(answer.status).toBe(200);
    expect(g.upstream.requests.at(-1)?.headers.expect).toBeUndefined();
  });
});
