import { ADMIN_WILDCARD, grantedPermissions } from "../contract/permissions.js";
import type { KeyGuardrails, KeyRecord } from "../contract/keys.js";
import { compactSymbol } from "../operations/guardrails.js";
import { compareDecimal, parseDecimal } from "../operations/decimal.js";
import { PortcullisError } from "../errors/catalogue.js";
import { CidrSet, parseCidr } from "../net/ip.js";

/**
 * What an admin key may reach (OWASP API1 / API3 / API5). An operator key (`KeyRecord.operator`)
 * manages every account's keys. Any other admin key is an account admin key:
 *
 * - it sees only the keys of its own account that are not operator keys; any other key is
 *   KEY_NOT_FOUND, exactly as a key that does not exist, so key ids of other accounts do not leak;
 * - what it creates, changes or rotates stays within what it holds itself: its own account, scopes
 *   it holds (`admin:*` only if it holds `admin:*`), addresses inside its own allowlist (any
 *   address only if it has none), no limit overrides and no operator keys (ADMIN_GRANT_EXCEEDED);
 * - guardrails (docs/guardrails.md) only narrow: an account admin key with guardrails of its own
 *   gives every key it creates, changes or rotates guardrails at least as narrow, field by field
 *   (symbols and assets within its own lists, caps and band no larger than its own). One without
 *   guardrails may set any. Guardrails bound what a key's orders may carry, so an admin key that
 *   is itself bounded must not mint a key that is not.
 */
export class AdminReach {
  private readonly caller: KeyRecord;
  private readonly scopes: readonly string[];
  private readonly granted: ReadonlySet<string>;

  /** `scopes`: what the request acts with (a session's may be narrower than its key's). */
  constructor(caller: KeyRecord, scopes: readonly string[]) {
    this.caller = caller;
    this.scopes = scopes;
    this.granted = grantedPermissions(scopes);
  }

  /** The caller's account, or null for an operator (every account). */
  get account(): string | null {
    return this.caller.operator ? null : this.caller.account;
  }

  /** The key, if the caller may see it; KEY_NOT_FOUND otherwise. */
  reach<K extends KeyRecord>(key: K): K {
    if (this.caller.operator || (!key.operator && key.account === this.caller.account)) return key;
    throw new PortcullisError("KEY_NOT_FOUND");
  }

  /** Refuses (ADMIN_GRANT_EXCEEDED) a key the caller could not hold itself. */
  grant(what: {
    account?: string;
    scopes?: readonly string[];
    ipAllowlist?: readonly string[];
    limits?: Readonly<Record<string, number>>;
    operator?: boolean;
    guardrails?: KeyGuardrails | null;
  }): void {
    if (this.caller.operator) return;
    const exceeded = (detail: string): never => {
      throw new PortcullisError("ADMIN_GRANT_EXCEEDED", `an account admin key cannot grant ${detail}`);
    };
    if (what.operator === true) exceeded("an operator key");
    if (what.account !== undefined && what.account !== this.caller.account) exceeded(`keys of account ${what.account} (it manages ${this.caller.account})`);
    if (what.limits !== undefined && Object.keys(what.limits).length > 0) exceeded("limit overrides");
    if (what.scopes !== undefined) {
      const missing = what.scopes.filter((s) => (s === ADMIN_WILDCARD ? !this.scopes.includes(ADMIN_WILDCARD) : !this.granted.has(s)));
      if (missing.length > 0) exceeded(`scopes it does not hold: ${missing.join(", ")}`);
    }
    if (what.ipAllowlist !== undefined && !this.within(what.ipAllowlist)) {
      exceeded(`addresses outside its own allowlist (${this.caller.ipAllowlist.join(", ")})`);
    }
    if (what.guardrails !== undefined) {
      const looser = looserGuardrails(what.guardrails, this.caller.guardrails);
      if (looser.length > 0) exceeded(`guardrails looser than its own (${looser.join(", ")})`);
    }
  }

  /** Is every block of `allowlist` inside one of the caller's (an empty list is any address)? */
  private within(allowlist: readonly string[]): boolean {
    const own = this.caller.ipAllowlist;
    if (own.length === 0) return true;
    if (allowlist.length === 0) return false;
    const blocks = own.map((b) => ({ set: new CidrSet([b]), ...prefixOf(b) }));
    return allowlist.every((entry) => {
      const inner = prefixOf(entry);
      return blocks.some((b) => b.v === inner.v && b.bits <= inner.bits && b.set.hasText(inner.network));
    });
  }
}

/** A block's family, network address and prefix length, from its canonical text. */
function prefixOf(block: string): { v: 4 | 6; network: string; bits: number } {
  const parsed = parseCidr(block);
  const slash = parsed.canonical.lastIndexOf("/");
  return { v: parsed.v, network: parsed.canonical.slice(0, slash), bits: Number(parsed.canonical.slice(slash + 1)) };
}

/**
 * The guardrail fields of `granted` that are looser than `own` (empty when within): a field `own`
 * sets must be set in `granted` too, to a list within its list or a cap no larger.
 */
export function looserGuardrails(granted: KeyGuardrails | null, own: KeyGuardrails | null): string[] {
  if (own === null) return [];
  const out: string[] = [];
  const g = granted;
  const listWithin = (field: "symbols" | "withdrawAssets" | "transferAssets", norm: (s: string) => string): void => {
    const mine = own[field];
    if (mine === null) return;
    const theirs = g?.[field] ?? null;
    const allowed = new Set(mine.map(norm));
    if (theirs === null || theirs.some((s) => !allowed.has(norm(s)))) out.push(field);
  };
  const capWithin = (field: "maxQuantity" | "maxNotional" | "priceBandPct" | "maxOpenNotional"): void => {
    const mine = own[field] ?? null;
    if (mine === null) return;
    const theirs = g?.[field] ?? null;
    const a = theirs === null ? null : parseDecimal(theirs);
    const b = parseDecimal(mine);
    if (a === null || b === null || compareDecimal(a, b) > 0) out.push(field);
  };
  listWithin("symbols", compactSymbol);
  capWithin("maxQuantity");
  capWithin("maxNotional");
  capWithin("priceBandPct");
  capWithin("maxOpenNotional");
  listWithin("withdrawAssets", (s) => s);
  listWithin("transferAssets", (s) => s);
  return out;
}
