import { ADMIN_WILDCARD, grantedPermissions } from "../contract/permissions.js";
import type { KeyRecord } from "../contract/keys.js";
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
 *   address only if it has none), no limit overrides and no operator keys (ADMIN_GRANT_EXCEEDED).
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
  grant(what: { account?: string; scopes?: readonly string[]; ipAllowlist?: readonly string[]; limits?: Readonly<Record<string, number>>; operator?: boolean }): void {
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
