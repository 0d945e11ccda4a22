/**
 * The live statistics as the console reads them: the signed stream's events split as they arrive
 * (whatever the chunking), keep-alive comments skipped, and updates folded into the snapshot (the
 * current bucket replaced or appended, buckets older than the window dropped).
 */
import { describe, expect, it } from "vitest";
import { type Bucket, type Stats, applyUpdate, readEvents } from "../src/stats.js";

function stream(chunks: readonly string[]): ReadableStream<Uint8Array> {
  const enc = new TextEncoder();
  return new ReadableStream({
    start(controller) {
      for (const c of chunks) controller.enqueue(enc.encode(c));
      controller.close();
    },
  });
}

async function events(chunks: readonly string[]): Promise<{ event: string; data: string }[]> {
  const out: { event: string; data: string }[] = [];
  for await (const e of readEvents(stream(chunks))) out.push(e);
  return out;
}

const bucket = (at: number, allowed: number): Bucket => ({ at, allowed, refused: 0, bySurface: { gateway: { allowed, refused: 0 } }, byCode: {} });

describe("the statistics stream", () => {
  it("splits events across any chunking, skips comments, joins data lines", async () => {
    const text = 'event: snapshot\ndata: {"a":1}\n\n: keep-alive\n\nevent: update\r\ndata: {"b":\r\ndata: 2}\r\n\r\n';
    const expected = [
      { event: "snapshot", data: '{"a":1}' },
      { event: "update", data: '{"b":\n2}' },
    ];
    expect(await events([text])).toEqual(expected);
    expect(await events(text.split(""))).toEqual(expected);
    expect(await events([text.slice(0, 7), text.slice(7, 30), text.slice(30)])).toEqual(expected);
  });

  it("folds an update into the snapshot: same bucket replaced, a new one appended, old ones dropped", () => {
    const totals = { allowed: 0, refused: 0, bySurface: {}, byCode: {} };
    const snap: Stats = { now: 30_000, bucketMs: 10_000, windowMs: 30_000, buckets: [bucket(0, 1), bucket(10_000, 2), bucket(20_000, 3)], totals, topKeys: [], topRefusedKeys: [] };
    const same = applyUpdate(snap, { now: 29_000, bucket: bucket(20_000, 9), totals, topKeys: [{ keyId: "k", account: "a", requests: 9, refused: 0 }], topRefusedKeys: [] });
    expect(same.buckets.map((b) => [b.at, b.allowed])).toEqual([
      [0, 1],
      [10_000, 2],
      [20_000, 9],
    ]);
    expect(same.topKeys).toHaveLength(1);
    const next = applyUpdate(same, { now: 41_000, bucket: bucket(40_000, 4), totals, topKeys: [], topRefusedKeys: [] });
    expect(next.buckets.map((b) => b.at)).toEqual([20_000, 40_000]);
  });
});
