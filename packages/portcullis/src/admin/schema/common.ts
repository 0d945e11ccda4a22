import { DIALECTS, KEY_ALGORITHMS, KEY_STATUSES } from "../../contract/keys.js";
import { type Node, s } from "./nodes.js";

/** Nodes several admin routes share. Loose where the domain parser says more (keys/input.ts). */

/** Printable ASCII without spaces: ids of keys, addresses, operations, anomaly actions. */
export const ID = s.string({ pattern: /^[\x21-\x7e]{1,128}$/, description: "an id: 1 to 128 printable ASCII characters without spaces" });
export const ACCOUNT = s.string({
  pattern: /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}$/,
  description: "an account: 1-64 characters of letters, digits and . _ : @ -, starting with a letter or digit",
  missing: "required: 1-64 characters of letters, digits and . _ : @ -, starting with a letter or digit",
});
/** No control characters. */
// eslint-disable-next-line no-control-regex -- control characters are what it refuses
export const TEXT = (max: number): Node => s.string({ maxLength: max, pattern: /^[^\u0000-\u001f\u007f]*$/, description: `a string of at most ${max} characters, without control characters` });
/** A reason given with a change (revoke, suspend, end-sessions): null is none. */
export const REASON = s.nullable(s.string({ maxLength: 500 }), "a string of at most 500 characters (or null)");
export const EPOCH_MS = s.integer({ minimum: 0, description: "epoch milliseconds" });
/** A duration written as text ("15m", "12h", "30d") or milliseconds; the range is the parser's. */
export const DURATION = s.anyOf([s.string({ pattern: /^[1-9][0-9]{0,8}(ms|s|m|h|d|w)$/ }), s.integer({ minimum: 0 })], 'a duration such as "15m", "12h" or "90d", or milliseconds');
/** A positive decimal as a string ("2.5"): amounts are never JSON numbers. */
export const DECIMAL = s.string({ minLength: 1, maxLength: 60, pattern: /^[0-9]*\.?[0-9]*$/, description: 'a decimal string such as "2.5"' });
export const LIMIT_NAME = /^[a-z][a-z0-9._-]{0,63}$/;
/** Limit overrides by limit name. */
export const LIMITS = s.record(s.integer({ minimum: 1, maximum: 1_000_000_000 }), {
  keyPattern: LIMIT_NAME,
  maxProperties: 32,
  description: 'an object of limit names to limits, each a positive integer up to 1000000000, e.g. {"key-weight-1m": 12000}',
  missing: 'required: an object of limit names to limits, e.g. {"key-weight-1m": 12000}',
});
const NAMES = (example: string): Node => s.nullable(s.array(s.string({ minLength: 1, maxLength: 64 }), { minItems: 1, maxItems: 256 }), `a list of 1 to 256 names such as ${example} (null for no allowlist)`);
/** A key's guardrails (docs/guardrails.md); an update's is a merge patch of the same members. */
export const GUARDRAILS = s.object(
  {
    symbols: s.optional(NAMES("BTCUSDT,ETHUSDT")),
    maxQuantity: s.optional(s.nullable(DECIMAL)),
    maxNotional: s.optional(s.nullable(DECIMAL)),
    priceBandPct: s.optional(s.nullable(s.anyOf([DECIMAL, s.number({ exclusiveMinimum: 0, exclusiveMaximum: 100 })]), 'a percentage greater than 0 and below 100, such as 5 or "0.5" (or null)')),
    withdrawAssets: s.optional(NAMES("USDT,BTC")),
    transferAssets: s.optional(NAMES("USDT,BTC")),
    maxOpenNotional: s.optional(s.nullable(DECIMAL)),
  },
  "guardrails: symbols, maxQuantity, maxNotional, priceBandPct, withdrawAssets, transferAssets, maxOpenNotional (docs/guardrails.md)",
);
export const SCOPES = s.array(s.string({ pattern: /^[a-z*][a-z0-9*:._-]{0,63}$/ }), { minItems: 1, maxItems: 64, description: "a non-empty list of scopes such as read, trade (docs/permissions.md)", missing: "required: a non-empty list such as read,trade" });
export const ALLOWLIST = s.array(s.string({ minLength: 1, maxLength: 64 }), { maxItems: 256, description: "a list of at most 256 IPv4/IPv6 addresses or CIDR blocks" });
export const OWNER = s.nullable(s.string({ pattern: /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/ }), "a person's name: 1 to 64 letters, digits, '.', '_', '-' or '@' (or null)");
const ENUM_OF = (values: readonly string[]): Node => s.enum(values);

/** A key as the admin API answers it (KeyRecord, contract/keys.ts); `secret` only on creation and rotation. */
export const KEY = s.ref(
  "Key",
  s.openObject({
    id: s.string(),
    environment: s.string(),
    account: s.string(),
    subAccount: s.nullable(s.string()),
    label: s.string(),
    algorithm: ENUM_OF(KEY_ALGORITHMS),
    publicKey: s.nullable(s.string()),
    scopes: s.array(s.string()),
    ipAllowlist: s.array(s.string()),
    dialects: s.array(ENUM_OF(DIALECTS)),
    expiresAt: s.nullable(s.integer()),
    windowMs: s.nullable(s.integer()),
    status: ENUM_OF(KEY_STATUSES),
    statusReason: s.nullable(s.string()),
    createdAt: s.integer(),
    updatedAt: s.integer(),
    lastUsedAt: s.nullable(s.integer()),
    revision: s.integer(),
    limits: s.record(s.integer()),
    sessionEpoch: s.integer(),
    sessionTtlMs: s.nullable(s.integer()),
    sessionBindAddress: s.boolean(),
    rotatedFrom: s.nullable(s.string()),
    rotatedTo: s.nullable(s.string()),
    maxAgeMs: s.nullable(s.integer()),
    operator: s.boolean(),
    owner: s.nullable(s.string()),
    guardrails: s.nullable(s.openObject({})),
    agent: s.optional(s.nullable(s.openObject({ ownerAddress: s.string(), ownerKey: s.string(), parent: s.nullable(s.string()), ancestors: s.array(s.string()), depth: s.integer(), terms: s.openObject({}), digest: s.string() }))),
    secret: s.optional(s.string({ description: "the HMAC secret: in the answer to a creation or rotation only" })),
  }),
);

/** A change the policy holds (202): the operation waits for approvals (docs/approvals.md). */
export const HELD = s.ref("Held", s.openObject({ operationId: s.string(), state: s.string(), required: s.any() }));

/** `limit`: 1 to 1000, default 100. */
export const LIMIT_PARAM = { schema: s.integer({ minimum: 1, maximum: 1000, description: "an integer from 1 to 1000 (default 100)" }) } as const;
