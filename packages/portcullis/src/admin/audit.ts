import { readFile } from "node:fs/promises";
import { basename, join } from "node:path";
import type { ServerResponse } from "node:http";
import { setImmediate as nextTurn } from "node:timers/promises";
import { PortcullisError } from "../errors/catalogue.js";
import type { RequestContext } from "../contract/request.js";
import type { SigningKeyProvider } from "../contract/signing.js";
import { type AuditLog, verifyAudit } from "../audit/index.js";
import { CSV_HEADER, type AuditFilters, checkpointView, csvRecord, entryQuery, exportedEntry, publicKeyView } from "../audit/reading.js";
import type { AuditReader, AuditStore, EntryQuery, StoredEntry } from "../audit/store.js";
import { parseDuration } from "../keys/input.js";
import { AdminReach } from "./reach.js";
import { ACCOUNT, EPOCH_MS, ID, LIMIT_PARAM } from "./schema/common.js";
import { type Node, s } from "./schema/nodes.js";
import { type AdminRoute, type QueryParam, adminRoute, routeId } from "./schema/routes.js";

/**
 * The admin API's audit log (docs/audit.md, "Over the admin API"), scope `admin:audit`: what the
 * CLI's `portcullis audit query|export|verify|checkpoint|public-key` do, for the console.
 *
 *   GET  /portcullis/v1/audit/entries?key=&account=&event=&since=&until=&after=&limit=   oldest first
 *   GET  /portcullis/v1/audit/export?format=jsonl|csv&key=&account=&event=&since=&until=&after=
 *   GET  /portcullis/v1/audit/status          entries, head, last checkpoint, archived range
 *   POST /portcullis/v1/audit/verify          {} -> the whole chain and every checkpoint
 *   POST /portcullis/v1/audit/checkpoint      {} -> signs the head now (as `audit checkpoint --json`)
 *   GET  /portcullis/v1/audit/public-key      the checkpoint key (as `audit public-key --json`)
 *
 * An operator key reads every account's entries. An account admin key reads only entries of its
 * own account (another account's filter yields nothing, exactly as an account without entries)
 * and the public key; status, verify and checkpoint describe or act on the whole log, so they are
 * refused it with ADMIN_GRANT_EXCEEDED, as the approvals routes refuse it.
 *
 * Nothing here holds the event loop for a whole log: entries are read a page at a time, the export
 * waits for the socket to drain between pages, and verification yields between chunks (one at a
 * time per process: a second is AUDIT_VERIFY_RUNNING).
 */
const TIME = s.string({ minLength: 1, maxLength: 64, description: 'ISO-8601, epoch milliseconds, or a duration ago such as "1h"' });
/** The filters of `portcullis audit query`, as query parameters (entries and export). */
const FILTER_PARAMS: Readonly<Record<string, QueryParam>> = {
  key: { schema: ID },
  account: { schema: ACCOUNT },
  event: {
    schema: s.array(s.string({ pattern: /^[a-z][a-z0-9-]{0,31}\.([a-z][a-z0-9-]{0,31}|\*)$/, description: 'an event name such as request.deny, or key.* for every event of a resource' }), {
      maxItems: 32,
      description: "events (repeatable, at most 32): an entry of any of them",
    }),
    repeatable: true,
  },
  since: { schema: TIME },
  until: { schema: s.string({ minLength: 1, maxLength: 64, description: "before this time (exclusive): ISO-8601, epoch milliseconds, or a duration ago" }) },
  after: { schema: s.integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: "only entries after this seq (paging)" }) },
};
/** An entry as `portcullis audit query --json` prints it (audit/events.ts AuditEntry and its hash). */
const ENTRY = s.ref(
  "AuditEntry",
  s.openObject(
    {
      seq: s.integer(),
      hash: s.string(),
      v: s.optional(s.integer()),
      at: s.optional(EPOCH_MS),
      event: s.optional(s.string()),
      actor: s.optional(s.string()),
      key: s.optional(s.string()),
      account: s.optional(s.string()),
      malformed: s.optional(s.boolean("present (true) on an entry that is not a valid audit entry: verification says which")),
    },
    "an audit entry (docs/audit.md): its facts, its position and its hash",
  ),
);
const CHECKPOINT = s.ref(
  "AuditCheckpoint",
  s.openObject({ seq: s.integer(), hash: s.string(), at: EPOCH_MS, kid: s.string(), signature: s.string({ description: "Ed25519, base64" }), fingerprint: s.string() }, "a signed checkpoint, as `portcullis audit checkpoint --json` prints it (what `audit verify --anchor` reads)"),
);
const NULLABLE = (node: Node, description: string): Node => s.nullable(node, description);

/**
 * The routes, each declared with its contract (admin/schema): the OpenAPI document lists them,
 * and a request that does not fit is refused VALIDATION_FAILED before the handler runs.
 */
export const AUDIT_ROUTES: readonly AdminRoute[] = [
  adminRoute("GET", "/portcullis/v1/audit/entries", "admin:audit", {
    summary: "Audit entries matching the filters, oldest first, paged by seq",
    description: "The filters of `portcullis audit query`. An account admin key reads its own account's entries only (another account's filter yields none).",
    query: { ...FILTER_PARAMS, limit: LIMIT_PARAM },
    answers: { 200: { description: "the entries, and the seq to pass as `after` for the next page (null: no more)", schema: s.openObject({ entries: s.array(ENTRY), next: NULLABLE(s.integer(), "the last entry's seq when the page is full") }) } },
  }),
  adminRoute("GET", "/portcullis/v1/audit/export", "admin:audit", {
    summary: "Every matching entry as a file: JSON Lines (as `portcullis audit export` writes it) or CSV",
    description:
      "An attachment, streamed. JSON Lines (application/x-ndjson): one entry per line, exactly as `portcullis audit export`. CSV (text/csv): a fixed header (seq, at, event, actor, key, account, subAccount, client, surface, requestId, method, path, route, scheme, code, status, timings, detail, hash), RFC 4180 quoting, and a leading ' on any cell that starts with = + - @ tab or CR. At most 1,000,000 entries or 10 minutes: then the trailer Portcullis-Export-Next names the last seq sent (continue with after=).",
    query: { ...FILTER_PARAMS, format: { schema: s.enum(["jsonl", "csv"], "jsonl (default) or csv") } },
    answers: { 200: { description: "the entries, as a file", contentType: "application/x-ndjson" } },
  }),
  adminRoute("GET", "/portcullis/v1/audit/status", "admin:audit", {
    summary: "The log's size, head, latest checkpoint and archived range",
    operatorOnly: true,
    answers: {
      200: {
        description: "the status",
        schema: s.openObject({
          entries: s.integer({ description: "entries stored in the database (archived ones are in segment files)" }),
          head: NULLABLE(s.openObject({ seq: s.integer(), hash: s.string(), at: EPOCH_MS }), "the last entry (null: none stored)"),
          lastCheckpoint: NULLABLE(s.openObject({ seq: s.integer(), at: EPOCH_MS }), "the latest signed checkpoint (null: none)"),
          archivedThrough: NULLABLE(s.integer(), "the last archived seq (null: nothing archived)"),
        }),
      },
    },
  }),
  adminRoute("POST", "/portcullis/v1/audit/verify", "admin:audit", {
    summary: "Verify the whole chain, the archived segments and every checkpoint, as `portcullis audit verify` does",
    description: "Runs without holding the event loop, one at a time per process (another is AUDIT_VERIFY_RUNNING). Trusts the checkpoint keys the store records. The body is empty or {}.",
    operatorOnly: true,
    answers: {
      200: {
        description: "the verdict: the first problem found, with the code `audit verify` gives it",
        schema: s.openObject({
          ok: s.boolean(),
          entries: s.integer({ description: "entries whose hash was verified (stored and archived)" }),
          checkpoints: s.integer(),
          problems: s.array(s.openObject({ code: s.string(), seq: s.optional(s.integer()), message: s.string() })),
        }),
      },
    },
  }),
  adminRoute("POST", "/portcullis/v1/audit/checkpoint", "admin:audit", {
    summary: "Sign the log's head now (as `portcullis audit checkpoint --json`); keep the answer elsewhere as an anchor",
    description: "The body is empty or {}. Null when the log is empty.",
    operatorOnly: true,
    answers: { 200: { description: "the checkpoint (the latest one when the head has not moved)", schema: NULLABLE(CHECKPOINT, "the checkpoint, or null for an empty log") } },
  }),
  adminRoute("GET", "/portcullis/v1/audit/public-key", "admin:audit", {
    summary: "The audit-checkpoint public key (as `portcullis audit public-key --json`): keep it to verify with",
    answers: { 200: { description: "the key", schema: s.openObject({ kid: s.string(), fingerprint: s.string(), publicKey: s.string({ description: "SPKI PEM" }) }) } },
  }),
];

const ROUTE_IDS: ReadonlySet<string> = new Set(AUDIT_ROUTES.map(routeId));

/** An audit answer: JSON, or an export already streamed to the response (nothing left to render). */
export type AuditAnswer = { readonly status: number; readonly body: unknown } | { readonly status: number; readonly body: null; readonly streamed: true };

/** The store's audit log with its reading side (both stores have it: SqliteAudit, PostgresAudit). */
export type ReadableAudit = AuditStore & AuditReader;

/** The store's audit log as a ReadableAudit, or null for a store without the reading side. */
export function readableAudit(store: AuditStore): ReadableAudit | null {
  const r = store as Partial<AuditReader>;
  return typeof r.query === "function" && typeof r.bounds === "function" && typeof r.entryChunks === "function" && typeof r.archives === "function"
    ? (store as ReadableAudit)
    : null;
}

export interface AuditAdminOptions {
  /** The process's audit log: flushed and asked to sign by the checkpoint route. */
  readonly log: AuditLog;
  /** The durable store's audit log (`readableAudit(store.audit)`). */
  readonly store: ReadableAudit;
  /** Holds the "audit-checkpoint" key (the public-key route). */
  readonly signer: SigningKeyProvider;
  readonly now?: () => number;
  /** Bounds of one export (defaults EXPORT_MAX_ROWS, EXPORT_MAX_MS). */
  readonly exportMaxRows?: number;
  readonly exportMaxMs?: number;
  /** Entries one read of a filtered query looks at, at most (default QUERY_STEP; tests make it small). */
  readonly queryStep?: number;
}

/**
 * An export ends after this many entries, or after this long, whichever comes first; the answer's
 * `Portcullis-Export-Next` trailer then names the last seq sent (continue with `after=`). A
 * complete export has no such trailer.
 */
export const EXPORT_MAX_ROWS = 1_000_000;
export const EXPORT_MAX_MS = 10 * 60_000;
/** Entries read per page of an export (one query, then the socket drains). */
const EXPORT_PAGE = 1000;
/**
 * The seqs one read of the entries or the export looks at, at most: about 5 ms of a synchronous
 * SQLite statement. A filter that matches little (an event nobody has, `until` before the first
 * entry, a key with few entries among millions) otherwise made one statement scan the whole log
 * while the gateway sharing the thread waited (about 110 ns an entry: a second for 10 million).
 */
export const QUERY_STEP = 50_000;

/** What the audit routes hold: the stores, and whether a verification is running in this process. */
export class AuditAdmin {
  readonly log: AuditLog;
  readonly store: ReadableAudit;
  readonly signer: SigningKeyProvider;
  readonly now: () => number;
  readonly exportMaxRows: number;
  readonly exportMaxMs: number;
  readonly queryStep: number;
  /** Whether a verification is running in this process (one at a time: each reads the whole log). */
  verifying = false;

  constructor(options: AuditAdminOptions) {
    this.log = options.log;
    this.store = options.store;
    this.signer = options.signer;
    this.now = options.now ?? Date.now;
    this.exportMaxRows = options.exportMaxRows ?? EXPORT_MAX_ROWS;
    this.exportMaxMs = options.exportMaxMs ?? EXPORT_MAX_MS;
    this.queryStep = options.queryStep ?? QUERY_STEP;
    if (!Number.isSafeInteger(this.queryStep) || this.queryStep < 1) throw new TypeError("queryStep: a positive integer");
    if (!Number.isSafeInteger(this.exportMaxRows) || this.exportMaxRows < 1) throw new TypeError("exportMaxRows: a positive integer");
    if (!Number.isFinite(this.exportMaxMs) || this.exportMaxMs <= 0) throw new TypeError("exportMaxMs: a positive number of milliseconds");
  }
}

// --- the query string ------------------------------------------------------------------------

const FILTERS = ["key", "account", "event", "since", "until", "after"] as const;
const ENTRIES_PARAMS: ReadonlySet<string> = new Set([...FILTERS, "limit"]);
const EXPORT_PARAMS: ReadonlySet<string> = new Set([...FILTERS, "format"]);
const MAX_EVENTS = 32;
const MAX_TEXT = 128;

interface Parsed {
  readonly query: EntryQuery;
  /** Nothing can match: an account admin asked for another account. */
  readonly empty: boolean;
  readonly format: "jsonl" | "csv";
}

function durationMs(text: string): number | null {
  const d = parseDuration(text);
  return d.ok ? d.value : null;
}

/**
 * The filters' meaning, as `audit query` reads them (times, event names, since before until), or
 * VALIDATION_FAILED naming the parameter. The request was checked against its route's declaration
 * already (the shapes: AUDIT_ROUTES); the same shape checks are repeated here, cheaply, so that
 * this parser never trusts a caller that skipped them. An account admin's query is narrowed to its
 * own account.
 */
function parseParams(raw: string | null, allowed: ReadonlySet<string>, own: string | null, now: number): Parsed {
  const params = new URLSearchParams(raw ?? "");
  const errors: Record<string, string> = Object.create(null) as Record<string, string>;
  const values = new Map<string, string[]>();
  for (const [name, value] of params) {
    if (!allowed.has(name)) {
      errors[name] = "unknown parameter";
      continue;
    }
    const list = values.get(name) ?? [];
    list.push(value);
    values.set(name, list);
  }
  const one = (name: string): string | undefined => {
    const list = values.get(name);
    if (list === undefined) return undefined;
    if (list.length > 1) errors[name] = "given more than once";
    const v = list[0] ?? "";
    if (v === "" || v.length > MAX_TEXT) errors[name] = `1 to ${MAX_TEXT} characters`;
    return v;
  };
  const key = one("key");
  const account = one("account");
  const since = one("since");
  const until = one("until");
  const events = values.get("event");
  if (events !== undefined && (events.length > MAX_EVENTS || events.some((e) => e === "" || e.length > MAX_TEXT))) errors.event = `1 to ${MAX_EVENTS} event names`;
  const afterText = one("after");
  const after = afterText === undefined ? undefined : Number(afterText);
  if (after !== undefined && (!/^\d{1,16}$/.test(afterText ?? "") || !Number.isSafeInteger(after))) errors.after = "a sequence number (a non-negative integer)";
  const limitText = one("limit");
  const limit = limitText === undefined ? 100 : Number(limitText);
  if (limitText !== undefined && (!/^\d{1,4}$/.test(limitText) || limit < 1 || limit > 1000)) errors.limit = "an integer from 1 to 1000";
  const formatText = one("format");
  if (formatText !== undefined && formatText !== "jsonl" && formatText !== "csv") errors.format = "jsonl or csv";
  if (Object.keys(errors).length > 0) throw new PortcullisError("VALIDATION_FAILED", `invalid query: ${Object.keys(errors).join(", ")}`, errors);
  const filters: AuditFilters = { key, account: own ?? account, event: events, since, until };
  const q = entryQuery(filters, allowed.has("limit") ? limit : EXPORT_PAGE, now, (name) => name, durationMs);
  return {
    query: after === undefined ? q : { ...q, afterSeq: after },
    // An account admin's own account or nothing: another account's entries are not there for it.
    empty: own !== null && account !== undefined && account !== own,
    format: formatText === "csv" ? "csv" : "jsonl",
  };
}

// --- the routes ------------------------------------------------------------------------------

/** The answer to one of AUDIT_ROUTES, or undefined for another route. */
export async function auditAnswer(admin: AuditAdmin | null, ctx: RequestContext, res: ServerResponse): Promise<AuditAnswer | undefined> {
  const route = ctx.route;
  if (route === null || !ROUTE_IDS.has(route.id)) return undefined;
  if (ctx.key === null) throw new PortcullisError("INTERNAL", "admin audit route without a key");
  if (admin === null) throw new PortcullisError("ROUTE_NOT_FOUND");
  const own = new AdminReach(ctx.key.record, ctx.key.scopes).account;
  const store = admin.store;
  switch (route.id) {
    case "GET /portcullis/v1/audit/entries": {
      const p = parseParams(ctx.query, ENTRIES_PARAMS, own, admin.now());
      const rows = p.empty ? [] : await findEntries(admin, p.query);
      const last = rows[rows.length - 1];
      return { status: 200, body: { entries: rows.map(exportedEntry), next: rows.length === p.query.limit && last !== undefined ? last.seq : null } };
    }
    case "GET /portcullis/v1/audit/export": {
      const p = parseParams(ctx.query, EXPORT_PARAMS, own, admin.now());
      await streamExport(admin, p, ctx.requestId, res);
      return { status: 200, body: null, streamed: true };
    }
    case "GET /portcullis/v1/audit/status":
      return { status: 200, body: await status(store) };
    case "POST /portcullis/v1/audit/verify":
      return { status: 200, body: await verify(admin) };
    case "POST /portcullis/v1/audit/checkpoint": {
      // What is queued is committed first, so the checkpoint covers every decision made so far.
      await admin.log.flush();
      const checkpoint = (await admin.log.checkpoint()) ?? (await store.latestCheckpoint());
      if (checkpoint === undefined) return { status: 200, body: null };
      const key = await admin.signer.open("audit-checkpoint");
      return { status: 200, body: checkpointView(checkpoint, key.publicKey) };
    }
    case "GET /portcullis/v1/audit/public-key":
      return { status: 200, body: publicKeyView(await admin.signer.open("audit-checkpoint")) };
    default:
      return undefined;
  }
}

/**
 * The entries matching `q` (oldest first, at most `q.limit`), read in windows of `queryStep` seqs
 * between the stored bounds, the event loop getting a turn between windows: each read looks at a
 * bounded part of the log, whatever the filters (QUERY_STEP). The log's last seq is taken when the
 * read starts; entries appended meanwhile are the next page's.
 */
async function findEntries(admin: AuditAdmin, q: EntryQuery): Promise<StoredEntry[]> {
  const bounds = await admin.store.bounds();
  const found: StoredEntry[] = [];
  if (bounds === null || q.limit <= 0) return found;
  let from = Math.max(q.afterSeq ?? 0, bounds.first - 1);
  for (let first = true; from < bounds.last && found.length < q.limit; first = false) {
    if (!first) await nextTurn();
    const through = Math.min(from + admin.queryStep, bounds.last);
    for (const row of await admin.store.query({ ...q, afterSeq: from, throughSeq: through, limit: q.limit - found.length })) found.push(row);
    from = through;
  }
  return found;
}

/** `GET …/audit/status`. */
async function status(store: ReadableAudit): Promise<unknown> {
  const [head] = await store.query({ limit: 1, descending: true });
  const bounds = await store.bounds();
  const checkpoint = await store.latestCheckpoint();
  const archives = await store.archives();
  const archived = archives[archives.length - 1];
  return {
    entries: bounds === null ? 0 : bounds.last - bounds.first + 1,
    head: head === undefined ? null : { seq: head.seq, hash: head.hash, at: head.at },
    lastCheckpoint: checkpoint === undefined ? null : { seq: checkpoint.seq, at: checkpoint.at },
    archivedThrough: archived === undefined ? null : archived.last,
  };
}

/**
 * `POST …/audit/verify`: `verifyAudit` over the store (PostgreSQL: in one snapshot) and the
 * archived segment files, trusting the keys the store records (as `audit verify` without
 * --public-key). The event loop gets a turn after every chunk of entries, every thousand
 * checkpoints and every thousand segment entries; segment files are read asynchronously.
 */
async function verify(admin: AuditAdmin): Promise<unknown> {
  if (admin.verifying) throw new PortcullisError("AUDIT_VERIFY_RUNNING");
  admin.verifying = true;
  try {
    const store = admin.store;
    const source = store.snapshot === undefined ? null : await store.snapshot();
    try {
      const dir = store.archiveDir;
      const report = await verifyAudit(source ?? store, {
        onProgress: () => nextTurn(),
        ...(dir === null
          ? {}
          : {
              readSegment: async (file: string) => {
                // A file name, never a path: the record is in the database, the file beside the others.
                if (basename(file) !== file) return null;
                try {
                  return await readFile(join(dir, file));
                } catch {
                  return null;
                }
              },
            }),
      });
      return {
        ok: report.ok,
        entries: report.verified,
        checkpoints: report.checkpoints,
        problems: report.problem === null ? [] : [{ code: report.problem.code, ...(report.problem.seq === null ? {} : { seq: report.problem.seq }), message: report.problem.message }],
      };
    } finally {
      await source?.close();
    }
  } finally {
    admin.verifying = false;
  }
}

/** Resolves when `res` can take more (drain), or has closed (the client left). */
function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off("drain", done);
      res.off("close", done);
      resolve();
    };
    res.on("drain", done);
    res.on("close", done);
  });
}

/**
 * `GET …/audit/export`: every matching entry, oldest first, as JSON Lines (each line exactly as
 * `audit export` writes it) or CSV (reading.ts CSV_COLUMNS). The first page is read before the
 * answer starts, so a store that fails is still a proper refusal; afterwards a failure cuts the
 * answer short (the response is destroyed: a client never mistakes half a log for all of it).
 * Bounded by `exportMaxRows` and `exportMaxMs` (the trailer Portcullis-Export-Next then says where
 * to continue).
 */
async function streamExport(admin: AuditAdmin, p: Parsed, requestId: string, res: ServerResponse): Promise<void> {
  const started = admin.now();
  const page = (after: number | undefined, limit: number): Promise<readonly StoredEntry[]> | readonly StoredEntry[] =>
    p.empty ? [] : findEntries(admin, { ...p.query, limit, ...(after === undefined ? {} : { afterSeq: after }) });
  let rows = await page(p.query.afterSeq, Math.min(EXPORT_PAGE, admin.exportMaxRows));
  const csv = p.format === "csv";
  const stamp = new Date(started).toISOString().replace(/[:.]/g, "-");
  res.writeHead(200, {
    "content-type": csv ? "text/csv; charset=utf-8" : "application/x-ndjson; charset=utf-8",
    "content-disposition": `attachment; filename="portcullis-audit-${stamp}.${csv ? "csv" : "jsonl"}"`,
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    "portcullis-request-id": requestId,
    trailer: "portcullis-export-next",
  });
  if (csv) res.write(CSV_HEADER);
  let sent = 0;
  for (;;) {
    if (rows.length === 0) break;
    const text = csv ? rows.map(csvRecord).join("") : `${rows.map((r) => JSON.stringify(exportedEntry(r))).join("\n")}\n`;
    sent += rows.length;
    const last = (rows[rows.length - 1] as StoredEntry).seq;
    if (!res.write(text)) await drained(res);
    if (res.destroyed) return;
    if (rows.length < EXPORT_PAGE && sent < admin.exportMaxRows) break;
    if (sent >= admin.exportMaxRows || admin.now() - started >= admin.exportMaxMs) {
      // Bounded: when more entries match, the last seq sent, to continue from with `after=`.
      if ((await page(last, 1)).length > 0) res.addTrailers({ "portcullis-export-next": String(last) });
      break;
    }
    // A SQLite page is read synchronously: other requests get a turn between pages.
    await nextTurn();
    rows = await page(last, Math.min(EXPORT_PAGE, admin.exportMaxRows - sent));
  }
  res.end();
}
