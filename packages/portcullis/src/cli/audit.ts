import type { Command } from "commander";
import { closeSync, constants, existsSync, openSync, readFileSync, writeSync } from "node:fs";
import { userInfo } from "node:os";
import { dirname, join, resolve } from "node:path";
import type { KeyObject } from "node:crypto";
import { AuditError, archiveAudit, checkpointer, decodeEntry, verifyAudit, verifySegment, type SignedCheckpoint, type StoredEntry, type VerifyReport } from "../audit/index.js";
import { isHash, parseEd25519PublicKey } from "../audit/chain.js";
import { checkpointView, entryQuery, exportedEntry, parseAuditTime, publicKeyView } from "../audit/reading.js";
import { pendingSpill } from "../audit/spill.js";
import { EnvelopeSigningKeys } from "../custody/signing.js";
import { PortcullisError } from "../errors/catalogue.js";
import { reportFailure } from "./errors.js";
import { parseDuration } from "../keys/input.js";
import { DATA_FILES, openDataDir, storeOf } from "../core/data-dir.js";
import type { AuditReader, EntryQuery } from "../audit/store.js";
import { openAuditReadOnly } from "../storage/sqlite/audit.js";
import { openPostgresAuditReadOnly } from "../storage/postgres/audit-reader.js";
import { describeStore } from "../storage/location.js";

/**
 * `portcullis audit …`: verify, read and archive the audit log (docs/audit.md).
 *
 *   audit verify [--data DIR | --db FILE] [--public-key FILE]… [--anchor FILE] [--archive DIR] [--skip-segments] [--json]
 *   audit verify --segment FILE [--public-key FILE]… [--json]
 *   audit tail   [-n N] [--follow] [filters] [--json]
 *   audit query  [filters] [--limit N] [--json]
 *   audit export [filters] [--out FILE]                      (JSON Lines, for a SIEM)
 *   audit checkpoint [--json]                                (sign the head now; prints the anchor)
 *   audit public-key [--json]                                (the checkpoint key, to keep elsewhere)
 *   audit archive (--before TIME | --upto SEQ) [--out DIR] [--json]
 *
 * filters: --key ID, --account ID, --event NAME (repeatable; "key.*" for a resource), --since TIME,
 * --until TIME (ISO-8601, epoch ms, or a duration ago such as "1h").
 *
 * Reading commands open the database read-only, so a copy handed to an auditor is checked as it
 * is, without the keyring. A data directory whose store.json names PostgreSQL is read there,
 * through sessions that are read-only on the server (storage/postgres/audit-reader.ts); `--db`
 * names a SQLite file only. Errors are one line (a JSON object with --json) and exit status 1; so
 * is a log that fails verification.
 */

interface Where {
  data?: string;
  db?: string;
  json?: boolean;
}

interface Filters extends Where {
  key?: string;
  account?: string;
  event?: string[];
  since?: string;
  until?: string;
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

function invalid(message: string): never {
  throw new PortcullisError("VALIDATION_FAILED", message);
}

function paths(opts: Where, defaultData: string): { db: string; spillDir: string; archiveDir: string } {
  const db = resolve(opts.db ?? join(opts.data ?? defaultData, DATA_FILES.database));
  const dir = dirname(db);
  return { db, spillDir: join(dir, "audit-spill"), archiveDir: join(dir, "audit-archive") };
}

/** An audit log opened for reading: the same interface on SQLite and PostgreSQL. */
interface Reader {
  readonly audit: AuditReader;
  readonly spillDir: string;
  close(): Promise<void>;
}

/** Opens the audit log for reading only: `--db FILE` (SQLite), else the data directory's store. */
async function openReader(opts: Where, defaultData: string, archiveDir?: string): Promise<Reader> {
  const store = opts.db === undefined ? storeOf(resolve(opts.data ?? defaultData)) : ({ backend: "sqlite" } as const);
  if (store.backend === "postgres") {
    const dataDir = resolve(opts.data ?? defaultData);
    const spillDir = join(dataDir, "audit-spill");
    const reader = await openPostgresAuditReadOnly(store, { spillDir, archiveDir: archiveDir ?? join(dataDir, "audit-archive") });
    if (reader === null) {
      throw new AuditError("AUDIT_LOG_UNAVAILABLE", `${describeStore(store)} has no audit log (no such schema, or one before the audit tables): open the data directory once with this version`);
    }
    return { audit: reader.audit, spillDir, close: () => reader.close() };
  }
  const p = paths(opts, defaultData);
  const reader = openAuditReadOnly(p.db, { spillDir: p.spillDir, archiveDir: archiveDir ?? p.archiveDir });
  if (reader === null) {
    throw new AuditError("AUDIT_LOG_UNAVAILABLE", existsSync(p.db) ? `${p.db} has no audit log (schema before version 6): open it once with this version` : `no database at ${p.db}`);
  }
  return {
    audit: reader.audit,
    spillDir: p.spillDir,
    close: () => {
      reader.close();
      return Promise.resolve();
    },
  };
}

/** ISO-8601, epoch ms, or a duration ago ("15m", "1d"). */
function parseTime(text: string, flag: string, now: number): number {
  return parseAuditTime(text, flag, now, durationMs);
}

function durationMs(text: string): number | null {
  const ago = parseDuration(text);
  return ago.ok ? ago.value : null;
}

function parseCount(text: string, flag: string, max: number): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 1 || n > max) invalid(`${flag} must be an integer from 1 to ${max}`);
  return n;
}

function query(opts: Filters, limit: number, now: number): EntryQuery {
  return entryQuery(opts, limit, now, (filter) => `--${filter}`, durationMs);
}

function describe(row: StoredEntry): string {
  const e = decodeEntry(row.entry);
  if (e === null) return `#${row.seq}  (malformed entry)`;
  const parts = [`#${e.seq}`, new Date(e.at).toISOString(), e.event.padEnd(16), e.actor];
  if (e.key !== undefined && e.actor !== `key:${e.key}`) parts.push(`key ${e.key}`);
  if (e.account !== undefined) parts.push(`account ${e.account}`);
  if (e.client !== undefined) parts.push(`from ${e.client}`);
  if (e.method !== undefined) parts.push(`${e.method} ${e.path ?? ""}`.trim());
  if (e.code !== undefined) parts.push(`${e.code}${e.status === undefined ? "" : ` (${e.status})`}`);
  if (e.detail !== undefined && e.event !== "request.deny") parts.push(JSON.stringify(e.detail));
  return parts.join("  ");
}

function printRows(rows: readonly StoredEntry[], json: boolean): void {
  if (rows.length === 0) return;
  process.stdout.write(`${rows.map((r) => (json ? JSON.stringify(exportedEntry(r)) : describe(r))).join("\n")}\n`);
}

function readKeys(files: readonly string[]): KeyObject[] {
  return files.map((file) => {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch {
      throw new AuditError("AUDIT_KEY_INVALID", `cannot read the public key file ${file}`);
    }
    const key = parseEd25519PublicKey(text);
    if (key === null) throw new AuditError("AUDIT_KEY_INVALID", `${file} is not an Ed25519 public key (SPKI PEM)`);
    return key;
  });
}

function readAnchor(file: string): SignedCheckpoint {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, "utf8"));
  } catch {
    throw new AuditError("AUDIT_ANCHOR_INVALID", `${file} is not a readable JSON checkpoint (portcullis audit checkpoint --json prints one)`);
  }
  const o = (raw ?? {}) as Record<string, unknown>;
  const hash = o.hash;
  const signature = typeof o.signature === "string" ? Buffer.from(o.signature, "base64") : null;
  if (!Number.isSafeInteger(o.seq) || !Number.isSafeInteger(o.at) || typeof o.kid !== "string" || !isHash(hash) || signature?.length !== 64) {
    throw new AuditError("AUDIT_ANCHOR_INVALID", `${file} is not a checkpoint: it needs seq, hash, at, kid and signature (portcullis audit checkpoint --json prints one)`);
  }
  return { seq: o.seq as number, at: o.at as number, kid: o.kid, hash, signature };
}

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

function range(first: number | null, last: number | null): string {
  return first === null || last === null ? "none stored" : first === last ? `#${first}` : `#${first}–#${last}`;
}

function verifyText(r: VerifyReport, spill: { files: number; entries: number }): string {
  const lines = [
    `${r.ok ? "audit log verified" : "audit log verification FAILED"}: ${plural(r.verified, "entry", "entries")} checked (stored: ${range(r.first, r.last)}; archived: ${r.archived.entries} in ${plural(r.archived.segments, "segment")}, ${plural(r.archived.filesVerified, "file")} read)`,
    r.latestCheckpoint === null
      ? `checkpoints: none yet; ${plural(r.unconfirmed, "entry", "entries")} not covered by a signature`
      : `checkpoints: ${r.checkpoints}, the latest at #${r.latestCheckpoint.seq} (${new Date(r.latestCheckpoint.at).toISOString()}); ${plural(r.unconfirmed, "entry", "entries")} after it ${r.unconfirmed === 1 ? "is" : "are"} not signed yet`,
  ];
  for (const k of r.keys) {
    lines.push(`signed by ${k.kid} (${k.fingerprint}${k.trustedBy === "store" ? ", key from the database: pass --public-key to check against a key you hold" : ", a key you gave"})`);
  }
  if (spill.files > 0) lines.push(`spill: ${plural(spill.entries, "entry", "entries")} in ${plural(spill.files, "file")} waiting to be replayed (the next process to open the data directory replays them)`);
  if (r.problem !== null) lines.push(`problem: ${r.problem.code}: ${r.problem.message}`);
  return lines.join("\n");
}

function fail(json: boolean, err: AuditError): void {
  process.exitCode = reportFailure(err, json);
}

/** Runs an action, printing the audit commands' own errors in the CLI's format. */
function action<A extends unknown[]>(fn: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args) => {
    try {
      await fn(...args);
    } catch (err) {
      if (!(err instanceof AuditError)) throw err;
      fail(process.argv.includes("--json"), err);
    }
  };
}

function cliActor(): string {
  try {
    return `cli:${userInfo().username}`;
  } catch {
    return "cli:unknown";
  }
}

function where(cmd: Command): Command {
  return cmd
    .option("--data <dir>", "data directory (default $PORTCULLIS_DATA or ./portcullis-data)")
    .option("--db <file>", "a database file instead (e.g. a copy handed to an auditor)")
    .option("--json", "print JSON");
}

function filters(cmd: Command): Command {
  return where(cmd)
    .option("--key <id>", "only entries about this key")
    .option("--account <id>", "only entries about this account")
    .option("--event <name>", 'only this event (repeatable; "key.*" for every key event)', collect)
    .option("--since <time>", "from this time (ISO-8601, epoch ms, or a duration ago: 1h)")
    .option("--until <time>", "before this time");
}

async function withSigner<T>(opts: Where, defaultData: string, fn: (data: Awaited<ReturnType<typeof openDataDir>>) => Promise<T>): Promise<T> {
  if (opts.db !== undefined) invalid("this command signs with the data directory's key: use --data, not --db");
  const data = await openDataDir(resolve(opts.data ?? defaultData));
  try {
    try {
      await new EnvelopeSigningKeys(data.store, data.envelope).open("audit-checkpoint");
    } catch (err) {
      throw new AuditError("AUDIT_SIGNER_UNAVAILABLE", `the audit-checkpoint signing key cannot be opened: ${err instanceof Error ? err.message : String(err)}`);
    }
    return await fn(data);
  } finally {
    await data.store.close();
  }
}

/** Registers `portcullis audit …` on the program. */
export function registerAuditCommands(program: Command, defaultData: string): void {
  const audit = program.command("audit").description("verify, query, export and archive the tamper-evident audit log");

  where(audit.command("verify").description("verify the whole chain and every checkpoint signature; exits 1 and names the first bad entry"))
    .option("--public-key <file>", "trust only this Ed25519 public key (SPKI PEM; repeatable), e.g. one saved from `audit public-key`", collect)
    .option("--anchor <file>", "a checkpoint saved earlier (`audit checkpoint --json`): the log must still contain its history")
    .option("--archive <dir>", "where the archived segments are (default: audit-archive beside the database)")
    .option("--skip-segments", "check the archived ranges' signed records only, not the segment files")
    .option("--segment <file>", "verify one segment file on its own")
    .action(
      action(async (opts: Where & { publicKey?: string[]; anchor?: string; archive?: string; skipSegments?: boolean; segment?: string }) => {
        const json = opts.json === true;
        const trusted = readKeys(opts.publicKey ?? []);
        if (opts.segment !== undefined) {
          let bytes: Buffer;
          try {
            bytes = readFileSync(opts.segment);
          } catch {
            throw new AuditError("AUDIT_SEGMENT_UNREADABLE", `cannot read ${opts.segment}`);
          }
          const r = verifySegment(bytes, trusted);
          process.stdout.write(
            json
              ? `${JSON.stringify(r)}\n`
              : `${r.ok ? "segment verified" : "segment verification FAILED"}: entries ${range(r.first, r.last)}${r.kid === null ? "" : `, sealed by ${r.kid} (${r.fingerprint ?? ""}${r.trusted ? ", a key you gave" : ", embedded key: pass --public-key to check against a key you hold"})`}${r.problem === null ? "" : `\nproblem: ${r.problem.code}: ${r.problem.message}`}\n`,
          );
          if (r.problem !== null) fail(json, new AuditError("AUDIT_VERIFY_FAILED", `segment verification failed: ${r.problem.code}: ${r.problem.message}`));
          return;
        }
        const anchor = opts.anchor === undefined ? undefined : readAnchor(opts.anchor);
        const archiveDir = opts.archive === undefined ? undefined : resolve(opts.archive);
        const reader = await openReader(opts, defaultData, archiveDir);
        // On PostgreSQL every read in one snapshot: an archive committed meanwhile by another
        // process cannot make a range look deleted.
        const source = reader.audit.snapshot === undefined ? null : await reader.audit.snapshot().catch(async (err: unknown) => {
          await reader.close();
          throw err;
        });
        try {
          const dir = archiveDir ?? reader.audit.archiveDir ?? ".";
          const report = await verifyAudit(source ?? reader.audit, {
            trusted,
            ...(anchor === undefined ? {} : { anchor }),
            ...(opts.skipSegments === true
              ? {}
              : {
                  readSegment: (file: string) => {
                    try {
                      return readFileSync(join(dir, file));
                    } catch {
                      return null;
                    }
                  },
                }),
          });
          const spill = pendingSpill(reader.spillDir);
          process.stdout.write(json ? `${JSON.stringify({ ...report, spill })}\n` : `${verifyText(report, spill)}\n`);
          if (report.problem !== null) fail(json, new AuditError("AUDIT_VERIFY_FAILED", `audit log verification failed: ${report.problem.code}: ${report.problem.message}`));
        } finally {
          await source?.close();
          await reader.close();
        }
      }),
    );

  filters(audit.command("tail").description("the latest entries, oldest first; --follow keeps printing new ones"))
    .option("-n, --lines <n>", "how many (default 20)", "20")
    .option("--follow", "keep printing entries as they are committed (Ctrl-C stops)")
    .action(
      action(async (opts: Filters & { lines: string; follow?: boolean }) => {
        const n = parseCount(opts.lines, "--lines", 100_000);
        const q = query(opts, n, Date.now());
        const reader = await openReader(opts, defaultData);
        try {
          const rows = [...(await reader.audit.query({ ...q, descending: true }))].reverse();
          printRows(rows, opts.json === true);
          if (opts.follow !== true) return;
          let after = rows.at(-1)?.seq ?? (await reader.audit.bounds())?.last ?? 0;
          // Polls every 500 ms, one query at a time, until SIGINT or SIGTERM.
          const state = { stopped: false, wake: (): void => undefined };
          const stop = (): void => {
            state.stopped = true;
            state.wake();
          };
          process.once("SIGINT", stop);
          process.once("SIGTERM", stop);
          try {
            while (!state.stopped) {
              const poll = await new Promise<boolean>((done) => {
                const timer = setTimeout(() => {
                  done(true);
                }, 500);
                state.wake = () => {
                  clearTimeout(timer);
                  done(false);
                };
              });
              if (!poll) break;
              const more = await reader.audit.query({ ...q, limit: 10_000, afterSeq: after });
              printRows(more, opts.json === true);
              after = more.at(-1)?.seq ?? after;
            }
          } finally {
            process.off("SIGINT", stop);
            process.off("SIGTERM", stop);
          }
        } finally {
          await reader.close();
        }
      }),
    );

  filters(audit.command("query").description("entries matching the filters, oldest first"))
    .option("--limit <n>", "at most this many (default 100)", "100")
    .action(
      action(async (opts: Filters & { limit: string }) => {
        const q = query(opts, parseCount(opts.limit, "--limit", 1_000_000), Date.now());
        const reader = await openReader(opts, defaultData);
        try {
          printRows(await reader.audit.query(q), opts.json === true);
        } finally {
          await reader.close();
        }
      }),
    );

  filters(audit.command("export").description("every matching entry as JSON Lines (its facts and its hash), for a SIEM"))
    .option("--out <file>", "write to this file (created, mode 0600) instead of stdout")
    .action(
      action(async (opts: Filters & { out?: string }) => {
        const base = query(opts, 5000, Date.now());
        const reader = await openReader(opts, defaultData);
        let fd: number | null = null;
        try {
          if (opts.out !== undefined) {
            try {
              fd = openSync(opts.out, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
            } catch (err) {
              invalid(`cannot create ${opts.out}: ${(err as NodeJS.ErrnoException).code ?? String(err)} (export never overwrites a file)`);
            }
          }
          let after = 0;
          let count = 0;
          for (;;) {
            const rows = await reader.audit.query({ ...base, afterSeq: after });
            if (rows.length === 0) break;
            const text = `${rows.map((r) => JSON.stringify(exportedEntry(r))).join("\n")}\n`;
            if (fd === null) {
              if (!process.stdout.write(text)) await new Promise((r) => process.stdout.once("drain", r));
            } else writeSync(fd, text);
            count += rows.length;
            after = (rows.at(-1) as StoredEntry).seq;
          }
          if (fd !== null) process.stderr.write(`exported ${count} entries to ${opts.out ?? ""}\n`);
        } finally {
          if (fd !== null) closeSync(fd);
          await reader.close();
        }
      }),
    );

  where(audit.command("checkpoint").description("sign the log's head now and print the checkpoint (keep it elsewhere: `verify --anchor`)")).action(
    action(async (opts: Where) => {
      await withSigner(opts, defaultData, async (data) => {
        const log = checkpointer(data);
        let checkpoint: SignedCheckpoint | null | undefined = await log.checkpoint();
        await log.close();
        checkpoint ??= await data.store.audit.latestCheckpoint();
        if (checkpoint === undefined) {
          process.stdout.write(opts.json === true ? "null\n" : "the audit log is empty: nothing to sign\n");
          return;
        }
        const key = await new EnvelopeSigningKeys(data.store, data.envelope).open("audit-checkpoint");
        const out = checkpointView(checkpoint, key.publicKey);
        process.stdout.write(
          opts.json === true ? `${JSON.stringify(out)}\n` : `checkpoint #${out.seq} (${new Date(out.at).toISOString()}) by ${out.kid}\nhash ${out.hash}\nsignature ${out.signature}\n`,
        );
      });
    }),
  );

  where(audit.command("public-key").description("print the audit-checkpoint public key (keep it: `verify --public-key`)")).action(
    action(async (opts: Where) => {
      await withSigner(opts, defaultData, async (data) => {
        const key = await new EnvelopeSigningKeys(data.store, data.envelope).open("audit-checkpoint");
        const view = publicKeyView(key);
        process.stdout.write(opts.json === true ? `${JSON.stringify(view)}\n` : `# ${view.kid} ${view.fingerprint}\n${view.publicKey}`);
      });
    }),
  );

  where(audit.command("archive").description("move the oldest entries into a signed segment file (verified first)"))
    .option("--before <time>", "archive the entries older than this (ISO-8601, epoch ms, or a duration ago: 90d)")
    .option("--upto <seq>", "archive up to this entry")
    .option("--out <dir>", "where the segment goes (default: audit-archive in the data directory)")
    .action(
      action(async (opts: Where & { before?: string; upto?: string; out?: string }) => {
        if (opts.before === undefined && opts.upto === undefined) invalid("give --before TIME or --upto SEQ (the newest entry to archive)");
        const before = opts.before === undefined ? undefined : parseTime(opts.before, "--before", Date.now());
        const upTo = opts.upto === undefined ? undefined : parseCount(opts.upto, "--upto", Number.MAX_SAFE_INTEGER);
        await withSigner(opts, defaultData, async (data) => {
          const result = await archiveAudit({
            audit: data.store.audit,
            signer: new EnvelopeSigningKeys(data.store, data.envelope),
            actor: cliActor(),
            ...(before === undefined ? {} : { before }),
            ...(upTo === undefined ? {} : { upTo }),
            ...(opts.out === undefined ? {} : { dir: resolve(opts.out) }),
          });
          // The archive's own entry is signed at once, like a change made from the CLI.
          await checkpointer(data).close();
          if (result === null) {
            process.stdout.write(opts.json === true ? "null\n" : "nothing to archive\n");
            return;
          }
          process.stdout.write(opts.json === true ? `${JSON.stringify(result)}\n` : `archived entries #${result.first}–#${result.last} (${result.entries}) to ${result.path}\n`);
        });
      }),
    );
}
