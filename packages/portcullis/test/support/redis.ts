import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { Redis } from "ioredis";

/** The shared Redis of the contract suite. */
export const SHARED_REDIS_URL = "redis://127.0.0.1:6379";

/** In CI a missing Redis fails the Redis tests instead of skipping them. */
export const IN_CI = process.env.CI === "true";

/** True when a Redis answers PING at `url` within a second. */
export async function redisReachable(url: string): Promise<boolean> {
  const client = new Redis(url, { lazyConnect: true, enableOfflineQueue: false, connectTimeout: 1_000, retryStrategy: () => null, maxRetriesPerRequest: 0 });
  client.on("error", () => undefined);
  try {
    await client.connect();
    await client.ping();
    return true;
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}

/** Prints a banner nobody can miss. */
export function loudSkip(what: string, why: string): void {
  const line = "!".repeat(78);
  console.warn(`\n${line}\n!! SKIPPED: ${what}\n!! ${why}\n!! (set CI=true to make this a failure instead of a skip)\n${line}\n`);
}

/** A key prefix no other test uses. */
export function uniquePrefix(tag = "t"): string {
  return `pctest:${tag}:${randomBytes(6).toString("hex")}:`;
}

/** Deletes every key under `prefix`. */
export async function deleteKeys(client: Redis, prefix: string): Promise<number> {
  let cursor = "0";
  let deleted = 0;
  do {
    const [next, keys] = await client.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000);
    cursor = next;
    if (keys.length > 0) deleted += await client.del(...keys);
  } while (cursor !== "0");
  return deleted;
}

/** Keys under `prefix`. */
export async function keysUnder(client: Redis, prefix: string): Promise<string[]> {
  const out: string[] = [];
  let cursor = "0";
  do {
    const [next, keys] = await client.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000);
    cursor = next;
    out.push(...keys);
  } while (cursor !== "0");
  return out.sort();
}

export function redisServerInstalled(): boolean {
  const r = spawnSync("redis-server", ["--version"], { encoding: "utf8" });
  return r.status === 0;
}

/** A TCP port free right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => {
        resolve(port);
      });
    });
  });
}

/** A private, non-persistent redis-server child process. */
export class RedisServerProcess {
  private constructor(
    readonly port: number,
    private readonly child: ChildProcess,
    private readonly exited: Promise<void>,
  ) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Starts redis-server on `port` and resolves once it accepts connections. */
  static start(port: number): Promise<RedisServerProcess> {
    const child = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", tmpdir()], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    const exited = new Promise<void>((resolve) => {
      child.once("exit", () => {
        resolve();
      });
    });
    return new Promise((resolve, reject) => {
      let output = "";
      const timer = setTimeout(() => {
        child.kill("SIGKILL");
        reject(new Error(`redis-server on port ${port} did not start: ${output}`));
      }, 10_000);
      const onData = (chunk: Buffer): void => {
        output += chunk.toString("utf8");
        if (output.includes("Ready to accept connections")) {
          clearTimeout(timer);
          child.stdout.off("data", onData);
          child.stdout.resume();
          resolve(new RedisServerProcess(port, child, exited));
        }
      };
      child.stdout.on("data", onData);
      child.stderr.on("data", (chunk: Buffer) => {
        output += chunk.toString("utf8");
      });
      child.once("error", (err) => {
        clearTimeout(timer);
        reject(err);
      });
      child.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`redis-server exited (${String(code)}): ${output}`));
      });
    });
  }

  /** Sends `signal` without waiting (SIGSTOP / SIGCONT: a server that hangs, then resumes). */
  signal(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }

  /** Kills the server (SIGKILL by default: no shutdown, sockets reset) and waits for its exit. */
  async kill(signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    await this.exited;
  }
}
