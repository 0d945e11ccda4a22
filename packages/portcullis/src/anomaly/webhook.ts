import { contentDigest, serializeSignature, serializeSignatureInput, signatureBase } from "@portcullis/client/base";
import type { AnomalyActionRecord } from "../contract/behaviour.js";
import type { SigningKey, SigningKeyProvider } from "../contract/signing.js";
import { type Logger, silentLogger } from "../log/logger.js";
import type { WebhookSettings } from "./responses.js";

/**
 * The alert webhook (docs/behaviour.md, "Responses"): each anomaly action worth an alert is POSTed
 * as JSON to the configured URL, off the request path, from a bounded queue, retried with backoff.
 * `send` never blocks and never throws.
 *
 * Every request is signed by the gateway's own Ed25519 key (signing purpose `webhook`, held by the
 * custody provider: the keyring's envelope or a PKCS#11 token), with RFC 9421 over the method, the
 * target URI, the body's RFC 9530 Content-Digest and its Content-Type:
 *
 *   Content-Type: application/json
 *   Content-Digest: sha-256=:<base64 SHA-256 of the body>:
 *   Signature-Input: portcullis=("@method" "@target-uri" "content-digest" "content-type");created=<unix s>;keyid="webhook:…";alg="ed25519"
 *   Signature: portcullis=:<base64 Ed25519 signature of the signature base>:
 *
 * The receiver verifies with the public key `portcullis anomalies webhook-key` prints (or the
 * admin API's GET /portcullis/v1/anomalies/webhook-key), checks the digest against the body, and
 * rejects a `created` too far from its own clock.
 */

export const WEBHOOK_LABEL = "portcullis";
export const WEBHOOK_COMPONENTS = ["@method", "@target-uri", "content-digest", "content-type"] as const;

/** What the webhook says: an action taken, or one an operator undid. */
export type WebhookEvent = "anomaly.action" | "anomaly.undo";

/** Where the responder's alerts go (the webhook, or nothing). */
export interface AlertSink {
  send(record: AnomalyActionRecord, event: WebhookEvent): void;
}

/** The body: the event and the action record (which holds no secret: ids, the score and its explanation). */
export function webhookBody(record: AnomalyActionRecord, event: WebhookEvent): string {
  return JSON.stringify({ event, action: record });
}

/** The headers of one signed delivery of `body` to `url` (created: unix seconds). */
export async function signWebhook(url: string, body: string, key: SigningKey, created: number): Promise<Record<string, string>> {
  const headers: Record<string, string> = {
    "content-type": "application/json",
    "content-digest": await contentDigest(body),
  };
  const params = { created, keyid: key.kid, alg: "ed25519" };
  const base = signatureBase({ method: "POST", url, headers }, WEBHOOK_COMPONENTS, params);
  const signature = await key.sign(Buffer.from(base, "utf8"));
  headers["signature-input"] = serializeSignatureInput(WEBHOOK_LABEL, WEBHOOK_COMPONENTS, params);
  headers.signature = serializeSignature(WEBHOOK_LABEL, signature);
  return headers;
}

export interface AlertWebhookOptions {
  readonly settings: WebhookSettings;
  readonly signer: SigningKeyProvider;
  readonly logger?: Logger;
  /** The clock for `created` (epoch ms). */
  readonly now?: () => number;
  /** Alerts waiting at most (default 1000); when full, the oldest waiting one is dropped (counted, logged). */
  readonly queueLimit?: number;
  /** Delivery attempts per alert (default 5). */
  readonly attempts?: number;
  /** The first retry's delay (ms, default 1000), doubling up to a minute. */
  readonly backoffMs?: number;
}

export interface WebhookStats {
  readonly delivered: number;
  /** Gave up after every attempt. */
  readonly failed: number;
  readonly retried: number;
  /** Dropped from a full queue, or waiting when closed. */
  readonly dropped: number;
  /** Waiting in the queue (not counting the one being delivered). */
  readonly waiting: number;
}

interface Pending {
  readonly record: AnomalyActionRecord;
  readonly event: WebhookEvent;
  attempt: number;
}

const MAX_BACKOFF_MS = 60_000;

export class AlertWebhook implements AlertSink {
  private readonly settings: WebhookSettings;
  private readonly signer: SigningKeyProvider;
  private readonly logger: Logger;
  private readonly now: () => number;
  private readonly queueLimit: number;
  private readonly attempts: number;
  private readonly backoffMs: number;
  private readonly queue: Pending[] = [];
  private key: Promise<SigningKey> | null = null;
  private running: Promise<void> | null = null;
  private wake: (() => void) | null = null;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  private counts = { delivered: 0, failed: 0, retried: 0, dropped: 0 };

  constructor(options: AlertWebhookOptions) {
    const int = (name: string, v: number | undefined, fallback: number, min: number, max: number): number => {
      const x = v ?? fallback;
      if (!Number.isInteger(x) || x < min || x > max) throw new TypeError(`webhook ${name} must be an integer from ${min} to ${max}`);
      return x;
    };
    this.settings = options.settings;
    this.signer = options.signer;
    this.logger = options.logger ?? silentLogger();
    this.now = options.now ?? Date.now;
    this.queueLimit = int("queueLimit", options.queueLimit, 1000, 1, 1_000_000);
    this.attempts = int("attempts", options.attempts, 5, 1, 100);
    this.backoffMs = int("backoffMs", options.backoffMs, 1000, 0, MAX_BACKOFF_MS);
  }

  get stats(): WebhookStats {
    return { ...this.counts, waiting: this.queue.length };
  }

  /** Queues the alert; returns at once. */
  send(record: AnomalyActionRecord, event: WebhookEvent): void {
    if (this.closed) {
      this.counts.dropped += 1;
      return;
    }
    if (this.queue.length >= this.queueLimit) {
      const old = this.queue.shift();
      this.counts.dropped += 1;
      this.logger.warn({ actionId: old?.record.id, waiting: this.queue.length }, "webhook queue full: the oldest alert was dropped");
    }
    this.queue.push({ record, event, attempt: 0 });
    this.kick();
  }

  /** Starts the drain unless it runs; one sent while it was finishing starts the next. */
  private kick(): void {
    if (this.running !== null) return;
    this.running = this.drain()
      .catch((err: unknown) => {
        this.logger.error({ err: err instanceof Error ? err.message : String(err) }, "webhook delivery loop failed");
      })
      .finally(() => {
        this.running = null;
        if (this.queue.length > 0 && !this.closed) this.kick();
      });
  }

  /** Resolves once every queued alert was delivered or given up (tests, shutdown). */
  async flush(): Promise<void> {
    while (this.running !== null) await this.running;
  }

  /** Stops: a pending retry is not waited for; alerts still waiting are dropped (counted). */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.wake?.();
    await this.flush();
  }

  private async drain(): Promise<void> {
    for (let item = this.queue.shift(); item !== undefined; item = this.queue.shift()) {
      // The alert in hand is retried until delivered or given up; the others wait in the queue.
      for (;;) {
        if (this.closed) {
          this.counts.dropped += 1 + this.queue.length;
          this.queue.length = 0;
          return;
        }
        item.attempt += 1;
        if (await this.deliver(item)) {
          this.counts.delivered += 1;
          break;
        }
        if (item.attempt >= this.attempts) {
          this.counts.failed += 1;
          this.logger.error({ actionId: item.record.id, attempts: item.attempt }, "webhook alert given up after every attempt");
          break;
        }
        this.counts.retried += 1;
        await this.pause(Math.min(this.backoffMs * 2 ** (item.attempt - 1), MAX_BACKOFF_MS));
      }
    }
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.wake = () => {
        this.wake = null;
        resolve();
      };
      this.timer = setTimeout(() => {
        this.timer = null;
        this.wake?.();
      }, ms);
      this.timer.unref();
    });
  }

  /** One attempt: true when the receiver answered 2xx. */
  private async deliver(item: Pending): Promise<boolean> {
    try {
      // A key that could not be opened (an HSM away) is asked for again at the next attempt.
      this.key ??= this.signer.open("webhook").catch((err: unknown) => {
        this.key = null;
        throw err;
      });
      const key = await this.key;
      const body = webhookBody(item.record, item.event);
      const headers = await signWebhook(this.settings.url, body, key, Math.floor(this.now() / 1000));
      const answer = await fetch(this.settings.url, { method: "POST", headers, body, signal: AbortSignal.timeout(this.settings.timeoutMs), redirect: "manual" });
      await answer.body?.cancel();
      if (answer.status >= 200 && answer.status < 300) return true;
      this.logger.warn({ actionId: item.record.id, status: answer.status, attempt: item.attempt }, "webhook receiver refused the alert");
      return false;
    } catch (err) {
      this.logger.warn({ actionId: item.record.id, attempt: item.attempt, err: err instanceof Error ? err.message : String(err) }, "webhook alert could not be delivered");
      return false;
    }
  }
}

/** The webhook key as published for receivers: its id, SPKI PEM and JWK (RFC 8037). */
export interface WebhookKeyView {
  readonly kid: string;
  readonly algorithm: "ed25519";
  readonly publicKey: string;
  readonly jwk: { readonly kty: "OKP"; readonly crv: "Ed25519"; readonly x: string; readonly kid: string; readonly alg: "EdDSA"; readonly use: "sig" };
}

export function webhookKeyView(key: SigningKey): WebhookKeyView {
  const jwk = key.publicKey.export({ format: "jwk" });
  return {
    kid: key.kid,
    algorithm: "ed25519",
    publicKey: key.publicKey.export({ type: "spki", format: "pem" }).toString(),
    jwk: { kty: "OKP", crv: "Ed25519", x: jwk.x ?? "", kid: key.kid, alg: "EdDSA", use: "sig" },
  };
}
