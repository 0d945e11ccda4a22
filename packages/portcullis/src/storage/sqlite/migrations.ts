import type Database from "better-sqlite3";
import { importKeyChanges } from "./audit.js";

/**
 * Versioned SQLite migrations. Append only: a released migration is never edited; a change to the
 * schema is a new entry. Each runs in its own transaction with its row in schema_migrations.
 */
export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
  /** A data step run after `sql`, in the same transaction. */
  readonly after?: (db: Database.Database) => void;
}

export const migrations: readonly Migration[] = [
  {
    version: 1,
    name: "keys",
    sql: `
      CREATE TABLE keys (
        id              TEXT PRIMARY KEY,
        environment     TEXT NOT NULL CHECK (environment IN ('live', 'test')),
        account         TEXT NOT NULL,
        sub_account     TEXT,
        label           TEXT NOT NULL DEFAULT '',
        algorithm       TEXT NOT NULL,
        public_key      TEXT,
        secret_envelope BLOB,
        scopes          TEXT NOT NULL,
        ip_allowlist    TEXT NOT NULL,
        dialects        TEXT NOT NULL,
        expires_at      INTEGER,
        window_ms       INTEGER,
        status          TEXT NOT NULL CHECK (status IN ('active', 'suspended', 'revoked')),
        status_reason   TEXT,
        created_at      INTEGER NOT NULL,
        updated_at      INTEGER NOT NULL,
        last_used_at    INTEGER,
        revision        INTEGER NOT NULL DEFAULT 1,
        CHECK ((algorithm = 'hmac-sha256') = (secret_envelope IS NOT NULL)),
        CHECK ((algorithm = 'hmac-sha256') = (public_key IS NULL))
      ) STRICT;
      CREATE INDEX keys_by_account ON keys (account, id);

      -- The change feed: one row per change, written in the change's transaction. Other
      -- processes (a gateway beside the CLI) read it to evict their caches.
      CREATE TABLE key_changes (
        seq     INTEGER PRIMARY KEY AUTOINCREMENT,
        key_id  TEXT NOT NULL,
        action  TEXT NOT NULL,
        actor   TEXT NOT NULL,
        at      INTEGER NOT NULL,
        detail  TEXT NOT NULL
      ) STRICT;

      -- Facts about the data directory itself (its environment, live or test).
      CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
      ) STRICT;
    `,
  },
  {
    version: 2,
    name: "key passphrases",
    sql: `
      -- OKX keys carry a passphrase: stored only as a salted scrypt hash.
      ALTER TABLE keys ADD COLUMN passphrase_hash TEXT;
    `,
  },
  {
    version: 3,
    name: "key limit overrides",
    sql: `
      -- Per-key overrides of configured limits, by limit name: {"key-weight-1m": 12000}.
      ALTER TABLE keys ADD COLUMN limits TEXT NOT NULL DEFAULT '{}';
    `,
  },
  {
    version: 4,
    name: "key sessions and rotation",
    sql: `
      -- Sessions: the key's epoch (incremented to end every session of the key at once), the
      -- lifetime of its sessions (null: the gateway default) and whether they are bound to the
      -- address they logged on from.
      ALTER TABLE keys ADD COLUMN session_epoch INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE keys ADD COLUMN session_ttl_ms INTEGER;
      ALTER TABLE keys ADD COLUMN session_bind_address INTEGER NOT NULL DEFAULT 0 CHECK (session_bind_address IN (0, 1));
      -- Rotation: the links between a key and its predecessor / successor, and the scheduled
      -- rotation policy (maximum age; null for none).
      ALTER TABLE keys ADD COLUMN rotated_from TEXT;
      ALTER TABLE keys ADD COLUMN rotated_to TEXT;
      ALTER TABLE keys ADD COLUMN max_age_ms INTEGER;
    `,
  },
  {
    version: 5,
    name: "passphrases under the KEK",
    sql: `
      -- OKX passphrase material under the key-encryption key: the salted scrypt hash,
      -- envelope-encrypted and bound to the key id. passphrase_hash keeps only hashes written
      -- before this migration, until the next custody open seals them (and clears it).
      ALTER TABLE keys ADD COLUMN passphrase_envelope BLOB;
    `,
  },
  {
    version: 6,
    name: "audit log",
    sql: `
      -- The tamper-evident audit log (docs/audit.md). seq has no gaps; entry is the canonical JSON the
      -- hash covers; hash = hex SHA-256(previous hash || entry), hashes as 64 lower-case hex digits.
      -- event, key_id and account repeat facts of the entry for queries (verification checks that
      -- they agree with it).
      CREATE TABLE audit_log (
        seq      INTEGER PRIMARY KEY,
        at       INTEGER NOT NULL,
        event    TEXT NOT NULL,
        key_id   TEXT,
        account  TEXT,
        entry    TEXT NOT NULL,
        hash     TEXT NOT NULL
      ) STRICT;
      CREATE INDEX audit_by_key ON audit_log (key_id, seq) WHERE key_id IS NOT NULL;
      CREATE INDEX audit_by_account ON audit_log (account, seq) WHERE account IS NOT NULL;

      -- Signed checkpoints: Ed25519 over (seq, hash, at, kid) by the audit-checkpoint key.
      CREATE TABLE audit_checkpoints (
        seq       INTEGER PRIMARY KEY,
        hash      TEXT NOT NULL,
        at        INTEGER NOT NULL,
        kid       TEXT NOT NULL,
        signature BLOB NOT NULL
      ) STRICT;

      -- The public halves of the keys that signed checkpoints and segment seals.
      CREATE TABLE audit_keys (
        kid        TEXT PRIMARY KEY,
        algorithm  TEXT NOT NULL,
        public_key TEXT NOT NULL,
        provider   TEXT NOT NULL,
        created_at INTEGER NOT NULL
      ) STRICT;

      -- Ranges moved into signed segment files (portcullis audit archive).
      CREATE TABLE audit_archives (
        last_seq  INTEGER PRIMARY KEY,
        first_seq INTEGER NOT NULL,
        prev_hash TEXT NOT NULL,
        last_hash TEXT NOT NULL,
        file      TEXT NOT NULL,
        digest    TEXT NOT NULL,
        at        INTEGER NOT NULL,
        kid       TEXT NOT NULL,
        signature BLOB NOT NULL
      ) STRICT;

      -- Spill files already replayed, so a file replayed twice (a crash between the commit and the
      -- file's removal, or two processes) is appended once.
      CREATE TABLE audit_spill_replays (
        id        TEXT PRIMARY KEY,
        first_seq INTEGER NOT NULL,
        entries   INTEGER NOT NULL,
        at        INTEGER NOT NULL
      ) STRICT;
    `,
    after: importKeyChanges,
  },
  {
    version: 7,
    name: "operator keys",
    sql: `
      -- Operator keys manage every account's keys; other admin keys only their own account's.
      -- Admin keys created before this version could manage every account: they become operator
      -- keys, so an upgrade takes no access away (docs/admin-api.md).
      ALTER TABLE keys ADD COLUMN operator INTEGER NOT NULL DEFAULT 0 CHECK (operator IN (0, 1));
      UPDATE keys SET operator = 1
        WHERE EXISTS (SELECT 1 FROM json_each(keys.scopes) WHERE value IN ('admin:*', 'admin:keys'));
    `,
  },
  {
    version: 8,
    name: "replay state across restarts",
    sql: `
      -- Per key using increasing nonces (Kraken): the highest value reserved ahead, made durable
      -- before any request at or below it is forwarded; after a restart it is the key's floor
      -- (replay/reservations.ts). A decimal string (up to 2^64 - 1 and beyond), no leading zeros.
      CREATE TABLE sequence_reservations (
        key_id  TEXT PRIMARY KEY,
        ceiling TEXT NOT NULL CHECK (ceiling GLOB '[0-9]*' AND (ceiling = '0' OR ceiling NOT GLOB '0*'))
      ) STRICT;

      -- Sessions ended by logout, refused until they would have expired anyway: loaded again by
      -- a hot store that starts empty, so a restart never brings a logged-out session back.
      CREATE TABLE ended_sessions (
        session_id TEXT PRIMARY KEY,
        until      INTEGER NOT NULL
      ) STRICT;
      CREATE INDEX ended_sessions_until ON ended_sessions (until);

      -- A database that already holds keys was served by an earlier version, which kept no
      -- replay state across restarts: the first start after the upgrade is fenced like any restart.
      INSERT INTO meta (key, value) SELECT 'replay.memory.served', 'before migration 8' WHERE EXISTS (SELECT 1 FROM keys)
        ON CONFLICT (key) DO NOTHING;
    `,
  },
  {
    version: 9,
    name: "key owners",
    sql: `
      -- The person who owns a key (approvers are people too: an owner never approves what the
      -- key initiated).
      ALTER TABLE keys ADD COLUMN owner TEXT;
    `,
  },
  {
    version: 10,
    name: "key guardrails",
    sql: `
      -- Per-key guardrails (docs/guardrails.md): a JSON object of symbol and asset allowlists,
      -- order caps and a price band, decimals as strings; NULL for none.
      ALTER TABLE keys ADD COLUMN guardrails TEXT;
    `,
  },
  {
    version: 11,
    name: "policy versions, address books, velocity ledger",
    sql: `
      -- Policy documents (docs/policy.md): one row per version, never edited; the version in
      -- force is the latest. document is the canonical JSON (RFC 8785), digest its SHA-256 (hex).
      CREATE TABLE policy_versions (
        version    INTEGER PRIMARY KEY CHECK (version >= 1),
        document   TEXT NOT NULL,
        digest     TEXT NOT NULL,
        rules      INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        created_by TEXT NOT NULL
      ) STRICT;

      -- Withdrawal address books, per account and asset. An address is "known" to the policy
      -- from usable_from (added + the cooldown); a removal is immediate and keeps the row.
      CREATE TABLE address_book (
        id          TEXT PRIMARY KEY,
        account     TEXT NOT NULL,
        asset       TEXT NOT NULL,
        address     TEXT NOT NULL,
        network     TEXT,
        tag         TEXT,
        label       TEXT NOT NULL DEFAULT '',
        added_at    INTEGER NOT NULL,
        added_by    TEXT NOT NULL,
        usable_from INTEGER NOT NULL,
        removed_at  INTEGER,
        removed_by  TEXT
      ) STRICT;
      CREATE INDEX address_book_lookup ON address_book (account, asset, address) WHERE removed_at IS NULL;
      CREATE INDEX address_book_by_account ON address_book (account, asset, id);

      -- The velocity ledger: the value (reference currency, an exact decimal: coefficient and
      -- scale; both null when unknown) of each withdrawal and transfer the policy did not block.
      CREATE TABLE policy_spend (
        seq         INTEGER PRIMARY KEY AUTOINCREMENT,
        ref         TEXT NOT NULL,
        kind        TEXT NOT NULL,
        key_id      TEXT,
        account     TEXT,
        asset       TEXT NOT NULL,
        coefficient TEXT CHECK (coefficient IS NULL OR coefficient GLOB '[0-9]*'),
        scale       INTEGER,
        at          INTEGER NOT NULL,
        CHECK ((coefficient IS NULL) = (scale IS NULL))
      ) STRICT;
      CREATE INDEX policy_spend_by_key ON policy_spend (key_id, kind, at) WHERE key_id IS NOT NULL;
      CREATE INDEX policy_spend_by_account ON policy_spend (account, kind, at) WHERE account IS NOT NULL;
      CREATE INDEX policy_spend_by_ref ON policy_spend (ref);
      CREATE INDEX policy_spend_at ON policy_spend (at);
    `,
  },
  {
    version: 12,
    name: "approvers and held operations",
    sql: `
      -- People who approve held operations (docs/approvals.md), each with an Ed25519 public key
      -- (SPKI PEM) and the groups they belong to (a JSON array). Removed approvers are deleted:
      -- their past decisions keep their names and signatures in held_approvals and the audit log.
      CREATE TABLE approvers (
        name       TEXT PRIMARY KEY,
        public_key TEXT NOT NULL,
        groups     TEXT NOT NULL,
        added_at   INTEGER NOT NULL
      ) STRICT;

      -- Held operations. The exact request (or a change's payload) and the upstream's answer are
      -- envelopes under the data directory's KEK; everything the approval digest covers is here
      -- in clear, so any process can recompute the digest and render the operation.
      CREATE TABLE held_operations (
        id             TEXT PRIMARY KEY,
        state          TEXT NOT NULL CHECK (state IN ('pending', 'ready', 'releasing', 'released', 'unknown', 'cancelled', 'rejected', 'expired')),
        kind           TEXT NOT NULL,
        target         TEXT NOT NULL CHECK (target IN ('request', 'change')),
        key_id         TEXT,
        account        TEXT,
        owner          TEXT,
        summary        TEXT NOT NULL,
        policy_version INTEGER NOT NULL,
        rule           TEXT NOT NULL,
        tiers          TEXT NOT NULL,
        not_before     INTEGER,
        expires_at     INTEGER NOT NULL,
        created_at     INTEGER NOT NULL,
        updated_at     INTEGER NOT NULL,
        request_digest TEXT NOT NULL,
        held           BLOB NOT NULL,
        outcome_status INTEGER,
        outcome        BLOB,
        claimed_by     TEXT,
        claimed_at     INTEGER,
        reason         TEXT,
        -- 1 once an operation that ended without release had its policy value forgotten.
        settled        INTEGER NOT NULL DEFAULT 0 CHECK (settled IN (0, 1)),
        -- 1 once every tier has its approvals.
        approved       INTEGER NOT NULL DEFAULT 0 CHECK (approved IN (0, 1))
      ) STRICT;
      CREATE INDEX held_operations_state ON held_operations (state, created_at);
      CREATE INDEX held_operations_key ON held_operations (key_id, state);

      CREATE TABLE held_approvals (
        operation_id TEXT NOT NULL REFERENCES held_operations (id),
        approver     TEXT NOT NULL,
        decision     TEXT NOT NULL CHECK (decision IN ('approve', 'reject')),
        tier         INTEGER,
        signature    TEXT NOT NULL,
        at           INTEGER NOT NULL,
        PRIMARY KEY (operation_id, approver)
      ) STRICT;
    `,
  },
  {
    version: 13,
    name: "key risk state",
    sql: `
      -- A key's risk state left by the behaviour stage's responses (docs/behaviour.md): JSON
      -- (contract/behaviour.ts KeyRisk: step-up or throttle, the action that set it, why, until when),
      -- or NULL for none. Checked on the request path with the key.
      ALTER TABLE keys ADD COLUMN risk TEXT;
    `,
  },
  {
    version: 14,
    name: "anomaly actions",
    sql: `
      -- The behaviour stage's responses (docs/behaviour.md, "Responses"): one row per action taken
      -- on a key, with the score and its explanation (JSON, contract/behaviour.ts BehaviourScore).
      -- A revoke waits in its grace until due_at, then the sweep marks it done.
      CREATE TABLE anomaly_actions (
        seq         INTEGER PRIMARY KEY AUTOINCREMENT,
        id          TEXT NOT NULL UNIQUE,
        key_id      TEXT NOT NULL,
        account     TEXT NOT NULL,
        action      TEXT NOT NULL CHECK (action IN ('record', 'alert', 'step-up', 'throttle', 'suspend', 'revoke')),
        score       REAL NOT NULL,
        explanation TEXT NOT NULL,
        at          INTEGER NOT NULL,
        state       TEXT NOT NULL CHECK (state IN ('active', 'undone', 'done')),
        due_at      INTEGER,
        undone_at   INTEGER,
        undone_by   TEXT
      ) STRICT;
      CREATE INDEX anomaly_actions_key ON anomaly_actions (key_id, seq);
      CREATE INDEX anomaly_actions_account ON anomaly_actions (account, seq);
      CREATE INDEX anomaly_actions_due ON anomaly_actions (due_at) WHERE state = 'active' AND due_at IS NOT NULL;
    `,
  },
  {
    version: 15,
    name: "behaviour state",
    sql: `
      -- Each key's and account's behaviour state (docs/behaviour.md): opaque bytes the behaviour
      -- model encodes (at most 2,048), under the key id or "account:<name>". With Redis, this is
      -- the durable copy of the shared states (storage/behaviour-state.ts SnapshottingBehaviourStore).
      CREATE TABLE behaviour_state (
        id         TEXT PRIMARY KEY,
        state      BLOB NOT NULL,
        version    INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
      ) STRICT;
    `,
  },
  {
    version: 16,
    name: "certificate-bound keys",
    sql: `
      -- The client certificate a key is bound to (docs/tls.md): base64url SHA-256 of its DER
      -- encoding (RFC 8705 x5t#S256); NULL for a key that is not bound.
      ALTER TABLE keys ADD COLUMN cert_thumbprint TEXT;
    `,
  },
  {
    version: 17,
    name: "key search index",
    sql: `
      -- The keys list's search (KeyListFilter.search: id or account prefix, part of the label)
      -- walks the keys in id order and must look at every key when few match. This index holds
      -- every column the search and the list's filters read, in id order, so the walk reads it
      -- alone (about a tenth of the table's bytes) and the table only for the keys it returns.
      CREATE INDEX keys_search ON keys (id, account, label, operator, status);
    `,
  },
  {
    version: 18,
    name: "passkeys",
    sql: `
      -- Passkeys (docs/passkeys.md): WebAuthn credentials registered to API keys, with which the
      -- console signs in as the key. The id is the credential id (base64url); public_key its COSE
      -- public key (base64url); counter the signature counter last seen; transports a JSON array.
      CREATE TABLE passkeys (
        id           TEXT PRIMARY KEY,
        key_id       TEXT NOT NULL,
        account      TEXT NOT NULL,
        public_key   TEXT NOT NULL,
        counter      INTEGER NOT NULL CHECK (counter >= 0),
        transports   TEXT NOT NULL,
        label        TEXT NOT NULL,
        created_at   INTEGER NOT NULL,
        last_used_at INTEGER
      ) STRICT;
      CREATE INDEX passkeys_by_key ON passkeys (key_id, created_at);

      -- The WebAuthn user handle of each key that has registered a passkey (random, base64url).
      CREATE TABLE passkey_users (
        key_id TEXT PRIMARY KEY,
        handle TEXT NOT NULL UNIQUE
      ) STRICT;

      -- Challenges issued and not yet spent: single use (taken by DELETE … RETURNING), expiring.
      CREATE TABLE passkey_challenges (
        challenge  TEXT PRIMARY KEY,
        ceremony   TEXT NOT NULL CHECK (ceremony IN ('registration', 'authentication')),
        key_id     TEXT,
        label      TEXT,
        expires_at INTEGER NOT NULL
      ) STRICT;
      CREATE INDEX passkey_challenges_expiry ON passkey_challenges (expires_at);
    `,
  },
  {
    version: 19,
    name: "wallet owners and agent keys",
    sql: `
      -- Wallet-owned accounts (docs/wallets.md). An agent key's grant: JSON (contract/keys.ts
      -- AgentGrant: the owner address and owner key, the parent, the ancestors, the depth, the
      -- signed terms, the link's EIP-712 digest), NULL for every other key.
      ALTER TABLE keys ADD COLUMN agent TEXT;
      -- The owner key of a wallet, by its EIP-55 address (algorithm ethereum: public_key holds it).
      CREATE INDEX keys_wallet ON keys (public_key) WHERE algorithm = 'ethereum';
      -- The keys directly below a key (its parent, or the owner key for an approved agent): a
      -- revoke walks them down (storage KeyStore.revokeTree). The expression is AGENT_ABOVE_SQL's.
      CREATE INDEX keys_agent_above ON keys (COALESCE(json_extract(agent, '$.parent'), json_extract(agent, '$.ownerKey'))) WHERE agent IS NOT NULL;
    `,
  },
  {
    version: 20,
    name: "hpke keys",
    sql: `
      -- The gateway's HPKE key pairs for sealed orders (docs/sealed-orders.md). One row per
      -- generation (UNIQUE: two processes rotating at once insert one). public_key is the raw
      -- X25519 public key (base64url); private_envelope the raw private key in an envelope
      -- (custody/envelope.ts, purpose hpke-private), erased (NULL) when the key is retired.
      CREATE TABLE hpke_keys (
        id               TEXT PRIMARY KEY,
        generation       INTEGER NOT NULL UNIQUE CHECK (generation >= 1),
        public_key       TEXT NOT NULL,
        private_envelope BLOB,
        created_at       INTEGER NOT NULL,
        not_after        INTEGER NOT NULL,
        retired_at       INTEGER,
        CHECK ((retired_at IS NULL) = (private_envelope IS NOT NULL))
      ) STRICT;
    `,
  },
];
