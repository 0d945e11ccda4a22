import type { Redis } from "ioredis";
import type { OpenOrderLedger, OpenReservation, OpenTotal, ReserveResult } from "../types.js";

/**
 * The open-notional ledger in Redis (the Redis hot store's `openOrders`; docs/guardrails.md).
 *
 * Layout: one hash per key, `P o:<keyId>`, a field per reservation (its id, the request id) whose
 * value is `expiresAt|amount|symbol[|ref]…`: expiry in epoch ms, the amount in ledger units as
 * decimal digits, the compact symbol, and the venue's order references bound after the answer.
 * The hash expires a minute after its latest reservation would.
 *
 * Amounts never become Lua numbers (doubles: a cap of 10^8 at 18 decimal places is past 2^53):
 * the scripts add and compare them as digit strings (in chunks of nine digits, byte by byte),
 * exactly. A reserve is one EVALSHA: it drops expired reservations, sums the rest, refuses over
 * the cap or at `maxEntries`, else writes, all atomically, so gateways sharing the Redis cannot
 * both take the last room under a cap. The time is the caller's (`now`), as for every script of
 * the hot store, so replicas replay the same decisions.
 */

const DIGITS = `
local function norm(s)
  local i = 1
  while i < #s and string.byte(s, i) == 48 do i = i + 1 end
  return string.sub(s, i)
end

local function add(a, b)
  local parts = {}
  local i, j, carry = #a, #b, 0
  while i > 0 or j > 0 or carry > 0 do
    local x = carry
    if i > 0 then x = x + tonumber(string.sub(a, math.max(1, i - 8), i)) end
    if j > 0 then x = x + tonumber(string.sub(b, math.max(1, j - 8), j)) end
    if x >= 1000000000 then carry = 1; x = x - 1000000000 else carry = 0 end
    parts[#parts + 1] = x
    i = i - 9
    j = j - 9
  end
  if #parts == 0 then return '0' end
  local s = string.format('%d', parts[#parts])
  for k = #parts - 1, 1, -1 do s = s .. string.format('%09d', parts[k]) end
  return s
end

-- -1, 0 or 1; byte by byte (a string '<' would use the server's collation).
local function cmp(a, b)
  a = norm(a)
  b = norm(b)
  if #a ~= #b then if #a < #b then return -1 else return 1 end end
  for k = 1, #a do
    local x, y = string.byte(a, k), string.byte(b, k)
    if x ~= y then if x < y then return -1 else return 1 end end
  end
  return 0
end

local function fields(v)
  local t = {}
  local start = 1
  while true do
    local bar = string.find(v, '|', start, true)
    if not bar then t[#t + 1] = string.sub(v, start); return t end
    t[#t + 1] = string.sub(v, start, bar - 1)
    start = bar + 1
  end
end
`;

/**
 * RESERVE  KEYS[1] the key's hash. ARGV[1] now, [2] id, [3] amount, [4] cap, [5] expiresAt,
 * [6] maxEntries, [7] symbol. Reply: {1, total after} | {0, "cap"|"full", total before}.
 */
export const OPEN_RESERVE_LUA = `${DIGITS}
local now = tonumber(ARGV[1])
local all = redis.call('HGETALL', KEYS[1])
local total, count = '0', 0
for k = 1, #all, 2 do
  local v = all[k + 1]
  local bar = string.find(v, '|', 1, true)
  if tonumber(string.sub(v, 1, bar - 1)) <= now then
    redis.call('HDEL', KEYS[1], all[k])
  else
    local bar2 = string.find(v, '|', bar + 1, true)
    total = add(total, string.sub(v, bar + 1, bar2 - 1))
    count = count + 1
  end
end
if count >= tonumber(ARGV[6]) then return {0, 'full', total} end
local after = add(total, ARGV[3])
if cmp(after, ARGV[4]) > 0 then return {0, 'cap', total} end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[5] .. '|' .. ARGV[3] .. '|' .. ARGV[7])
local ttl = tonumber(ARGV[5]) - now + 60000
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
return {1, after}
`;

/** BIND  KEYS[1] the key's hash. ARGV[1] id, [2] "|ref|ref…". Reply: 1 bound, 0 gone. */
export const OPEN_BIND_LUA = `
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], v .. ARGV[2])
return 1
`;

/**
 * RELEASE_ORDERS  KEYS[1] the key's hash. ARGV[1] now, [2] symbol ("" for any), [3…] refs.
 * Reply: how many reservations were removed (expired ones are dropped, not counted).
 */
export const OPEN_RELEASE_ORDERS_LUA = `${DIGITS}
local now = tonumber(ARGV[1])
local all = redis.call('HGETALL', KEYS[1])
local released = 0
for k = 1, #all, 2 do
  local t = fields(all[k + 1])
  if tonumber(t[1]) <= now then
    redis.call('HDEL', KEYS[1], all[k])
  elseif ARGV[2] == '' or ARGV[2] == t[3] then
    local hit = false
    for r = 4, #t do
      for a = 3, #ARGV do
        if t[r] == ARGV[a] then hit = true end
      end
    end
    if hit then
      redis.call('HDEL', KEYS[1], all[k])
      released = released + 1
    end
  end
end
return released
`;

const RESERVE = "portcullisOpenReserve";
const BIND = "portcullisOpenBind";
const RELEASE_ORDERS = "portcullisOpenReleaseOrders";

type ScriptCall = (numKeys: number, ...args: (string | number)[]) => Promise<unknown>;

export interface RedisOpenOrdersOptions {
  readonly client: Redis;
  readonly prefix: string;
  /** Waits for the first connection (the hot store's). */
  readonly connected: () => Promise<void>;
  /** Wraps a Redis failure as the hot store reports them. */
  readonly unavailable: (err: unknown) => Error;
}

function scriptOf(client: Redis, name: string, unavailable: (err: unknown) => Error): ScriptCall {
  const fn: unknown = Reflect.get(client, name);
  if (typeof fn !== "function") throw new Error(`redis open orders: ${name} is not defined on the client`);
  return (numKeys, ...args) =>
    Promise.resolve(Reflect.apply(fn, client, [numKeys, ...args]) as unknown).catch((err: unknown) => {
      throw unavailable(err);
    });
}

export class RedisOpenOrders implements OpenOrderLedger {
  private readonly client: Redis;
  private readonly prefix: string;
  private readonly connected: () => Promise<void>;
  private readonly unavailable: (err: unknown) => Error;
  private readonly reserveScript: ScriptCall;
  private readonly bindScript: ScriptCall;
  private readonly releaseOrdersScript: ScriptCall;

  constructor(options: RedisOpenOrdersOptions) {
    this.client = options.client;
    this.prefix = options.prefix;
    this.connected = options.connected;
    this.unavailable = options.unavailable;
    this.client.defineCommand(RESERVE, { lua: OPEN_RESERVE_LUA });
    this.client.defineCommand(BIND, { lua: OPEN_BIND_LUA });
    this.client.defineCommand(RELEASE_ORDERS, { lua: OPEN_RELEASE_ORDERS_LUA });
    this.reserveScript = scriptOf(this.client, RESERVE, this.unavailable);
    this.bindScript = scriptOf(this.client, BIND, this.unavailable);
    this.releaseOrdersScript = scriptOf(this.client, RELEASE_ORDERS, this.unavailable);
  }

  private hash(keyId: string): string {
    return `${this.prefix}o:${keyId}`;
  }

  async reserve(r: OpenReservation): Promise<ReserveResult> {
    if (!Number.isSafeInteger(r.now) || !Number.isSafeInteger(r.expiresAt) || !Number.isSafeInteger(r.maxEntries) || r.amount < 0n || r.cap < 0n) {
      throw new RangeError("open reservation: times and maxEntries must be integers, amounts non-negative");
    }
    await this.connected();
    const reply = await this.reserveScript(1, this.hash(r.keyId), r.now, r.id, r.amount.toString(), r.cap.toString(), r.expiresAt, r.maxEntries, r.symbol);
    if (!Array.isArray(reply)) throw new Error("redis open orders: unexpected reply");
    const [ok, a, b] = reply as unknown[];
    if (ok === 1 && typeof a === "string") return { ok: true, open: BigInt(a) };
    if (ok === 0 && (a === "cap" || a === "full") && typeof b === "string") return { ok: false, reason: a, open: BigInt(b) };
    throw new Error("redis open orders: unexpected reply");
  }

  async bind(keyId: string, id: string, refs: readonly string[]): Promise<boolean> {
    if (refs.length === 0) return true;
    await this.connected();
    return (await this.bindScript(1, this.hash(keyId), id, `|${refs.join("|")}`)) === 1;
  }

  async release(keyId: string, id: string): Promise<boolean> {
    await this.connected();
    try {
      return (await this.client.hdel(this.hash(keyId), id)) === 1;
    } catch (err) {
      throw this.unavailable(err);
    }
  }

  async releaseOrders(keyId: string, symbol: string | null, refs: readonly string[], now: number): Promise<number> {
    if (refs.length === 0) return 0;
    await this.connected();
    const n = await this.releaseOrdersScript(1, this.hash(keyId), now, symbol ?? "", ...refs);
    if (typeof n !== "number") throw new Error("redis open orders: unexpected reply");
    return n;
  }

  async open(keyId: string, now: number): Promise<OpenTotal> {
    await this.connected();
    let all: Record<string, string>;
    try {
      all = await this.client.hgetall(this.hash(keyId));
    } catch (err) {
      throw this.unavailable(err);
    }
    let total = 0n;
    let entries = 0;
    for (const value of Object.values(all)) {
      const [expires, amount] = value.split("|", 2);
      if (Number(expires) <= now || amount === undefined) continue;
      total += BigInt(amount);
      entries++;
    }
    return { total, entries };
  }
}
