import { join } from "node:path";
import { setImmediate as turn, setTimeout as sleep } from "node:timers/promises";
import { HELD_OUTCOME_PURPOSE, HELD_REQUEST_PURPOSE, HPKE_PRIVATE_PURPOSE, PASSPHRASE_PURPOSE, SECRET_PURPOSE, Envelope } from "./envelope.js";
import type { DurableStore, EnvelopeColumn, EnvelopeReplacement, EnvelopeStore, HeldEnvelopeColumn, HeldEnvelopes, HpkeEnvelopes, HpkeKeyStore, KeyEnvelopes } from "../storage/types.js";
import { CustodyError, type CustodyErrorCode } from "./errors.js";
import { withFileLock } from "./lock.js";
import { CUSTODY_LOCK, sealLegacyPassphrases } from "./open.js";
import { Pkcs11SigningKeys } from "./pkcs11-signing.js";
import { META_ENVELOPES } from "./signing.js";
import { SIGNING_PURPOSES } from "../contract/signing.js";

/**
 * KEK rotation without downtime, and the inventory behind `custody status`.
 *
 * A rotation, holding the data directory's custody lock (and, on a store several hosts share, the
 * store's own: PostgreSQL's session advisory lock, so two hosts' rotations never interleave):
 *
 * 1. creates a new KEK version, active at once (every process wraps under it from its next wrap:
 *    the keyring file is re-checked per wrap, a token within 250 ms);
 * 2. rewraps every stored envelope (HMAC secrets, passphrase hashes, held operations' requests
 *    and answers, the live HPKE keys' private halves, stored secrets and envelope-held signing keys in the meta table): the data key is unwrapped under the old
 *    version and wrapped under the new one, written back by compare-and-swap. The secret itself,
 *    and so every cached key, is unchanged: nothing is evicted, no request notices;
 * 3. waits `settleMs` (a wrap that started before step 1 lands meanwhile), then passes again until
 *    a pass finds nothing left under an old version;
 * 4. raises the durable KEK floor (storage/kek-floor.ts) to the new version, in one transaction
 *    that checks again that nothing is left under an older one (else: another pass). Every envelope
 *    write checks the floor in its own transaction, so a secret another process wrapped under an
 *    old version (its view of the active version can be 250 ms old) is refused from then on and
 *    wrapped again by its writer, rather than stored under a version about to be destroyed;
 * 5. retires (destroys) every old version, unless a pass could not rewrap something or the floor
 *    could not be raised (then nothing is retired and the failures are reported).
 *
 * It works in batches and yields to the event loop between them, so a gateway can run it in the
 * background while it serves.
 */

export interface RotationOptions {
  /** Pause after the first pass before the final ones (ms). Default 2000. */
  readonly settleMs?: number;
  /** Envelopes per batch (one transaction each). Default 250. */
  readonly batchSize?: number;
  /** Retire the old versions after the rewrap. Default true. */
  readonly retire?: boolean;
  /** Called after each batch with the envelopes rewrapped so far. */
  readonly onProgress?: (rewrapped: number) => void;
  /** How long to wait for another rotation's lock before CUSTODY_ROTATION_IN_PROGRESS (ms). Default 5000. */
  readonly lockWaitMs?: number;
}

export interface RotationFailure {
  /** Where the envelope is ("keys/<id>/secret", "held/<id>/held", "meta/<key>"), never what it holds. */
  readonly where: string;
  readonly code: CustodyErrorCode | "INTERNAL";
}

export interface RotationResult {
  readonly provider: string;
  /** The versions held before the rotation. */
  readonly previous: readonly number[];
  readonly active: number;
  readonly rewrapped: number;
  /** Clear passphrase hashes (older versions) sealed on the way. */
  readonly sealedPassphrases: number;
  readonly retired: readonly number[];
  readonly passes: number;
  readonly failures: readonly RotationFailure[];
  readonly durationMs: number;
}

const MAX_PASSES = 10;
/** Rewraps in flight at once (the PKCS#11 provider's session pool holds 4). */
const REWRAP_CONCURRENCY = 4;
/** Envelopes a rewrap worker handles between two turns of the event loop. */
const YIELD_EVERY = 8;

function failureOf(where: string, err: unknown): RotationFailure {
  return { where, code: err instanceof CustodyError ? err.code : "INTERNAL" };
}

interface PassResult {
  rewrapped: number;
  /** Envelopes still under an old version after this pass (raced with a change, or failed). */
  remaining: number;
  failures: RotationFailure[];
}

/** One envelope of a row: which row and column, what it holds, the purpose bound into it. */
interface RewrapItem<Column extends string> {
  readonly id: string;
  readonly column: Column;
  readonly sealed: Buffer;
  readonly purpose: string;
}

/** A table of rows holding envelopes: enumerated in id order, replaced by compare-and-swap. */
interface EnvelopeTable<Row extends { readonly id: string }, Column extends string> {
  /** The first part of a failure's location ("keys", "held"). */
  readonly where: string;
  list(after: string, limit: number): Promise<Row[]>;
  items(row: Row): RewrapItem<Column>[];
  replace(replacements: readonly EnvelopeReplacement<Column>[]): Promise<number>;
}

/** A key row's envelopes: its HMAC secret and its passphrase hash. */
function keyItems(row: KeyEnvelopes): RewrapItem<EnvelopeColumn>[] {
  const items: RewrapItem<EnvelopeColumn>[] = [];
  if (row.secretEnvelope !== null) items.push({ id: row.id, column: "secret", sealed: row.secretEnvelope, purpose: SECRET_PURPOSE });
  if (row.passphraseEnvelope !== null) items.push({ id: row.id, column: "passphrase", sealed: row.passphraseEnvelope, purpose: PASSPHRASE_PURPOSE });
  return items;
}

/** A held operation's envelopes: the exact held request, and the upstream's answer once released. */
function heldItems(row: HeldEnvelopes): RewrapItem<HeldEnvelopeColumn>[] {
  const items: RewrapItem<HeldEnvelopeColumn>[] = [{ id: row.id, column: "held", sealed: row.held, purpose: HELD_REQUEST_PURPOSE }];
  if (row.outcome !== null) items.push({ id: row.id, column: "outcome", sealed: row.outcome, purpose: HELD_OUTCOME_PURPOSE });
  return items;
}

function keyTable(envelopes: EnvelopeStore): EnvelopeTable<KeyEnvelopes, EnvelopeColumn> {
  return { where: "keys", list: (after, limit) => envelopes.keyEnvelopes(after, limit), items: keyItems, replace: (r) => envelopes.replaceKeyEnvelopes(r) };
}

function heldTable(envelopes: EnvelopeStore): EnvelopeTable<HeldEnvelopes, HeldEnvelopeColumn> {
  return { where: "held", list: (after, limit) => envelopes.heldEnvelopes(after, limit), items: heldItems, replace: (r) => envelopes.replaceHeldEnvelopes(r) };
}

/** A live HPKE key's private half (docs/sealed-orders.md). */
function hpkeItems(row: HpkeEnvelopes): RewrapItem<"private">[] {
  return [{ id: row.id, column: "private", sealed: row.private, purpose: HPKE_PRIVATE_PURPOSE }];
}

function hpkeTable(hpke: HpkeKeyStore): EnvelopeTable<HpkeEnvelopes, "private"> {
  return { where: "hpke", list: (after, limit) => hpke.envelopes(after, limit), items: hpkeItems, replace: (r) => hpke.replaceEnvelopes(r) };
}

/** Rewraps, in batches, every envelope of `table` that is not under `active`; adds to `result`. */
async function rewrapTable<Row extends { readonly id: string }, Column extends string>(
  table: EnvelopeTable<Row, Column>,
  envelope: Envelope,
  active: number,
  batchSize: number,
  result: PassResult,
  progress: (n: number) => void,
): Promise<void> {
  let after = "";
  for (;;) {
    const rows = await table.list(after, batchSize);
    const replacements: EnvelopeReplacement<Column>[] = [];
    const work = rows.flatMap((row) => table.items(row));
    // A few rewraps in flight at once: an HSM provider runs them on its session pool. A provider
    // that answers at once (the keyring file) would otherwise hold the event loop for a whole
    // batch: every worker yields every few envelopes, so requests keep their turns.
    let next = 0;
    const worker = async (): Promise<void> => {
      let sinceYield = 0;
      for (let item = work[next++]; item !== undefined; item = work[next++]) {
        if (++sinceYield === YIELD_EVERY) {
          sinceYield = 0;
          await turn();
        }
        try {
          if (Envelope.kekVersionOf(item.sealed) === active) continue;
          const rewrapped = await envelope.rewrap(item.sealed, item.purpose, item.id, active);
          if (rewrapped !== null) replacements.push({ id: item.id, column: item.column, expected: item.sealed, next: rewrapped });
        } catch (err) {
          result.failures.push(failureOf(`${table.where}/${item.id}/${item.column}`, err));
          result.remaining++;
        }
      }
    };
    await Promise.all(Array.from({ length: REWRAP_CONCURRENCY }, worker));
    const replaced = await table.replace(replacements);
    result.rewrapped += replaced;
    result.remaining += replacements.length - replaced;
    progress(result.rewrapped);
    const last = rows[rows.length - 1];
    if (last === undefined || rows.length < batchSize) break;
    after = last.id;
    await turn();
  }
}

/** One pass over every envelope: rewraps what is not under `active`. */
async function rewrapPass(store: DurableStore, envelope: Envelope, active: number, batchSize: number, progress: (n: number) => void): Promise<PassResult> {
  const result: PassResult = { rewrapped: 0, remaining: 0, failures: [] };
  await rewrapTable(keyTable(store.envelopes), envelope, active, batchSize, result, progress);
  await rewrapTable(heldTable(store.envelopes), envelope, active, batchSize, result, progress);
  await rewrapTable(hpkeTable(store.hpke), envelope, active, batchSize, result, progress);
  for (const codec of META_ENVELOPES) {
    for (const { key, value } of await store.envelopes.metaEntries(codec.prefix)) {
      const found = codec.read(key, value);
      if (found === null) continue;
      try {
        if (Envelope.kekVersionOf(found.envelope) === active) continue;
        const next = await envelope.rewrap(found.envelope, codec.purpose, found.rowId, active);
        if (next === null) continue;
        if (await store.envelopes.replaceMeta(key, value, codec.write(value, next))) result.rewrapped++;
        else result.remaining++;
      } catch (err) {
        result.failures.push(failureOf(`meta/${key}`, err));
        result.remaining++;
      }
    }
  }
  progress(result.rewrapped);
  return result;
}

/** Rotates the KEK of a data directory's envelope (see the module comment). */
export async function rotateKek(dataDir: string, store: DurableStore, envelope: Envelope, options: RotationOptions = {}): Promise<RotationResult> {
  // The data directory's lock file excludes rotations on this host; a store other hosts share
  // (PostgreSQL) adds its own lock, taken second (always in this order), so rotations on two hosts
  // never interleave either.
  const shared = store.custodyLock;
  const waitMs = options.lockWaitMs ?? 5_000;
  return withFileLock(
    join(dataDir, CUSTODY_LOCK),
    "the custody of this data directory",
    () =>
      shared === undefined
        ? rotateHeld(store, envelope, options, () => Promise.resolve(true))
        : shared.withLock("the custody of this store", (stillHeld) => rotateHeld(store, envelope, options, stillHeld), waitMs),
    waitMs,
  );
}

/** The rotation itself, holding the locks; `stillHeld` answers whether the shared one still is. */
async function rotateHeld(store: DurableStore, envelope: Envelope, options: RotationOptions, stillHeld: () => Promise<boolean>): Promise<RotationResult> {
  const settleMs = options.settleMs ?? 2_000;
  const batchSize = options.batchSize ?? 250;
  const progress = options.onProgress ?? (() => undefined);
  const kek = envelope.kek;
  const started = Date.now();
  const previous = (await kek.versions()).held;
  const sealedPassphrases = await sealLegacyPassphrases(store, envelope);
  const active = await kek.addVersion();
  let rewrapped = 0;
  let passes = 0;
  let last: PassResult = { rewrapped: 0, remaining: 0, failures: [] };
  let floorRaised = false;
  while (passes < MAX_PASSES) {
    last = await rewrapPass(store, envelope, active, batchSize, (n) => {
      progress(rewrapped + n);
    });
    rewrapped += last.rewrapped;
    passes++;
    if (passes === 1) {
      await sleep(settleMs);
      continue;
    }
    if (last.failures.length > 0) break;
    if (last.rewrapped === 0 && last.remaining === 0) {
      // Nothing left under an old version: confirmed again, and the floor raised, in one
      // transaction. From then on every envelope write under an older version is refused (its
      // writer wraps again under the active one), so the old versions can be destroyed. An
      // envelope that landed after this pass fails the check: one more pass rewraps it.
      if ((await store.envelopes.raiseKekFloor(active)).raised) {
        floorRaised = true;
        break;
      }
    }
  }
  const failures = [...last.failures];
  // The shared lock lost (its connection dropped): another host's rotation may be running, and
  // destroying a version is what must not interleave with it. Nothing is retired; run it again.
  if (!(await stillHeld())) failures.push({ where: "custody lock", code: "CUSTODY_ROTATION_IN_PROGRESS" });
  const clean = floorRaised && failures.length === 0 && last.rewrapped === 0 && last.remaining === 0;
  const retired: number[] = [];
  if (clean && options.retire !== false) {
    for (const version of (await kek.versions()).held) {
      if (version === active) continue;
      await kek.retire(version);
      retired.push(version);
    }
  }
  return {
    provider: kek.name,
    previous,
    active,
    rewrapped,
    sealedPassphrases,
    retired,
    passes,
    failures,
    durationMs: Date.now() - started,
  };
}

export interface CustodyStatus {
  readonly provider: string;
  readonly details: Readonly<Record<string, string>>;
  readonly activeVersion: number;
  /** The versions the provider holds. */
  readonly versions: readonly number[];
  readonly envelopes: {
    readonly total: number;
    /** Envelopes per KEK version ("1": 1200, "2": 3). */
    readonly byVersion: Readonly<Record<string, number>>;
    /** Envelopes per kind: key secrets, passphrase hashes, held requests and their answers, stored secrets, signing keys. */
    readonly byKind: Readonly<Record<string, number>>;
    /** Versions named by envelopes but not held by the provider: those envelopes cannot be opened. */
    readonly missingVersions: readonly number[];
    /** Values in an envelope slot that are not envelopes. */
    readonly malformed: number;
  };
  /** Passphrase hashes still in clear (sealed at the next custody open). */
  readonly clearPassphrases: number;
  readonly signingKeys: readonly { readonly purpose: string; readonly provider: string; readonly kid: string }[];
  /** The store's KEK floor (storage/kek-floor.ts): envelopes are written only under it or a later version; 0 before any rotation. */
  readonly kekFloor: number;
  /**
   * What is wrong with this provider for this store, one sentence each (empty when nothing is):
   * envelopes under versions it does not hold — newer than its active one when another host sharing
   * the store rotated the KEK and this host's keyring was not brought along, older when retired
   * here or another KEK — and an active version below the floor (this host's new secrets are
   * refused). `custody status` exits 1 when there is any.
   */
  readonly warnings: readonly string[];
}

/** Counts every envelope per KEK version and kind (reads headers only; decrypts nothing). */
export async function custodyStatus(store: Pick<DurableStore, "envelopes" | "meta" | "hpke">, envelope: Envelope): Promise<CustodyStatus> {
  const kek = envelope.kek;
  const { active, held } = await kek.versions();
  const byVersion = new Map<number, number>();
  const byKind: Record<string, number> = { "key-secret": 0, "key-passphrase": 0, "held-request": 0, "held-outcome": 0, "stored-secret": 0, "signing-key": 0, "hpke-private": 0 };
  let malformed = 0;
  let clearPassphrases = 0;
  const count = (kind: string, sealed: Buffer): void => {
    try {
      const version = Envelope.kekVersionOf(sealed);
      byVersion.set(version, (byVersion.get(version) ?? 0) + 1);
      byKind[kind] = (byKind[kind] ?? 0) + 1;
    } catch {
      malformed++;
    }
  };
  let after = "";
  for (;;) {
    const rows = await store.envelopes.keyEnvelopes(after, 1000);
    for (const row of rows) {
      if (row.secretEnvelope !== null) count("key-secret", row.secretEnvelope);
      if (row.passphraseEnvelope !== null) count("key-passphrase", row.passphraseEnvelope);
      else if (row.legacyPassphraseHash !== null) clearPassphrases++;
    }
    const last = rows[rows.length - 1];
    if (last === undefined || rows.length < 1000) break;
    after = last.id;
  }
  after = "";
  for (;;) {
    const rows = await store.envelopes.heldEnvelopes(after, 1000);
    for (const item of rows.flatMap(heldItems)) count(item.purpose, item.sealed);
    const last = rows[rows.length - 1];
    if (last === undefined || rows.length < 1000) break;
    after = last.id;
  }
  after = "";
  for (;;) {
    const rows = await store.hpke.envelopes(after, 1000);
    for (const row of rows) count(HPKE_PRIVATE_PURPOSE, row.private);
    const last = rows[rows.length - 1];
    if (last === undefined || rows.length < 1000) break;
    after = last.id;
  }
  for (const codec of META_ENVELOPES) {
    for (const { key, value } of await store.envelopes.metaEntries(codec.prefix)) {
      const found = codec.read(key, value);
      if (found === null) malformed++;
      else count(codec.purpose, found.envelope);
    }
  }
  const signingKeys: { purpose: string; provider: string; kid: string }[] = [];
  for (const purpose of SIGNING_PURPOSES) {
    for (const [name, provider] of [
      [`signing-key:${purpose}`, "envelope"],
      [Pkcs11SigningKeys.metaName(purpose), "pkcs11"],
    ] as const) {
      const text = await store.meta.getMeta(name);
      if (text === undefined) continue;
      let kid = "?";
      try {
        const parsed = JSON.parse(text) as { kid?: unknown };
        if (typeof parsed.kid === "string") kid = parsed.kid;
      } catch {
        // Reported with kid "?".
      }
      signingKeys.push({ purpose, provider, kid });
    }
  }
  const versions = [...byVersion.keys()].sort((a, b) => a - b);
  const missing = versions.filter((v) => !held.includes(v));
  const kekFloor = await store.envelopes.kekFloor();
  const envelopesUnder = (vs: readonly number[]): number => vs.reduce((n, v) => n + (byVersion.get(v) ?? 0), 0);
  const warnings: string[] = [];
  const newer = missing.filter((v) => v > active);
  const older = missing.filter((v) => v < active);
  const plural = (vs: readonly number[]): string => `KEK version${vs.length === 1 ? "" : "s"} ${vs.join(", ")}`;
  if (newer.length > 0) {
    warnings.push(
      `${envelopesUnder(newer)} envelope(s) are under ${plural(newer)}, newer than this ${kek.name}'s active version ${active}: another host sharing the store rotated the KEK. ` +
        `This host cannot open them (keys not in its cache fail) until it holds that version: copy the rotating host's keyring (docs/custody.md, "Several hosts")`,
    );
  }
  if (older.length > 0) {
    warnings.push(`${envelopesUnder(older)} envelope(s) are under ${plural(older)}, which this ${kek.name} does not hold (retired here, or another KEK): they cannot be opened`);
  }
  if (kekFloor > active) {
    warnings.push(`the store's KEK floor is ${kekFloor}, above this ${kek.name}'s active version ${active}: every secret this host writes is refused (CUSTODY_KEK_RETIRED) until it holds version ${kekFloor}`);
  }
  return {
    provider: kek.name,
    details: kek.describe(),
    activeVersion: active,
    versions: held,
    envelopes: {
      total: [...byVersion.values()].reduce((a, b) => a + b, 0),
      byVersion: Object.fromEntries(versions.map((v) => [String(v), byVersion.get(v) ?? 0])),
      byKind,
      missingVersions: missing,
      malformed,
    },
    clearPassphrases,
    signingKeys,
    kekFloor,
    warnings,
  };
}
