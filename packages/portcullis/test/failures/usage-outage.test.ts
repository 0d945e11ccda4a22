import { describe, expect, it } from "vitest";
import { LastUsedRecorder } from "../../src/keys/usage.js";

/**
 * Last-use times while the durable store is out (docs/failures.md): a batch the store could not
 * take is written by the next flush, so a key used only during an outage is not later taken for
 * idle (idle expiry reads the last use).
 */
describe("last-use times across an outage", () => {
  it("a failed batch waits for the next flush; a later use of the same key replaces it, an earlier one does not", async () => {
    const written: Map<string, number>[] = [];
    let out = true;
    const recorder = new LastUsedRecorder(
      (batch) => {
        if (out) return Promise.reject(new Error("DURABLE_STORE_UNAVAILABLE"));
        written.push(new Map(batch));
        return Promise.resolve();
      },
      60_000,
    );
    recorder.record("a", 100);
    recorder.record("b", 200);
    await expect(recorder.flush()).rejects.toThrow("DURABLE_STORE_UNAVAILABLE");
    // Used again during the outage: the later time for a; b's failed time is older than nothing new.
    recorder.record("a", 300);
    out = false;
    await recorder.flush();
    expect(written).toEqual([
      new Map([
        ["a", 300],
        ["b", 200],
      ]),
    ]);
    await recorder.flush();
    expect(written).toHaveLength(1);
  });

  it("a use recorded while a failing flush is in flight is kept over the failed batch's older time", async () => {
    const written: Map<string, number>[] = [];
    let reject: (err: Error) => void = () => undefined;
    let first = true;
    const recorder = new LastUsedRecorder((batch) => {
      if (first) {
        first = false;
        return new Promise((_, r) => {
          reject = r;
        });
      }
      written.push(new Map(batch));
      return Promise.resolve();
    });
    recorder.record("a", 100);
    const failing = recorder.flush();
    recorder.record("a", 500);
    reject(new Error("down"));
    await expect(failing).rejects.toThrow("down");
    await recorder.flush();
    expect(written).toEqual([new Map([["a", 500]])]);
  });
});
