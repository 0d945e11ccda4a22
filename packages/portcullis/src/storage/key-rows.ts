import type { Environment } from "../contract/ids.js";
import type { KeyRisk } from "../contract/behaviour.js";
import type { AgentGrant, Dialect, KeyAlgorithm, KeyGuardrails, KeyStatus } from "../contract/keys.js";
import type { KeyPatch, KeyRow } from "./types.js";

/**
 * The `keys` table's columns as both SQL stores read them (storage/sqlite, storage/postgres): the
 * same names and JSON texts; only how an integer (`I`: SQLite's number, PostgreSQL's BIGINT as a
 * string) and a flag (`B`: SQLite's 0/1, PostgreSQL's boolean) arrive differs.
 */
export interface KeyRowColumns<I, B> {
  id: string;
  environment: string;
  account: string;
  sub_account: string | null;
  label: string;
  algorithm: string;
  public_key: string | null;
  secret_envelope: Buffer | null;
  scopes: string;
  ip_allowlist: string;
  dialects: string;
  expires_at: I | null;
  window_ms: I | null;
  status: string;
  status_reason: string | null;
  created_at: I;
  updated_at: I;
  last_used_at: I | null;
  revision: number;
  passphrase_hash: string | null;
  limits: string;
  session_epoch: number;
  session_ttl_ms: I | null;
  session_bind_address: B;
  rotated_from: string | null;
  rotated_to: string | null;
  max_age_ms: I | null;
  passphrase_envelope: Buffer | null;
  operator: B;
  owner: string | null;
  guardrails: string | null;
  risk: string | null;
  cert_thumbprint: string | null;
  agent: string | null;
}

/** How a store's integers and flags arrive. */
export interface ColumnTypes<I, B> {
  int(v: I): number;
  flag(v: B): boolean;
}

/** A stored row as a KeyRow. */
export function keyRowFromColumns<I, B>(r: KeyRowColumns<I, B>, types: ColumnTypes<I, B>): KeyRow {
  const int = (v: I | null): number | null => (v === null ? null : types.int(v));
  return {
    id: r.id,
    environment: r.environment as Environment,
    account: r.account,
    subAccount: r.sub_account,
    label: r.label,
    algorithm: r.algorithm as KeyAlgorithm,
    publicKey: r.public_key,
    secretEnvelope: r.secret_envelope,
    scopes: JSON.parse(r.scopes) as string[],
    ipAllowlist: JSON.parse(r.ip_allowlist) as string[],
    dialects: JSON.parse(r.dialects) as Dialect[],
    expiresAt: int(r.expires_at),
    windowMs: int(r.window_ms),
    status: r.status as KeyStatus,
    statusReason: r.status_reason,
    createdAt: types.int(r.created_at),
    updatedAt: types.int(r.updated_at),
    lastUsedAt: int(r.last_used_at),
    revision: r.revision,
    passphraseHash: r.passphrase_hash,
    limits: JSON.parse(r.limits) as Record<string, number>,
    sessionEpoch: r.session_epoch,
    sessionTtlMs: int(r.session_ttl_ms),
    sessionBindAddress: types.flag(r.session_bind_address),
    rotatedFrom: r.rotated_from,
    rotatedTo: r.rotated_to,
    maxAgeMs: int(r.max_age_ms),
    passphraseEnvelope: r.passphrase_envelope,
    operator: types.flag(r.operator),
    owner: r.owner,
    guardrails: r.guardrails === null ? null : storedGuardrails(r.guardrails),
    risk: r.risk === null ? null : (JSON.parse(r.risk) as KeyRisk),
    certThumbprint: r.cert_thumbprint,
    agent: r.agent === null ? null : (JSON.parse(r.agent) as AgentGrant),
  };
}

/** The columns a patch sets, with their values; `flag` writes a boolean as the store stores it. */
export function patchColumns<B>(patch: KeyPatch, flag: (v: boolean) => B): [string, string | number | B | null][] {
  const out: [string, string | number | B | null][] = [];
  if (patch.label !== undefined) out.push(["label", patch.label]);
  if (patch.scopes !== undefined) out.push(["scopes", JSON.stringify(patch.scopes)]);
  if (patch.ipAllowlist !== undefined) out.push(["ip_allowlist", JSON.stringify(patch.ipAllowlist)]);
  if (patch.limits !== undefined) out.push(["limits", JSON.stringify(patch.limits)]);
  if (patch.expiresAt !== undefined) out.push(["expires_at", patch.expiresAt]);
  if (patch.sessionTtlMs !== undefined) out.push(["session_ttl_ms", patch.sessionTtlMs]);
  if (patch.sessionBindAddress !== undefined) out.push(["session_bind_address", flag(patch.sessionBindAddress)]);
  if (patch.maxAgeMs !== undefined) out.push(["max_age_ms", patch.maxAgeMs]);
  if (patch.owner !== undefined) out.push(["owner", patch.owner]);
  if (patch.guardrails !== undefined) out.push(["guardrails", patch.guardrails === null ? null : JSON.stringify(patch.guardrails)]);
  if (patch.risk !== undefined) out.push(["risk", patch.risk === null ? null : JSON.stringify(patch.risk)]);
  return out;
}

/** The LIKE patterns of a key search (KeyListFilter.search), with `\` as the escape character. */
export interface SearchPatterns {
  /** Matches a text that starts with the search (id, account). */
  readonly prefix: string;
  /** Matches a text that contains the search (label). */
  readonly infix: string;
}

/**
 * A key search's LIKE patterns, or null when nothing can match (a NUL, which no stored text holds
 * and PostgreSQL refuses in a parameter). The user's `%`, `_` and `\` are escaped, so they match
 * themselves. Only ASCII letters are folded to lower case, because that is all both stores fold:
 * SQLite's LIKE and PostgreSQL's lower() under the "C" collation; a search means the same on both.
 */
export function searchPatterns(search: string): SearchPatterns | null {
  if (search.includes("\u0000")) return null;
  const escaped = search.replace(/[A-Z]/g, (c) => c.toLowerCase()).replace(/[\\%_]/g, (c) => `\\${c}`);
  return { prefix: `${escaped}%`, infix: `%${escaped}%` };
}

/** A stored guardrails column; a field added since the row was written (maxOpenNotional) reads as null. */
function storedGuardrails(text: string): KeyGuardrails {
  const g = JSON.parse(text) as Partial<KeyGuardrails>;
  return { ...(g as KeyGuardrails), maxOpenNotional: g.maxOpenNotional ?? null };
}
