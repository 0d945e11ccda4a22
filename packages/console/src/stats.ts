import type { Api } from "./api.js";

/** The live statistics (docs/console.md "Live statistics"): the snapshot and its updates. */

export interface Counts {
  readonly allowed: number;
  readonly refused: number;
}

export interface Bucket extends Counts {
  readonly at: number;
  readonly bySurface: Readonly<Record<string, Counts>>;
  readonly byCode: Readonly<Record<string, number>>;
}

export interface TopKey {
  readonly keyId: string;
  readonly account: string | null;
  readonly requests?: number;
  readonly refused: number;
  readonly lastCode?: string;
}

export interface Stats {
  readonly now: number;
  readonly bucketMs: number;
  readonly windowMs: number;
  readonly buckets: readonly Bucket[];
  readonly totals: Counts & { readonly bySurface: Readonly<Record<string, Counts>>; readonly byCode: Readonly<Record<string, number>> };
  readonly topKeys: readonly TopKey[];
  readonly topRefusedKeys: readonly TopKey[];
}

export interface StatsUpdate {
  readonly now: number;
  readonly bucket: Bucket;
  readonly totals: Stats["totals"];
  readonly topKeys: readonly TopKey[];
  readonly topRefusedKeys: readonly TopKey[];
}

/** The snapshot with an update applied: the bucket replaced (same `at`) or appended, old ones dropped. */
export function applyUpdate(stats: Stats, update: StatsUpdate): Stats {
  const buckets = stats.buckets.filter((b) => b.at !== update.bucket.at && b.at > update.now - stats.windowMs);
  buckets.push(update.bucket);
  buckets.sort((a, b) => a.at - b.at);
  return { ...stats, now: update.now, buckets, totals: update.totals, topKeys: update.topKeys, topRefusedKeys: update.topRefusedKeys };
}

/** One server-sent event. */
export interface ServerEvent {
  readonly event: string;
  readonly data: string;
}

/** Splits a text/event-stream into events (comments and keep-alives skipped), as they arrive. */
export async function* readEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<ServerEvent> {
  const reader = body.pipeThrough(new TextDecoderStream() as unknown as ReadableWritablePair<string, Uint8Array>).getReader();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      // CRLF and CR end lines too; a CR at the end of a chunk waits for a possible LF.
      buffer += value;
      const pendingCr = buffer.endsWith("\r");
      buffer = (pendingCr ? buffer.slice(0, -1) : buffer).replace(/\r\n?/g, "\n") + (pendingCr ? "\r" : "");
      let end = buffer.indexOf("\n\n");
      while (end >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let event = "message";
        const data: string[] = [];
        for (const line of block.split("\n")) {
          if (line.startsWith(":")) continue;
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          const v = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
          if (field === "event") event = v;
          else if (field === "data") data.push(v);
        }
        if (data.length > 0) yield { event, data: data.join("\n") };
        end = buffer.indexOf("\n\n");
      }
    }
  } finally {
    reader.releaseLock();
  }
}

/**
 * Follows the stream until `signal` aborts, reconnecting (after a pause) whenever it ends: the
 * server ends it when the session expires or is refreshed, and the next signed request carries
 * the refreshed session.
 */
export async function followStats(api: Api, signal: AbortSignal, onStats: (s: Stats) => void, onError: (e: unknown) => void): Promise<void> {
  let current: Stats | null = null;
  const stopped = (): boolean => signal.aborted;
  while (!stopped()) {
    try {
      const response = await api.raw("GET", "/portcullis/v1/stats/stream", undefined, signal);
      if (response.body === null) throw new Error("the stream has no body");
      for await (const ev of readEvents(response.body)) {
        if (ev.event === "snapshot") current = JSON.parse(ev.data) as Stats;
        else if (ev.event === "update" && current !== null) current = applyUpdate(current, JSON.parse(ev.data) as StatsUpdate);
        else continue;
        onStats(current);
      }
    } catch (err) {
      if (stopped()) return;
      onError(err);
    }
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}
