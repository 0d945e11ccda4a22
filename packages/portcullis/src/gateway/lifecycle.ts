import type { Server, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/**
 * Listening and graceful shutdown for Portcullis's HTTP servers (gateway and admin API): count the
 * requests in flight, stop accepting on close, let them finish, then close what is left.
 */
export class ServerLifecycle {
  private inFlight = 0;
  private drained: (() => void) | null = null;
  closing = false;

  constructor(readonly server: Server) {}

  /** Call at the start of every request. */
  track(res: ServerResponse): void {
    this.inFlight++;
    if (this.closing) res.shouldKeepAlive = false;
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
