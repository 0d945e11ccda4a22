/**
 * The multi-host layout of docs/production.md, built for real on one machine: several hosts' data
 * directories that share the keyring, the identity secret and store.json (so every host opens the
 * same PostgreSQL schema under the same key-encryption key), a gateway config per host with its
 * own ports, hot state in one Redis, and an upstream that counts what reaches it.
 */
import { chmodSync, copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { Agent, type IncomingHttpHeaders, createServer, request as httpRequest } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { DEMO_EXCHANGE_ROUTES, type DemoExchange, createDemoExchange } from "@portcullis/demo-exchange";
import { runCli } from "../support/cli.js";
import { adminQuery } from "../support/postgres.js";

/** The files one host's data directory needs; `portcullis init` writes them on the first host. */
export const SHARED_HOST_FILES = ["keyring.json", "identity.secret", "store.json"] as const;

/** Runs `portcullis …` and answers its stdout; a non-zero exit throws with its stderr. */
export async function cli(args: readonly string[], env: Record<string, string> = {}): Promise<string> {
  const res = await runCli(args, env);
  if (res.code !== 0) throw new Error(`portcullis ${args.join(" ")} exited ${res.code}: ${res.stderr}`);
  return res.stdout;
}

/**
 * Initialises the first host's data directory for `schema` on the PostgreSQL at `url` with the
 * CLI, then lays out the other hosts' directories by copying the shared files (mode 0600 for the
 * secrets, the directory 0700), as an operator copies them to each machine.
 */
export async function prepareHosts(root: string, count: number, url: string, schema: string): Promise<string[]> {
  const dirs = Array.from({ length: count }, (_, i) => join(root, `host${i + 1}`, "data"));
  const [first, ...others] = dirs;
  if (first === undefined) throw new TypeError("at least one host");
  await cli(["init", "--data", first, "--store", url, "--schema", schema, "--environment", "test", "--json"]);
  for (const dir of others) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    for (const name of SHARED_HOST_FILES) {
      copyFileSync(join(first, name), join(dir, name));
      chmodSync(join(dir, name), name === "store.json" ? 0o644 : 0o600);
    }
  }
  return dirs;
}

export interface HostConfig {
  readonly dataDir: string;
  readonly upstream: string;
  readonly postgres: { readonly url: string; readonly schema: string };
  readonly redis: { readonly url: string; readonly prefix: string };
}

/** Writes the host's gateway config beside its data directory and answers its path. */
export function writeHostConfig(host: HostConfig): string {
  const file = join(host.dataDir, "..", "portcullis.json");
  writeFileSync(
    file,
    JSON.stringify(
      {
        dataDir: host.dataDir,
        environment: "test",
        // No gateway.authorities: it would hold for the admin API's listener too (the core's one
        // pipeline), which the test reaches at 127.0.0.1 (see the branch report).
        gateway: { host: "127.0.0.1", port: 0, upstream: host.upstream },
        admin: { enabled: true, host: "127.0.0.1", port: 0 },
        routes: DEMO_EXCHANGE_ROUTES,
        // Per-key budgets every host enforces together (hot state in Redis): the default minute
        // budget, and an hour's, which a test's key lowers (`keys create --limit`) so that no
        // budget refills while the test runs.
        limits: {
          key: [
            { name: "key-weight-1m", limit: 1200, window: "1m" },
            { name: "key-weight-1h", limit: 20_000, window: "1h" },
          ],
          // Every test client is 127.0.0.1, so the per-address shield would count one test's
          // refusals (the limit test's dozens of RATE_LIMITED) against the next and ban the
          // address: out of the way here, as it is for a load balancer's health checks.
          shield: { strikes: 1_000_000, authFailuresPerIp: 1_000_000 },
        },
        store: { backend: "postgres", url: host.postgres.url, schema: host.postgres.schema, poolSize: 4 },
        hot: { backend: "redis", url: host.redis.url, prefix: host.redis.prefix },
        audit: { batchWindowMs: 20, checkpointIntervalMs: 250 },
        log: { level: "info" },
      },
      null,
      2,
    ),
  );
  return file;
}

/** One request the upstream received. */
export interface Received {
  readonly method: string;
  readonly url: string;
  /** The key the gateway vouched for (its identity header), if any. */
  readonly keyId: string | undefined;
}

/** The demo exchange behind a server that records every request it receives. */
export interface CountingUpstream {
  readonly url: string;
  readonly exchange: DemoExchange;
  readonly received: Received[];
  close(): Promise<void>;
}

export async function startCountingUpstream(dataDir: string): Promise<CountingUpstream> {
  const exchange = createDemoExchange({ identitySecret: readFileSync(join(dataDir, "identity.secret"), "utf8").trim() });
  const received: Received[] = [];
  const server = createServer((req, res) => {
    const keyId = req.headers["portcullis-key-id"];
    received.push({ method: req.method ?? "", url: req.url ?? "", keyId: typeof keyId === "string" ? keyId : undefined });
    exchange.handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    exchange,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => {
          resolve();
        });
      }),
  };
}

export interface Answer {
  readonly status: number;
  /** The native error code (or the dialect's), when the answer is a refusal. */
  readonly code: string | number | undefined;
  readonly body: Record<string, unknown>;
  readonly headers: IncomingHttpHeaders;
}

/**
 * One request to `base` (a gateway's URL) over `agent`. The `host` header is sent as given, as a
 * load balancer passes on the public authority the client signed.
 */
export function send(base: string, agent: Agent, method: string, path: string, headers: Record<string, string>): Promise<Answer> {
  const target = new URL(base);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: target.hostname, port: target.port, method, path, headers, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        let body: Record<string, unknown>;
        try {
          body = JSON.parse(text) as Record<string, unknown>;
        } catch {
          body = { text };
        }
        const status = res.statusCode ?? 0;
        const code = status >= 200 && status < 300 ? undefined : (body.code as string | number | undefined);
        resolve({ status, code, body, headers: res.headers });
      });
      res.on("error", reject);
    });
    req.on("error", reject);
    req.setTimeout(15_000, () => {
      req.destroy(new Error(`no answer to ${method} ${path} from ${base} within 15 s`));
    });
    req.end();
  });
}

/** Keep-alive connections to one gateway, as a load balancer keeps them. */
export function keepAlive(): Agent {
  return new Agent({ keepAlive: true, maxSockets: 16 });
}

/** The p-th percentile (0-100, nearest rank) of `values`. */
export function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] as number;
}

/**
 * Freezes `pids` (SIGSTOP) at a moment none of them is inside a database transaction or
 * statement, and answers how many attempts it took. A process frozen inside a transaction keeps
 * its locks — the audit chain's advisory lock among them — so every other writer of the schema
 * would wait `lock_timeout` and fail: the freeze is let go and tried again instead. The gateway's
 * connections are recognised by their application_name (`portcullis:<schema>`, storage/postgres/
 * store.ts); nothing else may use the schema meanwhile.
 */
export async function freezeQuiet(pids: readonly number[], postgresUrl: string, schema: string, attempts = 100): Promise<number> {
  const busy = async (): Promise<number> => {
    const rows = await adminQuery<{ n: string }>(postgresUrl, "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1 AND state <> 'idle'", [`portcullis:${schema}`]);
    return Number(rows[0]?.n);
  };
  for (let attempt = 1; attempt <= attempts; attempt++) {
    for (const pid of pids) process.kill(pid, "SIGSTOP");
    // Twice, a little apart: a statement already sent when the process stopped is seen by then.
    if ((await busy()) === 0) {
      await new Promise((resolve) => setTimeout(resolve, 30));
      if ((await busy()) === 0) return attempt;
    }
    for (const pid of pids) process.kill(pid, "SIGCONT");
    await new Promise((resolve) => setTimeout(resolve, 10 + Math.floor(Math.random() * 40)));
  }
  throw new Error(`could not freeze the gateways outside a transaction in ${attempts} attempts`);
}
