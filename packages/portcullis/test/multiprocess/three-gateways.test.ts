/**
 * Issue 17, "many processes … across hosts": three `portcullis start` processes, each on a data
 * directory of its own (the multi-host layout of docs/production.md: the keyring, the identity
 * secret and store.json copied from the first host), sharing one PostgreSQL schema and one Redis
 * prefix, in front of one demo exchange that counts what it receives. Every claim is made through
 * real requests from outside:
 *
 * - a signed request admitted at gateway 1 is refused NONCE_REPLAYED at gateways 2 and 3 (a
 *   Binance-signed one with Binance's -1021), and of one request sent to the three at once
 *   exactly one copy is admitted;
 * - a per-key limit of L, hit concurrently and round robin through the three, admits exactly L,
 *   and exactly L requests reach the upstream;
 * - a key revoked through gateway 1's admin API is refused KEY_REVOKED by all three within 100 ms
 *   of the revoke's answer (each gateway polled every few ms; the figures are printed);
 * - withdrawals held by the policy in force and approved with the CLI are each released exactly
 *   once although the three release loops race for them: the upstream receives each once;
 * - the audit chain that the three gateways and the CLI wrote verifies, and holds entries that only
 *   gateways 2 and 3 can have written.
 *
 * The clocks are real: what is measured is wall time between processes. Nothing sleeps to wait for
 * a window; waits poll for the effect, with a deadline.
 */
import { createHmac, generateKeyPairSync, randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import type { Agent } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { createClient } from "@portcullis/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { kill } from "../crash/support.js";
import { startCli } from "../support/cli.js";
import { signRequest } from "../support/harness.js";
import { SHARED_POSTGRES_URL, adminQuery, dropSchema, postgresReachable, uniqueSchema } from "../support/postgres.js";
import { IN_CI, SHARED_REDIS_URL, deleteKeys, loudSkip, redisReachable, uniquePrefix } from "../support/redis.js";
import { type Answer, type CountingUpstream, cli, freezeQuiet, keepAlive, percentile, prepareHosts, send, startCountingUpstream, writeHostConfig } from "./support.js";

const PG = await postgresReachable(SHARED_POSTGRES_URL);
const REDIS = await redisReachable(SHARED_REDIS_URL);
if (!(PG && REDIS) && !IN_CI) {
  loudSkip("three gateway processes on one PostgreSQL and one Redis (test/multiprocess)", `needs PostgreSQL at ${SHARED_POSTGRES_URL} (${PG ? "up" : "down"}) and Redis at ${SHARED_REDIS_URL} (${REDIS ? "up" : "down"})`);
}
const withServers = (PG && REDIS) || IN_CI ? describe : describe.skip;

/** The public authority clients sign, as the load balancer in front of the three passes it on. */
const PUBLIC_HOST = "api.venue.test";
/** A revoked key is refused by every gateway within this long of the revoke's answer (issue 17). */
const REVOCATION_BUDGET_MS = 100;
/** Pause between two polls of one gateway while waiting for a revocation to reach it. */
const POLL_GAP_MS = 2;
/** Revocations measured (each a fresh key, cached at all three first). */
const REVOCATION_ROUNDS = 5;

interface Key {
  readonly id: string;
  readonly secret: string;
}

interface Host {
  readonly n: number;
  readonly dataDir: string;
  readonly gateway: string;
  readonly admin: string;
  readonly agent: Agent;
  readonly child: Awaited<ReturnType<typeof startCli>>["child"];
  /** The process's recent output, for failure messages. */
  readonly output: string[];
}

withServers("three gateway processes on one PostgreSQL and one Redis", () => {
  const schema = uniqueSchema("3gw");
  const prefix = uniquePrefix("3gw");
  let root: string;
  let dataDirs: string[];
  let upstream: CountingUpstream;
  let redis: Redis;
  const hosts: Host[] = [];
  let operator: Key;

  async function startHost(n: number): Promise<Host> {
    const dataDir = dataDirs[n - 1] ?? "";
    const config = writeHostConfig({ dataDir, upstream: upstream.url, postgres: { url: SHARED_POSTGRES_URL, schema }, redis: { url: SHARED_REDIS_URL, prefix } });
    const started = await startCli(["start", "--config", config], (line) => line.includes("portcullis started"));
    const output: string[] = [];
    const keep = (d: Buffer): void => {
      output.push(...d.toString("utf8").split("\n").filter((l) => l !== ""));
      output.splice(0, Math.max(0, output.length - 200));
    };
    started.child.stdout.on("data", keep);
    started.child.stderr.on("data", keep);
    const line = JSON.parse(started.line) as { gateway: string; admin: string };
    return { n, dataDir, gateway: line.gateway, admin: line.admin, agent: keepAlive(), child: started.child, output };
  }

  const host = (n: number): Host => {
    const h = hosts[n - 1];
    if (h === undefined) throw new Error(`no host ${n}`);
    return h;
  };

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), "portcullis-3gw-"));
    redis = new Redis(SHARED_REDIS_URL);
    dataDirs = await prepareHosts(root, 3, SHARED_POSTGRES_URL, schema);
    upstream = await startCountingUpstream(dataDirs[0] ?? "");
    // The first host starts alone (it creates the gateway's signing keys in the store); the other
    // two then start together, as hosts joining a running deployment do.
    hosts.push(await startHost(1));
    hosts.push(...(await Promise.all([startHost(2), startHost(3)])));
    operator = JSON.parse(await cli(["keys", "create", "--data", host(1).dataDir, "--account", "ops", "--scopes", "admin:keys", "--operator", "--json"])) as Key;
  }, 120_000);

  afterAll(async () => {
    for (const h of hosts) {
      h.agent.destroy();
      await kill(h.child);
    }
    await upstream.close();
    await deleteKeys(redis, prefix);
    redis.disconnect();
    await dropSchema(SHARED_POSTGRES_URL, schema);
    rmSync(root, { recursive: true, force: true });
  }, 60_000);

  /** Creates a key with the CLI on host `on`'s data directory. */
  async function createKey(account: string, on: number, scopes: string, ...extra: string[]): Promise<Key> {
    return JSON.parse(await cli(["keys", "create", "--data", host(on).dataDir, "--account", account, "--scopes", scopes, ...extra, "--json"])) as Key;
  }

  /** Natively signed headers for `GET path`, for the public authority every gateway is reached by. */
  function signed(key: Key, path: string, nonce?: string): Record<string, string> {
    return signRequest({ method: "GET", url: path, keyId: key.id, key: key.secret, created: Math.floor(Date.now() / 1000), host: PUBLIC_HOST, ...(nonce === undefined ? {} : { nonce }) });
  }

  const getAccount = (h: Host, key: Key): Promise<Answer> => send(h.gateway, h.agent, "GET", "/api/v3/account", signed(key, "/api/v3/account"));
  const reachedUpstream = (key: Key): number => upstream.received.filter((r) => r.keyId === key.id).length;

  function explain(): string {
    return hosts.map((h) => `--- gateway ${h.n} (${h.gateway}):\n${h.output.slice(-20).join("\n")}`).join("\n");
  }

  it("starts three gateways, one per host directory, on one schema: a key created with the CLI on host 3's directory works at all three", async () => {
    const key = await createKey("acct-serve", 3, "read");
    for (const h of hosts) expect(await getAccount(h, key), explain()).toMatchObject({ status: 200 });
    expect(reachedUpstream(key)).toBe(3);
  });

  it("a nonce admitted at gateway 1 is refused NONCE_REPLAYED at gateways 2 and 3", async () => {
    const key = await createKey("acct-nonce", 1, "read");
    const headers = signed(key, "/api/v3/account", `nonce-${randomBytes(8).toString("hex")}`);
    const first = await send(host(1).gateway, host(1).agent, "GET", "/api/v3/account", headers);
    expect(first.status, explain()).toBe(200);
    for (const n of [2, 3]) {
      const again = await send(host(n).gateway, host(n).agent, "GET", "/api/v3/account", headers);
      expect(again, `gateway ${n}`).toMatchObject({ status: 409, code: "NONCE_REPLAYED" });
    }
    // And at gateway 1 itself; only the first use reached the upstream.
    expect(await send(host(1).gateway, host(1).agent, "GET", "/api/v3/account", headers)).toMatchObject({ status: 409, code: "NONCE_REPLAYED" });
    expect(reachedUpstream(key)).toBe(1);
  });

  it("a Binance-signed request admitted at gateway 2 is refused with Binance's replay code (-1021) at gateways 1 and 3", async () => {
    // Binance signatures carry no nonce: the signature itself is the single-use value (docs/replay.md).
    const key = await createKey("acct-nonce-binance", 1, "read", "--dialect", "binance");
    const params = new URLSearchParams({ timestamp: String(Date.now()), recvWindow: "5000" });
    params.set("signature", createHmac("sha256", key.secret).update(params.toString()).digest("hex"));
    const path = `/api/v3/account?${params.toString()}`;
    const headers = { "x-mbx-apikey": key.id };
    expect(await send(host(2).gateway, host(2).agent, "GET", path, headers), explain()).toMatchObject({ status: 200 });
    for (const n of [1, 3]) {
      expect(await send(host(n).gateway, host(n).agent, "GET", path, headers), `gateway ${n}`).toMatchObject({ status: 400, code: -1021 });
    }
    expect(reachedUpstream(key)).toBe(1);
  });

  it("the same signed request sent to the three at once is admitted by exactly one", async () => {
    const key = await createKey("acct-nonce-race", 2, "read");
    const headers = signed(key, "/api/v3/account", `race-${randomBytes(8).toString("hex")}`);
    const answers = await Promise.all(Array.from({ length: 12 }, (_, i) => send(host((i % 3) + 1).gateway, host((i % 3) + 1).agent, "GET", "/api/v3/account", headers)));
    expect(answers.filter((a) => a.status === 200)).toHaveLength(1);
    expect(answers.filter((a) => a.code === "NONCE_REPLAYED")).toHaveLength(11);
    expect(reachedUpstream(key)).toBe(1);
  });

  it("a per-key limit of L across the three, hit concurrently and round robin, admits exactly L", async () => {
    // GET /api/v3/account weighs 20; the key's hour budget of 20 × L is L requests, and an hour's
    // budget refills by 20 in three minutes: none is given back while the test runs.
    const L = 7;
    const TOTAL = 60;
    const key = await createKey("acct-limit", 1, "read", "--limit", `key-weight-1h=${20 * L}`);
    const answers = await Promise.all(Array.from({ length: TOTAL }, (_, i) => getAccount(host((i % 3) + 1), key)));
    const admitted = answers.filter((a) => a.status === 200).length;
    const limited = answers.filter((a) => a.status === 429 && a.code === "RATE_LIMITED").length;
    console.log(`three gateways, limit ${L}: ${TOTAL} concurrent requests round robin -> ${admitted} admitted, ${limited} RATE_LIMITED; upstream received ${reachedUpstream(key)}`);
    expect({ admitted, limited }, explain()).toEqual({ admitted: L, limited: TOTAL - L });
    expect(reachedUpstream(key)).toBe(L);
    // The budget is spent for all three: the next request at each is refused too.
    for (const h of hosts) expect(await getAccount(h, key), `gateway ${h.n}`).toMatchObject({ status: 429, code: "RATE_LIMITED" });
    expect(reachedUpstream(key)).toBe(L);
  });

  interface Reached {
    /** From the revoke's answer to this gateway's first KEY_REVOKED (ms). */
    readonly ms: number;
    /** Polls this gateway still admitted after the revoke's answer. */
    readonly admitted: number;
  }

  /**
   * Revokes a fresh key (cached as active at every gateway first) with `revoke`, then polls each
   * gateway on its own keep-alive connection, a poll every POLL_GAP_MS, until it refuses the key
   * KEY_REVOKED: for each, the time from `revoke`'s answer. A poll is a whole request, so a figure
   * includes up to one request's round trip on top of the propagation itself.
   */
  async function measureRevocation(accountName: string, revoke: (key: Key) => Promise<void>): Promise<Reached[]> {
    const key = await createKey(accountName, 1, "read");
    for (const h of hosts) expect(await getAccount(h, key), `gateway ${h.n}`).toMatchObject({ status: 200 });
    await revoke(key);
    const answered = performance.now();
    return Promise.all(
      hosts.map(async (h) => {
        let admitted = 0;
        for (;;) {
          const a = await getAccount(h, key);
          const ms = performance.now() - answered;
          if (a.code === "KEY_REVOKED") return { ms, admitted };
          expect(a.status, `gateway ${h.n} answered ${a.status} ${String(a.code)}`).toBe(200);
          admitted++;
          if (ms > 5_000) throw new Error(`gateway ${h.n} still admits the revoked key after ${Math.round(ms)} ms\n${explain()}`);
          await new Promise((resolve) => setTimeout(resolve, POLL_GAP_MS));
        }
      }),
    );
  }

  function report(what: string, rounds: readonly Reached[][]): void {
    const rows = rounds.map((r, i) => `round ${i + 1}: ${r.map((g, n) => `gw${n + 1} ${g.ms.toFixed(1)} ms (${g.admitted} admitted after)`).join(", ")}`);
    const others = rounds.flatMap((r) => r.slice(1).map((g) => g.ms));
    const all = rounds.flatMap((r) => r.map((g) => g.ms));
    console.log(
      `${what}: from the revoke's answer to the first KEY_REVOKED at each gateway (polled every ${POLL_GAP_MS} ms)\n  ${rows.join("\n  ")}\n  ` +
        `gateways 2-3: median ${percentile(others, 50).toFixed(1)} ms, max ${Math.max(...others).toFixed(1)} ms; all three: median ${percentile(all, 50).toFixed(1)} ms, max ${Math.max(...all).toFixed(1)} ms`,
    );
  }

  it(`a key revoked through gateway 1's admin API is refused by all three within ${REVOCATION_BUDGET_MS} ms`, async () => {
    const admin = createClient({ baseUrl: host(1).admin, keyId: operator.id, secret: operator.secret, syncTime: false });
    const rounds: Reached[][] = [];
    for (let round = 0; round < REVOCATION_ROUNDS; round++) {
      rounds.push(
        await measureRevocation(`acct-revoke-admin-${round}`, async (key) => {
          await admin.json("POST", `/portcullis/v1/keys/${key.id}/revoke`, { json: { reason: "three-gateways test" } });
        }),
      );
    }
    report("revocation through gateway 1's admin API", rounds);
    for (const r of rounds) for (const g of r) expect(g.ms).toBeLessThanOrEqual(REVOCATION_BUDGET_MS);
  }, 60_000);

  it("a key revoked with the CLI on host 3's data directory (no gateway involved) is refused by all three within a second", async () => {
    // The CLI writes to PostgreSQL only; each gateway hears of the change by LISTEN/NOTIFY. Timed
    // from the CLI's exit (its process ends after its commit), so a figure is an upper bound.
    const rounds: Reached[][] = [];
    for (let round = 0; round < 3; round++) {
      rounds.push(
        await measureRevocation(`acct-revoke-cli-${round}`, async (key) => {
          await cli(["keys", "revoke", key.id, "--data", host(3).dataDir, "--json"]);
        }),
      );
    }
    report("revocation with the CLI on a data directory", rounds);
    for (const r of rounds) for (const g of r) expect(g.ms).toBeLessThanOrEqual(1_000);
  }, 60_000);

  describe("held withdrawals", () => {
    const HELD = 9;
    const dir = (): string => join(root, "approvers");
    const keyFiles: Record<string, string> = {};
    let trader: Key;

    /** A Binance-signed withdrawal through gateway `n`, as a bot sends one. */
    async function withdraw(n: number, amount: string, address: string): Promise<Answer> {
      const params = new URLSearchParams({ coin: "USDT", network: "TRX", address, amount, timestamp: String(Date.now()) });
      params.set("signature", createHmac("sha256", trader.secret).update(params.toString()).digest("hex"));
      return send(host(n).gateway, host(n).agent, "POST", `/sapi/v1/capital/withdraw/apply?${params.toString()}`, { host: PUBLIC_HOST, "x-mbx-apikey": trader.id });
    }

    beforeAll(async () => {
      mkdirSync(dir(), { mode: 0o700 });
      for (const name of ["alice", "bob"]) {
        const pair = generateKeyPairSync("ed25519");
        const pub = join(dir(), `${name}.pub`);
        keyFiles[name] = join(dir(), `${name}.pem`);
        writeFileSync(pub, pair.publicKey.export({ type: "spki", format: "pem" }));
        writeFileSync(keyFiles[name], pair.privateKey.export({ type: "pkcs8", format: "pem" }), { mode: 0o600 });
        // The approvers are registered on host 2's directory: it is the same store.
        await cli(["approvers", "add", "--name", name, "--group", "treasury", "--public-key", pub, "--data", host(2).dataDir, "--json"]);
      }
      const policy = join(dir(), "policy.json");
      writeFileSync(
        policy,
        JSON.stringify({
          rules: [
            { name: "large USDT withdrawals need two", match: { kind: ["withdraw"], asset: ["USDT"], amount: { over: "1000", unit: "asset" } }, action: { type: "hold", approvals: [{ group: "treasury", count: 2 }] } },
            { name: "rest", action: { type: "allow" } },
          ],
        }),
      );
      expect(JSON.parse(await cli(["policy", "apply", policy, "--data", host(3).dataDir, "--json"]))).toMatchObject({ state: "applied", version: 1 });
      trader = await createKey("acct-treasury", 1, "read,withdraw", "--dialect", "binance", "--owner", "dave");
    }, 60_000);

    it("a withdrawal under the policy's threshold goes straight through", async () => {
      // (Every gateway reads the policy version in force every store.pollInterval, 200 ms; the key
      // was created after the policy was applied, a CLI run of about a second.)
      const small = await withdraw(1, "10", "TSmallWithdrawal1111111111111111111");
      expect(small.status, explain()).toBe(200);
      expect(upstream.exchange.withdrawals().filter((w) => w.amount === "10.00000000")).toHaveLength(1);
    });

    it("each approved withdrawal is released exactly once although all three release loops race for it", async () => {
      const ids: string[] = [];
      for (let i = 0; i < HELD; i++) {
        const answer = await withdraw((i % 3) + 1, String(2000 + i), `THeldWithdrawal${String(i).padStart(19, "0")}`);
        // Binance's own success shape: the operation id stands in for the withdrawal id.
        expect(answer, `withdrawal ${i} at gateway ${(i % 3) + 1}`).toMatchObject({ status: 200, body: { id: expect.stringMatching(/^op_[0-9a-f]{32}$/) as unknown } });
        ids.push(answer.body.id as string);
      }
      const held = (): number => upstream.exchange.withdrawals().filter((w) => Number(w.amount) >= 2000).length;
      expect(held()).toBe(0);
      // The three gateways are frozen (SIGSTOP, as a VM pause freezes a process; at a moment
      // none is inside a transaction) while two approvers approve every withdrawal with the CLI
      // on host 1's and host 3's directories, each signing with their own key file. Resumed
      // together, every gateway's overdue release loop runs at once and tries to claim every
      // ready operation in parallel (HoldService.tick): the three race for each in the same
      // instant. (Polling alone, 500 ms apart, they rarely meet: without the claim's
      // compare-and-swap this test then still passed, 3 runs of 3; frozen and resumed, it fails.)
      const pids = hosts.map((h) => h.child.pid ?? 0);
      const tries = await freezeQuiet(pids, SHARED_POSTGRES_URL, schema);
      try {
        // Three operations at a time (each a CLI process per approver, one after the other).
        for (let i = 0; i < ids.length; i += 3) {
          await Promise.all(
            ids.slice(i, i + 3).map(async (id) => {
              expect(JSON.parse(await cli(["approvals", "approve", id, "--key", keyFiles.alice ?? "", "--data", host(1).dataDir, "--json"]))).toMatchObject({ operationId: id });
              expect(JSON.parse(await cli(["approvals", "approve", id, "--key", keyFiles.bob ?? "", "--data", host(3).dataDir, "--json"]))).toMatchObject({ operationId: id });
            }),
          );
        }
      } finally {
        for (const pid of pids) process.kill(pid, "SIGCONT");
      }
      // Released by whichever gateway's loop claims each first.
      const deadline = Date.now() + 20_000;
      while (held() < HELD && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
      // Many more passes of all three loops (each every 500 ms): nothing is sent again.
      const settle = Date.now() + 2_500;
      while (Date.now() < settle) await new Promise((resolve) => setTimeout(resolve, 100));
      const amounts = upstream.exchange.withdrawals().filter((w) => Number(w.amount) >= 2000).map((w) => w.amount).sort();
      expect(amounts, explain()).toEqual(Array.from({ length: HELD }, (_, i) => `${2000 + i}.00000000`));
      // What reached the upstream, counted at its socket: each held withdrawal's request once.
      const sent = upstream.received
        .filter((r) => r.url.startsWith("/sapi/v1/capital/withdraw/apply?") && r.keyId === trader.id)
        .map((r) => new URLSearchParams(r.url.slice(r.url.indexOf("?") + 1)).get("amount") ?? "")
        .filter((amount) => Number(amount) >= 2000)
        .sort();
      expect(sent).toEqual(Array.from({ length: HELD }, (_, i) => String(2000 + i)));
      const listed = JSON.parse(await cli(["approvals", "list", "--state", "released", "--data", host(2).dataDir, "--json"])) as { operations: { operationId: string }[] };
      expect(listed.operations.map((o) => o.operationId).sort()).toEqual([...ids].sort());
      // One release entry per operation in the one audit chain.
      const releases = await adminQuery<{ entry: string }>(SHARED_POSTGRES_URL, `SELECT entry FROM ${schema}.audit_log WHERE event = 'operation.release' ORDER BY seq`);
      expect(releases).toHaveLength(HELD);
      // Which process released each (the claim's owner, in the entry): the loops did compete.
      const by = new Map<string, number>();
      for (const r of releases) {
        const claimedBy = String((JSON.parse(r.entry) as { detail?: { claimedBy?: unknown } }).detail?.claimedBy);
        by.set(claimedBy, (by.get(claimedBy) ?? 0) + 1);
      }
      console.log(`held withdrawals: ${HELD} approved while the gateways were frozen (frozen at attempt ${tries}), each released once; releases per process: ${[...by.values()].sort().reverse().join(", ")}`);
    }, 60_000);
  });

  it("the audit chain the three gateways and the CLI wrote verifies, with entries only gateways 2 and 3 can have written", async () => {
    // SIGTERM: each gateway drains and flushes its audit log before it exits.
    for (const h of hosts) {
      const exited = new Promise<number | null>((resolve) => h.child.once("exit", resolve));
      h.child.kill("SIGTERM");
      expect(await exited, `gateway ${h.n}\n${h.output.slice(-20).join("\n")}`).toBe(0);
    }
    const verify = JSON.parse(await cli(["audit", "verify", "--data", host(2).dataDir, "--json"])) as { ok: boolean; verified: number; checkpoints: number };
    expect(verify.ok).toBe(true);
    const rows = await adminQuery<{ seq: string; event: string; entry: string }>(SHARED_POSTGRES_URL, `SELECT seq, event, entry FROM ${schema}.audit_log ORDER BY seq`);
    expect(verify.verified).toBe(rows.length);
    expect(rows.map((r) => Number(r.seq))).toEqual(rows.map((_, i) => i + 1));
    // The replayed nonce was refused once by gateway 2 and once by gateway 3 (gateway 1's second
    // refusal too): three NONCE_REPLAYED refusals of that key, each an entry of its own process.
    const replays = rows.filter((r) => r.event === "request.deny" && r.entry.includes("NONCE_REPLAYED") && r.entry.includes("acct-nonce\""));
    expect(replays).toHaveLength(3);
    console.log(`audit chain: ${rows.length} entries from three gateways and the CLI verified, ${verify.checkpoints} checkpoints`);
  }, 60_000);
});
