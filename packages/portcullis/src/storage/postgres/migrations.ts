import type { ClientBase } from "pg";
import { OperatorError } from "../../errors/catalogue.js";
import { importKeyChanges } from "./audit.js";
import { LOCK_MIGRATIONS, schemaLockKey } from "./locks.js";

/**
 * Versioned PostgreSQL migrations, kept in the schema's own `schema_migrations` table (as
 * storage/sqlite/migrations.ts keeps SQLite's). Append only: a released migration is never edited;
 * a change to the schema is a new entry. Each runs in its own transaction with its row in
 * `schema_migrations`.
 *
 * The numbering is PostgreSQL's own (SQLite's version 16 is not PostgreSQL's): this store was
 * first built with every column SQLite gained in its sixteen migrations, so its version 1 holds
 * them all at once.
 *
 * Every statement names its tables unqualified: the migration runs with `search_path` set to the
 * store's schema, so one database can hold several isolated stores (tests, deployments).
 */
export interface PostgresMigration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
  /** A data step after `sql`, in the same transaction (with `search_path` set to the schema). */
  readonly after?: (client: ClientBase) => Promise<void>;
}

export const postgresMigrations: readonly PostgresMigration[] = [
  {
    version: 1,
    name: "keys, change feed, meta",
    sql: `
      -- Ids and meta keys compare as bytes (COLLATE "C"), as SQLite's TEXT does: pagination
      -- ("id > after ORDER BY id") must not depend on the database's locale.
      CREATE TABLE keys (
        id                   TEXT COLLATE "C" PRIMARY KEY,
        environment          TEXT NOT NULL CHECK (environment IN ('live', 'test')),
        account              TEXT NOT NULL,
        sub_account          TEXT,
        label                TEXT NOT NULL DEFAULT '',
        algorithm            TEXT NOT NULL,
        public_key           TEXT,
        secret_envelope      BYTEA,
        scopes               TEXT NOT NULL,
        ip_allowlist         TEXT NOT NULL,
        dialects             TEXT NOT NULL,
        expires_at           BIGINT,
        window_ms            BIGINT,
        status               TEXT NOT NULL CHECK (status IN ('active', 'suspended', 'revoked')),
        status_reason        TEXT,
        created_at           BIGINT NOT NULL,
        updated_at           BIGINT NOT NULL,
        last_used_at         BIGINT,
        revision             INTEGER NOT NULL DEFAULT 1,
        passphrase_hash      TEXT,
        limits               TEXT NOT NULL DEFAULT '{}',
        session_epoch        INTEGER NOT NULL DEFAULT 0,
        session_ttl_ms       BIGINT,
        session_bind_address BOOLEAN NOT NULL DEFAULT false,
        rotated_from         TEXT COLLATE "C",
        rotated_to           TEXT COLLATE "C",
        max_age_ms           BIGINT,
        passphrase_envelope  BYTEA,
        operator             BOOLEAN NOT NULL DEFAULT false,
        owner                TEXT,
        guardrails           TEXT,
        risk                 TEXT,
        cert_thumbprint      TEXT,
        CHECK ((algorithm = 'hmac-sha256') = (secret_envelope IS NOT NULL)),
        CHECK ((algorithm = 'hmac-sha256') = (public_key IS NULL))
      );
      CREATE INDEX keys_by_account ON keys (account, id);

      -- The change feed: one row per change, written in the change's transaction (under the
      -- store's feed lock, so seq order is commit order). Other processes read it to evict their
      -- caches, woken by the NOTIFY below; after a reconnect they catch up from their last seq.
      CREATE TABLE key_changes (
        seq     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        key_id  TEXT COLLATE "C" NOT NULL,
        action  TEXT NOT NULL,
        actor   TEXT NOT NULL,
        at      BIGINT NOT NULL,
        detail  TEXT NOT NULL
      );

      -- One notification per committing transaction that wrote the feed, on the channel
      -- "<schema>_key_changes" (sent at commit, never for a rollback). The payload is empty: a
      -- listener reads the rows after its last seq.
      CREATE FUNCTION key_changes_notify() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        PERFORM pg_notify(TG_TABLE_SCHEMA || '_key_changes', '');
        RETURN NULL;
      END;
      $$;
      CREATE TRIGGER key_changes_notify AFTER INSERT ON key_changes
        FOR EACH STATEMENT EXECUTE FUNCTION key_changes_notify();

      -- Facts about the deployment (its environment, stored secrets, the KEK floor).
      CREATE TABLE meta (
        key   TEXT COLLATE "C" PRIMARY KEY,
        value TEXT NOT NULL
      );
    `,
  },
  {
    version: 2,
    name: "replay state across restarts",
    sql: `
      -- Per key using increasing nonces (Kraken): the highest value reserved ahead, made durable
      -- before any request at or below it is forwarded; after a restart it is the key's floor
      -- (replay/reservations.ts). Only ever raised. NUMERIC: 2^64 - 1 and beyond, no fraction.
      CREATE TABLE sequence_reservations (
        key_id  TEXT COLLATE "C" PRIMARY KEY,
        ceiling NUMERIC NOT NULL CHECK (ceiling >= 0 AND ceiling = trunc(ceiling))
      );

      -- Sessions ended by logout, refused until they would have expired anyway: loaded again by
      -- a hot store that starts empty, so a restart never brings a logged-out session back.
      CREATE TABLE ended_sessions (
        session_id TEXT COLLATE "C" PRIMARY KEY,
        until      BIGINT NOT NULL
      );
      CREATE INDEX ended_sessions_until ON ended_sessions (until);
    `,
  },
  {
    version: 3,
    name: "audit log",
    sql: `
      -- The tamper-evident audit log (docs/audit.md), as SQLite's migration 6 holds it. seq has no
      -- gaps: every append takes the schema's audit lock (a transaction advisory lock) before it
      -- reads the head, so writers in several processes extend one chain (storage/postgres/audit.ts).
      -- entry is the canonical JSON the hash covers; hash = hex SHA-256(previous hash || entry).
      -- event, key_id and account repeat facts of the entry for queries (verification checks
      -- that they agree with it).
      CREATE TABLE audit_log (
        seq      BIGINT PRIMARY KEY CHECK (seq > 0),
        at       BIGINT NOT NULL,
        event    TEXT COLLATE "C" NOT NULL,
        key_id   TEXT COLLATE "C",
        account  TEXT COLLATE "C",
        entry    TEXT NOT NULL,
        hash     TEXT NOT NULL
      );
      CREATE INDEX audit_by_key ON audit_log (key_id, seq) WHERE key_id IS NOT NULL;
      CREATE INDEX audit_by_account ON audit_log (account, seq) WHERE account IS NOT NULL;

      -- Signed checkpoints: Ed25519 over (seq, hash, at, kid) by the audit-checkpoint key.
      CREATE TABLE audit_checkpoints (
        seq       BIGINT PRIMARY KEY,
        hash      TEXT NOT NULL,
        at        BIGINT NOT NULL,
        kid       TEXT NOT NULL,
        signature BYTEA NOT NULL
      );

      -- The public halves of the keys that signed checkpoints and segment seals.
      CREATE TABLE audit_keys (
        kid        TEXT COLLATE "C" PRIMARY KEY,
        algorithm  TEXT NOT NULL,
        public_key TEXT NOT NULL,
        provider   TEXT NOT NULL,
        created_at BIGINT NOT NULL
      );

      -- Ranges moved into signed segment files.
      CREATE TABLE audit_archives (
        last_seq  BIGINT PRIMARY KEY,
        first_seq BIGINT NOT NULL,
        prev_hash TEXT NOT NULL,
        last_hash TEXT NOT NULL,
        file      TEXT NOT NULL,
        digest    TEXT NOT NULL,
        at        BIGINT NOT NULL,
        kid       TEXT NOT NULL,
        signature BYTEA NOT NULL
      );

      -- Spill files already replayed (appended once however often replayed), and each durable
      -- writer's last batch marker.
      CREATE TABLE audit_spill_replays (
        id        TEXT COLLATE "C" PRIMARY KEY,
        first_seq BIGINT NOT NULL,
        entries   INTEGER NOT NULL,
        at        BIGINT NOT NULL
      );
    `,
    after: importKeyChanges,
  },
  {
    version: 4,
    name: "policy versions, address books, velocity ledger",
    sql: `
      -- SQLite's migration 11. Policy documents (docs/policy.md): one row per version, never
      -- edited; the version in force is the latest. document is the canonical JSON (RFC 8785),
      -- digest its SHA-256 (hex). A new version is inserted under the schema's policy lock.
      CREATE TABLE policy_versions (
        version    INTEGER PRIMARY KEY CHECK (version >= 1),
        document   TEXT NOT NULL,
        digest     TEXT NOT NULL,
        rules      INTEGER NOT NULL,
        created_at BIGINT NOT NULL,
        created_by TEXT NOT NULL
      );

      -- Withdrawal address books, per account and asset. An address is "known" to the policy
      -- from usable_from (added + the cooldown); a removal is immediate and keeps the row. An
      -- entry is added under the account's address lock (de-duplication across processes).
      CREATE TABLE address_book (
        id          TEXT COLLATE "C" PRIMARY KEY,
        account     TEXT COLLATE "C" NOT NULL,
        asset       TEXT COLLATE "C" NOT NULL,
        address     TEXT COLLATE "C" NOT NULL,
        network     TEXT COLLATE "C",
        tag         TEXT COLLATE "C",
        label       TEXT NOT NULL DEFAULT '',
        added_at    BIGINT NOT NULL,
        added_by    TEXT NOT NULL,
        usable_from BIGINT NOT NULL,
        removed_at  BIGINT,
        removed_by  TEXT
      );
      CREATE INDEX address_book_lookup ON address_book (account, asset, address) WHERE removed_at IS NULL;
      CREATE INDEX address_book_by_account ON address_book (account, asset, id);

      -- The velocity ledger: the value (reference currency, an exact decimal kept as NUMERIC
      -- with the scale it was written with; null when unknown) of each withdrawal and transfer
      -- the policy did not block. A decision reads and records under the advisory locks of the
      -- key and account windows it reads (storage/postgres/policy.ts).
      CREATE TABLE policy_spend (
        seq     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        ref     TEXT COLLATE "C" NOT NULL,
        kind    TEXT COLLATE "C" NOT NULL,
        key_id  TEXT COLLATE "C",
        account TEXT COLLATE "C",
        asset   TEXT NOT NULL,
        value   NUMERIC CHECK (value IS NULL OR value >= 0),
        at      BIGINT NOT NULL
      );
      CREATE INDEX policy_spend_by_key ON policy_spend (key_id, kind, at) WHERE key_id IS NOT NULL;
      CREATE INDEX policy_spend_by_account ON policy_spend (account, kind, at) WHERE account IS NOT NULL;
      CREATE INDEX policy_spend_by_ref ON policy_spend (ref);
      CREATE INDEX policy_spend_at ON policy_spend (at);
    `,
  },
  {
    version: 5,
    name: "behaviour state, anomaly actions",
    sql: `
      -- Each key's and account's behaviour state (docs/behaviour.md): opaque bytes the behaviour
      -- model encodes (at most 2,048), under the key id or "account:<name>". version comes from
      -- one sequence, so it is never reused, not even for a state removed and written again: the
      -- compare-and-set of storage/postgres/behaviour.ts never takes a newer state for the one it read.
      CREATE SEQUENCE behaviour_state_version AS BIGINT;
      CREATE TABLE behaviour_state (
        id         TEXT COLLATE "C" PRIMARY KEY,
        state      BYTEA NOT NULL CHECK (octet_length(state) <= 2048),
        version    BIGINT NOT NULL,
        updated_at BIGINT NOT NULL
      );

      -- The anomaly actions the responder took (docs/behaviour.md, "Responses"); seq orders them.
      CREATE TABLE anomaly_actions (
        seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id          TEXT COLLATE "C" NOT NULL UNIQUE,
        key_id      TEXT COLLATE "C" NOT NULL,
        account     TEXT COLLATE "C" NOT NULL,
        action      TEXT NOT NULL CHECK (action IN ('record', 'alert', 'step-up', 'throttle', 'suspend', 'revoke')),
        score       DOUBLE PRECISION NOT NULL,
        explanation TEXT NOT NULL,
        at          BIGINT NOT NULL,
        state       TEXT NOT NULL CHECK (state IN ('active', 'undone', 'done')),
        due_at      BIGINT,
        undone_at   BIGINT,
        undone_by   TEXT
      );
      CREATE INDEX anomaly_actions_key ON anomaly_actions (key_id, seq);
      CREATE INDEX anomaly_actions_account ON anomaly_actions (account, seq);
      CREATE INDEX anomaly_actions_due ON anomaly_actions (due_at, seq) WHERE state = 'active' AND due_at IS NOT NULL;
    `,
  },
  {
    version: 6,
    name: "approvers and held operations",
    sql: `
      -- SQLite's migration 12 (docs/approvals.md). People who approve held operations, each with
      -- an Ed25519 public key (SPKI PEM) and the groups they belong to (a JSON array). Removed
      -- approvers are deleted: their past decisions keep their names and signatures in
      -- held_approvals and the audit log.
      CREATE TABLE approvers (
        name       TEXT COLLATE "C" PRIMARY KEY,
        public_key TEXT NOT NULL,
        groups     TEXT NOT NULL,
        added_at   BIGINT NOT NULL
      );

      -- Held operations. The exact request (or a change's payload) and the upstream's answer are
      -- envelopes under the deployment's KEK; everything the approval digest covers is here in
      -- clear (summary and tiers as JSON text, exactly as written: the digest covers that text),
      -- so any process can recompute the digest and render the operation. Every transition is a
      -- compare-and-swap on state (storage/postgres/holds.ts).
      CREATE TABLE held_operations (
        id             TEXT COLLATE "C" PRIMARY KEY,
        state          TEXT NOT NULL CHECK (state IN ('pending', 'ready', 'releasing', 'released', 'unknown', 'cancelled', 'rejected', 'expired')),
        kind           TEXT NOT NULL,
        target         TEXT NOT NULL CHECK (target IN ('request', 'change')),
        key_id         TEXT COLLATE "C",
        account        TEXT COLLATE "C",
        owner          TEXT,
        summary        TEXT NOT NULL,
        policy_version INTEGER NOT NULL,
        rule           TEXT NOT NULL,
        tiers          TEXT NOT NULL,
        not_before     BIGINT,
        expires_at     BIGINT NOT NULL,
        created_at     BIGINT NOT NULL,
        updated_at     BIGINT NOT NULL,
        request_digest TEXT NOT NULL,
        held           BYTEA NOT NULL,
        outcome_status INTEGER,
        outcome        BYTEA,
        claimed_by     TEXT,
        claimed_at     BIGINT,
        reason         TEXT,
        -- true once an operation that ended without release had its policy value forgotten.
        settled        BOOLEAN NOT NULL DEFAULT false,
        -- true once every tier has its approvals.
        approved       BOOLEAN NOT NULL DEFAULT false
      );
      CREATE INDEX held_operations_state ON held_operations (state, created_at);
      CREATE INDEX held_operations_key ON held_operations (key_id, state);

      CREATE TABLE held_approvals (
        operation_id TEXT COLLATE "C" NOT NULL REFERENCES held_operations (id),
        approver     TEXT COLLATE "C" NOT NULL,
        decision     TEXT NOT NULL CHECK (decision IN ('approve', 'reject')),
        tier         INTEGER,
        signature    TEXT NOT NULL,
        at           BIGINT NOT NULL,
        PRIMARY KEY (operation_id, approver)
      );
    `,
  },
  {
    version: 7,
    name: "key search index",
    sql: `
      -- SQLite's migration 17. The keys list's search walks the keys in id order and must look at
      -- every key when few match: with every column it reads in this index, the walk is an
      -- index-only scan (about a sixth of the table's bytes) rather than a row fetch per key.
      CREATE INDEX keys_search ON keys (id) INCLUDE (account, label, operator, status);
    `,
  },
  {
    version: 8,
    name: "passkeys",
    sql: `
      -- SQLite's migration 18 (docs/passkeys.md): WebAuthn credentials registered to API keys,
      -- the WebAuthn user handle of each key, and the single-use challenges not yet spent.
      CREATE TABLE passkeys (
        id           TEXT COLLATE "C" PRIMARY KEY,
        key_id       TEXT COLLATE "C" NOT NULL,
        account      TEXT COLLATE "C" NOT NULL,
        public_key   TEXT NOT NULL,
        counter      BIGINT NOT NULL CHECK (counter >= 0),
        transports   TEXT NOT NULL,
        label        TEXT NOT NULL,
        created_at   BIGINT NOT NULL,
        last_used_at BIGINT
      );
      CREATE INDEX passkeys_by_key ON passkeys (key_id, created_at);

      CREATE TABLE passkey_users (
        key_id TEXT COLLATE "C" PRIMARY KEY,
        handle TEXT COLLATE "C" NOT NULL UNIQUE
      );

      CREATE TABLE passkey_challenges (
        challenge  TEXT COLLATE "C" PRIMARY KEY,
        ceremony   TEXT NOT NULL CHECK (ceremony IN ('registration', 'authentication')),
        key_id     TEXT COLLATE "C",
        label      TEXT,
        expires_at BIGINT NOT NULL
      );
      CREATE INDEX passkey_challenges_expiry ON passkey_challenges (expires_at);
    `,
  },
  {
    version: 9,
    name: "wallet owners and agent keys",
    sql: `
      -- SQLite's migration 19 (docs/wallets.md): an agent key's grant as JSON text (contract/keys.ts
      -- AgentGrant), NULL for other keys; the owner key of a wallet by its address; the keys
      -- directly below a key (its parent, or the owner key), which a revoke walks down.
      ALTER TABLE keys ADD COLUMN agent TEXT;
      CREATE INDEX keys_wallet ON keys (public_key) WHERE algorithm = 'ethereum';
      CREATE INDEX keys_agent_above ON keys ((COALESCE(agent::jsonb ->> 'parent', agent::jsonb ->> 'ownerKey'))) WHERE agent IS NOT NULL;
    `,
  },
  {
    version: 10,
    name: "hpke keys",
    sql: `
      -- SQLite's migration 20 (docs/sealed-orders.md): the gateway's HPKE key pairs, one row per
      -- generation (UNIQUE: two processes rotating at once insert one; the loser reads the winner's).
      CREATE TABLE hpke_keys (
        id               TEXT COLLATE "C" PRIMARY KEY,
        generation       INTEGER NOT NULL UNIQUE CHECK (generation >= 1),
        public_key       TEXT NOT NULL,
        private_envelope BYTEA,
        created_at       BIGINT NOT NULL,
        not_after        BIGINT NOT NULL,
        retired_at       BIGINT,
        CHECK ((retired_at IS NULL) = (private_envelope IS NOT NULL))
      );
    `,
  },
];

export { LOCK_AUDIT, LOCK_KEK_FLOOR, LOCK_KEY_FEED, LOCK_MIGRATIONS, LOCK_POLICY, nameLockKey, schemaLockKey } from "./locks.js";

/**
 * Creates the schema when needed and applies the migrations it lacks, each in its own
 * transaction, all under a session advisory lock on the schema: processes that start at once
 * wait for the first and then find nothing left to do. Refuses (DATABASE_TOO_NEW) a schema
 * written by a newer Portcullis.
 */
export async function migrate(client: ClientBase, schema: string, migrations: readonly PostgresMigration[] = postgresMigrations): Promise<void> {
  const lockKey = schemaLockKey(schema);
  // Another process's migrations may take long: wait for them however long they take.
  await client.query("SET lock_timeout = 0");
  await client.query("SELECT pg_advisory_lock($1, $2)", [LOCK_MIGRATIONS, lockKey]);
  try {
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
    await client.query(
      `CREATE TABLE IF NOT EXISTS ${schema}.schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`,
    );
    const { rows } = await client.query<{ version: number }>(`SELECT version FROM ${schema}.schema_migrations`);
    const applied = new Set(rows.map((r) => r.version));
    const newest = Math.max(0, ...applied);
    const known = Math.max(...migrations.map((m) => m.version));
    if (newest > known) {
      throw new OperatorError("DATABASE_TOO_NEW", `schema ${schema} is at version ${newest}, newer than this Portcullis (${known}); upgrade Portcullis`);
    }
    for (const m of migrations) {
      if (applied.has(m.version)) continue;
      await client.query("BEGIN");
      try {
        await client.query(`SET LOCAL search_path TO ${schema}`);
        await client.query(m.sql);
        if (m.after !== undefined) await m.after(client);
        await client.query(`INSERT INTO ${schema}.schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`, [m.version, m.name, Date.now()]);
        await client.query("COMMIT");
      } catch (err) {
        await client.query("ROLLBACK").catch(() => undefined);
        throw err;
      }
    }
  } finally {
    await client.query("SELECT pg_advisory_unlock($1, $2)", [LOCK_MIGRATIONS, lockKey]).catch(() => undefined);
    await client.query("RESET lock_timeout").catch(() => undefined);
  }
}
