import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { inject, type InjectOptions, type Response } from "light-my-request";
import { IdentitySigner } from "../../src/gateway/identity.js";
import { Forwarder } from "../../src/gateway/proxy.js";
import { Gateway } from "../../src/gateway/server.js";
import { createLogger, type Logger } from "../../src/log/logger.js";
import { SessionEndpoints } from "../../src/gateway/session-endpoints.js";
import { type TestCore, makeCore } from "./harness.js";
import { Writable } from "node:stream";

export const IDENTITY_SECRET = "test-identity-secret-0123456789abcdef";

export interface Recorded {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  /** The exact bytes received (what the identity headers' body digest covers). */
  readonly rawBody: Buffer;
}

/** A real upstream on a loopback port that records what reached it and echoes it back. */
export async function startEchoUpstream(options: { maxHeaderSize?: number } = {}): Promise<{ server: Server; url: string; requests: Recorded[]; close(): Promise<void> }> {
  const requests: Recorded[] = [];
  const server = createServer(options.maxHeaderSize === undefined ? {} : { maxHeaderSize: options.maxHeaderSize }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const rawBody = Buffer.concat(chunks);
      const rec = { method: req.method ?? "", url: req.url ?? "", headers: req.headers, body: rawBody.toString("utf8"), rawBody };
      requests.push(rec);
      const body = JSON.stringify({ ok: true, url: rec.url });
      res.writeHead(200, { "content-type": "application/json", "x-upstream": "echo", connection: "keep-alive", "keep-alive": "timeout=5" });
      res.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    server,
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => { resolve(); });
      }),
  };
}

/** Captures log lines, so tests can assert what was (and was not) logged. */
export function captureLogger(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(chunk.toString("utf8"));
      cb();
    },
  });
  return { logger: createLogger({ level: "debug" }, sink), lines };
}

export interface TestGateway extends TestCore {
  readonly gateway: Gateway;
  readonly upstream: Awaited<ReturnType<typeof startEchoUpstream>>;
  readonly logLines: string[];
  inject(options: InjectOptions): Promise<Response>;
  close(): Promise<void>;
}

export async function makeGateway(
  coreOptions: Parameters<typeof makeCore>[0] = {},
  gatewayOptions: { bodyLimit?: number; upstreamTimeoutMs?: number; upstreamUrl?: string; upstreamMaxHeaderSize?: number } = {},
): Promise<TestGateway> {
  const upstream = await startEchoUpstream(gatewayOptions.upstreamMaxHeaderSize === undefined ? {} : { maxHeaderSize: gatewayOptions.upstreamMaxHeaderSize });
  const { logger, lines } = captureLogger();
  const t = await makeCore({ logger, ...coreOptions });
  const gateway = new Gateway({
    pipeline: t.core.pipeline,
    forwarder: new Forwarder({ upstream: gatewayOptions.upstreamUrl ?? upstream.url, timeoutMs: gatewayOptions.upstreamTimeoutMs ?? 5_000 }),
    identity: new IdentitySigner(IDENTITY_SECRET),
    logger,
    now: t.clock.now,
    audit: t.core.audit,
    ...(gatewayOptions.bodyLimit === undefined ? {} : { bodyLimit: gatewayOptions.bodyLimit }),
    ...(t.core.sessions === null ? {} : { sessions: new SessionEndpoints(t.core) }),
  });
  return {
    ...t,
    gateway,
    upstream,
    logLines: lines,
    inject: (options) => inject(gateway.handle, { remoteAddress: "127.0.0.1", ...options }),
    async close() {
      await gateway.close(1_000);
      await upstream.close();
      await t.cleanup();
    },
  };
}
