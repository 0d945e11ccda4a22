/**
 * Benchmark 18: cold-key lookups with 1,000,000 keys in PostgreSQL (issue 17: p99 ≤ 2 ms).
 *
 * A key the gateway has not seen (or whose cache entry has gone) costs stage 4 a read of its row
 * from the durable store. This benchmark fills a PostgreSQL schema with `keys` rows shaped like
 * real ones and times reads of ids never read before, so no application cache can answer them:
 *
 *   get    `PostgresStore.keys.get(id)`, the row (what the issue's target is about);
 *   load   a KeyCache miss as stage 4 takes it: `KeyService.loadMaterial` (the row, its HMAC
 *          secret's envelope opened under the keyring's KEK, a KeyObject) and the key compiled for
 *          the request path (`compileKey`).
 *
 * The fill. One key is created through the real KeyService on the store (an HMAC key with scopes,
 * a label, an IP allowlist and a dialect, as `portcullis keys create` makes one): it is the
 * template. Every other row copies the template's columns in SQL (`INSERT … SELECT … FROM keys t,
 * unnest(…)`: a column added later is copied too) except those that differ between real keys:
 * its own id (generateKeyId, checksum included), its account (four keys per account), its creation
 * time (spread over a year) and its own secret envelope — a fresh 256-bit secret sealed by the same
 * Envelope under the same KEK, bound to the row's id, so every row is valid for `get` and for
 * `loadMaterial` alike. Batches of `batch` rows; the next batch's envelopes are sealed while the
 * previous one is inserted. No change-feed rows or audit entries are written for the filled keys
 * (they would make the database larger, not the `keys` table or its index). Then VACUUM ANALYZE.
 *
 * Where it runs. On a private PostgreSQL (bench/postgres-server.js: the machine's own binaries,
 * its default settings, 128 MB of shared buffers), because the first-touch figure needs a server
 * that may be restarted and whose files may be evicted from the OS page cache. Without server
 * binaries it runs on PORTCULLIS_BENCH_POSTGRES_URL in a schema of its own (dropped afterwards),
 * warm figures only, and says so. The filled schema never outlives the run: the fill is part of
 * the benchmark (its time is reported).
 *
 *   warm         the table and its index read into memory first (pg_prewarm: the index and as
 *                much of the table as fits into shared buffers, the whole table into the OS page
 *                cache), as on a server whose RAM holds its keys;
 *   first touch  the server restarted (empty shared buffers) and the table's and indexes' files
 *                evicted from the OS page cache (posix_fadvise DONTNEED, checked with fincore),
 *                before each run: past the warm-up lookups (which bring the index's root in),
 *                the lookups' pages come from storage. On a virtual machine
 *                "storage" may itself be the host's cache.
 *
 * Each run reads `lookups` distinct ids (a random sample of the filled ids; no id is read twice in
 * the whole benchmark) at a fixed concurrency — `concurrency` lookups always in flight from one
 * Node process, over a pool of `poolSize` connections opened before the timing starts — and
 * records each lookup's latency. PostgreSQL's own statistics (pg_statio_user_tables) say, per run,
 * how many table and index blocks were found in shared buffers and how many had to be read from
 * outside them (the OS page cache or storage). A lookup that finds no row, or the wrong one, is a
 * failure.
 *
 * Run alone: `node bench/pg-bench.js [--quick]` (after `npm run build`).
 */
import { randomBytes, randomInt } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import process from "node:process";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { parseCreateKeyInput, valueOrThrow } from "../packages/portcullis/dist/index.js";
import { PostgresStore } from "../packages/portcullis/dist/storage/postgres/store.js";
import { Envelope, SECRET_PURPOSE } from "../packages/portcullis/dist/custody/envelope.js";
import { KeyringFileProvider } from "../packages/portcullis/dist/custody/keyring.js";
import { KeyService } from "../packages/portcullis/dist/keys/service.js";
import { KeyCache } from "../packages/portcullis/dist/keys/cache.js";
import { generateKeyId } from "../packages/portcullis/dist/contract/ids.js";
import { cachedShare, postgresBinDir, startPrivatePostgres } from "./postgres-server.js";
import { fmt, quantile, table } from "./stats.js";

export const PG_TARGETS = {
  /** Cold-key lookup (`keys.get` of an id never read before) with 1,000,000 keys, p99, ms. */
  coldLookupP99Ms: 2,
};

export const PG_BENCH_SETTINGS = {
  full: { keys: 1_000_000, lookups: 20_000, concurrencies: [1, 16], batch: 10_000, poolSize: 16 },
  quick: { keys: 20_000, lookups: 1_000, concurrencies: [1, 16], batch: 5_000, poolSize: 16 },
};

/** Where the benchmark runs without server binaries (a schema of its own, dropped afterwards). */
export const FALLBACK_URL = process.env.PORTCULLIS_BENCH_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/test";

/** The key every filled row copies (`portcullis keys create` with these settings). */
export const TEMPLATE_INPUT = { account: "acct-0", scopes: ["read", "trade"], label: "market maker bot 1", ipAllowlist: ["203.0.113.0/24"], dialects: ["binance"] };
/** Keys per account in the fill. */
const KEYS_PER_ACCOUNT = 4;
const YEAR_MS = 365 * 24 * 3600 * 1000;
/** Lookups before a run's timing starts, on ids of their own: opens the pool's connections. */
const WARMUP_LOOKUPS = 64;
/** The columns that differ between filled rows; every other column is the template's. */
const VARYING = { id: "text", account: "text", secret_envelope: "bytea", created_at: "bigint", updated_at: "bigint" };

/**
 * The fill's INSERT: every column of `columns` (the table's, in order) from the unnest of the
 * varying arrays ($2…) when it varies, else from the template row t ($1 its id).
 */
export function fillStatement(columns) {
  const names = Object.keys(VARYING);
  for (const name of names) if (!columns.includes(name)) throw new Error(`the keys table has no column ${name}`);
  const select = columns.map((c) => (names.includes(c) ? `u.${c}` : `t.${c}`)).join(", ");
  const arrays = names.map((n, i) => `$${i + 2}::${VARYING[n]}[]`).join(", ");
  return `INSERT INTO keys (${columns.join(", ")}) SELECT ${select} FROM keys t, unnest(${arrays}) AS u(${names.join(", ")}) WHERE t.id = $1`;
}

/** A uniformly random order of `list` (Fisher–Yates, in place). */
function shuffle(list) {
  for (let i = list.length - 1; i > 0; i--) {
    const j = randomInt(i + 1);
    const x = list[i];
    list[i] = list[j];
    list[j] = x;
  }
  return list;
}

/**
 * Fills `schema` (created and migrated by PostgresStore.open) with `count` keys (the template
 * included). Resolves to `{ ids (the filled ids, the template's first), seconds, envelope,
 * keyringDir, template, pid }` (`pid`: the backend that filled, closed by then); the caller removes
 * `keyringDir`.
 */
export async function fillKeys({ url, schema, count, batch, progress = () => undefined }) {
  const keyringDir = mkdtempSync(join(tmpdir(), "portcullis-bench-pgkeys-"));
  const envelope = new Envelope(KeyringFileProvider.create(join(keyringDir, "keyring.json")));
  const store = await PostgresStore.open({ url, schema, poolSize: 2 });
  const t0 = performance.now();
  try {
    const service = new KeyService({ store, envelope, environment: "live" });
    const created = await service.create(valueOrThrow(parseCreateKeyInput(TEMPLATE_INPUT, Date.now())), "bench");
    const template = created.key.id;
    const admin = new pg.Client({ connectionString: url, options: `-c search_path=${schema}` });
    await admin.connect();
    const pid = (await admin.query("SELECT pg_backend_pid() AS pid")).rows[0].pid;
    try {
      const columns = (await admin.query("SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'keys' ORDER BY ordinal_position", [schema])).rows.map((r) => r.column_name);
      const sql = fillStatement(columns);
      const ids = [template];
      const now = Date.now();
      const make = async (from, to) => {
        const cols = { id: [], account: [], secret_envelope: [], created_at: [], updated_at: [] };
        for (let i = from; i < to; i++) {
          const id = generateKeyId("live");
          // A secret as KeyService issues one (256 bits, base64url), sealed for this row's id.
          const secret = Buffer.from(randomBytes(32).toString("base64url"), "utf8");
          const at = now - Math.floor((i / count) * YEAR_MS);
          cols.id.push(id);
          cols.account.push(`acct-${Math.floor(i / KEYS_PER_ACCOUNT)}`);
          cols.secret_envelope.push(await envelope.encrypt(secret, SECRET_PURPOSE, id));
          cols.created_at.push(at);
          cols.updated_at.push(at);
        }
        return cols;
      };
      let pending = null;
      let done = 1;
      let nextReport = 100_000;
      for (let from = 1; from < count; from += batch) {
        const cols = await make(from, Math.min(count, from + batch));
        if (pending !== null) await pending;
        ids.push(...cols.id);
        pending = admin.query(sql, [template, ...Object.keys(VARYING).map((n) => cols[n])]).then(() => {
          done += cols.id.length;
          if (done >= nextReport) {
            progress(`benchmark 18: filled ${done.toLocaleString("en-US")} keys (${fmt((performance.now() - t0) / 1000, 0)} s)`);
            nextReport += 100_000;
          }
        });
      }
      if (pending !== null) await pending;
      await admin.query("VACUUM (ANALYZE) keys");
      const n = Number((await admin.query("SELECT count(*) AS n FROM keys")).rows[0].n);
      if (n !== count) throw new Error(`the fill left ${n} keys, not ${count}`);
      return { ids, seconds: (performance.now() - t0) / 1000, envelope, keyringDir, template, pid };
    } finally {
      await admin.end();
    }
  } catch (err) {
    rmSync(keyringDir, { recursive: true, force: true });
    throw err;
  } finally {
    await store.close();
  }
}

/** The keys table's counters in pg_statio_user_tables (blocks found in shared buffers, and read into them). */
async function blockCounters(admin, schema) {
  await admin.query("SELECT pg_stat_clear_snapshot()");
  const { rows } = await admin.query(
    "SELECT heap_blks_read, heap_blks_hit, idx_blks_read, idx_blks_hit FROM pg_statio_user_tables WHERE schemaname = $1 AND relname = 'keys'",
    [schema],
  );
  const r = rows[0] ?? {};
  return { heapRead: Number(r.heap_blks_read ?? 0), heapHit: Number(r.heap_blks_hit ?? 0), idxRead: Number(r.idx_blks_read ?? 0), idxHit: Number(r.idx_blks_hit ?? 0) };
}

/** Waits until no connection of the store's pool (application_name portcullis:<schema>) is left: their statistics are then counted. */
async function poolGone(admin, schema) {
  const until = Date.now() + 10_000;
  while (Date.now() < until) {
    const { rows } = await admin.query("SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1", [`portcullis:${schema}`]);
    if (Number(rows[0].n) === 0) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Waits until backend `pid` has exited (its statistics are then counted). */
async function backendGone(admin, pid) {
  const until = Date.now() + 10_000;
  while (Date.now() < until) {
    if ((await admin.query("SELECT 1 FROM pg_stat_activity WHERE pid = $1", [pid])).rows.length === 0) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * One measured run: `ids.length` lookups of `kind` ("get" or "load") at `concurrency`, on a store
 * opened for the run. Answers latencies (ms), failures and the block counters' deltas.
 */
export async function lookupRun({ url, schema, admin, envelope, kind, ids, warmupIds, concurrency, poolSize }) {
  const store = await PostgresStore.open({ url, schema, poolSize });
  const service = new KeyService({ store, envelope, environment: "live" });
  // Large enough that nothing is evicted, fresh for the whole run: every lookup is a miss (asserted).
  const cache = new KeyCache({ load: (id) => service.loadMaterial(id), defaultWindowMs: 5_000, maxEntries: ids.length + warmupIds.length + 1 });
  const lookup =
    kind === "get"
      ? async (id) => (await store.keys.get(id))?.id === id
      : async (id) => {
          if (cache.peek(id) !== undefined) return false;
          const key = await cache.load(id);
          return key !== null && key.record.id === id && key.hmacKey !== null;
        };
  let failures = 0;
  const latencies = new Array(ids.length);
  const drive = async (list, record) => {
    let next = 0;
    const worker = async () => {
      for (;;) {
        const i = next++;
        if (i >= list.length) return;
        const t0 = performance.now();
        let ok;
        try {
          ok = await lookup(list[i]);
        } catch {
          ok = false;
        }
        const ms = performance.now() - t0;
        if (record) latencies[i] = ms;
        if (!ok) failures++;
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
  };
  let seconds;
  let before;
  try {
    // Open the pool's connections (as a running gateway's are) on ids of their own.
    await drive(warmupIds, false);
    before = await blockCounters(admin, schema);
    const t0 = performance.now();
    await drive(ids, true);
    seconds = (performance.now() - t0) / 1000;
  } finally {
    await store.close();
  }
  // A backend's statistics are counted when it exits: wait for the pool's, then read.
  await poolGone(admin, schema);
  const after = await blockCounters(admin, schema);
  const loads = cache.stats.loads;
  if (kind === "load" && loads !== ids.length + warmupIds.length) failures += Math.abs(ids.length + warmupIds.length - loads);
  return {
    kind,
    concurrency,
    lookups: ids.length,
    failures,
    seconds,
    rate: ids.length / seconds,
    p50: quantile(latencies, 0.5),
    p90: quantile(latencies, 0.9),
    p99: quantile(latencies, 0.99),
    max: Math.max(...latencies),
    // The warm-up lookups are in these counts too (a few dozen against thousands).
    blocks: { heapRead: after.heapRead - before.heapRead, heapHit: after.heapHit - before.heapHit, idxRead: after.idxRead - before.idxRead, idxHit: after.idxHit - before.idxHit },
    load1: loadavg()[0],
  };
}

/** Sizes of the keys table, its primary key and all its indexes (bytes), and where their files are. */
async function relationInfo(admin, schema) {
  const q = (sql) => admin.query(sql, [schema]);
  const sizes = (
    await q(
      "SELECT pg_relation_size(c.oid) AS heap, pg_indexes_size(c.oid) AS indexes, pg_total_relation_size(c.oid) AS total FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = 'keys'",
    )
  ).rows[0];
  const pkey = (await q("SELECT pg_relation_size(i.indexrelid) AS size FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = 'keys' AND i.indisprimary")).rows[0];
  // Every file of the table: heap, its indexes, its TOAST table and the TOAST index.
  const files = (
    await q(
      `SELECT pg_relation_filepath(x.oid) AS path FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace,
         LATERAL (SELECT c.oid UNION ALL SELECT indexrelid FROM pg_index WHERE indrelid = c.oid
                  UNION ALL SELECT c.reltoastrelid WHERE c.reltoastrelid <> 0
                  UNION ALL SELECT indexrelid FROM pg_index WHERE indrelid = c.reltoastrelid AND c.reltoastrelid <> 0) AS x(oid)
       WHERE n.nspname = $1 AND c.relname = 'keys'`,
    )
  ).rows.map((r) => r.path);
  return { heapBytes: Number(sizes.heap), indexBytes: Number(sizes.indexes), totalBytes: Number(sizes.total), pkeyBytes: Number(pkey?.size ?? 0), files };
}

/** Bytes of the keys table and of its indexes held in shared buffers now (pg_buffercache), or null without it. */
async function buffered(admin, schema) {
  try {
    const { rows } = await admin.query(
      `SELECT sum(CASE WHEN c.relkind = 'i' THEN 1 ELSE 0 END) AS idx, sum(CASE WHEN c.relkind = 'r' THEN 1 ELSE 0 END) AS heap
         FROM pg_buffercache b JOIN pg_class c ON b.relfilenode = pg_relation_filenode(c.oid)
         JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE b.reldatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
          AND n.nspname = $1 AND (c.relname = 'keys' OR c.oid IN (SELECT indexrelid FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid WHERE t.relname = 'keys' AND t.relnamespace = n.oid))`,
      [schema],
    );
    return { heapBytes: Number(rows[0].heap ?? 0) * 8192, indexBytes: Number(rows[0].idx ?? 0) * 8192 };
  } catch {
    return null;
  }
}

/**
 * Runs benchmark 18 on a private server, or (`privateServer` false, or no server binaries) on
 * `url` in `schema` (default a random `pcbench_…`), which is dropped at the end. Returns `{ settings, server, fill, relations, warm, firstTouch, missing }`:
 * `warm` and `firstTouch` list measured runs; `missing.firstTouch` (and `missing.all`) say why a
 * part did not run.
 */
export async function runPgLookupBench({ keys, lookups, concurrencies, batch, poolSize, progress = () => undefined, privateServer = true, url: givenUrl = FALLBACK_URL, schema: givenSchema = null }) {
  const settings = { keys, lookups, concurrencies, batch, poolSize };
  const missing = {};
  let server = null;
  let url = givenUrl;
  let schema = "portcullis_bench";
  if (privateServer && postgresBinDir() !== null) {
    try {
      server = await startPrivatePostgres();
      url = server.url;
    } catch (err) {
      missing.firstTouch = `no private PostgreSQL server: ${err instanceof Error ? err.message : String(err)}`;
    }
  } else {
    missing.firstTouch = privateServer ? "no PostgreSQL server binaries (initdb, postgres): install postgresql, or set PORTCULLIS_BENCH_PG_BIN" : "needs a private server (not asked for)";
  }
  if (server === null) schema = givenSchema ?? `pcbench_${randomBytes(6).toString("hex")}`;
  const admin = () => {
    const c = new pg.Client({ connectionString: url });
    c.on("error", () => undefined);
    return c;
  };
  let keyringDir = null;
  let client = admin();
  try {
    await client.connect();
    const serverInfo = {
      private: server !== null,
      version: (await client.query("SHOW server_version")).rows[0].server_version,
      sharedBuffers: (await client.query("SHOW shared_buffers")).rows[0].shared_buffers,
    };
    if (server !== null) {
      await client.query("CREATE EXTENSION IF NOT EXISTS pg_prewarm");
      await client.query("CREATE EXTENSION IF NOT EXISTS pg_buffercache");
    }
    progress(`benchmark 18: filling ${keys.toLocaleString("en-US")} keys into ${server === null ? `schema ${schema} at ${url.replace(/\/\/[^@]*@/, "//")}` : `a private PostgreSQL ${serverInfo.version}`}`);
    const fill = await fillKeys({ url, schema, count: keys, batch, progress });
    keyringDir = fill.keyringDir;
    // The fill's block counts must be in before any run reads the counters.
    await backendGone(client, fill.pid);
    await poolGone(client, schema);
    progress(`benchmark 18: filled in ${fmt(fill.seconds, 1)} s`);
    const relations = await relationInfo(client, schema);
    // Disjoint samples: no id is looked up twice in the whole benchmark (the template is never).
    const pool = shuffle(fill.ids.slice(1));
    let taken = 0;
    const take = (n) => {
      if (taken + n > pool.length) throw new Error(`not enough keys for the runs: ${keys} filled, ${taken + n} needed`);
      const out = pool.slice(taken, taken + n);
      taken += n;
      return out;
    };
    const run = async (kind, concurrency, phase) => {
      const result = await lookupRun({ url, schema, admin: client, envelope: fill.envelope, kind, ids: take(lookups), warmupIds: take(WARMUP_LOOKUPS), concurrency, poolSize });
      progress(`benchmark 18: ${phase} ${kind} c=${concurrency}: p50 ${fmt(result.p50, 3)} ms, p99 ${fmt(result.p99, 3)} ms, max ${fmt(result.max, 1)} ms, ${Math.round(result.rate)}/s, failures ${result.failures}, load ${fmt(result.load1, 2)}`);
      return { phase, ...result };
    };

    // Warm: the table and its indexes in memory first.
    let warmState = null;
    if (server !== null) {
      // On a connection of its own, closed before the runs: a backend's statistics are counted
      // up to a second after its queries (or when it exits), and the prewarm's block reads must
      // not land in the first run's counts.
      const prewarm = admin();
      await prewarm.connect();
      const pid = (await prewarm.query("SELECT pg_backend_pid() AS pid")).rows[0].pid;
      try {
        await prewarm.query("SELECT pg_prewarm($1::regclass, 'read')", [`${schema}.keys`]);
        const indexes = (await prewarm.query("SELECT i.indexrelid::regclass::text AS name, i.indisprimary AS pkey FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace WHERE n.nspname = $1 AND t.relname = 'keys'", [schema])).rows;
        for (const { name } of indexes) await prewarm.query("SELECT pg_prewarm($1::regclass, 'read')", [name]);
        // Into shared buffers: the rows (as many as fit), then the primary key last, so that the
        // table's pages do not push it out.
        await prewarm.query("SELECT pg_prewarm($1::regclass)", [`${schema}.keys`]);
        for (const { name } of indexes.filter((i) => i.pkey)) await prewarm.query("SELECT pg_prewarm($1::regclass)", [name]);
      } finally {
        await prewarm.end();
      }
      await backendGone(client, pid);
      warmState = { buffers: await buffered(client, schema), osCached: await cachedShare(server.relationFiles(relations.files)) };
    }
    const warm = [];
    for (const c of concurrencies) {
      warm.push(await run("get", c, "warm"));
      warm.push(await run("load", c, "warm"));
    }

    // First touch: restarted, files evicted, before each run.
    const firstTouch = [];
    if (server !== null) {
      for (const c of concurrencies) {
        await client.end();
        await server.restart();
        const osCached = await server.evict(server.relationFiles(relations.files));
        client = admin();
        await client.connect();
        const buffers = await buffered(client, schema);
        firstTouch.push({ ...(await run("get", c, "first touch")), state: { osCached, buffers } });
      }
    }
    return { settings, server: serverInfo, fill: { seconds: fill.seconds, keys }, relations: { ...relations, files: relations.files.length }, warmState, warm, firstTouch, missing };
  } finally {
    if (server === null) await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => undefined);
    await client.end().catch(() => undefined);
    if (server !== null) await server.stop();
    if (keyringDir !== null) rmSync(keyringDir, { recursive: true, force: true });
  }
}

// --- report ------------------------------------------------------------------------------

const verdict = (pass) => (pass ? "**PASS**" : "**FAIL**");
const mb = (bytes) => `${fmt(bytes / 2 ** 20, 0)} MiB`;
const pct = (share) => (share === null || share === undefined ? "n/a" : `${fmt(share * 100, 0)} %`);

/**
 * For each higher concurrency of the warm `keys.get` runs, whether the machine was saturated: when
 * the lookups/s hardly rise above concurrency 1's, latency there is mostly waiting behind the
 * other lookups in flight (Little's law: in flight / rate is the mean latency).
 */
export function saturation(warm) {
  const gets = warm.filter((r) => r.kind === "get").sort((a, b) => a.concurrency - b.concurrency);
  const base = gets[0];
  if (base === undefined) return [];
  const lines = [];
  for (const r of gets.slice(1)) {
    const gain = r.rate / base.rate;
    const mean = (n, rate) => fmt((n / rate) * 1000, 2);
    lines.push(
      `At concurrency ${r.concurrency} the warm \`keys.get\` runs made ${fmt(r.rate, 0)} lookups/s, ${fmt(gain, 2)}× concurrency ${base.concurrency}'s ${fmt(base.rate, 0)}: ${gain < 1.5 ? "the machine's cores (this Node process and the PostgreSQL backends share them) were saturated, so latency there is mostly waiting behind the other lookups in flight" : "the server absorbed the extra lookups in flight"} — ${r.concurrency} in flight at that rate is ${mean(r.concurrency, r.rate)} ms on average (Little's law), against ${mean(base.concurrency, base.rate)} ms at concurrency ${base.concurrency}.`,
      "",
    );
  }
  return lines;
}

/** The section of BENCHMARKS.md: `{ summary: rows, text: lines, failures }`. */
export function pgLookupSection(result) {
  const heading = "## 18. Cold-key lookups with 1,000,000 keys in PostgreSQL";
  if (result.error !== undefined) {
    return {
      failures: 1,
      summary: [["Cold-key lookup in PostgreSQL, p99 (benchmark 18)", "**NOT RUN**", `≤ ${PG_TARGETS.coldLookupP99Ms} ms`, `**NOT RUN: ${result.error}**`]],
      text: [heading, "", `**NOT RUN on this machine: ${result.error}.** None of this benchmark's figures were measured.`, ""],
    };
  }
  const { settings, server, fill, relations, warmState, warm, firstTouch, missing } = result;
  const failures = [...warm, ...firstTouch].reduce((n, r) => n + r.failures, 0);
  const keysText = settings.keys.toLocaleString("en-US");
  const summary = warm
    .filter((r) => r.kind === "get")
    .map((r) => [`Cold-key lookup (\`keys.get\`), ${keysText} keys in PostgreSQL, warm buffers, concurrency ${r.concurrency}: p99`, `${fmt(r.p99, 2)} ms`, `≤ ${PG_TARGETS.coldLookupP99Ms} ms`, verdict(r.p99 <= PG_TARGETS.coldLookupP99Ms)]);
  for (const r of firstTouch) summary.push([`Cold-key lookup (\`keys.get\`), ${keysText} keys, first touch (restarted, files evicted), concurrency ${r.concurrency}: p99`, `${fmt(r.p99, 2)} ms`, "none (informational)", "–"]);
  if (firstTouch.length === 0) summary.push([`Cold-key lookup, first touch`, `**NOT MEASURED: ${missing.firstTouch ?? "not run"}**`, "none (informational)", "–"]);
  const perLookup = (r, n) => fmt(n / (r.lookups + WARMUP_LOOKUPS), 2);
  const row = (r) => [
    r.phase,
    r.kind === "get" ? "`keys.get` (the row)" : "KeyCache miss (`loadMaterial` + `compileKey`)",
    String(r.concurrency),
    String(r.lookups),
    fmt(r.p50, 3),
    fmt(r.p90, 3),
    fmt(r.p99, 3),
    fmt(r.max, 2),
    fmt(r.rate, 0),
    `${perLookup(r, r.blocks.heapHit + r.blocks.idxHit)} / ${perLookup(r, r.blocks.heapRead + r.blocks.idxRead)}`,
    fmt(r.load1, 2),
    String(r.failures),
  ];
  const text = [
    heading,
    "",
    `A PostgreSQL schema filled with ${keysText} \`keys\` rows shaped like real ones (one key made by the KeyService — HMAC, two scopes, a label, an IP allowlist, the Binance dialect —, the others copied from it in SQL with their own ids, accounts, creation times and their own secret envelopes sealed under the run's KEK), then lookups of ids never read before, so no application cache answers them: \`keys.get\` (the row; the issue's target) and a KeyCache miss as stage 4 takes it (the row, the secret's envelope opened, the key compiled). Each run: ${settings.lookups.toLocaleString("en-US")} distinct random ids at a fixed concurrency (that many lookups always in flight from one Node process, a pool of ${settings.poolSize} connections opened before the timing). *Warm*: the table and its indexes read into memory first (pg_prewarm), as on a server whose RAM holds its keys. *First touch*: the server restarted and the table's and indexes' files evicted from the OS page cache before the run, so that past the warm-up lookups (which bring the index's root in) the lookups' pages come from storage (on a virtual machine that may be the host's cache); the blocks-read column says how many. The fill is part of the run; nothing of it is kept.`,
    "",
    table(
      ["", ""],
      [
        ["Server", `PostgreSQL ${server.version}, ${server.private ? "a private server (bench/postgres-server.js), default settings" : "**the shared server** (no server binaries for a private one)"}, shared_buffers ${server.sharedBuffers}`],
        ["Fill", `${keysText} keys in ${fmt(fill.seconds, 1)} s (sealing the envelopes included), then VACUUM ANALYZE`],
        ["The keys table", `${mb(relations.heapBytes)} of rows, ${mb(relations.indexBytes)} of indexes (primary key ${mb(relations.pkeyBytes)}), ${mb(relations.totalBytes)} in all`],
        ...(warmState === null
          ? []
          : [["Before the warm runs", `shared buffers held ${warmState.buffers === null ? "n/a" : `${mb(warmState.buffers.indexBytes)} of the indexes and ${mb(warmState.buffers.heapBytes)} of the rows`}; the OS page cache ${pct(warmState.osCached)} of their files`]]),
        ...firstTouch.map((r) => [`Before the first-touch run at concurrency ${r.concurrency}`, `shared buffers held ${r.state.buffers === null ? "n/a" : `${mb(r.state.buffers.indexBytes)} of the indexes and ${mb(r.state.buffers.heapBytes)} of the rows`}; the OS page cache ${pct(r.state.osCached)} of their files`]),
      ],
    ),
    "",
    table(["Phase", "Lookup", "Concurrency", "Lookups", "p50 ms", "p90 ms", "p99 ms", "max ms", "Lookups/s", "Blocks per lookup: in shared buffers / read into them", "Load (1 min)", "Failures"], [...warm, ...firstTouch].map(row)),
    "",
    ...(firstTouch.length === 0 ? [`**First touch NOT MEASURED: ${missing.firstTouch ?? "not run"}.**`, ""] : []),
    ...saturation(warm),
    `*Blocks per lookup* come from PostgreSQL's own counters for the table and its indexes (pg_statio_user_tables, the run's ${WARMUP_LOOKUPS} warm-up lookups included): found in shared buffers, or read into them from outside (the OS page cache, or storage). A b-tree lookup of one key touches the index's root, an inner page and a leaf, then the row's heap page. The target is judged on the warm \`keys.get\` runs; the first-touch figures measure the storage under the server more than PostgreSQL, and are shown beside them.`,
    "",
  ];
  return { failures, summary, text };
}

// Alone: node bench/pg-bench.js [--quick]
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const quick = process.argv.includes("--quick");
  const progress = (line) => process.stderr.write(`${line}\n`);
  runPgLookupBench({ ...(quick ? PG_BENCH_SETTINGS.quick : PG_BENCH_SETTINGS.full), progress })
    .catch((err) => ({ error: err instanceof Error ? err.message : String(err) }))
    .then((result) => {
      const section = pgLookupSection(result);
      process.stdout.write(`${table(["Benchmark", "Figure", "Target", "Result"], section.summary)}\n\n${section.text.join("\n")}\n`);
      if (section.failures > 0) process.exitCode = 1;
    });
}
