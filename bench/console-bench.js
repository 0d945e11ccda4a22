/**
 * Benchmark 20: the operator console (issue 18).
 *
 * (a) The keys table's request: `GET /portcullis/v1/keys?limit=50` through a real AdminApi over
 * HTTP, each request signed by an operator key with the client SDK (`@portcullis/client`, as the
 * console signs), with `keys` keys in the store, on SQLite and on PostgreSQL (a private schema on
 * the shared server, dropped afterwards). One request at a time; p50/p95/p99 per kind of request:
 *
 *   first page        `?limit=50`;
 *   later page        `?limit=50&after=<id>`, a cursor taken at random among the stored ids;
 *   q: label word     `&q=hedging`: one key in eight has it in its label (the page fills early);
 *   q: account prefix `&q=acct-<n>`: an account and the accounts whose names continue it (tens
 *                     of keys, fewer than a page: every key is looked at);
 *   q: id prefix      `&q=<the first 14 characters of a stored id>`: a few keys (every key is
 *                     looked at, since a label could hold the text too);
 *   q: no match       `&q=no such key`: every key looked at, none returned.
 *
 * Every answer is checked: a page of 50 with a `next`, ids after the cursor, every key of a q
 * answer matching q. An admin API that ignores `q` (before the admin-schema work of issue 18 is
 * merged) returns keys that do not match: the q rows then say "q not supported by this admin API"
 * instead of a figure, never a figure for the wrong query.
 *
 * The fill. One key is created through the real KeyService (an HMAC key with scopes, a label, an
 * IP allowlist, as `portcullis keys create` makes one): the template. Every other row copies its
 * columns in SQL, except its own id (generateKeyId), account (four keys per account), label (one
 * of eight purposes and its number: "hedging bot 17") and times. Filled rows keep the template's
 * secret envelope (bound to the template's id, so they cannot sign: the list never opens it).
 * No change-feed rows or audit entries are written for them.
 *
 * (b) The console's first load: the JavaScript `packages/console/dist/index.html` makes the
 * browser fetch before it can run (every `<script src>` and `<link rel="modulepreload">`), as the
 * admin listener serves it: gzip at level 9 (and brotli at quality 9, shown beside it), as
 * admin/console.ts compresses the files it serves. No dist (the console not built): "not built".
 *
 * Run alone: `node bench/console-bench.js [--quick]` (after `npm run build`).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative, resolve, sep } from "node:path";
import { performance } from "node:perf_hooks";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { brotliCompressSync, constants as zlib, gzipSync } from "node:zlib";
import Database from "better-sqlite3";
import pg from "pg";
import { createClient } from "../packages/client/dist/base.js";
import { Portcullis, parseCreateKeyInput, valueOrThrow } from "../packages/portcullis/dist/index.js";
import { AdminApi } from "../packages/portcullis/dist/admin/server.js";
import { Envelope } from "../packages/portcullis/dist/custody/envelope.js";
import { KeyringFileProvider } from "../packages/portcullis/dist/custody/keyring.js";
import { generateKeyId } from "../packages/portcullis/dist/contract/ids.js";
import { silentLogger } from "../packages/portcullis/dist/log/logger.js";
import { PostgresStore } from "../packages/portcullis/dist/storage/postgres/store.js";
import { SqliteStore } from "../packages/portcullis/dist/storage/sqlite/store.js";
import { FALLBACK_URL } from "./pg-bench.js";
import { fmt, quantile, table } from "./stats.js";

export const CONSOLE_TARGETS = {
  /** The keys table's request (`GET /portcullis/v1/keys?limit=50`, any kind), p95, ms. */
  keyListP95Ms: 50,
  /** The console's first load: its JavaScript, gzip-compressed as served, bytes (300 KB). */
  firstLoadGzipBytes: 300_000,
};

export const CONSOLE_BENCH_SETTINGS = {
  full: { keys: 10_000, requests: 200, warmup: 20 },
  quick: { keys: 1_000, requests: 20, warmup: 5 },
};

/** The console's build, as console-ui's Vite config writes it. */
export const CONSOLE_DIST = fileURLToPath(new URL("../packages/console/dist", import.meta.url));
/** The path the admin listener serves the console under (Vite `base`). */
const CONSOLE_BASE = "/console/";
const GZIP_LEVEL = 9;
const BROTLI_QUALITY = 9;

export const TEMPLATE_INPUT = { account: "acct-0", scopes: ["read", "trade"], label: "market maker bot 0", ipAllowlist: ["203.0.113.0/24"] };
const KEYS_PER_ACCOUNT = 4;
const PURPOSES = ["market maker", "arbitrage", "treasury", "withdrawals", "hedging", "reporting", "grid", "twap"];
const PAGE = 50;
/** The columns that differ between filled rows; every other column is the template's. */
const VARYING = ["id", "account", "label", "created_at", "updated_at"];

/** The filled row `i`'s account and label (the template is row 0). */
export function filledRow(i) {
  return { account: `acct-${Math.floor(i / KEYS_PER_ACCOUNT)}`, label: `${PURPOSES[i % PURPOSES.length]} bot ${i}` };
}

/**
 * The fill's INSERT … SELECT: the varying columns from `values` (SQLite `?`, PostgreSQL the unnest
 * of `$2…` arrays), every other column of `columns` from the template row (its id the first
 * parameter on PostgreSQL, the last on SQLite).
 */
export function fillStatement(columns, dialect) {
  for (const name of VARYING) if (!columns.includes(name)) throw new Error(`the keys table has no column ${name}`);
  const select = columns.map((c) => (VARYING.includes(c) ? (dialect === "sqlite" ? `? AS ${c}` : `u.${c}`) : `t.${c}`));
  if (dialect === "sqlite") {
    // SQLite binds `?` in the order they appear: the varying ones in the select list, then the template's id.
    const ordered = columns.filter((c) => VARYING.includes(c));
    return { sql: `INSERT INTO keys (${columns.join(", ")}) SELECT ${select.join(", ")} FROM keys t WHERE t.id = ?`, order: ordered };
  }
  const types = { id: "text", account: "text", label: "text", created_at: "bigint", updated_at: "bigint" };
  const arrays = VARYING.map((n, i) => `$${i + 2}::${types[n]}[]`).join(", ");
  return { sql: `INSERT INTO keys (${columns.join(", ")}) SELECT ${select.join(", ")} FROM keys t, unnest(${arrays}) AS u(${VARYING.join(", ")}) WHERE t.id = $1`, order: VARYING };
}

/** The varying values of rows [from, to), by column. */
function rowsFor(from, to, now) {
  const cols = { id: [], account: [], label: [], created_at: [], updated_at: [] };
  for (let i = from; i < to; i++) {
    const { account, label } = filledRow(i);
    cols.id.push(generateKeyId("live"));
    cols.account.push(account);
    cols.label.push(label);
    cols.created_at.push(now - i * 1000);
    cols.updated_at.push(now - i * 1000);
  }
  return cols;
}

/** Copies the template row into `count - 1` more rows of the SQLite database at `path` (one transaction). */
export function fillSqlite(path, template, count) {
  const db = new Database(path);
  try {
    db.pragma("busy_timeout = 10000");
    const columns = db.prepare("SELECT name FROM pragma_table_info('keys')").all().map((r) => r.name);
    const { sql, order } = fillStatement(columns, "sqlite");
    const insert = db.prepare(sql);
    const cols = rowsFor(1, count, Date.now());
    db.transaction(() => {
      for (let i = 0; i < cols.id.length; i++) insert.run(...order.map((c) => cols[c][i]), template);
    })();
    db.exec("ANALYZE");
    return cols.id;
  } finally {
    db.close();
  }
}

/** Copies the template row into `count - 1` more rows of `schema` (batches of 5,000), then ANALYZE. */
export async function fillPostgres(url, schema, template, count) {
  const admin = new pg.Client({ connectionString: url, options: `-c search_path=${schema}` });
  await admin.connect();
  try {
    const columns = (await admin.query("SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'keys' ORDER BY ordinal_position", [schema])).rows.map((r) => r.column_name);
    const { sql } = fillStatement(columns, "postgres");
    const ids = [];
    const now = Date.now();
    for (let from = 1; from < count; from += 5000) {
      const cols = rowsFor(from, Math.min(count, from + 5000), now);
      await admin.query(sql, [template, ...VARYING.map((c) => cols[c])]);
      ids.push(...cols.id);
    }
    await admin.query("VACUUM (ANALYZE) keys");
    return ids;
  } finally {
    await admin.end();
  }
}

/** Whether a key answers search `q`, as KeyListFilter.search defines it (ASCII letters folded). */
export function matchesSearch(key, q) {
  const fold = (s) => s.replace(/[A-Z]/g, (c) => c.toLowerCase());
  const text = fold(q);
  return fold(key.id).startsWith(text) || fold(key.account).startsWith(text) || fold(key.label).includes(text);
}

/** The kinds of request timed: [name, a function (the stored ids) -> { path, check(answer) -> problem | null, q? }]. */
function requestKinds(ids) {
  const pick = () => ids[Math.floor(Math.random() * ids.length)];
  const sorted = [...ids].sort();
  const page = (path, after) => ({
    path,
    check: (answer) => {
      if (answer.keys.length !== PAGE || answer.next === null) return `expected a full page and a next cursor, got ${answer.keys.length} keys`;
      if (after !== undefined && answer.keys.some((k) => k.id <= after)) return "a key at or before the cursor";
      return null;
    },
  });
  const search = (q) => ({
    path: `/portcullis/v1/keys?limit=${PAGE}&q=${encodeURIComponent(q)}`,
    q,
    check: (answer) => (answer.keys.every((k) => matchesSearch(k, q)) ? null : "unsupported"),
  });
  const accounts = Math.max(1, Math.floor(ids.length / KEYS_PER_ACCOUNT));
  return [
    ["first page", () => page(`/portcullis/v1/keys?limit=${PAGE}`)],
    [
      "later page (after)",
      () => {
        // A cursor with at least a page after it.
        const after = sorted[Math.floor(Math.random() * (sorted.length - PAGE - 1))];
        return page(`/portcullis/v1/keys?limit=${PAGE}&after=${encodeURIComponent(after)}`, after);
      },
    ],
    ["q: label word (`hedging`)", () => search("hedging")],
    ["q: account prefix (`acct-<n>`)", () => search(`acct-${Math.floor(Math.random() * accounts)}`)],
    ["q: id prefix (14 characters)", () => search(pick().slice(0, 14))],
    ["q: no match", () => search("no such key")],
  ];
}

/**
 * Times every kind of request against `base` with `client`: `warmup` untimed then `requests`
 * timed, one at a time. Resolves to `[{ kind, requests, p50, p95, p99, max, unsupported?, failures }]`.
 */
async function timeRequests(client, ids, { requests, warmup }) {
  const out = [];
  for (const [kind, make] of requestKinds(ids)) {
    const samples = [];
    let failures = 0;
    let unsupported = false;
    for (let i = 0; i < warmup + requests && !unsupported; i++) {
      const r = make();
      const t0 = performance.now();
      let answer;
      try {
        answer = await client.json("GET", r.path);
      } catch {
        failures++;
        continue;
      }
      const ms = performance.now() - t0;
      const problem = r.check(answer);
      if (problem === "unsupported") unsupported = true;
      else if (problem !== null) failures++;
      else if (i >= warmup) samples.push(ms);
    }
    out.push(
      unsupported
        ? { kind, unsupported: true, failures: 0, requests: 0 }
        : { kind, requests: samples.length, failures, p50: quantile(samples, 0.5), p95: quantile(samples, 0.95), p99: quantile(samples, 0.99), max: Math.max(...samples) },
    );
  }
  return out;
}

/**
 * One store's run: a core on `store`, the template and an operator key created through it, the
 * fill (`fill(template) -> ids`), an AdminApi on a free port, the timings. Closes everything.
 */
async function storeRun({ name, store, envelope, keys, fill, requests, warmup, progress }) {
  const core = new Portcullis({ store, envelope, environment: "live", routes: [], logger: silentLogger() });
  let api = null;
  try {
    const template = await core.keys.create(valueOrThrow(parseCreateKeyInput(TEMPLATE_INPUT, Date.now())), "bench");
    const t0 = performance.now();
    const ids = [template.key.id, ...(await fill(template.key.id))];
    const fillSeconds = (performance.now() - t0) / 1000;
    const operator = await core.keys.create(valueOrThrow(parseCreateKeyInput({ account: "ops", scopes: ["admin:*"], operator: true }, Date.now())), "bench");
    api = new AdminApi({ core, logger: silentLogger() });
    const { port } = await api.listen(0, "127.0.0.1");
    const client = createClient({ baseUrl: `http://127.0.0.1:${port}`, keyId: operator.key.id, secret: operator.secret });
    progress(`benchmark 20: ${name}, ${keys.toLocaleString("en-US")} keys filled in ${fmt(fillSeconds, 1)} s; timing the keys list`);
    const runs = await timeRequests(client, ids, { requests, warmup });
    return { store: name, keys: ids.length, fillSeconds, runs };
  } finally {
    if (api !== null) await api.close(500);
    await core.close();
  }
}

/** The key list on SQLite: a store in a temporary directory. */
async function sqliteRun({ keys, requests, warmup, progress }) {
  const dir = mkdtempSync(join(tmpdir(), "portcullis-bench-console-"));
  try {
    const path = join(dir, "portcullis.db");
    const envelope = new Envelope(KeyringFileProvider.create(join(dir, "keyring.json")));
    const store = new SqliteStore(path);
    return await storeRun({ name: "SQLite", store, envelope, keys, requests, warmup, progress, fill: (template) => Promise.resolve(fillSqlite(path, template, keys)) });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The key list on PostgreSQL: a schema of its own on `url`, dropped afterwards. */
async function postgresRun({ url, keys, requests, warmup, progress }) {
  const dir = mkdtempSync(join(tmpdir(), "portcullis-bench-console-pg-"));
  const schema = `bench_console_${process.pid}_${Date.now().toString(36)}`;
  const admin = new pg.Client({ connectionString: url });
  try {
    await admin.connect();
    const envelope = new Envelope(KeyringFileProvider.create(join(dir, "keyring.json")));
    const store = await PostgresStore.open({ url, schema, poolSize: 4 });
    return await storeRun({ name: "PostgreSQL", store, envelope, keys, requests, warmup, progress, fill: (template) => fillPostgres(url, schema, template, keys) });
  } finally {
    await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => undefined);
    await admin.end().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The `src`/`href` of every script and module preload of an HTML document, in order. */
export function firstLoadScripts(html) {
  const urls = [];
  for (const tag of html.matchAll(/<(script|link)\b([^>]*)>/gi)) {
    const attrs = Object.fromEntries([...(tag[2] ?? "").matchAll(/([a-zA-Z-]+)\s*=\s*("([^"]*)"|'([^']*)'|([^\s"'>]+))/g)].map((m) => [m[1].toLowerCase(), m[3] ?? m[4] ?? m[5] ?? ""]));
    if (tag[1].toLowerCase() === "script" && attrs.src !== undefined) urls.push(attrs.src);
    else if (tag[1].toLowerCase() === "link" && (attrs.rel ?? "").toLowerCase().split(/\s+/).includes("modulepreload") && attrs.href !== undefined) urls.push(attrs.href);
  }
  return [...new Set(urls)];
}

/**
 * The console's first load from `dist`: `{ built: false }` without an index.html; else every
 * script the page fetches first, with its bytes raw, gzip (level 9) and brotli (quality 9), and
 * the totals. A script that is not a file of `dist` (another origin, a path outside it, missing)
 * is listed in `problems`.
 */
export function consoleFirstLoad(dist = CONSOLE_DIST) {
  const index = join(dist, "index.html");
  if (!existsSync(index)) return { built: false, dist };
  const root = resolve(dist);
  const files = [];
  const problems = [];
  for (const url of firstLoadScripts(readFileSync(index, "utf8"))) {
    if (/^[a-z][a-z0-9+.-]*:|^\/\//i.test(url)) {
      problems.push(`${url}: not served by the admin listener`);
      continue;
    }
    const path = url.split(/[?#]/)[0];
    const inDist = path.startsWith(CONSOLE_BASE) ? path.slice(CONSOLE_BASE.length) : path.startsWith("/") ? null : path;
    const file = inDist === null ? null : resolve(root, inDist);
    if (file === null || !(file === root || file.startsWith(`${root}${sep}`)) || !existsSync(file)) {
      problems.push(`${url}: no such file under ${CONSOLE_BASE}`);
      continue;
    }
    const body = readFileSync(file);
    files.push({
      url,
      file: relative(root, file),
      raw: body.length,
      gzip: gzipSync(body, { level: GZIP_LEVEL }).length,
      brotli: brotliCompressSync(body, { params: { [zlib.BROTLI_PARAM_QUALITY]: BROTLI_QUALITY, [zlib.BROTLI_PARAM_SIZE_HINT]: body.length } }).length,
    });
  }
  const sum = (k) => files.reduce((n, f) => n + f[k], 0);
  return { built: true, dist, files, problems, raw: sum("raw"), gzip: sum("gzip"), brotli: sum("brotli") };
}

/**
 * The whole benchmark. `url`: the PostgreSQL server (a schema of its own); `dist`: the console's
 * build. A store whose run fails is reported with its error, not thrown.
 */
export async function runConsoleBench({ keys, requests, warmup, url = FALLBACK_URL, dist = CONSOLE_DIST, progress = () => undefined }) {
  const stores = [];
  progress(`benchmark 20: the keys list on SQLite (${keys.toLocaleString("en-US")} keys)`);
  stores.push(await sqliteRun({ keys, requests, warmup, progress }).catch((err) => ({ store: "SQLite", error: err instanceof Error ? err.message : String(err) })));
  progress(`benchmark 20: the keys list on PostgreSQL (${keys.toLocaleString("en-US")} keys)`);
  stores.push(await postgresRun({ url, keys, requests, warmup, progress }).catch((err) => ({ store: "PostgreSQL", error: err instanceof Error ? err.message : String(err) })));
  return { settings: { keys, requests, warmup }, stores, firstLoad: consoleFirstLoad(dist) };
}

const verdict = (pass) => (pass ? "**PASS**" : "**FAIL**");
const kb = (bytes) => `${fmt(bytes / 1000, 1)} KB`;

/** The report: `{ summary, text, failures }` like the other benchmarks' sections. */
export function consoleSection(result) {
  const summary = [];
  const rows = [];
  let failures = 0;
  for (const s of result.stores) {
    if (s.error !== undefined) {
      failures++;
      summary.push([`Console: keys list, ${result.settings.keys.toLocaleString("en-US")} keys, ${s.store}: p95 (worst kind)`, `**not run: ${s.error}**`, `≤ ${CONSOLE_TARGETS.keyListP95Ms} ms`, "**FAIL**"]);
      continue;
    }
    const timed = s.runs.filter((r) => r.unsupported !== true);
    failures += s.runs.reduce((n, r) => n + r.failures, 0);
    const worst = timed.reduce((w, r) => (w === null || r.p95 > w.p95 ? r : w), null);
    if (worst !== null) {
      summary.push([`Console: keys list (\`GET /portcullis/v1/keys?limit=50\`), ${result.settings.keys.toLocaleString("en-US")} keys, ${s.store}: p95, worst kind (${worst.kind})`, `${fmt(worst.p95)} ms`, `≤ ${CONSOLE_TARGETS.keyListP95Ms} ms`, verdict(worst.p95 <= CONSOLE_TARGETS.keyListP95Ms)]);
    }
    for (const r of s.runs) {
      rows.push(
        r.unsupported === true
          ? [s.store, r.kind, "–", "**q not supported by this admin API**", "", "", "", "–"]
          : [s.store, r.kind, String(r.requests), fmt(r.p50), fmt(r.p95), fmt(r.p99), fmt(r.max), r.failures > 0 ? `**${r.failures} failed**` : verdict(r.p95 <= CONSOLE_TARGETS.keyListP95Ms)],
      );
    }
  }
  const fl = result.firstLoad;
  if (!fl.built) summary.push(["Console: first load, JavaScript (gzip as served)", "**not built** (no packages/console/dist/index.html)", `≤ ${CONSOLE_TARGETS.firstLoadGzipBytes / 1000} KB`, "–"]);
  else {
    if (fl.problems.length > 0) failures++;
    summary.push(["Console: first load, JavaScript (gzip as served)", kb(fl.gzip), `≤ ${CONSOLE_TARGETS.firstLoadGzipBytes / 1000} KB`, fl.problems.length > 0 ? "**FAIL** (scripts missing)" : verdict(fl.gzip <= CONSOLE_TARGETS.firstLoadGzipBytes)]);
  }
  const text = [
    "## 20. The operator console: the keys list and the first load",
    "",
    `\`GET /portcullis/v1/keys?limit=50\` through a real AdminApi over HTTP (loopback), signed with an operator key by the client SDK, one request at a time (${result.settings.warmup} warm-up requests, then ${result.settings.requests} timed, per kind), with ${result.settings.keys.toLocaleString("en-US")} keys in the store: SQLite in a temporary directory, PostgreSQL in a schema of its own on the shared server. The keys copy one real key (accounts of four keys; labels "<purpose> bot <n>" over eight purposes). A later page starts after a random stored id. The q searches: a label word one key in eight holds; an account prefix (tens of keys: every key is looked at); an id prefix of 14 characters (a few keys: every key is looked at, as a label could hold it); a text no key holds. Every answer is checked (a full page after its cursor; every key of a q answer matches q).`,
    "",
    table(["Store", "Request", "Requests", "p50 ms", "p95 ms", "p99 ms", "max ms", "Result (p95)"], rows),
    "",
  ];
  for (const s of result.stores) if (s.error !== undefined) text.push(`- ${s.store}: **not run**: ${s.error}`);
  if (fl.built) {
    text.push(
      `The console's first load: the JavaScript \`packages/console/dist/index.html\` fetches before the app runs (its \`<script src>\` and \`<link rel="modulepreload">\`), compressed as the admin listener serves it (gzip level ${GZIP_LEVEL}; brotli quality ${BROTLI_QUALITY} for browsers that take it).`,
      "",
      table(["Script", "Raw", "gzip", "brotli"], [...fl.files.map((f) => [`\`${f.url}\``, kb(f.raw), kb(f.gzip), kb(f.brotli)]), ["**Total**", kb(fl.raw), kb(fl.gzip), kb(fl.brotli)]]),
      "",
      ...fl.problems.map((p) => `- **${p}**`),
      ...(fl.problems.length > 0 ? [""] : []),
    );
  } else {
    text.push("The console's first load: **not built** (no `packages/console/dist/index.html`; `npm run build -w @portcullis/console` makes it).", "");
  }
  return { summary, text, failures };
}

// Alone: node bench/console-bench.js [--quick]
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const quick = process.argv.includes("--quick");
  const progress = (line) => process.stderr.write(`${line}\n`);
  const section = consoleSection(await runConsoleBench({ ...(quick ? CONSOLE_BENCH_SETTINGS.quick : CONSOLE_BENCH_SETTINGS.full), progress }));
  process.stdout.write(`${table(["Benchmark", "Figure", "Target", "Result"], section.summary)}\n\n${section.text.join("\n")}\n`);
  if (section.failures > 0) process.exitCode = 1;
}

