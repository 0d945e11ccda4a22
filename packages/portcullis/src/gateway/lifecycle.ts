import { randomUUID } from "node:crypto";
import { type IncomingMessage, type RequestListener, type Server, type ServerResponse, createServer } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo, Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import { deny } from "../errors/catalogue.js";
import { declaredBodyRefusal, rejectUnparsable, sendDenial } from "./http.js";
import type { TlsCredentials } from "./tls.js";

/** How often node:http looks for connections past their headers or request timeout. */
export const CONNECTIONS_CHECKING_INTERVAL_MS = 1000;

export interface HttpServerOptions {
  readonly requestTimeout: number;
  readonly headersTimeout: number;
  readonly keepAliveTimeout?: number;
  /** The largest body the listener reads: a 100-continue for a larger declared one is not sent. */
  readonly bodyLimit: number;
  /** Serve HTTPS with these credentials (gateway/tls.ts; docs/tls.md); absent: plain HTTP. */
  readonly tls?: TlsCredentials | undefined;
}

/**
 * Portcullis's HTTP servers (gateway and admin API): what node:http would answer itself is
 * answered in the JSON error format (`admit`, `rejectUnparsable`), and listening and graceful
 * shutdown: count the requests in flight, stop accepting on close, let them finish, then close
 * what is left.
 */
export class ServerLifecycle {
  readonly server: Server;
  private inFlight = 0;
  private drained: (() => void) | null = null;
  private readonly bodyLimit: number;
  /** The listener's TLS (its reload poll stops on close), or null: plain HTTP. */
  readonly tls: TlsCredentials | null;
  closing = false;
  /**
   * Draining (SIGTERM, `drain()`): the probes answer 503 DRAINING and every answer closes its
   * connection, while requests are still accepted (a load balancer's grace to stop sending).
   * `close` sets it too.
   */
  draining = false;

  constructor(
    options: HttpServerOptions,
    /** The server's request listener; it calls `track` first. */
    private readonly handle: RequestListener,
  ) {
    const { bodyLimit, tls, ...timeouts } = options;
    this.bodyLimit = bodyLimit;
    this.tls = tls ?? null;
    // Host and Expect are checked by `admit`, which answers in JSON; node:http's own checks answer
    // an empty 400 or 417. node:http enforces the headers and request timeouts only when it sweeps
    // its connections, every 30 s by default: a client that never finishes its headers (slowloris)
    // would hold a socket for up to 40 s against a 10 s headersTimeout. Sweep every second.
    const httpOptions = { ...timeouts, requireHostHeader: false, connectionsCheckingInterval: CONNECTIONS_CHECKING_INTERVAL_MS };
    if (tls === undefined) this.server = createServer(httpOptions, this.admit);
    else {
      // The handshake is bounded like the headers that follow it: node:tls's default is 120 s, so a
      // client that opened a connection and never finished its handshake held the socket 12 times
      // longer than one that never finished its headers (the slowloris the sweep above prevents).
      const server = createHttpsServer({ ...httpOptions, ...tls.serverOptions(), handshakeTimeout: timeouts.headersTimeout }, this.admit);
      // TLS 1.2 renegotiation is refused (TLS 1.3 has none): a client cannot make the server
      // redo handshakes on a connection, nor change its certificate after its requests began.
      server.on("secureConnection", (socket: TLSSocket) => {
        socket.disableRenegotiation();
      });
      // A failed handshake (an old protocol, no client certificate under clientAuth "required")
      // only closes that connection.
      server.on("tlsClientError", (_err: Error, socket: TLSSocket) => {
        socket.destroy();
      });
      tls.attach(server);
      this.server = server;
    }
    this.server.on("checkContinue", this.admit);
    this.server.on("checkExpectation", this.admit);
    this.server.on("clientError", (err: NodeJS.ErrnoException, socket: Socket) => {
      rejectUnparsable(err, socket);
    });
  }

  /**
   * Every request before its listener (node:http's 'request', 'checkContinue' and
   * 'checkExpectation'; the gateway's plain-HTTP upgrades): an HTTP/1.1 request without Host is
   * refused HTTP_MALFORMED (RFC 9112 section 3.2), one that expects anything but 100-continue
   * EXPECTATION_FAILED (RFC 9110 section 10.1.1); a 100-continue is sent unless the declared body
   * is refused before it is read (then the refusal is the answer). HTTP/1.0 expectations are
   * ignored, as RFC 9110 requires.
   */
  readonly admit = (req: IncomingMessage, res: ServerResponse): void => {
    if (req.httpVersionMajor === 1 && req.httpVersionMinor === 1) {
      if (req.headers.host === undefined) {
        this.refuse(res, "HTTP_MALFORMED", "no Host header");
        return;
      }
      const expect = req.headers.expect;
      if (expect !== undefined) {
        if (expect.trim().toLowerCase() !== "100-continue") {
          this.refuse(res, "EXPECTATION_FAILED", `Expect: ${expect.slice(0, 100)}`);
          return;
        }
        if (declaredBodyRefusal(req, this.bodyLimit) === null) res.writeContinue();
      }
    }
    this.handle(req, res);
  };

  private refuse(res: ServerResponse, code: "HTTP_MALFORMED" | "EXPECTATION_FAILED", detail: string): void {
    this.track(res);
    sendDenial(res, deny(code, detail), randomUUID(), { close: true });
  }

  /** Call at the start of every request. */
  track(res: ServerResponse): void {
    this.inFlight++;
    if (this.draining) res.shouldKeepAlive = false;
    res.once("close", () => {
      this.inFlight--;
      if (this.inFlight === 0 && this.drained !== null) this.drained();
    });
  }

  listen(port: number, host: string): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => {
        reject(err);
      };
      this.server.once("error", onError);
      this.server.listen(port, host, () => {
        this.server.removeListener("error", onError);
        resolve(this.server.address() as AddressInfo);
      });
    });
  }

  /** Stops accepting, waits up to `drainMs` for in-flight requests, then closes every connection. */
  async close(drainMs: number): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.draining = true;
    this.tls?.close();
    const closed = this.server.listening
      ? new Promise<void>((resolve) => {
          this.server.close(() => {
            resolve();
          });
        })
      : Promise.resolve();
    this.server.closeIdleConnections();
    if (this.inFlight > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, drainMs);
        timer.unref();
        this.drained = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    this.server.closeAllConnections();
    await closed;
  }
}
