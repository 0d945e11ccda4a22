import type { KeyObject } from "node:crypto";
import { canonicalJson } from "./canonical.js";
import { type SealFacts, isHash, parseEd25519PublicKey, sealMessage, verifySignature } from "./chain.js";

/**
 * Archived segments: a range of entries moved out of the database into one self-verifying file
 * (JSON Lines), so the log can be kept for years without the database growing:
 *
 *   {"entries":N,"first":F,"format":"portcullis-audit-segment","last":L,"prev":"<hex>","v":1}
 *   <entry F, exactly as it was stored>
 *   …
 *   <entry L>
 *   {"at":…,"hash":"<hex of hash(L)>","kid":"…","publicKey":"<SPKI PEM>","signature":"<base64>","type":"seal"}
 *
 * The seal signs sealMessage(first, last, prev, hash, at, kid). Anyone can check a segment alone:
 * recompute the chain from `prev` over the entries, compare with the seal's hash, and check the
 * signature — with the embedded public key, or better with one they trust (the deployment's, whose
 * fingerprint `portcullis audit verify` prints). The database keeps a signed record of each
 * archived range, so `audit verify` also proves that no segment was removed or replaced.
 */
export const SEGMENT_FORMAT = "portcullis-audit-segment";

export interface SegmentHeader {
  readonly first: number;
  readonly last: number;
  readonly prev: string;
  readonly entries: number;
}

export interface SegmentSeal extends SealFacts {
  readonly publicKey: KeyObject;
  readonly publicKeyPem: string;
  readonly signature: Buffer;
}

export function segmentHeaderLine(h: SegmentHeader): string {
  return canonicalJson({ entries: h.entries, first: h.first, format: SEGMENT_FORMAT, last: h.last, prev: h.prev, v: 1 });
}

export function segmentSealLine(s: SealFacts & { publicKeyPem: string; signature: Buffer }): string {
  return canonicalJson({ at: s.at, hash: s.hash, kid: s.kid, publicKey: s.publicKeyPem, signature: s.signature.toString("base64"), type: "seal" });
}

function object(line: string | undefined): Record<string, unknown> | null {
  if (line === undefined) return null;
  try {
    const v: unknown = JSON.parse(line);
    return v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

export function parseSegmentHeader(line: string | undefined): SegmentHeader | null {
  const o = object(line);
  if (o === null || o.format !== SEGMENT_FORMAT || o.v !== 1) return null;
  const { prev, first, last, entries } = o;
  if (!isHash(prev) || !Number.isSafeInteger(first) || !Number.isSafeInteger(last) || !Number.isSafeInteger(entries)) return null;
  const f = first as number;
  const l = last as number;
  if (f < 1 || l < f || entries !== l - f + 1) return null;
  return { first: f, last: l, prev, entries };
}

export function parseSegmentSeal(line: string | undefined, header: SegmentHeader): SegmentSeal | null {
  const o = object(line);
  if (o?.type !== "seal" || !Number.isSafeInteger(o.at) || typeof o.kid !== "string" || typeof o.publicKey !== "string" || typeof o.signature !== "string") return null;
  const hash = o.hash;
  const publicKey = parseEd25519PublicKey(o.publicKey);
  if (!isHash(hash) || publicKey === null) return null;
  return {
    first: header.first,
    last: header.last,
    prev: header.prev,
    hash,
    at: o.at as number,
    kid: o.kid,
    publicKey,
    publicKeyPem: o.publicKey,
    signature: Buffer.from(o.signature, "base64"),
  };
}

export function sealValid(seal: SegmentSeal, key: KeyObject): boolean {
  return verifySignature(sealMessage(seal), seal.signature, key);
}

/** Splits a segment file's text into its header, entry lines and seal lines. */
export function splitSegment(text: string): { header: string | undefined; entries: string[]; seal: string | undefined } {
  const lines = text.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  return { header: lines[0], entries: lines.slice(1, -1), seal: lines.length >= 2 ? lines[lines.length - 1] : undefined };
}
