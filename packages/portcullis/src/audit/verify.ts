import { createHash, type KeyObject } from "node:crypto";
import { decodeEntry } from "./canonical.js";
import { GENESIS, type SignedCheckpoint, chainHash, checkpointMessage, fingerprint, parseEd25519PublicKey, sealMessage, verifySignature } from "./chain.js";
import { parseSegmentHeader, parseSegmentSeal, sealValid, splitSegment } from "./segment.js";
import type { ArchiveRecord, AuditKey, AuditSource, StoredEntry } from "./store.js";

/**
 * Verification: the whole chain, from the genesis through every archived segment and every
 * stored entry, every checkpoint's signature, and every checkpoint against the chain. It stops at
 * the first problem and names it; the codes are stable (docs/audit.md):
 */
export const AUDIT_PROBLEMS = {
  ENTRY_MISSING: "an entry is missing: the sequence has a gap (deleted)",
  ENTRY_UNEXPECTED: "an entry is stored where none should be (inside an archived range)",
  ENTRY_MALFORMED: "an entry is not a valid audit entry",
  ENTRY_MOVED: "an entry's own sequence number differs from its position (reordered or renumbered)",
  ENTRY_ALTERED: "an entry's hash does not match its content and its predecessor (modified or inserted)",
  ENTRY_COLUMNS_ALTERED: "an entry's query columns disagree with its content",
  CHECKPOINT_INVALID: "a checkpoint's signature does not verify",
  CHECKPOINT_KEY_UNKNOWN: "a checkpoint is signed by a key that is not known or not trusted",
  CHECKPOINT_MISMATCH: "a signed checkpoint does not match the chain: the history it covers was rewritten",
  LOG_TRUNCATED: "the log ends before a signed checkpoint: entries at its end were removed",
  ARCHIVE_GAP: "the archived ranges and the log do not follow each other",
  ARCHIVE_SEAL_INVALID: "an archived range's seal does not verify",
  SEGMENT_MISSING: "an archived segment file is missing",
  SEGMENT_ALTERED: "an archived segment file differs from what was archived",
  SEGMENT_MALFORMED: "a segment file is not a valid segment",
  ANCHOR_INVALID: "the anchor checkpoint's signature does not verify with a trusted key",
  ANCHOR_MISMATCH: "the log does not contain the anchor checkpoint's history",
} as const;

export type AuditProblemCode = keyof typeof AUDIT_PROBLEMS;

export interface AuditProblem {
  readonly code: AuditProblemCode;
  /** The entry (or checkpoint) concerned, when there is one. */
  readonly seq: number | null;
  readonly message: string;
}

export interface VerifyOptions {
  /**
   * Public keys the verifier trusts. Empty or absent: the keys recorded in the store (which
   * proves integrity against anyone who cannot also replace those; pass the key you hold to prove
   * it against anyone).
   */
  readonly trusted?: readonly KeyObject[];
  /**
   * Reads an archived segment file by name (null: missing). Absent: segment files are not read.
   * It may answer with a promise (the admin API reads files without blocking its event loop).
   */
  readonly readSegment?: (file: string) => Buffer | null | Promise<Buffer | null>;
  /** A checkpoint kept elsewhere: the log must still contain its history. */
  readonly anchor?: SignedCheckpoint;
  /**
   * Called between chunks (progress, or yielding to the event loop): after every chunk of stored
   * entries, every PROGRESS_EVERY checkpoints and every PROGRESS_EVERY entries of a segment, so that
   * a caller that awaits a turn of the event loop here never holds it for a whole log.
   */
  readonly onProgress?: (verified: number) => void | Promise<void>;
}

export interface VerifyReport {
  readonly ok: boolean;
  readonly problem: AuditProblem | null;
  /** Entries whose hash was verified (stored and archived). */
  readonly verified: number;
  /** The stored entries' range. */
  readonly first: number | null;
  readonly last: number | null;
  readonly archived: { readonly segments: number; readonly entries: number; readonly filesVerified: number };
  readonly checkpoints: number;
  readonly latestCheckpoint: { readonly seq: number; readonly at: number; readonly kid: string } | null;
  /** Entries after the latest checkpoint: not yet covered by a signature. */
  readonly unconfirmed: number;
  readonly keys: readonly { readonly kid: string; readonly fingerprint: string; readonly trustedBy: "given" | "store" }[];
}

class Failure extends Error {
  constructor(readonly problem: AuditProblem) {
    super(problem.message);
  }
}

function fail(code: AuditProblemCode, seq: number | null, message: string): never {
  throw new Failure({ code, seq, message });
}

function time(ms: number): string {
  return Number.isFinite(ms) && Math.abs(ms) < 8.64e15 ? new Date(ms).toISOString() : String(ms);
}

/** Resolves the key of a kid: the store's record, accepted only if trusted (when keys are given). */
class Keys {
  readonly used = new Map<string, { fingerprint: string; trustedBy: "given" | "store" }>();
  private readonly byKid = new Map<string, KeyObject>();
  private readonly trusted: Map<string, KeyObject> | null;

  constructor(recorded: readonly AuditKey[], given: readonly KeyObject[]) {
    for (const k of recorded) {
      const key = parseEd25519PublicKey(k.publicKey);
      if (key !== null) this.byKid.set(k.kid, key);
    }
    this.trusted = given.length === 0 ? null : new Map(given.map((k) => [fingerprint(k), k]));
  }

  /**
   * Whether `signature` over `message` is by the key `kid` names: "unknown" when there is no such
   * key (or, when keys were given, it is not one of them), "invalid" when the key does not verify.
   */
  check(kid: string, message: Buffer, signature: Buffer): "ok" | "unknown" | "invalid" {
    const stored = this.byKid.get(kid);
    const accept = (key: KeyObject, trustedBy: "given" | "store"): boolean => {
      if (!verifySignature(message, signature, key)) return false;
      this.used.set(kid, { fingerprint: fingerprint(key), trustedBy });
      return true;
    };
    if (this.trusted === null) {
      if (stored === undefined) return "unknown";
      return accept(stored, "store") ? "ok" : "invalid";
    }
    if (stored !== undefined && this.trusted.has(fingerprint(stored))) return accept(stored, "given") ? "ok" : "invalid";
    // The store does not name a trusted key for this kid: only a trusted key's signature counts.
    for (const key of this.trusted.values()) if (accept(key, "given")) return "ok";
    return "unknown";
  }

  trusts(key: KeyObject): boolean {
    return this.trusted === null || this.trusted.has(fingerprint(key));
  }
}

/**
 * Walks the chain entry by entry, checking each against its predecessor and against any signed
 * hash expected at its position.
 */
class Walker {
  next: number;
  prev: string;
  verified = 0;
  constructor(
    first: number,
    prev: string,
    private readonly expected: ReadonlyMap<number, { hash: string; what: string; code: AuditProblemCode }>,
  ) {
    this.next = first;
    this.prev = prev;
  }

  /** One entry: its text, and (stored entries) its stored hash and query columns. */
  step(seq: number, text: string, stored: StoredEntry | null): void {
    if (seq < this.next) fail("ENTRY_UNEXPECTED", seq, `entry #${seq} is stored but the chain is already at #${this.next}: it lies inside an archived range or is a duplicate`);
    if (seq > this.next) {
      const gap = seq - this.next === 1 ? `entry #${this.next} is` : `entries #${this.next}–#${seq - 1} are`;
      fail("ENTRY_MISSING", this.next, `${gap} missing: the log goes from ${this.next === 1 ? "the genesis" : `#${this.next - 1}`} to #${seq} (deleted)`);
    }
    const entry = decodeEntry(text);
    if (entry === null) fail("ENTRY_MALFORMED", seq, `entry #${seq} is not a valid audit entry (modified)`);
    if (entry.seq !== seq) fail("ENTRY_MOVED", seq, `entry #${seq} holds the content of entry #${entry.seq} (reordered, renumbered or copied)`);
    const hash = chainHash(this.prev, text);
    if (stored !== null) {
      if (hash !== stored.hash) fail("ENTRY_ALTERED", seq, `entry #${seq} was modified or inserted: its hash does not match its content and the entry before it`);
      if (stored.at !== entry.at || stored.event !== entry.event || stored.key !== (entry.key ?? null) || stored.account !== (entry.account ?? null)) {
        fail("ENTRY_COLUMNS_ALTERED", seq, `entry #${seq}'s query columns (at, event, key, account) were changed: they disagree with its content`);
      }
    }
    const want = this.expected.get(seq);
    if (want !== undefined && want.hash !== hash) {
      fail(want.code, seq, `${want.what} does not match the chain at entry #${seq}: the history up to #${seq} was rewritten`);
    }
    this.prev = hash;
    this.next = seq + 1;
    this.verified += 1;
  }
}

/** How many checkpoints or segment entries are checked between two `onProgress` calls. */
const PROGRESS_EVERY = 1000;

async function walkSegment(bytes: Buffer, record: ArchiveRecord, walker: Walker, keys: Keys, progress: VerifyOptions["onProgress"]): Promise<void> {
  const digest = createHash("sha256").update(bytes).digest("hex");
  if (digest !== record.digest) fail("SEGMENT_ALTERED", record.first, `segment ${record.file} (entries #${record.first}–#${record.last}) was changed after it was archived`);
  const parts = splitSegment(bytes.toString("utf8"));
  const header = parseSegmentHeader(parts.header);
  if (header === null || header.first !== record.first || header.last !== record.last || parts.entries.length !== header.entries) {
    fail("SEGMENT_MALFORMED", record.first, `segment ${record.file} is not a valid segment for entries #${record.first}–#${record.last}`);
  }
  for (let i = 0; i < parts.entries.length; i++) {
    walker.step(header.first + i, parts.entries[i] as string, null);
    if (progress !== undefined && (i + 1) % PROGRESS_EVERY === 0) await progress(walker.verified);
  }
  const seal = parseSegmentSeal(parts.seal, header);
  if (seal === null || seal.hash !== walker.prev || !keys.trusts(seal.publicKey) || !sealValid(seal, seal.publicKey)) {
    fail("SEGMENT_MALFORMED", record.last, `segment ${record.file}'s seal does not match its entries`);
  }
  await Promise.resolve();
}

/** Verifies a whole audit log. Never throws for what it reads: a problem is part of the report. */
export async function verifyAudit(source: AuditSource, options: VerifyOptions = {}): Promise<VerifyReport> {
  const keys = new Keys(await source.keys(), options.trusted ?? []);
  const checkpoints = await source.checkpoints();
  const archives = await source.archives();
  const latest = checkpoints.length === 0 ? null : (checkpoints[checkpoints.length - 1] as SignedCheckpoint);
  let first: number | null = null;
  let last: number | null = null;
  let archivedEntries = 0;
  let filesVerified = 0;
  let walker = new Walker(1, GENESIS, new Map());
  const report = (problem: AuditProblem | null): VerifyReport => ({
    ok: problem === null,
    problem,
    verified: walker.verified,
    first,
    last,
    archived: { segments: archives.length, entries: archivedEntries, filesVerified },
    checkpoints: checkpoints.length,
    latestCheckpoint: latest === null ? null : { seq: latest.seq, at: latest.at, kid: latest.kid },
    unconfirmed: latest === null ? walker.next - 1 : Math.max(0, walker.next - 1 - latest.seq),
    keys: [...keys.used].map(([kid, k]) => ({ kid, ...k })),
  });
  try {
    // Every signature first: a forged checkpoint is reported as such, not as a rewritten chain.
    const expected = new Map<number, { hash: string; what: string; code: AuditProblemCode }>();
    for (const [i, c] of checkpoints.entries()) {
      if (i > 0 && i % PROGRESS_EVERY === 0) await options.onProgress?.(0);
      const verdict = keys.check(c.kid, checkpointMessage(c), c.signature);
      if (verdict === "unknown") fail("CHECKPOINT_KEY_UNKNOWN", c.seq, `checkpoint #${c.seq} is signed by ${c.kid}, a key that is ${options.trusted?.length ? "not among the trusted keys" : "not recorded"}`);
      if (verdict === "invalid") fail("CHECKPOINT_INVALID", c.seq, `checkpoint #${c.seq} (signed ${time(c.at)}) has an invalid signature (forged or modified)`);
      expected.set(c.seq, { hash: c.hash, what: `checkpoint #${c.seq} (signed ${time(c.at)} by ${c.kid})`, code: "CHECKPOINT_MISMATCH" });
    }
    const anchor = options.anchor;
    if (anchor !== undefined) {
      if (keys.check(anchor.kid, checkpointMessage(anchor), anchor.signature) !== "ok") {
        fail("ANCHOR_INVALID", anchor.seq, `the anchor checkpoint #${anchor.seq} does not verify with a ${options.trusted?.length ? "trusted" : "recorded"} key`);
      }
      const same = expected.get(anchor.seq);
      if (same !== undefined && same.hash !== anchor.hash) fail("ANCHOR_MISMATCH", anchor.seq, `the anchor checkpoint #${anchor.seq} differs from the stored checkpoint #${anchor.seq}: the log was rewritten`);
      expected.set(anchor.seq, { hash: anchor.hash, what: `the anchor checkpoint #${anchor.seq} (signed ${time(anchor.at)})`, code: "ANCHOR_MISMATCH" });
    }
    walker = new Walker(1, GENESIS, expected);

    // The archived prefix: continuous records, valid seals, and the files when they are read.
    for (const r of archives) {
      if (r.first !== walker.next || r.prev !== walker.prev) {
        fail("ARCHIVE_GAP", r.first, `archived range #${r.first}–#${r.last} does not follow ${walker.next === 1 ? "the genesis" : `entry #${walker.next - 1}`}`);
      }
      const verdict = keys.check(r.kid, sealMessage(r), r.signature);
      if (verdict !== "ok") fail("ARCHIVE_SEAL_INVALID", r.first, `archived range #${r.first}–#${r.last} (${r.file}) has ${verdict === "unknown" ? "a seal by an unknown key" : "an invalid seal"}`);
      if (options.readSegment !== undefined) {
        const read = options.readSegment(r.file);
        const bytes = read instanceof Promise ? await read : read;
        if (bytes === null) fail("SEGMENT_MISSING", r.first, `segment ${r.file} (entries #${r.first}–#${r.last}) is missing`);
        await walkSegment(bytes, r, walker, keys, options.onProgress);
        filesVerified += 1;
      } else {
        walker.next = r.last + 1;
        walker.prev = r.hash;
      }
      archivedEntries += r.last - r.first + 1;
    }

    // The stored entries.
    for await (const chunk of source.entryChunks()) {
      for (const row of chunk) {
        first ??= row.seq;
        walker.step(row.seq, row.entry, row);
        last = row.seq;
      }
      await options.onProgress?.(walker.verified);
    }

    // Truncation: a signed checkpoint (or the anchor) beyond the end of the log.
    const end = walker.next - 1;
    const beyond = [...expected].filter(([seq]) => seq > end).sort((a, b) => b[0] - a[0])[0];
    if (beyond !== undefined) {
      const [seq, want] = beyond;
      fail("LOG_TRUNCATED", end + 1, `the log ends at entry #${end} but ${want.what} covers up to #${seq}: entries #${end + 1}–#${seq} were removed`);
    }
    return report(null);
  } catch (err) {
    if (err instanceof Failure) return report(err.problem);
    throw err;
  }
}

export interface SegmentReport {
  readonly ok: boolean;
  readonly problem: AuditProblem | null;
  readonly first: number | null;
  readonly last: number | null;
  readonly kid: string | null;
  readonly fingerprint: string | null;
  /** Whether the seal's key is one the verifier gave (false: only the embedded key was used). */
  readonly trusted: boolean;
}

/**
 * Verifies one segment file on its own: its entries chain from its `prev` to its seal's hash, and
 * the seal verifies with the embedded public key — and is one of `trusted` when keys are given.
 */
export function verifySegment(bytes: Buffer, trusted: readonly KeyObject[] = []): SegmentReport {
  const parts = splitSegment(bytes.toString("utf8"));
  const header = parseSegmentHeader(parts.header);
  const base = { first: header?.first ?? null, last: header?.last ?? null, kid: null, fingerprint: null, trusted: false };
  if (header === null || parts.entries.length !== header.entries) {
    return { ...base, ok: false, problem: { code: "SEGMENT_MALFORMED", seq: null, message: "not a Portcullis audit segment (header or entry count)" } };
  }
  const walker = new Walker(header.first, header.prev, new Map());
  try {
    parts.entries.forEach((line, i) => {
      walker.step(header.first + i, line, null);
    });
  } catch (err) {
    if (err instanceof Failure) return { ...base, ok: false, problem: err.problem };
    throw err;
  }
  const seal = parseSegmentSeal(parts.seal, header);
  if (seal === null) return { ...base, ok: false, problem: { code: "SEGMENT_MALFORMED", seq: header.last, message: "the segment has no valid seal line" } };
  const print = fingerprint(seal.publicKey);
  const withKey = { ...base, kid: seal.kid, fingerprint: print };
  if (seal.hash !== walker.prev) {
    return { ...withKey, ok: false, problem: { code: "ENTRY_ALTERED", seq: header.last, message: `the entries do not hash to the sealed hash ${seal.hash}` } };
  }
  if (!sealValid(seal, seal.publicKey)) return { ...withKey, ok: false, problem: { code: "ARCHIVE_SEAL_INVALID", seq: header.last, message: "the seal's signature does not verify" } };
  const isTrusted = trusted.some((k) => fingerprint(k) === print);
  if (trusted.length > 0 && !isTrusted) {
    return { ...withKey, ok: false, problem: { code: "CHECKPOINT_KEY_UNKNOWN", seq: header.last, message: `the seal's key (${print}) is not among the trusted keys` } };
  }
  return { ...withKey, ok: true, problem: null, trusted: isTrusted };
}
