/**
 * Property tests of the encoding and of verification, over entries built by the real encoder and
 * hash chain: one encoding per entry, and any single-byte change of any stored entry (or of its
 * hash), any deletion, is detected and named.
 */
import fc from "fast-check";
import { generateKeyPairSync, sign } from "node:crypto";
import { describe, expect, it } from "vitest";
import { REDACTED, bounded, canonicalJson, decodeEntry, encodeEntry, fieldsOf, quote } from "../../src/audit/canonical.js";
import { GENESIS, type SignedCheckpoint, chainHash, checkpointMessage } from "../../src/audit/chain.js";
import type { AuditFields } from "../../src/audit/events.js";
import type { ArchiveRecord, AuditKey, AuditSource, StoredEntry } from "../../src/audit/store.js";
import { verifyAudit } from "../../src/audit/verify.js";

const text = fc.string({ maxLength: 40, unit: "grapheme" });
const hostile = fc.oneof(text, fc.string({ maxLength: 20, unit: "binary" }), fc.constantFrom('"', "\\", "\u2028", "\ud800", "a\u0000b", "x".repeat(600)));
const detailValue: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  value: fc.oneof({ depthSize: "small" }, hostile, fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.array(tie("value"), { maxLength: 3 }), fc.dictionary(text, tie("value"), { maxKeys: 3 })),
})).value;

const fields: fc.Arbitrary<AuditFields> = fc.record(
  {
    event: fc.constantFrom("request.allow", "request.deny", "key.create", "key.revoke", "session.create", "policy.change"),
    at: fc.integer({ min: 0, max: 4_102_444_800_000 }),
    actor: hostile,
    key: hostile,
    account: hostile,
    subAccount: hostile,
    client: hostile,
    surface: fc.constantFrom("gateway", "admin", "embedded"),
    requestId: hostile,
    method: fc.constantFrom("GET", "POST", "DELETE"),
    path: hostile,
    route: hostile,
    scheme: fc.constantFrom("native", "binance", "kraken"),
    code: fc.constantFrom("SIGNATURE_INVALID", "NONCE_REPLAYED"),
    status: fc.integer({ min: 100, max: 599 }),
    timings: fc.dictionary(fc.constantFrom("addr", "route", "sig", "admit"), fc.double({ min: 0, max: 1e6, noNaN: true })),
    detail: fc.dictionary(text, detailValue, { maxKeys: 4 }),
  },
  { requiredKeys: ["event", "at", "actor"] },
);

describe("the canonical encoding", () => {
  it("is canonicalJson of the entry (members sorted), whatever the input", () => {
    fc.assert(
      fc.property(fields, fc.integer({ min: 0, max: 2 ** 40 }), (f, seq) => {
        const encoded = encodeEntry(seq, f);
        const detail = f.detail === undefined ? undefined : (JSON.parse(canonicalJson(f.detail, true)) as unknown);
        expect(encoded).toBe(canonicalJson({ ...f, detail, seq, v: 1 }));
        // It is valid JSON, it reads back, and re-encoding what was read gives the same bytes.
        const decoded = decodeEntry(encoded);
        expect(decoded).not.toBeNull();
        if (decoded === null) return;
        expect(decoded.seq).toBe(seq);
        expect(encodeEntry(seq, fieldsOf(decoded))).toBe(encoded);
      }),
      { numRuns: 300 },
    );
  });

  it("writes every string exactly as JSON.stringify would (its fast path included)", () => {
    const codeUnit = fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c));
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: "binary", maxLength: 600 }), fc.string({ unit: codeUnit, maxLength: 50 }), fc.string({ maxLength: 30 })), (s) => {
        expect(quote(s)).toBe(JSON.stringify(bounded(s)));
      }),
      { numRuns: 1000 },
    );
  });

  it("does not depend on member order", () => {
    fc.assert(
      fc.property(fc.dictionary(text, detailValue, { maxKeys: 8 }), (o) => {
        const reversed = Object.fromEntries(Object.entries(o).reverse());
        expect(canonicalJson(reversed)).toBe(canonicalJson(o));
      }),
    );
  });

  it("redacts credential-like members of detail at any depth and bounds strings", () => {
    const encoded = encodeEntry(1, {
      event: "key.create",
      at: 1,
      actor: "cli:root",
      detail: { reason: "x".repeat(2000), secret: "s3cr3t", nested: { apiToken: "t0k3n", list: [{ Signature: "abc" }] }, password: "pw" },
    });
    for (const leaked of ["s3cr3t", "t0k3n", '"abc"', '"pw"']) expect(encoded).not.toContain(leaked);
    expect(encoded.split(REDACTED)).toHaveLength(5);
    // The entry stays JSON: a redacted member is the string "[redacted]", not bare text.
    const parsed = JSON.parse(encoded) as { detail: { secret: unknown; password: unknown; nested: { apiToken: unknown; list: { Signature: unknown }[] } } };
    expect([parsed.detail.secret, parsed.detail.password, parsed.detail.nested.apiToken, parsed.detail.nested.list[0]?.Signature]).toEqual([REDACTED, REDACTED, REDACTED, REDACTED]);
    expect(encoded).toContain(`${"x".repeat(512)}…`);
    expect(encoded).not.toContain("x".repeat(513));
  });
});

/** An audit source over arrays: entries chained by the real hash, one signed checkpoint at the end. */
function chain(facts: readonly AuditFields[]): { rows: StoredEntry[]; source: (rows: readonly StoredEntry[]) => AuditSource } {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  let prev = GENESIS;
  const rows = facts.map((f, i): StoredEntry => {
    const entry = encodeEntry(i + 1, f);
    prev = chainHash(prev, entry);
    // The query columns as the store writes them (bounded like the entry).
    return { seq: i + 1, at: f.at, event: f.event, key: f.key === undefined ? null : bounded(f.key), account: f.account === undefined ? null : bounded(f.account), entry, hash: prev };
  });
  const facts0 = { seq: rows.length, hash: prev, at: 1, kid: "audit-checkpoint:test" };
  const checkpoint: SignedCheckpoint = { ...facts0, signature: sign(null, checkpointMessage(facts0), privateKey) };
  const key: AuditKey = { kid: "audit-checkpoint:test", algorithm: "ed25519", publicKey: publicKey.export({ type: "spki", format: "pem" }).toString(), provider: "test", createdAt: 0 };
  return {
    rows,
    source: (stored) => ({
      archives: (): readonly ArchiveRecord[] => [],
      checkpoints: () => [checkpoint],
      keys: () => [key],
      entryChunks: () => [stored],
    }),
  };
}

const log = fc.array(fields, { minLength: 1, maxLength: 12 });

describe("verification", () => {
  it("passes every untouched log", async () => {
    await fc.assert(
      fc.asyncProperty(log, async (facts) => {
        const { rows, source } = chain(facts);
        const r = await verifyAudit(source(rows));
        expect(r.problem).toBeNull();
        expect(r.verified).toBe(facts.length);
      }),
      { numRuns: 50 },
    );
  });

  it("detects any single-byte change of any stored entry, and names that entry", async () => {
    await fc.assert(
      fc.asyncProperty(log, fc.nat(), fc.nat(), fc.integer({ min: 1, max: 255 }), async (facts, which, where, delta) => {
        const { rows, source } = chain(facts);
        const i = which % rows.length;
        const target = rows[i] as StoredEntry;
        const bytes = Buffer.from(target.entry, "utf8");
        const at = where % bytes.length;
        bytes[at] = ((bytes[at] as number) + delta) % 256;
        const changed = rows.map((r, k) => (k === i ? { ...r, entry: bytes.toString("utf8") } : r));
        const r = await verifyAudit(source(changed));
        expect(r.problem?.seq).toBe(target.seq);
        expect(["ENTRY_ALTERED", "ENTRY_MALFORMED", "ENTRY_MOVED", "ENTRY_COLUMNS_ALTERED"]).toContain(r.problem?.code);
      }),
      { numRuns: 300 },
    );
  });

  it("detects any single-bit change of any stored hash", async () => {
    await fc.assert(
      fc.asyncProperty(log, fc.nat(), fc.integer({ min: 0, max: 255 }), async (facts, which, bit) => {
        const { rows, source } = chain(facts);
        const i = which % rows.length;
        const bytes = Buffer.from((rows[i] as StoredEntry).hash, "hex");
        bytes[bit >> 3] = (bytes[bit >> 3] as number) ^ (1 << (bit & 7));
        const hash = bytes.toString("hex");
        const r = await verifyAudit(source(rows.map((row, k) => (k === i ? { ...row, hash } : row))));
        expect(r.problem).toMatchObject({ code: "ENTRY_ALTERED", seq: i + 1 });
      }),
      { numRuns: 200 },
    );
  });

  it("detects the deletion of any entry: a gap, or a truncation the checkpoint covers", async () => {
    await fc.assert(
      fc.asyncProperty(log, fc.nat(), async (facts, which) => {
        const { rows, source } = chain(facts);
        const i = which % rows.length;
        const r = await verifyAudit(source(rows.filter((_, k) => k !== i)));
        expect(r.problem).toMatchObject({ code: i === rows.length - 1 ? "LOG_TRUNCATED" : "ENTRY_MISSING", seq: i + 1 });
      }),
      { numRuns: 100 },
    );
  });

  it("detects any swap of two entries", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fields, { minLength: 2, maxLength: 10 }), fc.nat(), fc.nat(), async (facts, a, b) => {
        const { rows, source } = chain(facts);
        const i = a % rows.length;
        const j = b % rows.length;
        fc.pre(i !== j && (rows[i] as StoredEntry).entry !== (rows[j] as StoredEntry).entry);
        const swapped = rows.map((r, k) => (k === i ? { ...(rows[j] as StoredEntry), seq: r.seq } : k === j ? { ...(rows[i] as StoredEntry), seq: r.seq } : r));
        const r = await verifyAudit(source(swapped));
        expect(r.problem?.seq).toBe(Math.min(i, j) + 1);
      }),
      { numRuns: 100 },
    );
  });
});
