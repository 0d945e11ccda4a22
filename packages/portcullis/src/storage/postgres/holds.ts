import type pg from "pg";
import type { PoolClient } from "pg";
import type { AuditFields } from "../../audit/events.js";
import type { ApprovalTier, HoldState } from "../../contract/policy.js";
import type { Advanced, ApprovalRow, ApproverRow, DecisionResult, EnvelopeReplacement, HeldEnvelopeColumn, HeldEnvelopes, HeldRow, HoldListFilter, HoldResult, HoldStore } from "../types.js";
import { nameLockKey } from "./locks.js";
import type { PgAuditWithin } from "./policy.js";
import { transaction } from "./transaction.js";

/**
 * Approvers and held operations on PostgreSQL (migration 6; docs/approvals.md), with the
 * semantics of storage/sqlite/holds.ts. Every transition is one `UPDATE … WHERE state =
 * <expected> … RETURNING` inside a transaction, with its audit entry written through the store's
 * PostgresAudit in the same transaction: of several processes racing for the same transition, the
 * row lock orders them and the later ones find the state moved on and match nothing. Releasing is
 * at most once because `claim` is such a transition (ready -> releasing) and nothing ever moves an
 * operation back to ready.
 *
 * Where SQLite's immediate transactions serialise whole read-then-write steps, these add:
 * - `decide` locks the operation's row (`SELECT … FOR UPDATE`) before it reads the approvals
 *   already recorded: decisions on one operation run one after another, so the tier an approval
 *   counts toward, "duplicate" and "approved" are computed from every decision committed before
 *   it (without the lock, two approvers completing the tiers at once both count as the first and
 *   the operation stays pending; one approver deciding twice at once hits the primary key). It
 *   also reads the approver `FOR SHARE`: an approver removed meanwhile is waited for and then not
 *   found, never counted after the removal committed.
 * - `addApprover` takes the approver name's advisory lock before it reads: two registrations of
 *   one name cannot both read "absent" and the second overwrite the first's groups or key.
 * - every step that changes several operations (`advance`, `cancelForKey`) first locks them in
 *   id order (`ORDER BY id FOR UPDATE`), and a rewrap batch updates them in id order: two such
 *   steps never lock the same rows in opposite orders (no deadlock).
 *
 * `held` and `outcome` are envelopes under the deployment's KEK: every write of one (the hold, its
 * outcome, a rotation's rewrap) checks the KEK floor in its own transaction under the floor's
 * shared advisory lock (PostgresStore.checkKekFloor), and the store's `raiseKekFloor` counts them.
 *
 * PostgreSQL text cannot hold U+0000, where SQLite's can: a lookup by an id or a name containing
 * it (an approver's name comes from the network unchecked) answers "not there", as SQLite does,
 * instead of a server error.
 */

/** The store's KEK floor check (store.ts): rejects with CUSTODY_KEK_RETIRED; call inside the write's transaction, before the write. */
export type PgKekFloorCheck = (client: PoolClient, envelopes: readonly (Buffer | null)[], what: string) => Promise<void>;

/** BIGINT columns arrive as strings (exact); times fit a double. */
type Big = string;

interface HeldSql {
  id: string;
  state: string;
  kind: string;
  target: string;
  key_id: string | null;
  account: string | null;
  owner: string | null;
  summary: string;
  policy_version: number;
  rule: string;
  tiers: string;
  not_before: Big | null;
  expires_at: Big;
  created_at: Big;
  updated_at: Big;
  request_digest: string;
  held: Buffer;
  outcome_status: number | null;
  outcome: Buffer | null;
  claimed_by: string | null;
  claimed_at: Big | null;
  reason: string | null;
  settled: boolean;
  approved: boolean;
}

interface ApproverSql {
  name: string;
  public_key: string;
  groups: string;
  added_at: Big;
}

interface ApprovalSql {
  operation_id: string;
  approver: string;
  decision: string;
  tier: number | null;
  signature: string;
  at: Big;
}

const num = (x: Big | null): number | null => (x === null ? null : Number(x));

function heldFromSql(r: HeldSql): HeldRow {
  return {
    id: r.id,
    state: r.state as HoldState,
    kind: r.kind,
    target: r.target === "change" ? "change" : "request",
    keyId: r.key_id,
    account: r.account,
    owner: r.owner,
    summary: JSON.parse(r.summary) as unknown,
    policyVersion: r.policy_version,
    rule: r.rule,
    tiers: JSON.parse(r.tiers) as ApprovalTier[],
    notBefore: num(r.not_before),
    expiresAt: Number(r.expires_at),
    createdAt: Number(r.created_at),
    updatedAt: Number(r.updated_at),
    requestDigest: r.request_digest,
    held: r.held,
    outcomeStatus: r.outcome_status,
    outcome: r.outcome,
    claimedBy: r.claimed_by,
    claimedAt: num(r.claimed_at),
    reason: r.reason,
  };
}

function approverFromSql(r: ApproverSql): ApproverRow {
  return { name: r.name, publicKey: r.public_key, groups: JSON.parse(r.groups) as string[], addedAt: Number(r.added_at) };
}

function approvalFromSql(r: ApprovalSql): ApprovalRow {
  return { operationId: r.operation_id, approver: r.approver, decision: r.decision === "reject" ? "reject" : "approve", tier: r.tier, signature: r.signature, at: Number(r.at) };
}

/** True when a text cannot be stored (U+0000), so no row can hold it. */
function unstorable(...texts: (string | null | undefined)[]): boolean {
  return texts.some((t) => typeof t === "string" && t.includes("\u0000"));
}

/** States from which an operation can still be cancelled (nothing has been sent). */
const CANCELLABLE = "('pending', 'ready')";

/** The operations one pass of the release loop moves ($1: now, $2: now - leaseMs). */
const DUE = `(state IN ${CANCELLABLE} AND expires_at <= $1)
  OR (state = 'pending' AND approved AND (not_before IS NULL OR not_before <= $1))
  OR (state = 'releasing' AND claimed_at <= $2)`;

type Decision = { readonly approver: string; readonly publicKey: string; readonly decision: "approve" | "reject"; readonly signature: string; readonly at: number; readonly reason?: string | null };

export class PostgresHolds implements HoldStore {
  constructor(
    private readonly pool: pg.Pool,
    private readonly schema: string,
    private readonly audit: PgAuditWithin,
    private readonly checkKekFloor: PgKekFloorCheck,
  ) {}

  private entry(event: AuditFields["event"], row: { id: string; key_id?: string | null; keyId?: string | null; account: string | null }, at: number, actor: string, detail: Record<string, unknown>): AuditFields {
    const key = row.key_id ?? row.keyId ?? undefined;
    return { event, at, actor, key: key ?? undefined, account: row.account ?? undefined, detail: { operation: row.id, ...detail } };
  }

  private tx<T>(fn: (client: PoolClient) => Promise<T>): Promise<T> {
    return transaction(this.pool, fn);
  }

  private async get(q: pg.Pool | PoolClient, id: string): Promise<HeldSql | undefined> {
    return (await q.query<HeldSql>("SELECT * FROM held_operations WHERE id = $1", [id])).rows[0];
  }

  /** Why a compare-and-swap matched nothing. */
  private async whyNot(client: PoolClient, id: string): Promise<HoldResult> {
    const current = await this.get(client, id);
    return current === undefined ? { ok: false, reason: "not-found" } : { ok: false, reason: "state", current: current.state as HoldState };
  }

  // --- approvers ---------------------------------------------------------------------------------

  addApprover(row: ApproverRow, actor: string): Promise<{ readonly ok: true; readonly row: ApproverRow } | { readonly ok: false; readonly reason: "exists" }> {
    return this.tx(async (client) => {
      // One registration of a name at a time: the read below stays true until the commit.
      await client.query("SELECT pg_advisory_xact_lock($1::bigint)", [nameLockKey(this.schema, "approver", row.name).toString()]);
      const existing = (await client.query<ApproverSql>("SELECT * FROM approvers WHERE name = $1", [row.name])).rows[0];
      if (existing !== undefined && existing.public_key !== row.publicKey) return { ok: false as const, reason: "exists" as const };
      const groups = [...new Set([...(existing === undefined ? [] : (JSON.parse(existing.groups) as string[])), ...row.groups])].sort();
      const { rows } = await client.query<ApproverSql>(
        `INSERT INTO approvers (name, public_key, groups, added_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (name) DO UPDATE SET groups = excluded.groups RETURNING *`,
        [row.name, row.publicKey, JSON.stringify(groups), row.addedAt],
      );
      const stored = rows[0] as ApproverSql;
      await this.audit.appendWithin(client, [{ event: "approver.add", at: row.addedAt, actor, detail: { approver: row.name, groups, added: row.groups } }]);
      return { ok: true as const, row: approverFromSql(stored) };
    });
  }

  async removeApprover(name: string, actor: string, at: number): Promise<boolean> {
    if (unstorable(name)) return false;
    return this.tx(async (client) => {
      const removed = ((await client.query("DELETE FROM approvers WHERE name = $1", [name])).rowCount ?? 0) === 1;
      if (removed) await this.audit.appendWithin(client, [{ event: "approver.remove", at, actor, detail: { approver: name } }]);
      return removed;
    });
  }

  async approver(name: string): Promise<ApproverRow | undefined> {
    if (unstorable(name)) return undefined;
    const r = (await this.pool.query<ApproverSql>("SELECT * FROM approvers WHERE name = $1", [name])).rows[0];
    return r === undefined ? undefined : approverFromSql(r);
  }

  async approvers(): Promise<ApproverRow[]> {
    return (await this.pool.query<ApproverSql>("SELECT * FROM approvers ORDER BY name")).rows.map(approverFromSql);
  }

  // --- held operations -----------------------------------------------------------------------------

  async insertHold(row: HeldRow, actor: string): Promise<void> {
    await this.tx(async (client) => {
      await this.checkKekFloor(client, [row.held], `held operation ${row.id}`);
      await client.query(
        `INSERT INTO held_operations (id, state, kind, target, key_id, account, owner, summary, policy_version, rule, tiers,
           not_before, expires_at, created_at, updated_at, request_digest, held, approved)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)`,
        [
          row.id,
          row.state,
          row.kind,
          row.target,
          row.keyId,
          row.account,
          row.owner,
          JSON.stringify(row.summary),
          row.policyVersion,
          row.rule,
          JSON.stringify(row.tiers),
          row.notBefore,
          row.expiresAt,
          row.createdAt,
          row.updatedAt,
          row.requestDigest,
          row.held,
          row.tiers.length === 0,
        ],
      );
      await this.audit.appendWithin(client, [
        this.entry("operation.hold", row, row.createdAt, actor, {
          kind: row.kind,
          policyVersion: row.policyVersion,
          rule: row.rule,
          approvals: row.tiers,
          notBefore: row.notBefore,
          expiresAt: row.expiresAt,
        }),
      ]);
    });
  }

  async hold(id: string): Promise<HeldRow | undefined> {
    if (unstorable(id)) return undefined;
    const r = await this.get(this.pool, id);
    return r === undefined ? undefined : heldFromSql(r);
  }

  async holds(filter: HoldListFilter): Promise<HeldRow[]> {
    if (unstorable(filter.keyId)) return [];
    const where: string[] = [];
    const params: unknown[] = [];
    if (filter.state !== undefined) {
      params.push(filter.state);
      where.push(`state = $${params.length}`);
    }
    if (filter.keyId !== undefined) {
      params.push(filter.keyId);
      where.push(`key_id = $${params.length}`);
    }
    params.push(filter.limit);
    const sql = `SELECT * FROM held_operations ${where.length === 0 ? "" : `WHERE ${where.join(" AND ")}`} ORDER BY created_at DESC, id LIMIT $${params.length}`;
    return (await this.pool.query<HeldSql>(sql, params)).rows.map(heldFromSql);
  }

  async approvals(id: string): Promise<ApprovalRow[]> {
    if (unstorable(id)) return [];
    return (await this.pool.query<ApprovalSql>("SELECT * FROM held_approvals WHERE operation_id = $1 ORDER BY at, approver", [id])).rows.map(approvalFromSql);
  }

  async decide(id: string, d: Decision, rejectCancels: boolean): Promise<DecisionResult> {
    if (unstorable(id)) return { ok: false, reason: "not-found" };
    return this.tx(async (client): Promise<DecisionResult> => {
      // The operation's row lock first: every decision on it commits before this one reads.
      const row = (await client.query<HeldSql>("SELECT * FROM held_operations WHERE id = $1 FOR UPDATE", [id])).rows[0];
      if (row === undefined) return { ok: false, reason: "not-found" };
      if (row.state !== "pending") return { ok: false, reason: "state", current: row.state as HoldState };
      if (Number(row.expires_at) <= d.at) return { ok: false, reason: "expired" };
      if (unstorable(d.approver)) return { ok: false, reason: "approver-unknown" };
      // FOR SHARE: a removal in flight is waited for (and then the approver is not found).
      const approver = (await client.query<ApproverSql>("SELECT * FROM approvers WHERE name = $1 FOR SHARE", [d.approver])).rows[0];
      if (approver?.public_key !== d.publicKey) return { ok: false, reason: "approver-unknown" };
      const decided = await client.query("SELECT 1 FROM held_approvals WHERE operation_id = $1 AND approver = $2", [id, d.approver]);
      if ((decided.rowCount ?? 0) > 0) return { ok: false, reason: "duplicate" };
      const tiers = JSON.parse(row.tiers) as ApprovalTier[];
      const groups = new Set(JSON.parse(approver.groups) as string[]);
      let tier: number | null = null;
      let approved = false;
      if (d.decision === "approve") {
        const have = tiers.map(() => 0);
        const counted = await client.query<{ tier: number | null }>("SELECT tier FROM held_approvals WHERE operation_id = $1 AND decision = 'approve'", [id]);
        for (const a of counted.rows) {
          if (a.tier !== null && a.tier < have.length) have[a.tier] = (have[a.tier] ?? 0) + 1;
        }
        // The first tier of the approver's groups that still needs an approval: one person counts
        // once, toward one tier, so two tiers always take distinct people.
        const index = tiers.findIndex((t, i) => groups.has(t.group) && (have[i] ?? 0) < t.count);
        if (index < 0) return { ok: false, reason: "not-in-group" };
        tier = index;
        have[index] = (have[index] ?? 0) + 1;
        approved = tiers.every((t, i) => (have[i] ?? 0) >= t.count);
      } else if (!tiers.some((t) => groups.has(t.group))) {
        return { ok: false, reason: "not-in-group" };
      }
      await client.query("INSERT INTO held_approvals (operation_id, approver, decision, tier, signature, at) VALUES ($1, $2, $3, $4, $5, $6)", [
        id,
        d.approver,
        d.decision,
        tier,
        d.signature,
        d.at,
      ]);
      const actor = `approver:${d.approver}`;
      const entries: AuditFields[] = [];
      let updated: HeldSql | undefined;
      if (d.decision === "reject") {
        const why = d.reason ?? null;
        entries.push(this.entry("approval.reject", row, d.at, actor, { approver: d.approver, reason: why }));
        if (rejectCancels) {
          updated = (
            await client.query<HeldSql>("UPDATE held_operations SET state = 'rejected', updated_at = $1, reason = $2 WHERE id = $3 AND state = 'pending' RETURNING *", [
              d.at,
              `rejected by ${d.approver}${why === null ? "" : `: ${why}`}`,
              id,
            ])
          ).rows[0];
          entries.push(this.entry("operation.reject", row, d.at, actor, { approver: d.approver, reason: why }));
        }
      } else {
        entries.push(this.entry("approval.sign", row, d.at, actor, { approver: d.approver, group: tiers[tier ?? 0]?.group }));
        const ready = approved && (row.not_before === null || Number(row.not_before) <= d.at);
        updated = (
          await client.query<HeldSql>("UPDATE held_operations SET approved = $1, state = $2, updated_at = $3 WHERE id = $4 AND state = 'pending' RETURNING *", [
            approved,
            ready ? "ready" : "pending",
            d.at,
            id,
          ])
        ).rows[0];
        if (ready) entries.push(this.entry("operation.ready", row, d.at, actor, {}));
      }
      await this.audit.appendWithin(client, entries);
      return { ok: true, row: heldFromSql(updated ?? row) };
    });
  }

  async cancel(id: string, keyId: string | null, at: number, actor: string, reason: string): Promise<HoldResult> {
    if (unstorable(id, keyId)) return { ok: false, reason: "not-found" };
    return this.tx(async (client): Promise<HoldResult> => {
      const row = (
        await client.query<HeldSql>(
          `UPDATE held_operations SET state = 'cancelled', updated_at = $1, reason = $2
           WHERE id = $3 AND state IN ${CANCELLABLE} AND ($4::text IS NULL OR key_id = $4) RETURNING *`,
          [at, reason, id, keyId],
        )
      ).rows[0];
      if (row === undefined) {
        const current = await this.get(client, id);
        // Another key's operation is not found, as for no operation at all.
        if (current === undefined || (keyId !== null && current.key_id !== keyId)) return { ok: false, reason: "not-found" };
        return { ok: false, reason: "state", current: current.state as HoldState };
      }
      await this.audit.appendWithin(client, [this.entry("operation.cancel", row, at, actor, { reason })]);
      return { ok: true, row: heldFromSql(row) };
    });
  }

  /**
   * Cancels every pending or ready operation of a key that is being revoked or suspended. Called
   * by the store inside the key change's own transaction (store.ts `transition`), after the key's
   * row is updated (and locked): once the key change commits, none of them can be claimed for
   * release, and a claim that committed first finds nothing here to cancel.
   */
  async cancelForKey(client: PoolClient, keyId: string, status: string, at: number, actor: string): Promise<void> {
    const locked = await client.query<{ id: string }>(`SELECT id FROM held_operations WHERE key_id = $1 AND state IN ${CANCELLABLE} ORDER BY id FOR UPDATE`, [keyId]);
    if (locked.rows.length === 0) return;
    const { rows } = await client.query<HeldSql>(
      `UPDATE held_operations SET state = 'cancelled', updated_at = $1, reason = $2 WHERE id = ANY($3::text[]) AND state IN ${CANCELLABLE} RETURNING *`,
      [at, `key ${status}`, locked.rows.map((r) => r.id)],
    );
    rows.sort(byId);
    if (rows.length > 0) await this.audit.appendWithin(client, rows.map((r) => this.entry("operation.cancel", r, at, actor, { reason: `key ${status}` })));
  }

  async advance(now: number, leaseMs: number): Promise<Advanced> {
    // The release loop calls this twice a second in every process, nearly always with nothing to
    // do: one read first, and a transaction only when something is due.
    const lease = now - leaseMs;
    const due = await this.pool.query(`SELECT 1 FROM held_operations WHERE ${DUE} LIMIT 1`, [now, lease]);
    if ((due.rowCount ?? 0) === 0) return { ready: [], expired: [], unknown: [] };
    return this.tx(async (client): Promise<Advanced> => {
      // Everything due, locked in id order (see the class comment); what another process moved
      // meanwhile no longer matches and is not locked.
      const locked = (await client.query<{ id: string }>(`SELECT id FROM held_operations WHERE ${DUE} ORDER BY id FOR UPDATE`, [now, lease])).rows.map((r) => r.id);
      if (locked.length === 0) return { ready: [], expired: [], unknown: [] };
      const expired = (
        await client.query<HeldSql>(
          `UPDATE held_operations SET state = 'expired', updated_at = $1 WHERE id = ANY($2::text[]) AND state IN ${CANCELLABLE} AND expires_at <= $1 RETURNING *`,
          [now, locked],
        )
      ).rows.sort(byId);
      const ready = (
        await client.query<HeldSql>(
          `UPDATE held_operations SET state = 'ready', updated_at = $1
           WHERE id = ANY($2::text[]) AND state = 'pending' AND approved AND (not_before IS NULL OR not_before <= $1) RETURNING *`,
          [now, locked],
        )
      ).rows.sort(byId);
      const unknown = (
        await client.query<HeldSql>(
          "UPDATE held_operations SET state = 'unknown', updated_at = $1 WHERE id = ANY($2::text[]) AND state = 'releasing' AND claimed_at <= $3 RETURNING *",
          [now, locked, lease],
        )
      ).rows.sort(byId);
      const entries = [
        ...expired.map((r) => this.entry("operation.expire", r, now, "gateway", {})),
        ...ready.map((r) => this.entry("operation.ready", r, now, "gateway", {})),
        ...unknown.map((r) => this.entry("operation.unknown", r, now, "gateway", { claimedBy: r.claimed_by, claimedAt: num(r.claimed_at) })),
      ];
      if (entries.length > 0) await this.audit.appendWithin(client, entries);
      return { ready: ready.map((r) => r.id), expired: expired.map((r) => r.id), unknown: unknown.map((r) => r.id) };
    });
  }

  async readyIds(limit: number): Promise<string[]> {
    return (await this.pool.query<{ id: string }>("SELECT id FROM held_operations WHERE state = 'ready' ORDER BY created_at, id LIMIT $1", [limit])).rows.map((r) => r.id);
  }

  async claim(id: string, by: string, now: number): Promise<HoldResult> {
    if (unstorable(id)) return { ok: false, reason: "not-found" };
    return this.tx(async (client): Promise<HoldResult> => {
      const row = await this.get(client, id);
      if (row === undefined) return { ok: false, reason: "not-found" };
      if (row.state !== "ready") return { ok: false, reason: "state", current: row.state as HoldState };
      // Each way out below is a compare-and-swap from ready: of several processes claiming at
      // once, the row lock orders them and only the first still finds it ready.
      if (Number(row.expires_at) <= now) {
        const expired = await client.query<HeldSql>("UPDATE held_operations SET state = 'expired', updated_at = $1 WHERE id = $2 AND state = 'ready' RETURNING *", [now, id]);
        if (expired.rows[0] === undefined) return this.whyNot(client, id);
        await this.audit.appendWithin(client, [this.entry("operation.expire", row, now, "gateway", {})]);
        return { ok: false, reason: "state", current: "expired" };
      }
      if (row.key_id !== null) {
        // The initiating key must still be active, checked in the claim's own transaction: a key
        // revoked or suspended before this commits has cancelled the operation (its transaction
        // locked the row first, so the swap below then matches nothing), and one that expired
        // since the hold cancels it here.
        const key = (await client.query<{ status: string; expires_at: Big | null }>("SELECT status, expires_at FROM keys WHERE id = $1", [row.key_id])).rows[0];
        const active = key !== undefined && key.status === "active" && (key.expires_at === null || Number(key.expires_at) > now);
        if (!active) {
          const reason = key === undefined ? "key not found" : key.status === "active" ? "key expired" : `key ${key.status}`;
          const cancelled = await client.query<HeldSql>("UPDATE held_operations SET state = 'cancelled', updated_at = $1, reason = $2 WHERE id = $3 AND state = 'ready' RETURNING *", [
            now,
            reason,
            id,
          ]);
          if (cancelled.rows[0] === undefined) return this.whyNot(client, id);
          await this.audit.appendWithin(client, [this.entry("operation.cancel", row, now, "gateway", { reason })]);
          return { ok: false, reason: "state", current: "cancelled" };
        }
      }
      const claimed = (
        await client.query<HeldSql>("UPDATE held_operations SET state = 'releasing', claimed_by = $1, claimed_at = $2, updated_at = $2 WHERE id = $3 AND state = 'ready' RETURNING *", [
          by,
          now,
          id,
        ])
      ).rows[0];
      if (claimed === undefined) return this.whyNot(client, id);
      return { ok: true, row: heldFromSql(claimed) };
    });
  }

  async finish(id: string, by: string, now: number, status: number, outcome: Buffer): Promise<boolean> {
    if (unstorable(id, by)) return false;
    return this.tx(async (client) => {
      await this.checkKekFloor(client, [outcome], `held operation ${id}'s outcome`);
      const row = (
        await client.query<HeldSql>(
          "UPDATE held_operations SET state = 'released', outcome_status = $1, outcome = $2, updated_at = $3 WHERE id = $4 AND claimed_by = $5 AND state IN ('releasing', 'unknown') RETURNING *",
          [status, outcome, now, id, by],
        )
      ).rows[0];
      if (row === undefined) return false;
      await this.audit.appendWithin(client, [this.entry("operation.release", row, now, "gateway", { status, claimedBy: by })]);
      return true;
    });
  }

  async unsettled(limit: number): Promise<string[]> {
    const { rows } = await this.pool.query<{ id: string }>(
      "SELECT id FROM held_operations WHERE NOT settled AND state IN ('cancelled', 'rejected', 'expired') ORDER BY updated_at, id LIMIT $1",
      [limit],
    );
    return rows.map((r) => r.id);
  }

  async settle(id: string): Promise<boolean> {
    if (unstorable(id)) return false;
    const result = await this.pool.query("UPDATE held_operations SET settled = true WHERE id = $1 AND NOT settled AND state IN ('cancelled', 'rejected', 'expired')", [id]);
    return result.rowCount === 1;
  }

  // --- custody: envelopes for KEK rotation (store.ts EnvelopeStore delegates here) ------------------

  async heldEnvelopes(after: string, limit: number): Promise<HeldEnvelopes[]> {
    const { rows } = await this.pool.query<{ id: string; held: Buffer; outcome: Buffer | null }>("SELECT id, held, outcome FROM held_operations WHERE id > $1 ORDER BY id LIMIT $2", [
      after,
      limit,
    ]);
    return rows.map((r) => ({ id: r.id, held: r.held, outcome: r.outcome }));
  }

  /** Compare-and-swap per envelope, all in one transaction that checks the floor; no audit entry (the plaintext does not change). */
  async replaceHeldEnvelopes(replacements: readonly EnvelopeReplacement<HeldEnvelopeColumn>[]): Promise<number> {
    if (replacements.length === 0) return 0;
    // In id order, as every step that locks several operations (see the class comment).
    const ordered = [...replacements].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : a.column < b.column ? -1 : a.column > b.column ? 1 : 0));
    return this.tx(async (client) => {
      await this.checkKekFloor(
        client,
        ordered.map((r) => r.next),
        "a rewrap batch of held operations",
      );
      let n = 0;
      for (const r of ordered) {
        const column = r.column === "held" ? "held" : "outcome";
        const result = await client.query(`UPDATE held_operations SET ${column} = $1 WHERE id = $2 AND ${column} = $3`, [r.next, r.id, r.expected]);
        n += result.rowCount ?? 0;
      }
      return n;
    });
  }
}

/** Byte order of ids (COLLATE "C"), for entries written in a fixed order. */
function byId(a: { id: string }, b: { id: string }): number {
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}
