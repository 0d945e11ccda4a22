/**
 * What reaches the upstream of the client's headers (issue 13, finding 4), over real sockets: no
 * header of the client-address family, no method override or URL rewrite, no hop-by-hop header,
 * no name of the gateway's own, in any case or with `_` for `-`, reaches the echo upstream, over
 * HTTP (public and signed routes) and on a WebSocket leg's upgrade; the gateway's own
 * X-Forwarded-For is the socket's address.
 */
import { createServer } from "node:http";
import { type AddressInfo, connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocketServer } from "ws";
import { createIdentityVerifier } from "../../src/gateway/identity.js";
import { IDENTITY_SECRET, type Recorded, type TestGateway, makeGateway } from "../support/gateway.js";
import { signRequest } from "../support/harness.js";
import { type WsStack, WsClient, signedUpgrade, startWsStack } from "../support/websocket.js";

/** Every name the gateway drops, as an attacker would send it. */
const DROPPED = [
  // the client-address family
  "Forwarded",
  "X-Forwarded",
  "X-Forwarded-For",
  "X-Forwarded-Host",
  "X-Forwarded-Proto",
  "X-Forwarded-Port",
  "X-Forwarded-Prefix",
  "X-Forwarded-Server",
  "X-Forwarded-Ssl",
  "X-Forwarded-Uri",
  "X-Real-IP",
  "True-Client-IP",
  "X-Client-IP",
  "Client-IP",
  "CF-Connecting-IP",
  "CF-Connecting-IPv6",
  "CF-Pseudo-IPv4",
  "Fastly-Client-IP",
  "X-Cluster-Client-IP",
  "X-Original-Forwarded-For",
  "X-Originating-IP",
  "X-Remote-IP",
  "X-Remote-Addr",
  "X-ProxyUser-IP",
  "WL-Proxy-Client-IP",
  "Proxy-Client-IP",
  "X-Azure-ClientIP",
  "X-Azure-SocketIP",
  "X-AppEngine-User-IP",
  "X-Envoy-External-Address",
  "X-Host",
  "X-Original-Host",
  // method overrides and URL rewrites
  "X-HTTP-Method-Override",
  "X-HTTP-Method",
  "X-Method-Override",
  "X-Original-Method",
  "X-Original-URL",
  "X-Rewrite-URL",
  "X-Original-URI",
  "X-Original-Path",
  "X-Envoy-Original-Path",
  // the gateway's own names
  "Portcullis-Account",
  "Portcullis-Sub-Account",
  "Portcullis-Key-Id",
  "Portcullis-Scopes",
  "Portcullis-Client-IP",
  "Portcullis-Identity",
  "Portcullis-Timestamp",
  "Portcullis-Request-Id",
  // hop-by-hop (RFC 9110 section 7.6.1) that leave the message's framing alone
  "Keep-Alive",
  "Proxy-Connection",
  "Proxy-Authorization",
  "Proxy-Authenticate",
  "TE",
  "Trailer",
  "HTTP2-Settings",
  // the native scheme's credential header
  "Signature-Input",
];

/** The names of the list as sent: as written, lower case, upper case, and with `_` for `-`. */
function variants(names: readonly string[]): string[] {
  const out = new Set<string>();
  for (const name of names) {
    for (const n of [name, name.toLowerCase(), name.toUpperCase()]) {
      out.add(n);
      out.add(n.replaceAll("-", "_"));
    }
  }
  return [...out];
}

/** Spoofed headers: each carries a value the upstream must never see ("spoofed-<n>"). */
function spoofed(names: readonly string[]): [string, string][] {
  return names.map((name, i) => [name, `spoofed-${String(i)}`]);
}

/**
 * The variants, and the `_` variants of the framing headers (plain headers to node:http, dropped
 * all the same).
 */
const SPOOFED = spoofed([...variants(DROPPED), "Transfer_Encoding", "CONTENT_LENGTH", "content_length"]);
/** Without the credential header itself (a second Signature-Input would make a request signed twice). */
const SPOOFED_UNSIGNED = SPOOFED.filter(([n]) => n.toLowerCase() !== "signature-input");

/** Writes raw bytes and returns the raw answer (the gateway closes after answering). */
function raw(port: number, bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1", () => socket.write(bytes));
    let out = "";
    socket.on("data", (d: Buffer) => (out += d.toString("latin1")));
    socket.on("close", () => {
      resolve(out);
    });
    socket.on("error", reject);
    socket.setTimeout(3000, () => socket.destroy());
  });
}

function statusOf(answer: string): number {
  return Number(answer.split(" ")[1]);
}

function headerOf(answer: string, name: string): string | undefined {
  const head = answer.slice(0, answer.indexOf("\r\n\r\n")).split("\r\n");
  const line = head.find((l) => l.toLowerCase().startsWith(`${name}:`));
  return line?.slice(name.length + 1).trim();
}

/** No value the client sent reached the upstream, under any header name. */
function expectNoSpoof(headers: Recorded["headers"]): void {
  const leaked = Object.entries(headers).filter(([, value]) => /spoofed-/.test(String(value)));
  expect(leaked).toEqual([]);
}

describe("HTTP: what reaches the upstream", () => {
  let g: TestGateway;
  let port: number;
  beforeAll(async () => {
    g = await makeGateway();
    port = (await g.gateway.listen(0, "127.0.0.1")).port;
  });
  afterAll(async () => {
    await g.close();
  });

  const lines = (headers: readonly [string, string][]): string => headers.map(([n, v]) => `${n}: ${v}\r\n`).join("");

  it("no client-address, override, rewrite, hop-by-hop or gateway-owned header, in any case or with _ for -, on a public route", async () => {
    const answer = await raw(
      port,
      `GET /public/time HTTP/1.1\r\nHost: Gateway.Test\r\n${lines(SPOOFED)}X-Hop-Listed: spoofed-listed\r\nConnection: close, X_Hop_Listed\r\nX-Kept: yes\r\n\r\n`,
    );
    expect(statusOf(answer)).toBe(200);
    const rec = g.upstream.requests.at(-1);
    expect(rec?.url).toBe("/public/time");
    const headers = rec?.headers ?? {};
    expectNoSpoof(headers);
    expect(headers["x-kept"]).toBe("yes");
    // The gateway's own forwarding headers: the socket's address, its scheme, the Host.
    expect(headers["x-forwarded-for"]).toBe("127.0.0.1");
    expect(headers["x-forwarded-proto"]).toBe("http");
    expect(headers["x-forwarded-host"]).toBe("gateway.test");
    expect(headers["portcullis-request-id"]).toBe(headerOf(answer, "portcullis-request-id"));
    expect(rec?.method).toBe("GET");
  });

  it("on a signed route: the identity headers are the gateway's, the rest dropped", async () => {
    const created = await g.createKey({ scopes: ["read"] });
    const signed = signRequest({ method: "GET", url: "/api/v3/account", host: "gateway.test", keyId: created.key.id, key: created.secret ?? "", created: g.clock.seconds });
    const signedLines = Object.entries(signed)
      .filter(([n]) => n !== "host")
      .map(([n, v]) => `${n}: ${v}\r\n`)
      .join("");
    const answer = await raw(port, `GET /api/v3/account HTTP/1.1\r\nHost: gateway.test\r\n${signedLines}${lines(SPOOFED_UNSIGNED)}Connection: close\r\n\r\n`);
    expect(statusOf(answer)).toBe(200);
    const rec = g.upstream.requests.at(-1);
    const headers = rec?.headers ?? {};
    expectNoSpoof(headers);
    expect(headers["portcullis-account"]).toBe("acct-1");
    expect(headers["x-forwarded-for"]).toBe("127.0.0.1");
    expect(headers["portcullis-client-ip"]).toBe("127.0.0.1");
    // The credential headers are the gateway's to check, not the upstream's.
    expect(headers.signature).toBeUndefined();
    expect(headers["signature-input"]).toBeUndefined();
    expect(createIdentityVerifier(IDENTITY_SECRET, { now: g.clock.now })({ method: "GET", url: rec?.url ?? "", headers }, Buffer.alloc(0))).toMatchObject({ ok: true, identity: { keyId: created.key.id } });
  });
});

describe("WebSocket: what a leg's upgrade carries to the upstream", () => {
  const PATH = "/ws-api/v3";
  const upgrades: Recorded["headers"][] = [];
  const upstream = createServer((_req, res) => res.writeHead(404).end());
  const wss = new WebSocketServer({ noServer: true });
  let s: WsStack;
  const clients: WsClient[] = [];
  beforeAll(async () => {
    upstream.on("upgrade", (req, socket, head) => {
      upgrades.push(req.headers);
      wss.handleUpgrade(req, socket, head, (ws) => {
        ws.on("message", (data) => {
          const m = JSON.parse((data as Buffer).toString("utf8")) as { id: string };
          ws.send(JSON.stringify({ id: m.id, status: 200, result: {} }));
        });
      });
    });
    await new Promise<void>((resolve) => upstream.listen(0, "127.0.0.1", resolve));
    s = await startWsStack({ upstream: `http://127.0.0.1:${String((upstream.address() as AddressInfo).port)}` });
  });
  afterAll(async () => {
    for (const c of clients) c.ws.terminate();
    await s.close();
    for (const ws of wss.clients) ws.terminate();
    upstream.closeAllConnections();
    await new Promise<void>((resolve) => upstream.close(() => { resolve(); }));
  });

  // Sent by ws over node's HTTP client, which adds its own Connection and Upgrade, and refuses a
  // Trailer header on a request without a chunked body.
  const sendable = SPOOFED_UNSIGNED.filter(([n]) => n.toLowerCase() !== "trailer");

  it("an anonymous upgrade: none of the client's headers, the socket's address as X-Forwarded-For", async () => {
    const c = await WsClient.connect(`${s.wsUrl}${PATH}`, Object.fromEntries(sendable));
    clients.push(c);
    expect((await c.request("time")).status).toBe(200);
    const headers = upgrades.at(-1) ?? {};
    expectNoSpoof(headers);
    expect(headers["x-forwarded-for"]).toBe("127.0.0.1");
    expect(headers["x-forwarded-proto"]).toBe("http");
    expect(headers["x-forwarded-host"]).toBe(s.host);
    expect(headers["portcullis-account"]).toBeUndefined();
  });

  it("a signed upgrade: the identity's headers are the gateway's", async () => {
    const created = await s.createKey({ scopes: ["read"], dialects: ["native", "binance"] });
    const c = await WsClient.connect(`${s.wsUrl}${PATH}`, { ...Object.fromEntries(sendable), ...signedUpgrade(s, PATH, created.key.id, created.secret ?? "") });
    clients.push(c);
    expect((await c.request("time")).status).toBe(200);
    const headers = upgrades.at(-1) ?? {};
    expectNoSpoof(headers);
    expect(headers["portcullis-account"]).toBe("acct-1");
    expect(headers["portcullis-key-id"]).toBe(created.key.id);
    expect(headers["x-forwarded-for"]).toBe("127.0.0.1");
    expect(headers.signature).toBeUndefined();
  });
});
