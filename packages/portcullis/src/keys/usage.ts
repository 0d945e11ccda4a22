/**
 * How often last-use times reach the store (README "Keys", docs/admin-api.md): a use can show up
 * to this late in `keys show` and the admin API.
 */
export const LAST_USED_FLUSH_MS = 5_000;

/**
 * Last-use times, recorded on the request path as one Map write and flushed to the durable store
 * in batches, so that a busy key costs one UPDATE every few seconds rather than one per request.
 */
export class LastUsedRecorder {
  private pending = new Map<string, number>();
  private timer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> | null = null;

  constructor(
    private readonly write: (lastUsed: ReadonlyMap<string, number>) => Promise<void>,
    private readonly intervalMs = LAST_USED_FLUSH_MS,
    private readonly onError: (err: unknown) => void = () => undefined,
  ) {}

  record(keyId: string, at: number): void {
    this.pending.set(keyId, at);
  }

  start(): void {
    if (this.timer !== null) return;
    this.timer = setInterval(() => {
      this.flush().catch(this.onError);
    }, this.intervalMs);
    this.timer.unref();
  }

  /** Writes what is pending; concurrent calls share one write. */
  async flush(): Promise<void> {
    if (this.flushing !== null) return this.flushing;
    if (this.pending.size === 0) return;
    const batch = this.pending;
    this.pending = new Map();
    this.flushing = this.write(batch)
      .catch((err: unknown) => {
        // The store could not take it (an outage, docs/failures.md): the times wait for the next
        // flush, unless a later use of the key replaced them. Writing a time twice is harmless
        // (the store only ever raises it), losing it is not: idle expiry reads it.
        for (const [id, at] of batch) if ((this.pending.get(id) ?? Number.NEGATIVE_INFINITY) < at) this.pending.set(id, at);
        throw err;
      })
      .finally(() => {
        this.flushing = null;
      });
    return this.flushing;
  }

  async stop(): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    await this.flush();
  }
}
