import WebSocket, { type RawData } from "ws";
import { type Denial, deny } from "../../errors/catalogue.js";

/**
 * One WebSocket connection from the gateway to the upstream, for one identity: its upgrade
 * carries that identity's signed headers (identity.ts) and the forwarding headers (proxy.ts
 * `addForwarding`), no header of the client's, and it carries only that identity's
 * messages, so the upstream knows whom every message on it is from without any new protocol.
 * Messages sent while it connects are queued (bounded) and sent once it is open.
 */
export interface LegOptions {
  readonly url: string;
  /** The upgrade's headers: the gateway's own only (connection.ts `legFor`). */
  readonly headers: Readonly<Record<string, string>>;
  readonly protocols?: readonly string[];
  /** The opening handshake must complete within this (ms). */
  readonly timeoutMs: number;
  /** Largest message accepted from the upstream (bytes). */
  readonly maxPayload: number;
  /** Messages queued while connecting. */
  readonly maxQueued: number;
}

export interface LegEvents {
  message(data: RawData, isBinary: boolean): void;
  /** The leg closed after it had opened. */
  closed(code: number, reason: string): void;
}

export class UpstreamLeg {
  /** Resolves once the leg is open (null) or could not open (why). Never rejects. */
  readonly opened: Promise<Denial | null>;
  private readonly ws: WebSocket;
  private state: "connecting" | "open" | "closed" = "connecting";
  private readonly queue: string[] = [];
  private readonly maxQueued: number;
  private settle: (result: Denial | null) => void = () => undefined;

  constructor(options: LegOptions, events: LegEvents) {
    this.maxQueued = options.maxQueued;
    this.opened = new Promise((resolve) => {
      this.settle = (result) => {
        this.settle = () => undefined;
        resolve(result);
      };
    });
    this.ws = new WebSocket(options.url, options.protocols === undefined ? [] : [...options.protocols], {
      headers: options.headers,
      handshakeTimeout: options.timeoutMs,
      maxPayload: options.maxPayload,
      perMessageDeflate: false,
      followRedirects: false,
    });
    this.ws.on("open", () => {
      this.state = "open";
      for (const text of this.queue.splice(0)) this.ws.send(text);
      this.settle(null);
    });
    this.ws.on("unexpected-response", (req, res) => {
      res.resume();
      this.settle(deny("UPSTREAM_UNAVAILABLE", `upstream answered the upgrade with ${String(res.statusCode)}`));
      req.destroy();
      this.state = "closed";
    });
    this.ws.on("message", (data, isBinary) => {
      events.message(data, isBinary);
    });
    this.ws.on("error", (err) => {
      // Before the handshake completed: the leg never opened. After: a close follows.
      const timedOut = /timed out/i.test(err.message);
      this.settle(deny(timedOut ? "UPSTREAM_TIMEOUT" : "UPSTREAM_UNAVAILABLE", err.message));
    });
    this.ws.on("close", (code, reason) => {
      const wasOpen = this.state === "open";
      this.state = "closed";
      this.queue.length = 0;
      this.settle(deny("UPSTREAM_UNAVAILABLE", `closed with ${code} before it opened`));
      if (wasOpen) events.closed(code, reason.toString("utf8"));
    });
  }

  /** The subprotocol the upstream chose ("" for none). */
  get protocol(): string {
    return this.ws.protocol;
  }

  get isOpen(): boolean {
    return this.state === "open";
  }

  get isClosed(): boolean {
    return this.state === "closed";
  }

  /** Sends (or queues) one text message; false when the leg is closed or its queue is full. */
  send(text: string): boolean {
    if (this.state === "open") {
      this.ws.send(text);
      return true;
    }
    if (this.state === "closed" || this.queue.length >= this.maxQueued) return false;
    this.queue.push(text);
    return true;
  }

  close(code = 1000, reason = ""): void {
    if (this.state === "closed") return;
    const wasConnecting = this.state === "connecting";
    this.state = "closed";
    this.queue.length = 0;
    try {
      if (wasConnecting) this.ws.terminate();
      else this.ws.close(code, reason);
    } catch {
      this.ws.terminate();
    }
  }
}
