import type { Redis } from "ioredis";

/**
 * Waits for a Redis client to be connected. Every caller waiting at the same time shares one wait,
 * with one 'ready' listener: requests arriving while Redis connects would otherwise add a listener
 * each (and ioredis warns MaxListenersExceededWarning past ten). After `timeoutMs` the wait rejects
 * with the error `timeout()` makes then.
 */
export class ReadyWait {
  private pending: Promise<void> | null = null;

  constructor(
    private readonly client: Redis,
    private readonly timeoutMs: number,
  ) {}

  wait(timeout: () => Error): Promise<void> {
    const client = this.client;
    if (client.status === "ready") return Promise.resolve();
    this.pending ??= new Promise<void>((resolve, reject) => {
      const settle = (): void => {
        clearTimeout(timer);
        client.off("ready", done);
        this.pending = null;
      };
      const done = (): void => {
        settle();
        resolve();
      };
      const timer = setTimeout(() => {
        settle();
        reject(timeout());
      }, this.timeoutMs);
      client.on("ready", done);
    });
    return this.pending;
  }
}
