import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import type { BusMessage, ChangeBus } from "../types.js";

/**
 * The change bus over Redis pub/sub: every gateway process of a deployment (same Redis, same key
 * prefix) subscribes to one channel, `<prefix>bus`, and publishes there what must reach the others
 * at once — key ids changed through this process (revoked, suspended, updated: each process evicts
 * them from its key cache, so the next request reloads the key) and logged-out sessions (so
 * long-lived connections close).
 *
 * Messages are JSON: { o: <origin>, m: <BusMessage> }; `o` is a random id of the publishing
 * process, and a process ignores its own messages.
 *
 * Pub/sub is at-most-once: a subscriber that was disconnected may have missed messages. When the
 * subscription comes back after a drop, listeners receive { kind: "resync" } (the core then
 * drops its whole key cache). The durable store's own change feed remains the safety net: a change
 * reaches every process through it even if the bus is down, only later.
 *
 * Connections: a subscriber connection (ioredis re-subscribes by itself after reconnecting) and a
 * publisher; publishing never blocks or throws into the caller: failures go to `onError`.
 */
export interface RedisChangeBusOptions {
  readonly url?: string;
  /** Prefix of the deployment's keys; the channel is `<prefix>bus`. Default "pc:". */
  readonly prefix?: string;
  readonly onError?: (err: Error) => void;
}

const DEFAULT_URL = "redis://127.0.0.1:6379";

function isMessage(value: unknown): value is BusMessage {
  if (value === null || typeof value !== "object") return false;
  const m = value as Record<string, unknown>;
  if (m.kind === "keys") return Array.isArray(m.ids) && m.ids.every((x) => typeof x === "string");
  if (m.kind === "session-ended") return typeof m.sessionId === "string" && typeof m.keyId === "string";
  return false;
}

export class RedisChangeBus implements ChangeBus {
  readonly kind = "redis";
  readonly channel: string;
  private readonly origin = randomBytes(9).toString("base64url");
  private readonly publisher: Redis;
  private readonly subscriber: Redis;
  private readonly listeners = new Set<(message: BusMessage) => void>();
  private readonly onError: (err: Error) => void;
  private subscribedOnce = false;
  private lost = false;
  private closed = false;

  constructor(options: RedisChangeBusOptions = {}) {
    const url = options.url ?? DEFAULT_URL;
    this.channel = `${options.prefix ?? "pc:"}bus`;
    this.onError = options.onError ?? (() => undefined);
    const retryStrategy = (times: number): number => Math.min(50 * 2 ** Math.min(times - 1, 6), 2_000);
    // The publisher fails fast (a lost message is covered by the change feed); the subscriber
    // waits for its connection and re-subscribes after every reconnection.
    // Named, so an operator (or a test) can tell the bus's connections apart in CLIENT LIST.
    this.publisher = new Redis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 0, connectTimeout: 2_000, retryStrategy, connectionName: `portcullis-bus-pub:${this.channel}` });
    this.subscriber = new Redis(url, { maxRetriesPerRequest: null, connectTimeout: 2_000, retryStrategy, connectionName: `portcullis-bus-sub:${this.channel}` });
    for (const client of [this.publisher, this.subscriber]) {
      client.on("error", (err: Error) => {
        this.onError(err);
      });
    }
    this.subscriber.on("message", (channel: string, text: string) => {
      if (channel === this.channel) this.receive(text);
    });
    // A dropped subscriber may have missed messages: say so once it is back.
    this.subscriber.on("close", () => {
      if (this.subscribedOnce && !this.closed) this.lost = true;
    });
    this.subscriber.on("ready", () => {
      if (!this.lost) return;
      this.lost = false;
      this.deliver({ kind: "resync" });
    });
  }

  /** Resolves once the subscription is in place (rejects after `timeoutMs`). */
  async ready(timeoutMs = 2_000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.subscriber.subscribe(this.channel),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            reject(new Error(`change bus: not subscribed after ${timeoutMs} ms (${this.subscriber.status})`));
          }, timeoutMs);
        }),
      ]);
      this.subscribedOnce = true;
    } finally {
      clearTimeout(timer);
    }
  }

  publish(message: BusMessage): void {
    if (this.closed || message.kind === "resync") return;
    this.publisher.publish(this.channel, JSON.stringify({ o: this.origin, m: message })).catch((err: unknown) => {
      this.onError(err instanceof Error ? err : new Error(String(err)));
    });
  }

  subscribe(listener: (message: BusMessage) => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  private receive(text: string): void {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      return;
    }
    if (parsed === null || typeof parsed !== "object") return;
    const { o, m } = parsed as { o?: unknown; m?: unknown };
    if (o === this.origin || !isMessage(m)) return;
    this.deliver(m);
  }

  private deliver(message: BusMessage): void {
    for (const listener of this.listeners) {
      try {
        listener(message);
      } catch (err) {
        this.onError(err instanceof Error ? err : new Error(String(err)));
      }
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.listeners.clear();
    await Promise.all(
      [this.publisher, this.subscriber].map(async (client) => {
        try {
          if (client.status === "ready") await client.quit();
          else client.disconnect();
        } catch {
          client.disconnect();
        }
      }),
    );
  }
}
