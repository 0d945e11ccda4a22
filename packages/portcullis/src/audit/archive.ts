import { createHash } from "node:crypto";
import { closeSync, constants, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";
import type { SigningKeyProvider } from "../contract/signing.js";
import { GENESIS, type SignedCheckpoint, chainHash, checkpointMessage, parseEd25519PublicKey, sealMessage, verifySignature } from "./chain.js";
import { AuditError } from "./errors.js";
import type { AuditFields } from "./events.js";
import { segmentHeaderLine, segmentSealLine } from "./segment.js";
import { fsyncDir } from "./spill.js";
import type { ArchiveRecord, AuditKey, StoredEntry } from "./store.js";

/**
 * Retention: moves the oldest stored entries into a signed segment file (segment.ts) and replaces
 * them in the store by a signed record of the range, in one transaction that also appends an
 * `audit.archive` entry. The range is verified first (its chain and the checkpoints inside it):
 * archiving never launders an altered log.
 */

/**
 * What archiving needs of an audit store: SqliteAudit answers at once, PostgresAudit with
 * promises; archiveAudit awaits every answer, so either store (`OpenDataDir.store.audit`) can be
 * archived.
 */
export interface ArchivableAudit {
  readonly archiveDir: string | null;
  bounds(): { first: number; last: number } | null | Promise<{ first: number; last: number } | null>;
  archives(): readonly ArchiveRecord[] | Promise<readonly ArchiveRecord[]>;
  checkpoints(): readonly SignedCheckpoint[] | Promise<readonly SignedCheckpoint[]>;
  keys(): readonly AuditKey[] | Promise<readonly AuditKey[]>;
  entryChunks(from: number, to: number): Iterable<readonly StoredEntry[]> | AsyncIterable<readonly StoredEntry[]>;
  /** The seq of the first entry at or after `at`, or null. */
  firstAtOrAfter(at: number): number | null | Promise<number | null>;
  /** Replaces the range by its record and appends `entry`, atomically; false when the range is not the stored prefix any more or its last hash changed. */
  commitArchive(record: ArchiveRecord, entry: AuditFields): boolean | Promise<boolean>;
  registerKey(key: AuditKey): Promise<void>;
}

export interface ArchiveOptions {
  readonly audit: ArchivableAudit;
  readonly signer: SigningKeyProvider;
  /** Who asks (recorded in the `audit.archive` entry). */
  readonly actor: string;
  /** Archive at most up to this entry. */
  readonly upTo?: number;
  /** Archive only the prefix of entries older than this (epoch ms). */
  readonly before?: number;
  /** Where the segment goes (default: the store's archive directory). */
  readonly dir?: string;
  readonly now?: () => number;
}

export interface ArchiveResult {
  readonly file: string;
  readonly path: string;
  readonly first: number;
  readonly last: number;
  readonly entries: number;
  readonly hash: string;
}

/** Archives the chosen prefix; null when there is nothing to archive. */
export async function archiveAudit(options: ArchiveOptions): Promise<ArchiveResult | null> {
  const { audit } = options;
  const now = options.now ?? Date.now;
  const dir = options.dir ?? audit.archiveDir;
  if (dir === null) throw new AuditError("AUDIT_ARCHIVE_REFUSED", "no archive directory: pass --out DIR");
  const bounds = await audit.bounds();
  if (bounds === null) return null;
  let last = Math.min(options.upTo ?? bounds.last, bounds.last);
  if (options.before !== undefined) {
    const newer = await audit.firstAtOrAfter(options.before);
    if (newer !== null) last = Math.min(last, newer - 1);
  }
  if (last < bounds.first) return null;
  const first = bounds.first;
  const previous = (await audit.archives()).at(-1);
  const prev = previous?.hash ?? GENESIS;
  if ((previous?.last ?? 0) + 1 !== first) throw new AuditError("AUDIT_ARCHIVE_REFUSED", `the stored log starts at #${first}, not right after the archived range: run portcullis audit verify`);

  // Checkpoints inside the range must verify and match, as in `audit verify`.
  const keys = new Map((await audit.keys()).map((k) => [k.kid, parseEd25519PublicKey(k.publicKey)]));
  const expected = new Map<number, string>();
  for (const c of await audit.checkpoints()) {
    if (c.seq < first || c.seq > last) continue;
    const key = keys.get(c.kid) ?? null;
    if (key === null || !verifySignature(checkpointMessage(c), c.signature, key)) {
      throw new AuditError("AUDIT_ARCHIVE_REFUSED", `checkpoint #${c.seq} does not verify: run portcullis audit verify`);
    }
    expected.set(c.seq, c.hash);
  }

  const signingKey = await options.signer.open("audit-checkpoint");
  const publicKeyPem = signingKey.publicKey.export({ type: "spki", format: "pem" }).toString();
  await audit.registerKey({ kid: signingKey.kid, algorithm: "ed25519", publicKey: publicKeyPem, provider: signingKey.provider, createdAt: now() });

  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const name = `audit-${String(first).padStart(12, "0")}-${String(last).padStart(12, "0")}.jsonl`;
  const tmp = join(dir, `${name}.tmp`);
  const path = join(dir, name);
  const digest = createHash("sha256");
  const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC, 0o600);
  let hash = prev;
  try {
    const write = (text: string): void => {
      const bytes = Buffer.from(text, "utf8");
      digest.update(bytes);
      writeSync(fd, bytes);
    };
    write(`${segmentHeaderLine({ first, last, prev, entries: last - first + 1 })}\n`);
    let next = first;
    for await (const chunk of audit.entryChunks(first, last)) {
      const lines: string[] = [];
      for (const row of chunk) {
        const h = chainHash(hash, row.entry);
        const want = expected.get(row.seq);
        if (row.seq !== next || h !== row.hash || (want !== undefined && want !== h)) {
          throw new AuditError("AUDIT_ARCHIVE_REFUSED", `entry #${next} does not verify: run portcullis audit verify`);
        }
        hash = h;
        next += 1;
        lines.push(row.entry);
      }
      write(`${lines.join("\n")}\n`);
    }
    if (next !== last + 1) throw new AuditError("AUDIT_ARCHIVE_REFUSED", `entry #${next} is missing: run portcullis audit verify`);
    const at = now();
    const signature = await signingKey.sign(sealMessage({ first, last, prev, hash, at, kid: signingKey.kid }));
    write(`${segmentSealLine({ first, last, prev, hash, at, kid: signingKey.kid, publicKeyPem, signature })}\n`);
    fsyncSync(fd);
    closeSync(fd);
    renameSync(tmp, path);
    fsyncDir(dir);
    const record: ArchiveRecord = { first, last, prev, hash, file: name, digest: digest.digest("hex"), at, kid: signingKey.kid, signature };
    const entry: AuditFields = {
      event: "audit.archive",
      at,
      actor: options.actor,
      detail: { first, last, entries: last - first + 1, file: name, digest: record.digest, hash },
    };
    if (!(await audit.commitArchive(record, entry))) {
      rmSync(path, { force: true });
      throw new AuditError("AUDIT_ARCHIVE_REFUSED", "the range changed while it was being archived (another archive?); nothing was archived");
    }
    return { file: name, path, first, last, entries: last - first + 1, hash };
  } catch (err) {
    try {
      closeSync(fd);
    } catch {
      // Already closed.
    }
    rmSync(tmp, { force: true });
    throw err;
  }
}
