import type { ServerResponse } from "node:http";
import type { RequestContext } from "../contract/request.js";
import type { CoreEvent, Portcullis } from "../core/core.js";
import { PortcullisError } from "../errors/catalogue.js";
import type { Logger } from "../log/logger.js";
import type { LiveStats } from "../metrics/live-stats.js";
import { s } from "./schema/nodes.js";
import { type AdminRoute, adminRoute } from "./schema/routes.js";

/**
 * The live statistics on the admin API (issue 18; docs/console-backend.md), scope `admin:stats`,
 * operator keys only (an account admin is refused ADMIN_GRANT_EXCEEDED, as approvals refuse it):
 *
 *   GET /portcullis/v1/stats          the window: every bucket, totals, top keys (metrics/live-stats.ts)
 *   GET /portcullis/v1/stats/stream   text/event-stream: `event: snapshot` (the same object), then
 *                                     every 2 s `event: update` ({ now, bucket, totals, topKeys,
 *                                     topRefusedKeys }), and `: keep-alive` comments
 *
 * A stream is a signed request like any other (the console signs it with its session and reads
 * the body; EventSource cannot sign), decided and audited when it opens. It ends (the response is
 * closed; the console reconnects) when the session it was opened with expires, when that session
 * logs out, when its key changes in any way (`core.watch`: revoked, suspended, scopes… — the next
 * request is decided afresh), after `maxStreamMs` when it was signed with the key itself, when the
 * reader falls too far behind, and when the admin API closes. At most `maxStreams` are open at
 * once (STATS_STREAMS_EXHAUSTED beyond). One timer serves every open stream, and there is none
 * while no stream is open: the updates are computed once per tick for all of them, and the
 * expiries are checked on the tick (so a stream outlives its session by less than one tick).
 */
const COUNTS = s.openObject({ allowed: s.integer(), refused: s.integer() });
const BUCKET = s.ref(
  "StatsBucket",
  s.openObject({
    at: s.integer({ description: "the bucket's start (epoch ms)" }),
    allowed: s.integer(),
    refused: s.integer(),
    bySurface: s.record(COUNTS, { description: "surface → its counts" }),
    byCode: s.record(s.integer(), { description: "refusal code → count" }),
  }),
);
const TOP_KEY = s.openObject({ keyId: s.string(), account: s.string(), requests: s.integer(), refused: s.integer() });
const TOP_REFUSED = s.openObject({ keyId: s.string(), account: s.string(), refused: s.integer(), lastCode: s.string() });
const TOTALS = s.openObject({ allowed: s.integer(), refused: s.integer(), bySurface: s.record(COUNTS), byCode: s.record(s.integer()) });

export const STATS_ROUTES: readonly AdminRoute[] = [
  adminRoute("GET", "/portcullis/v1/stats", "admin:stats", {
    summary: "This process's decisions over the last hour in 10 s buckets, by surface and refusal code, and the top keys",
    operatorOnly: true,
    answers: {
      200: {
        description: "the snapshot",
        schema: s.openObject({
          now: s.integer(),
          bucketMs: s.integer(),
          windowMs: s.integer(),
          buckets: s.array(BUCKET, { description: "every bucket of the window, oldest first" }),
          totals: TOTALS,
          topKeys: s.array(TOP_KEY),
          topRefusedKeys: s.array(TOP_REFUSED),
        }),
      },
    },
  }),
  adminRoute("GET", "/portcullis/v1/stats/stream", "admin:stats", {
    summary: "The same, live: server-sent events (a `snapshot`, then an `update` every 2 s)",
    description: "Ends when the session that opened it expires or logs out, or its key changes; at most 32 open streams (STATS_STREAMS_EXHAUSTED).",
    operatorOnly: true,
    answers: { 200: { description: "text/event-stream: `event: snapshot` (the GET /portcullis/v1/stats object), then `event: update` ({ now, bucket, totals, topKeys, topRefusedKeys })", contentType: "text/event-stream" } },
  }),
];

const SNAPSHOT = "GET /portcullis/v1/stats";
const STREAM = "GET /portcullis/v1/stats/stream";

/** The answer to one of STATS_ROUTES (ROUTE_NOT_FOUND without live statistics), or undefined for another route. */
export function statsAnswer(streams: StatsStreams | null, ctx: RequestContext): { status: number; body: unknown } | undefined {
  const id = ctx.route?.id;
  if (id !== SNAPSHOT && id !== STREAM) return undefined;
  if (streams === null) throw new PortcullisError("ROUTE_NOT_FOUND");
  return streams.answer(ctx);
}

/** Schedules `tick` every `ms`; returns what cancels it. (Tests drive it by hand.) */
export type Ticker = (ms: number, tick: () => void) => () => void;

const intervalTicker: Ticker = (ms, tick) => {
  const timer = setInterval(tick, ms);
  timer.unref();
  return () => {
    clearInterval(timer);
  };
};

export interface AdminStats {
  readonly live: LiveStats;
  /** Open streams at most, default 32. */
  readonly maxStreams?: number;
  /** Between two updates (ms), default 2 s. */
  readonly updateMs?: number;
  /** Between two keep-alive comments (ms), default 15 s; rounded up to a whole number of updates. */
  readonly keepAliveMs?: number;
  /** How long a stream signed with the key itself (not a session) lasts (ms), default 15 min. */
  readonly maxStreamMs?: number;
  /** A reader this many bytes behind is cut off, default 1 MiB. */
  readonly maxBufferedBytes?: number;
  /** Default: a `setInterval`, unref'd. */
  readonly ticker?: Ticker;
}

/** An open stream's answer: the lifecycle renders it by starting it (AdminApi's render). */
export class StatsStream {
  constructor(
    readonly hub: StatsStreams,
    readonly keyId: string,
    readonly sessionId: string | null,
    readonly endsAt: number,
    readonly requestId: string,
  ) {}

  /** Writes the headers and the snapshot, then joins the hub's ticks. */
  start(res: ServerResponse): void {
    this.hub.open(this, res);
  }
}

interface Open {
  readonly stream: StatsStream;
  readonly res: ServerResponse;
}

/** The open streams of one admin API, and the one timer that feeds them. */
export class StatsStreams {
  private readonly live: LiveStats;
  private readonly core: Portcullis;
  private readonly logger: Logger;
  private readonly now: () => number;
  private readonly maxStreams: number;
  private readonly updateMs: number;
  private readonly keepAliveEvery: number;
  private readonly maxStreamMs: number;
  private readonly maxBuffered: number;
  private readonly ticker: Ticker;
  private readonly open_ = new Set<Open>();
  /** Streams allowed but not started yet (counted against the cap). */
  private pending = 0;
  private cancelTick: (() => void) | null = null;
  private unwatch: (() => void) | null = null;
  private ticks = 0;
  private closed = false;

  constructor(options: AdminStats, core: Portcullis, logger: Logger, now: () => number) {
    this.live = options.live;
    this.core = core;
    this.logger = logger;
    this.now = now;
    this.maxStreams = options.maxStreams ?? 32;
    this.updateMs = options.updateMs ?? 2_000;
    this.keepAliveEvery = Math.max(1, Math.ceil((options.keepAliveMs ?? 15_000) / this.updateMs));
    this.maxStreamMs = options.maxStreamMs ?? 15 * 60_000;
    this.maxBuffered = options.maxBufferedBytes ?? 1024 * 1024;
    this.ticker = options.ticker ?? intervalTicker;
    if (!Number.isSafeInteger(this.maxStreams) || this.maxStreams < 1) throw new TypeError("maxStreams must be a positive integer");
    if (!Number.isSafeInteger(this.updateMs) || this.updateMs < 100) throw new TypeError("updateMs must be an integer of at least 100");
  }

  /** Open streams (started or about to be). */
  get size(): number {
    return this.open_.size + this.pending;
  }

  /** The answer to one of STATS_ROUTES, or undefined for another route. */
  answer(ctx: RequestContext): { status: number; body: unknown } {
    const route = ctx.route;
    if (route === null || (route.id !== SNAPSHOT && route.id !== STREAM)) throw new PortcullisError("ROUTE_NOT_FOUND");
    const key = ctx.key;
    if (key === null) throw new PortcullisError("INTERNAL", "stats route without a key");
    if (route.id === SNAPSHOT) return { status: 200, body: this.live.snapshot(this.now()) };
    if (this.closed || this.size >= this.maxStreams) throw new PortcullisError("STATS_STREAMS_EXHAUSTED", `${this.size} of ${this.maxStreams} streams open`);
    const session = key.session;
    const endsAt = session === null ? ctx.now + this.maxStreamMs : session.exp;
    this.pending++;
    return { status: 200, body: new StatsStream(this, key.record.id, session?.sid ?? null, endsAt, ctx.requestId) };
  }

  /** Starts an allowed stream on its response (called by render). */
  open(stream: StatsStream, res: ServerResponse): void {
    this.pending--;
    if (this.closed || res.destroyed) {
      res.destroy();
      return;
    }
    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-store",
      "x-content-type-options": "nosniff",
      "x-accel-buffering": "no",
      "portcullis-request-id": stream.requestId,
    });
    res.write(`event: snapshot\ndata: ${JSON.stringify(this.live.snapshot(this.now()))}\n\n`);
    const entry: Open = { stream, res };
    this.open_.add(entry);
    res.once("close", () => {
      this.forget(entry);
    });
    if (this.cancelTick === null) this.cancelTick = this.ticker(this.updateMs, this.tick);
    this.unwatch ??= this.core.watch(this.changed);
  }

  private forget(entry: Open): void {
    if (!this.open_.delete(entry)) return;
    if (this.open_.size === 0) {
      this.cancelTick?.();
      this.cancelTick = null;
      this.unwatch?.();
      this.unwatch = null;
    }
  }

  private end(entry: Open, reason: string): void {
    this.logger.info({ requestId: entry.stream.requestId, reason }, "stats stream ended");
    this.forget(entry);
    entry.res.end();
  }

  /** One tick: the expired streams end, the others get the update (and now and then a keep-alive). */
  private readonly tick = (): void => {
    const now = this.now();
    this.ticks++;
    const keepAlive = this.ticks % this.keepAliveEvery === 0;
    let data: string | null = null;
    for (const entry of [...this.open_]) {
      if (now >= entry.stream.endsAt) {
        this.end(entry, entry.stream.sessionId === null ? "maximum duration" : "session expired");
        continue;
      }
      if (entry.res.writableLength > this.maxBuffered) {
        this.logger.info({ requestId: entry.stream.requestId, buffered: entry.res.writableLength }, "stats stream cut off: its reader is too far behind");
        this.forget(entry);
        entry.res.destroy();
        continue;
      }
      data ??= `event: update\ndata: ${JSON.stringify(this.live.update(now))}\n\n`;
      entry.res.write(keepAlive ? `: keep-alive\n\n${data}` : data);
    }
  };

  /** core.watch: a change of a stream's key, or its session's logout, ends it. */
  private readonly changed = (event: CoreEvent): void => {
    for (const entry of [...this.open_]) {
      if (event.kind === "keys" ? event.ids.includes(entry.stream.keyId) : event.sessionId === entry.stream.sessionId) {
        this.end(entry, event.kind === "keys" ? "key changed" : "logged out");
      }
    }
  };

  /** Ends every stream and stops the timer (the admin API closes). */
  close(): void {
    this.closed = true;
    for (const entry of [...this.open_]) this.end(entry, "admin API closing");
  }
}
