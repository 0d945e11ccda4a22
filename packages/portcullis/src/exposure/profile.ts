import { type BehaviourScore, type KeyRisk, riskInForce } from "../contract/behaviour.js";
import { type KeyGuardrails, type KeyRecord, effectiveStatus, idleExpiresAt } from "../contract/keys.js";
import type { LimitSpec } from "../contract/limits.js";
import type { Decimal, OrderPlace, Withdraw } from "../contract/operations.js";
import { AUTHENTICATED, PERMISSIONS, grantedPermissions } from "../contract/permissions.js";
import type { PolicyDocument } from "../policy/document.js";
import type { ReferencePrices } from "../contract/prices.js";
import type { Route } from "../contract/route.js";
import { maxLimit } from "../limits/gcra.js";
import { CidrSet, formatIp, parseCidr } from "../net/ip.js";
import { compactSymbol } from "../operations/guardrails.js";
import { multiplyDecimal, normalizeDecimal, parseDecimal } from "../operations/decimal.js";
import { CompiledPolicy, type DestinationFact } from "../policy/engine.js";
import { type Actor, HOUR_MS, type HourTotal, type Lane, divideFloor, hourTotal, minDecimal, toNumber } from "./amounts.js";

/**
 * A key's risk profile (docs/behaviour.md, "Risk profile"): what the key could do in the next hour
 * if it were stolen now, as numbers, one score that orders keys, and how much each number moves
 * when one control is added or removed. Pure: every input is handed in (exposure/service.ts
 * gathers them).
 */

/** What the profile is computed from. */
export interface RiskInputs {
  readonly key: KeyRecord;
  /** The limits in force (the key's overrides by name apply). */
  readonly limits: readonly LimitSpec[];
  /** The gateway's compiled route table: which routes place orders and withdraw, their weights. */
  readonly routes: readonly Route[];
  /** The policy version in force, compiled (its prices value the amounts). */
  readonly policy: CompiledPolicy;
  readonly prices: ReferencePrices;
  /** The assets the reference prices know (withdrawals are measured in each, and in any other). */
  readonly assets: readonly string[];
  /** The symbols the reference prices know (orders are measured on each, and on any other). */
  readonly symbols: readonly string[];
  /** The key's latest anomaly score, or null. */
  readonly anomaly: BehaviourScore | null;
  /** The deployment's idle expiry of unrestricted trading keys (null: off). */
  readonly idleExpiryMs: number | null;
  readonly now: number;
}

/** Where the key can be used from. */
export interface Reach {
  /** "anywhere" (no IP allowlist) or "allowlist". */
  readonly from: "anywhere" | "allowlist";
  readonly cidrs: readonly string[];
  /** Blocks in the allowlist (0: anywhere). */
  readonly networks: number;
  /** Addresses the allowlist covers (null: anywhere). */
  readonly addresses: number | null;
}

/** One asset's withdrawal figures (reference values and amounts in the asset's units as decimal strings). */
export interface AssetWithdrawal {
  /** The asset, or `*`: any asset without a reference price. */
  readonly asset: string;
  /** The largest single withdrawal to a new address allowed without a hold or a block (null: unbounded). */
  readonly single: string | null;
  /** Per hour, to a new address / to a known (address-book) address: amount and reference value (null: unbounded). */
  readonly toNewAddress: { readonly amount: string | null; readonly value: number | null };
  readonly toKnownAddress: { readonly amount: string | null; readonly value: number | null };
  /** No reference price: one reference unit per unit was assumed for the value. */
  readonly valueAssumed: boolean;
}

export interface Exposure {
  /** Orders the key could place in an hour under its limits (null: unbounded). */
  readonly maxOrdersPerHour: number | null;
  /** The largest value of one order (reference currency) under the guardrails and the policy (null: unbounded). */
  readonly maxOrderNotional: number | null;
  /** Orders' value in an hour (reference currency; null: unbounded). */
  readonly maxOrderNotionalPerHour: number | null;
  /**
   * The value the key's orders may hold open at once: its maxOpenNotional guardrail (quote units,
   * docs/guardrails.md), null when it has none (unbounded), 0 when it cannot place orders.
   */
  readonly maxOpenNotional: number | null;
  /** Withdrawal requests the limits admit in an hour (null: unbounded). */
  readonly maxWithdrawalsPerHour: number | null;
  /** What withdrawals to a new address could take out in an hour before the policy holds or blocks (reference currency; null: unbounded; 0: cannot withdraw). */
  readonly maxWithdrawalPerHour: number | null;
  /** The same to an address already in the account's book. */
  readonly maxWithdrawalPerHourKnown: number | null;
  readonly withdrawals: readonly AssetWithdrawal[];
  readonly reachableFrom: Reach;
  readonly scopes: { readonly count: number; readonly list: readonly string[]; readonly breadth: number };
  readonly ageDays: number;
  readonly rotation: {
    readonly rotatedFrom: string | null;
    readonly rotatedTo: string | null;
    readonly maxAgeMs: number | null;
    readonly expiresAt: number | null;
    readonly idleExpiresAt: number | null;
  };
  readonly anomalyScore: number | null;
  /** The key's risk state in force, left by an anomaly response (`step-up`, `throttle`), or null. */
  readonly riskState: KeyRisk["state"] | null;
}

/** The fields a sensitivity reports. */
export type ExposureField = "maxOrdersPerHour" | "maxOrderNotional" | "maxOrderNotionalPerHour" | "maxWithdrawalPerHour" | "reachableFrom";

export interface Move {
  readonly field: ExposureField;
  /** Numbers (null: unbounded); reachableFrom as text ("anywhere", "1 network"). */
  readonly from: number | string | null;
  readonly to: number | string | null;
}

export interface Sensitivity {
  /** The control: "ip-allowlist", "guardrail maxNotional", "scope withdraw", "limit orders-1m", "policy rule big"… */
  readonly control: string;
  readonly change: "add" | "remove";
  /** In words, with the value added where there is one. */
  readonly description: string;
  readonly moves: readonly Move[];
  readonly riskScoreFrom: number;
  readonly riskScoreTo: number;
  /** riskScoreTo − riskScoreFrom: negative for a control that reduces the risk. */
  readonly riskScoreDelta: number;
}

export interface RiskProfile {
  readonly keyId: string;
  readonly account: string;
  readonly label: string;
  readonly status: string;
  /** Whether a thief could use the key now (active, not expired). */
  readonly usable: boolean;
  readonly at: number;
  readonly policyVersion: number;
  /** 0..100, see `riskScore` (docs/behaviour.md). */
  readonly riskScore: number;
  /** Each part of the score, in points. */
  readonly scoreParts: Readonly<Record<ScorePart, number>>;
  readonly exposure: Exposure;
  /** Largest reduction first. */
  readonly sensitivities: readonly Sensitivity[];
}

export type ScorePart = "withdrawal" | "trading" | "reach" | "scopes" | "hygiene" | "anomaly";

/** The points each part of the score can give (they sum to 100). */
export const SCORE_WEIGHTS: Readonly<Record<ScorePart, number>> = { withdrawal: 40, trading: 25, reach: 20, scopes: 5, hygiene: 5, anomaly: 5 };
/** An amount this large (reference currency) gives its part full points; an unbounded one too. */
export const SATURATION = 1_000_000;
/** Orders' value per hour saturates higher: a thief's gain is a fraction of what the orders move. */
export const ORDER_FLOW_SATURATION = 1_000_000_000;
/** The maxNotional guardrail a sensitivity proposes when the key has none (quote units). */
export const SUGGESTED_MAX_NOTIONAL = "10000";
/** The allowlist a sensitivity proposes when the key has none: one address (see `ownerAddress`). */
const SUGGESTED_ADDRESS = "192.0.2.1";
const DAY_MS = 86_400_000;
/** The limits a sensitivity proposes when the configuration has none of their kind and scope. */
const PROPOSED_LIMITS: readonly LimitSpec[] = [
  { name: "orders-1m", scope: "account", kind: "orders", limit: 100, windowMs: 60_000 },
  { name: "key-weight-1m", scope: "key", kind: "weight", limit: 1200, windowMs: 60_000 },
];
/** The rotation policy a sensitivity proposes for a key that never expires. */
const PROPOSED_MAX_AGE_DAYS = 90;
/** A known address: in the book for a long time. */
const LONG_AGO_MS = 10 * 365 * DAY_MS;
/** Where a thief is taken to come from when the key may be used from anywhere (outside every block the policy names, if possible). */
const OUTSIDE = ["198.51.100.7", "2001:db8::7"];

/** The fraction 0..1 an amount gives (log scale; unbounded: 1). */
function saturation(x: number | null, full = SATURATION): number {
  if (x === null) return 1;
  if (x <= 0) return 0;
  return Math.min(1, Math.log10(1 + x) / Math.log10(1 + full));
}

function round(x: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** Requests (or units) one limit admits in an hour from a full bucket: a burst, then the sustained rate. */
function perHour(limit: number, windowMs: number): number {
  return limit + Math.floor((limit * HOUR_MS) / windowMs);
}

function permitted(route: Route, granted: ReadonlySet<string>): boolean {
  return route.permission === AUTHENTICATED || (route.permission !== null && granted.has(route.permission));
}

/**
 * Requests of `routes` (the cheapest the key may use) the key's limits admit in an hour: every
 * weight limit per key and per account, and (routes tagged `order`) every order-count limit. Limits
 * per client address are not counted: a stolen key is used from as many addresses as the thief has.
 */
function requestsPerHour(routes: readonly Route[], limits: readonly LimitSpec[], overrides: Readonly<Record<string, number>>): number | null {
  if (routes.length === 0) return 0;
  let best = 0;
  for (const route of routes) {
    let bound = Number.POSITIVE_INFINITY;
    const cancel = route.tags.includes("cancel");
    for (const spec of limits) {
      const limit = Math.min(overrides[spec.name] ?? spec.limit, maxLimit(spec.windowMs));
      if (spec.kind === "weight" && spec.scope !== "ip" && !cancel && route.weight > 0) bound = Math.min(bound, Math.floor(perHour(limit, spec.windowMs) / route.weight));
      if (spec.kind === "orders" && route.tags.includes("order") && !cancel) bound = Math.min(bound, perHour(limit, spec.windowMs));
      if (spec.kind === "cancels" && cancel) bound = Math.min(bound, perHour(limit, spec.windowMs));
    }
    if (bound === Number.POSITIVE_INFINITY) return null;
    best = Math.max(best, bound);
  }
  return best;
}

function reach(allowlist: readonly string[]): Reach {
  if (allowlist.length === 0) return { from: "anywhere", cidrs: [], networks: 0, addresses: null };
  let addresses = 0;
  for (const block of allowlist) {
    const parsed = parseCidr(block);
    const bits = Number(parsed.canonical.split("/")[1] ?? "0");
    addresses += 2 ** ((parsed.v === 4 ? 32 : 128) - bits);
  }
  return { from: "allowlist", cidrs: [...allowlist], networks: allowlist.length, addresses };
}

function reachText(r: Reach): string {
  return r.from === "anywhere" ? "anywhere" : `${r.networks} network${r.networks === 1 ? "" : "s"}`;
}

/**
 * 0..1: how wide the allowlist is: its widest block's host bits over the address size (0: one
 * address; 1: anywhere). An IPv6 /64 is one subscriber, so IPv6 counts the bits above it: /64 is
 * 0, /48 is 16/64.
 */
function reachFraction(allowlist: readonly string[]): number {
  if (allowlist.length === 0) return 1;
  let widest = 0;
  for (const block of allowlist) {
    const parsed = parseCidr(block);
    const bits = Number(parsed.canonical.split("/")[1] ?? "0");
    widest = Math.max(widest, parsed.v === 4 ? (32 - bits) / 32 : Math.max(0, 64 - bits) / 64);
  }
  return widest;
}

/** The first and last address of a block (as text). */
function blockEnds(block: string): string[] {
  const parsed = parseCidr(block);
  if (parsed.v === 4) {
    const { net, mask } = parsed.cidr;
    return [formatIp({ v: 4, n: net }), formatIp({ v: 4, n: (net | ~mask) >>> 0 })];
  }
  const { net, mask } = parsed.cidr;
  const last: [number, number, number, number] = [(net[0] | ~mask[0]) >>> 0, (net[1] | ~mask[1]) >>> 0, (net[2] | ~mask[2]) >>> 0, (net[3] | ~mask[3]) >>> 0];
  return [formatIp({ v: 6, w: net }), formatIp({ v: 6, w: last })];
}

/**
 * The client addresses a thief could use: outside every block, and the ends of each block the
 * policy and the allowlist name, kept to those the key's allowlist admits.
 */
function candidateClients(document: PolicyDocument, allowlist: readonly string[]): string[] {
  const blocks = new Set<string>(allowlist);
  for (const rule of document.rules) for (const b of rule.match.source?.blocks ?? []) blocks.add(b);
  const out = new Set<string>(allowlist.length === 0 ? OUTSIDE : []);
  for (const b of blocks) for (const a of blockEnds(b)) out.add(a);
  if (allowlist.length === 0) return [...out];
  const admitted = new CidrSet(allowlist);
  return [...out].filter((a) => admitted.hasText(a));
}

function decimalOrNull(text: string | null | undefined): Decimal | null {
  return text === null || text === undefined ? null : parseDecimal(text);
}

/** The maxOpenNotional guardrail as a number; null: none. */
function openCap(g: KeyGuardrails | null): number | null {
  const cap = decimalOrNull(g?.maxOpenNotional);
  return cap === null ? null : num(cap);
}

/** The largest one-order notional (quote units) the guardrails admit on `symbol`; null: none. */
function orderCap(g: KeyGuardrails | null, symbol: string, prices: ReferencePrices): Decimal | null {
  if (g === null) return null;
  let cap = decimalOrNull(g.maxNotional);
  const quantity = decimalOrNull(g.maxQuantity);
  const price = symbol === "*" ? undefined : prices.symbol(symbol);
  if (quantity !== null && price !== undefined) {
    let byQuantity = multiplyDecimal(quantity, price);
    const band = decimalOrNull(g.priceBandPct);
    if (band !== null) byQuantity = divideFloor(multiplyDecimal(byQuantity, { coefficient: 100n * 10n ** BigInt(band.scale) + band.coefficient, scale: band.scale }), { coefficient: 100n, scale: 0 });
    cap = cap === null ? normalizeDecimal(byQuantity) : minDecimal(cap, byQuantity);
  }
  return cap;
}

function orderLanes(key: KeyRecord, inputs: RiskInputs): Lane[] {
  const g = key.guardrails;
  const listed = g?.symbols ?? null;
  const names = listed === null ? [...inputs.symbols, "*"] : listed.map((s) => compactSymbol(s.toUpperCase()));
  return [...new Set(names)].map((symbol) => ({
    name: symbol,
    cap: orderCap(g, symbol, inputs.prices),
    make: (amount: Decimal): OrderPlace => ({ kind: "order.place", symbol, side: "buy", type: "limit", quantity: null, price: null, quoteQuantity: amount, notional: amount }),
  }));
}

function withdrawLanes(key: KeyRecord, inputs: RiskInputs): Lane[] {
  const listed = key.guardrails?.withdrawAssets ?? null;
  const names = listed === null ? [...inputs.assets, "*"] : listed.map((a) => a.toUpperCase());
  return [...new Set(names)].map((asset) => ({
    name: asset,
    cap: null,
    make: (amount: Decimal): Withdraw => ({ kind: "withdraw", asset, amount, address: "risk-profile-destination", addressName: null, network: null, tag: null }),
  }));
}

/** The worst (largest; null: unbounded) of hour totals. */
function worst(totals: readonly HourTotal[]): HourTotal | null {
  let out: HourTotal | null = null;
  for (const t of totals) {
    if (t.value === null) return t;
    if (out === null || (out.value !== null && toNumber(t.value) > toNumber(out.value))) out = t;
  }
  return out;
}

function num(d: Decimal | null): number | null {
  return d === null ? null : toNumber(d);
}

function text(d: Decimal | null): string | null {
  return d === null ? null : normalizeDecimal(d).coefficient === 0n ? "0" : decimalTextOf(d);
}

function decimalTextOf(d: Decimal): string {
  const n = normalizeDecimal(d);
  const digits = (n.coefficient < 0n ? -n.coefficient : n.coefficient).toString();
  const sign = n.coefficient < 0n ? "-" : "";
  if (n.scale === 0) return sign + digits;
  const padded = digits.padStart(n.scale + 1, "0");
  return `${sign}${padded.slice(0, padded.length - n.scale)}.${padded.slice(padded.length - n.scale)}`;
}

/** Whether a thief could use the key now: active, not expired, not stopped for idleness. */
function isUsable(key: KeyRecord, idleMs: number | null, now: number): boolean {
  const idleAt = idleExpiresAt(key, idleMs);
  return effectiveStatus(key, now) === "active" && (idleAt === null || idleAt > now);
}

interface Computed {
  readonly exposure: Exposure;
  readonly parts: Record<ScorePart, number>;
  readonly score: number;
}

/** The profile's numbers and score, without sensitivities. */
function compute(inputs: RiskInputs): Computed {
  const { key, policy, now } = inputs;
  const granted = grantedPermissions(key.scopes);
  const orderRoutes = inputs.routes.filter((r) => (r.operation === "order.place" || (r.operation === null && r.tags.includes("order"))) && permitted(r, granted));
  const withdrawRoutes = inputs.routes.filter((r) => (r.operation === "withdraw" || (r.operation === null && r.permission === "withdraw")) && permitted(r, granted));
  const maxOrdersPerHour = requestsPerHour(orderRoutes, inputs.limits, key.limits);
  const maxWithdrawalsPerHour = requestsPerHour(withdrawRoutes, inputs.limits, key.limits);

  const clients = candidateClients(policy.document, key.ipAllowlist);
  const actorFor = (client: string, destination: DestinationFact | null): Actor => ({ account: key.account, keyId: key.id, client, destination, at: now });
  const known: DestinationFact = { addedAt: now - LONG_AGO_MS, usableFrom: now - LONG_AGO_MS };

  // Orders.
  let maxOrderNotional: number | null = 0;
  let maxOrderNotionalPerHour: number | null = 0;
  if (maxOrdersPerHour !== 0) {
    const lanes = orderLanes(key, inputs);
    const totals = clients.map((c) => hourTotal(policy, actorFor(c, null), lanes, maxOrdersPerHour));
    const top = worst(totals);
    maxOrderNotionalPerHour = top === null ? 0 : num(top.value);
    // One order: the largest single order of any lane, from any address.
    let single: number | null = 0;
    for (const c of clients) {
      for (const lane of lanes) {
        const t = hourTotal(policy, actorFor(c, null), [lane], 1);
        if (t.value === null) single = null;
        else if (single !== null) single = Math.max(single, toNumber(t.value));
      }
    }
    maxOrderNotional = single;
  }

  // Withdrawals, per asset, to a new and to a known address.
  const withdrawals: AssetWithdrawal[] = [];
  let maxWithdrawalPerHour: number | null = 0;
  let maxWithdrawalPerHourKnown: number | null = 0;
  if (maxWithdrawalsPerHour !== 0) {
    const lanes = withdrawLanes(key, inputs);
    for (const lane of lanes) {
      const toNew = worst(clients.map((c) => hourTotal(policy, actorFor(c, null), [lane], maxWithdrawalsPerHour)));
      const toKnown = worst(clients.map((c) => hourTotal(policy, actorFor(c, known), [lane], maxWithdrawalsPerHour)));
      withdrawals.push({
        asset: lane.name,
        single: toNew === null ? "0" : text(toNew.single),
        toNewAddress: { amount: toNew === null ? "0" : text(toNew.amount), value: toNew === null ? 0 : num(toNew.value) },
        toKnownAddress: { amount: toKnown === null ? "0" : text(toKnown.amount), value: toKnown === null ? 0 : num(toKnown.value) },
        valueAssumed: toNew?.valueAssumed ?? false,
      });
    }
    const all = worst(clients.map((c) => hourTotal(policy, actorFor(c, null), lanes, maxWithdrawalsPerHour)));
    const allKnown = worst(clients.map((c) => hourTotal(policy, actorFor(c, known), lanes, maxWithdrawalsPerHour)));
    maxWithdrawalPerHour = all === null ? 0 : num(all.value);
    maxWithdrawalPerHourKnown = allKnown === null ? 0 : num(allKnown.value);
  }

  const scopeList = [...key.scopes];
  const breadth = round(granted.size / PERMISSIONS.length, 3);
  const ageDays = round(Math.max(0, now - key.createdAt) / DAY_MS, 1);
  const exposure: Exposure = {
    maxOrdersPerHour,
    maxOrderNotional,
    maxOrderNotionalPerHour,
    maxOpenNotional: maxOrdersPerHour === 0 ? 0 : openCap(key.guardrails),
    maxWithdrawalsPerHour,
    maxWithdrawalPerHour,
    maxWithdrawalPerHourKnown,
    withdrawals,
    reachableFrom: reach(key.ipAllowlist),
    scopes: { count: scopeList.length, list: scopeList, breadth },
    ageDays,
    rotation: { rotatedFrom: key.rotatedFrom, rotatedTo: key.rotatedTo, maxAgeMs: key.maxAgeMs, expiresAt: key.expiresAt, idleExpiresAt: idleExpiresAt(key, inputs.idleExpiryMs) },
    anomalyScore: inputs.anomaly?.score ?? null,
    riskState: riskInForce(key.risk, now)?.state ?? null,
  };
  const usable = isUsable(key, inputs.idleExpiryMs, now);
  const parts = scoreParts(exposure, key);
  const score = usable ? round(Object.values(parts).reduce((a, b) => a + b, 0)) : 0;
  return { exposure, parts, score };
}

/**
 * The score's parts (docs/behaviour.md): withdrawal 40 × s(maxWithdrawalPerHour), trading 25 ×
 * (s(maxOrderNotional) + s'(maxOrderNotionalPerHour)) / 2, reach 20 × the allowlist's width (anywhere: 1; one address: 0),
 * scopes 5 × breadth, hygiene 5 × min(1, age / 1 year) (halved for a key that expires or
 * rotates), anomaly 5 × score / 100; s(x) = min(1, log10(1 + x) / log10(1 + 1,000,000)),
 * s'(x) the same up to 1,000,000,000, s(unbounded) = s'(unbounded) = 1; 0 for an unusable key.
 */
function scoreParts(e: Exposure, key: KeyRecord): Record<ScorePart, number> {
  const w = SCORE_WEIGHTS;
  const expires = key.expiresAt !== null || key.maxAgeMs !== null;
  return {
    withdrawal: round(w.withdrawal * saturation(e.maxWithdrawalPerHour)),
    trading: round(w.trading * (e.maxOrdersPerHour === 0 ? 0 : (saturation(e.maxOrderNotional) + saturation(e.maxOrderNotionalPerHour, ORDER_FLOW_SATURATION)) / 2)),
    reach: round(w.reach * reachFraction(key.ipAllowlist)),
    scopes: round(w.scopes * e.scopes.breadth),
    hygiene: round(w.hygiene * Math.min(1, e.ageDays / 365) * (expires ? 0.5 : 1)),
    anomaly: round(w.anomaly * Math.min(1, Math.max(0, (e.anomalyScore ?? 0) / 100))),
  };
}

const FIELDS: readonly ExposureField[] = ["maxWithdrawalPerHour", "maxOrderNotionalPerHour", "maxOrderNotional", "maxOrdersPerHour", "reachableFrom"];

function fieldValue(e: Exposure, f: ExposureField): number | string | null {
  return f === "reachableFrom" ? reachText(e.reachableFrom) : e[f];
}

interface Variant {
  readonly control: string;
  readonly change: "add" | "remove";
  readonly description: string;
  readonly inputs: RiskInputs;
}

function withKey(inputs: RiskInputs, change: Partial<Pick<KeyRecord, "ipAllowlist" | "scopes" | "guardrails" | "limits">>): RiskInputs {
  return { ...inputs, key: { ...inputs.key, ...change } };
}

const NO_GUARDRAILS: KeyGuardrails = { symbols: null, maxQuantity: null, maxNotional: null, priceBandPct: null, withdrawAssets: null, transferAssets: null, maxOpenNotional: null };

function withGuardrail(inputs: RiskInputs, field: "maxNotional" | "maxQuantity" | "symbols" | "withdrawAssets", value: string | readonly string[] | null): RiskInputs {
  const g: KeyGuardrails = { ...(inputs.key.guardrails ?? NO_GUARDRAILS), [field]: value };
  const empty = Object.values(g).every((v) => v === null);
  return withKey(inputs, { guardrails: empty ? null : g });
}

/**
 * The single address a proposed allowlist names: where the key's owner works from, as far as the
 * policy tells (the first IPv4 block a rule wants operations to come from: a `notIn` of a rule that
 * holds or blocks, an `in` of a rule that allows), so that the proposal moves only the reach;
 * else a documentation address.
 */
function ownerAddress(document: PolicyDocument): string {
  for (const rule of document.rules) {
    const source = rule.match.source;
    if (source === undefined || source.inside !== (rule.action.type === "allow")) continue;
    for (const block of source.blocks) {
      const parsed = parseCidr(block);
      if (parsed.v === 4) return blockEnds(block)[0] ?? SUGGESTED_ADDRESS;
    }
  }
  return SUGGESTED_ADDRESS;
}

/** The controls whose addition or removal the profile measures. */
function variants(inputs: RiskInputs): Variant[] {
  const { key, policy } = inputs;
  const out: Variant[] = [];
  if (key.ipAllowlist.length === 0) {
    const one = [`${ownerAddress(policy.document)}/32`];
    out.push({ control: "ip-allowlist", change: "add", description: `add an IP allowlist of one address (e.g. ${one.join(", ")})`, inputs: withKey(inputs, { ipAllowlist: one }) });
  }
  else out.push({ control: "ip-allowlist", change: "remove", description: "remove the IP allowlist", inputs: withKey(inputs, { ipAllowlist: [] }) });
  for (const scope of ["withdraw", "trade"]) {
    if (key.scopes.includes(scope)) out.push({ control: `scope ${scope}`, change: "remove", description: `remove the ${scope} scope`, inputs: withKey(inputs, { scopes: key.scopes.filter((s) => s !== scope) }) });
  }
  const g = key.guardrails ?? NO_GUARDRAILS;
  if (key.scopes.includes("trade")) {
    if (g.maxNotional === null) out.push({ control: "guardrail maxNotional", change: "add", description: `add a maxNotional guardrail of ${SUGGESTED_MAX_NOTIONAL}`, inputs: withGuardrail(inputs, "maxNotional", SUGGESTED_MAX_NOTIONAL) });
    else out.push({ control: "guardrail maxNotional", change: "remove", description: `remove the maxNotional guardrail (${g.maxNotional})`, inputs: withGuardrail(inputs, "maxNotional", null) });
    if (g.maxQuantity !== null) out.push({ control: "guardrail maxQuantity", change: "remove", description: `remove the maxQuantity guardrail (${g.maxQuantity})`, inputs: withGuardrail(inputs, "maxQuantity", null) });
    if (g.symbols !== null) out.push({ control: "guardrail symbols", change: "remove", description: `remove the symbols guardrail (${g.symbols.join(", ")})`, inputs: withGuardrail(inputs, "symbols", null) });
  }
  if (key.scopes.includes("withdraw") && g.withdrawAssets !== null) {
    out.push({ control: "guardrail withdrawAssets", change: "remove", description: `remove the withdrawAssets guardrail (${g.withdrawAssets.join(", ")})`, inputs: withGuardrail(inputs, "withdrawAssets", null) });
  }
  for (const spec of inputs.limits) {
    if (spec.scope === "ip") continue;
    const rest = inputs.limits.filter((s) => s !== spec);
    out.push({ control: `limit ${spec.name}`, change: "remove", description: `remove the limit ${spec.name}`, inputs: { ...inputs, limits: rest } });
  }
  // Limits the configuration lacks: an order-count limit per account, a weight limit per key.
  for (const proposed of PROPOSED_LIMITS) {
    if (inputs.limits.some((l) => l.kind === proposed.kind && l.scope === proposed.scope) || inputs.limits.some((l) => l.name === proposed.name)) continue;
    out.push({ control: `limit ${proposed.name}`, change: "add", description: `add the limit ${proposed.name} (${proposed.limit} per ${proposed.windowMs / 60_000} min, ${proposed.kind} per ${proposed.scope})`, inputs: { ...inputs, limits: [...inputs.limits, proposed] } });
  }
  if (key.maxAgeMs === null && key.expiresAt === null) {
    out.push({ control: "rotation", change: "add", description: `add a rotation policy (maxAge ${PROPOSED_MAX_AGE_DAYS}d)`, inputs: { ...inputs, key: { ...key, maxAgeMs: PROPOSED_MAX_AGE_DAYS * DAY_MS } } });
  }
  const rules = policy.document.rules;
  rules.forEach((rule, i) => {
    if (i === rules.length - 1 || rule.action.type === "allow") return;
    const kinds = rule.match.kind;
    if (kinds !== undefined && !kinds.includes("withdraw") && !kinds.includes("order.place")) return;
    const document: PolicyDocument = { description: policy.document.description, rules: rules.filter((_, j) => j !== i) };
    const without = new CompiledPolicy(document, policy.version, policy.digest, inputs.prices);
    out.push({ control: `policy rule ${rule.name}`, change: "remove", description: `remove the policy rule "${rule.name}"`, inputs: { ...inputs, policy: without } });
  });
  return out;
}

/**
 * The key's risk profile: its exposure, the score that orders keys, and the sensitivities (each
 * control added or removed, what it moves, the score's change), largest reduction first.
 */
export function riskProfile(inputs: RiskInputs, options: { readonly sensitivities?: boolean } = {}): RiskProfile {
  const base = compute(inputs);
  const sensitivities: Sensitivity[] = [];
  for (const v of options.sensitivities === false ? [] : variants(inputs)) {
    const after = compute(v.inputs);
    const moves: Move[] = [];
    for (const f of FIELDS) {
      const from = fieldValue(base.exposure, f);
      const to = fieldValue(after.exposure, f);
      if (from !== to) moves.push({ field: f, from, to });
    }
    const delta = round(after.score - base.score);
    if (moves.length === 0 && delta === 0) continue;
    sensitivities.push({ control: v.control, change: v.change, description: v.description, moves, riskScoreFrom: base.score, riskScoreTo: after.score, riskScoreDelta: delta });
  }
  sensitivities.sort((a, b) => a.riskScoreDelta - b.riskScoreDelta || a.control.localeCompare(b.control));
  const key = inputs.key;
  return {
    keyId: key.id,
    account: key.account,
    label: key.label,
    status: effectiveStatus(key, inputs.now),
    usable: isUsable(key, inputs.idleExpiryMs, inputs.now),
    at: inputs.now,
    policyVersion: inputs.policy.version,
    riskScore: base.score,
    scoreParts: base.parts,
    exposure: base.exposure,
    sensitivities,
  };
}

/** Orders profiles riskiest first (then by key id, for a stable order). */
export function compareRisk(a: RiskProfile, b: RiskProfile): number {
  return b.riskScore - a.riskScore || a.keyId.localeCompare(b.keyId);
}
