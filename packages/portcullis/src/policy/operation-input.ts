import type { Decimal } from "../contract/operations.js";
import { type GovernedOperation, POLICY_KINDS, isPolicyKind } from "../contract/policy.js";
import { isJsonObject, type JsonObject, record } from "../contract/json.js";
import { type Result, invalid, ok } from "../errors/result.js";
import { isZero, multiplyDecimal, parseDecimal } from "../operations/decimal.js";

/**
 * An operation written as JSON, for a dry run (`portcullis policy test --operation JSON`,
 * `POST /portcullis/v1/policy/test`): `{ "kind": "withdraw", "asset": "USDT", "amount": "1500",
 * "address": "T…", "network": "TRX" }`, the fields of contract/operations.ts (and of the governed
 * changes of contract/policy.ts) under their own names, amounts as decimal strings. Strict like
 * the document: unknown members are refused, each problem named by its field.
 */

const FIELDS: Readonly<Record<string, readonly string[]>> = {
  "order.place": ["symbol", "side", "type", "quantity", "price", "quoteQuantity"],
  "order.cancel": ["symbol", "orderIds", "clientOrderId"],
  withdraw: ["asset", "amount", "address", "addressName", "network", "tag"],
  transfer: ["asset", "amount", "from", "to"],
  "key.create": ["keyId"],
  "key.update": ["keyId"],
  "key.revoke": ["keyId"],
  other: [],
  "policy.change": ["version", "digest", "rules"],
  "address.add": ["account", "asset", "address", "network", "tag", "label"],
};

const TEXT_RE = /^[\x21-\x7e]{1,256}$/;
const ASSET_RE = /^[A-Za-z0-9._\-/:]{1,32}$/;

export function parseOperationInput(raw: unknown): Result<GovernedOperation> {
  if (!isJsonObject(raw)) return invalid('an operation is a JSON object such as {"kind":"withdraw","asset":"USDT","amount":"1500","address":"…"}');
  const kind = raw.kind;
  if (!isPolicyKind(kind)) return invalid(`operation.kind must be one of ${POLICY_KINDS.join(", ")}`, { kind: "unknown kind" });
  const fields: Record<string, string | undefined> = record<string>();
  const known = new Set(["kind", ...(FIELDS[kind] ?? [])]);
  for (const name of Object.keys(raw)) if (!known.has(name)) fields[name] = `not a field of ${kind} (fields: ${[...known].join(", ")})`;
  const o: JsonObject = raw;
  const str = (name: string, required: boolean, re = TEXT_RE): string | null => {
    const v = o[name];
    if (v === undefined || v === null) {
      if (required) fields[name] = "required";
      return null;
    }
    if (typeof v !== "string" || !re.test(v)) {
      fields[name] = "printable ASCII without spaces";
      return null;
    }
    return v;
  };
  const amount = (name: string, required: boolean): Decimal | null => {
    const v = o[name];
    if (v === undefined || v === null) {
      if (required) fields[name] = "required";
      return null;
    }
    const d = typeof v === "string" ? parseDecimal(v) : null;
    if (d === null || isZero(d)) {
      fields[name] = 'a decimal string greater than zero, such as "1500"';
      return null;
    }
    return d;
  };
  const upper = (s: string | null): string => (s ?? "").toUpperCase();
  let op: GovernedOperation;
  switch (kind) {
    case "withdraw":
      op = { kind, asset: upper(str("asset", true, ASSET_RE)), amount: amount("amount", true) ?? { coefficient: 0n, scale: 0 }, address: str("address", false), addressName: str("addressName", false), network: str("network", false), tag: str("tag", false) };
      if (op.address === null && op.addressName === null) if (fields.address === undefined) fields.address = "required (or addressName)";
      break;
    case "transfer":
      op = { kind, asset: upper(str("asset", true, ASSET_RE)), amount: amount("amount", true) ?? { coefficient: 0n, scale: 0 }, from: str("from", true) ?? "", to: str("to", true) ?? "" };
      break;
    case "order.place": {
      const side = o.side;
      if (side !== "buy" && side !== "sell") fields.side = '"buy" or "sell"';
      const quantity = amount("quantity", false);
      const price = amount("price", false);
      const quoteQuantity = amount("quoteQuantity", false);
      if (quantity === null && quoteQuantity === null) if (fields.quantity === undefined) fields.quantity = "quantity or quoteQuantity is required";
      op = {
        kind,
        symbol: upper(str("symbol", true, ASSET_RE)),
        side: side === "sell" ? "sell" : "buy",
        type: (str("type", false) ?? (price === null ? "market" : "limit")).toLowerCase(),
        quantity,
        price,
        quoteQuantity,
        notional: quantity !== null && price !== null ? multiplyDecimal(quantity, price) : quoteQuantity,
      };
      break;
    }
    case "order.cancel": {
      const ids = o.orderIds;
      const orderIds = Array.isArray(ids) && ids.every((x): x is string => typeof x === "string" && TEXT_RE.test(x)) ? ids : [];
      if (ids !== undefined && orderIds.length !== (Array.isArray(ids) ? ids.length : -1)) fields.orderIds = "a list of order ids";
      op = { kind, symbol: str("symbol", false, ASSET_RE)?.toUpperCase() ?? null, orderIds, clientOrderId: str("clientOrderId", false) };
      break;
    }
    case "key.create":
    case "key.update":
    case "key.revoke":
      op = { kind, keyId: str("keyId", false) };
      break;
    case "policy.change": {
      const version = o.version ?? 1;
      const rules = o.rules ?? 1;
      if (typeof version !== "number" || !Number.isSafeInteger(version) || version < 1) fields.version = "a version number";
      if (typeof rules !== "number" || !Number.isSafeInteger(rules) || rules < 1) fields.rules = "a number of rules";
      op = { kind, version: typeof version === "number" ? version : 1, digest: str("digest", false) ?? "", rules: typeof rules === "number" ? rules : 1 };
      break;
    }
    case "address.add":
      op = { kind, account: str("account", true) ?? "", asset: upper(str("asset", true, ASSET_RE)), address: str("address", true) ?? "", network: str("network", false), tag: str("tag", false), label: typeof o.label === "string" ? o.label : "" };
      break;
    default:
      op = { kind: "other" };
  }
  const problems = Object.entries(fields).filter((e): e is [string, string] => e[1] !== undefined);
  if (problems.length > 0) {
    return invalid(`the operation is not valid: ${problems.map(([k, v]) => `${k}: ${v}`).join("; ")}`, Object.fromEntries(problems));
  }
  return ok(op);
}
