import type { KeyObject } from "node:crypto";
import { PortcullisError } from "../errors/catalogue.js";
import { decodeEntry } from "./canonical.js";
import { fingerprint, type SignedCheckpoint } from "./chain.js";
import { type AuditEntry, isEventName } from "./events.js";
import type { EntryQuery, StoredEntry } from "./store.js";

/**
 * What the two ways of reading the log share: `portcullis audit query|tail|export|checkpoint|
 * public-key` (cli/audit.ts) and the admin API's audit routes (admin/audit.ts). Both parse the
 * same filters into the same EntryQuery and print an entry, a checkpoint and the public key the
 * same way, so a script can move from one to the other. Only the names in the messages differ:
 * `--since` on the command line, `since` in a query string.
 */

/** The filters of `audit query` and `GET /portcullis/v1/audit/entries`, as text. */
export interface AuditFilters {
  readonly key?: string | undefined;
  readonly account?: string | undefined;
  readonly event?: readonly string[] | undefined;
  readonly since?: string | undefined;
  readonly until?: string | undefined;
}

/** How the caller names a filter in a message ("--since" or "since"). */
export type FilterName = (filter: "event" | "since" | "until") => string;

/**
 * Milliseconds of a duration such as "1h", or null. It comes from above (keys/input.ts's
 * parseDuration): this layer sits below the keys' input parsing, and both callers have it.
 */
export type DurationParser = (text: string) => number | null;

function invalid(message: string, field?: string): never {
  throw new PortcullisError("VALIDATION_FAILED", message, field === undefined ? undefined : { [field]: "invalid" });
}

const RESOURCE_WILDCARD = /^[a-z][a-z0-9-]{0,31}\.\*$/;

/** ISO-8601, epoch ms, or a duration ago ("15m", "1d"); VALIDATION_FAILED otherwise. */
export function parseAuditTime(text: string, name: string, now: number, duration: DurationParser): number {
  if (/^\d{1,16}$/.test(text)) return Number(text);
  const ago = duration(text);
  if (ago !== null) return now - ago;
  if (/^\d{4}-\d{2}-\d{2}/.test(text) && !Number.isNaN(Date.parse(text))) return Date.parse(text);
  return invalid(`${name} takes an ISO-8601 time, epoch milliseconds or a duration ago such as "1h" (got ${text})`, name.replace(/^-+/, ""));
}

/** The EntryQuery of `filters` (at most `limit` entries), or VALIDATION_FAILED naming the filter. */
export function entryQuery(filters: AuditFilters, limit: number, now: number, name: FilterName, duration: DurationParser): EntryQuery {
  for (const e of filters.event ?? []) {
    if (!isEventName(e) && !RESOURCE_WILDCARD.test(e)) invalid(`${name("event")} takes an event name such as request.deny, or key.* for a resource (got ${e})`, "event");
  }
  const q: EntryQuery = {
    limit,
    ...(filters.key === undefined ? {} : { key: filters.key }),
    ...(filters.account === undefined ? {} : { account: filters.account }),
    ...(filters.event === undefined ? {} : { events: filters.event }),
    ...(filters.since === undefined ? {} : { since: parseAuditTime(filters.since, name("since"), now, duration) }),
    ...(filters.until === undefined ? {} : { until: parseAuditTime(filters.until, name("until"), now, duration) }),
  };
  if (q.since !== undefined && q.until !== undefined && q.since >= q.until) invalid(`${name("since")} must be before ${name("until")}`, "since");
  return q;
}

/** An entry as `audit query --json` and `audit export` print it: its facts and its hash. */
export type ExportedEntry = (AuditEntry & { hash: string }) | { seq: number; malformed: true; hash: string };

export function exportedEntry(row: StoredEntry): ExportedEntry {
  const entry = decodeEntry(row.entry);
  return entry === null ? { seq: row.seq, malformed: true, hash: row.hash } : { ...entry, hash: row.hash };
}

/** A checkpoint as `audit checkpoint --json` prints it (what `audit verify --anchor` reads back). */
export interface CheckpointView {
  readonly seq: number;
  readonly hash: string;
  readonly at: number;
  readonly kid: string;
  /** Base64. */
  readonly signature: string;
  /** The signing key's fingerprint. */
  readonly fingerprint: string;
}

export function checkpointView(checkpoint: SignedCheckpoint, publicKey: KeyObject): CheckpointView {
  return {
    seq: checkpoint.seq,
    hash: checkpoint.hash,
    at: checkpoint.at,
    kid: checkpoint.kid,
    signature: checkpoint.signature.toString("base64"),
    fingerprint: fingerprint(publicKey),
  };
}

/** The checkpoint key as `audit public-key --json` prints it. */
export interface PublicKeyView {
  readonly kid: string;
  readonly fingerprint: string;
  /** SPKI PEM. */
  readonly publicKey: string;
}

export function publicKeyView(key: { readonly kid: string; readonly publicKey: KeyObject }): PublicKeyView {
  return { kid: key.kid, fingerprint: fingerprint(key.publicKey), publicKey: key.publicKey.export({ type: "spki", format: "pem" }).toString() };
}

// --- CSV ---------------------------------------------------------------------------------------

/**
 * The CSV export's columns, fixed (a spreadsheet or a SIEM maps them once). `at` is ISO-8601 UTC;
 * `timings` and `detail` are JSON; a malformed entry has its seq and hash only and
 * `{"malformed":true}` as its detail.
 */
export const CSV_COLUMNS = [
  "seq",
  "at",
  "event",
  "actor",
  "key",
  "account",
  "subAccount",
  "client",
  "surface",
  "requestId",
  "method",
  "path",
  "route",
  "scheme",
  "code",
  "status",
  "timings",
  "detail",
  "hash",
] as const;

/** Characters that make a spreadsheet read a cell as a formula (OWASP "CSV injection"). */
const FORMULA_START = /^[=+\-@\t\r]/;
const NEEDS_QUOTES = /[",\r\n]|^\s|\s$/;

/**
 * One CSV cell (RFC 4180): a cell a spreadsheet would take for a formula gets a leading `'`, and a
 * cell with a comma, a quote, a line break or edge spaces is quoted with its quotes doubled. Every
 * text an entry carries comes from the network (a path, a label, a reason), hence both.
 */
export function csvCell(value: string): string {
  const text = FORMULA_START.test(value) ? `'${value}` : value;
  return NEEDS_QUOTES.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

function cellOf(value: unknown): string {
  if (value === undefined || value === null) return "";
  if (typeof value === "string") return csvCell(value);
  if (typeof value === "number" || typeof value === "boolean") return csvCell(String(value));
  return csvCell(JSON.stringify(value));
}

function isoTime(ms: number): string {
  return Number.isFinite(ms) && Math.abs(ms) < 8.64e15 ? new Date(ms).toISOString() : String(ms);
}

/** The header line, CRLF-terminated. */
export const CSV_HEADER = `${CSV_COLUMNS.join(",")}\r\n`;

/** One entry as a CSV record, CRLF-terminated. */
export function csvRecord(row: StoredEntry): string {
  const e = decodeEntry(row.entry);
  if (e === null) {
    const cells = CSV_COLUMNS.map((c) => (c === "seq" ? String(row.seq) : c === "hash" ? row.hash : c === "detail" ? cellOf({ malformed: true }) : ""));
    return `${cells.join(",")}\r\n`;
  }
  const cells = CSV_COLUMNS.map((c) => {
    switch (c) {
      case "at":
        return cellOf(isoTime(e.at));
      case "hash":
        return cellOf(row.hash);
      default:
        return cellOf(e[c]);
    }
  });
  return `${cells.join(",")}\r\n`;
}
