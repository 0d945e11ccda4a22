/**
 * The Lua run by the Redis hot store (see hot.ts for the key layout and the calling convention).
 * Three scripts: ADMIT (one per admission), FAILURE (one per authentication failure) and STRIKE
 * (one per refusal of a verified request). All start with the same prelude: number formatting,
 * "a:b" pairs, GCRA exactly as in limits/gcra.ts, and the address's strike toward a ban.
 *
 * Numbers. Lua 5.1 numbers are doubles, like JavaScript's, and every operation below is the one
 * gcra.ts performs (the same IEEE divisions, `math.floor`/`math.ceil`, and `math.fmod`, which is
 * exact like JavaScript's `%`), so the answers are bit-for-bit those of the memory store as long
 * as the intermediate values stay below 2^53 — they do by construction: the script works on
 * (tat − now)·limit, never on tat·limit. Stored numbers are written with "%.17g" (exact round
 * trip; integers print as integers) and replies carry integers only.
 *
 * Sequence values (up to 2^64 − 1 and beyond) never become Lua numbers: the caller sends them as
 * length-prefixed decimal strings ("05" .. "12345"), whose byte order is their numeric order. The
 * script compares them byte by byte (not with `<`, which uses the server's collation locale), and
 * the sorted set of recent values uses score 0 for every member, so Redis orders the members by
 * bytes too: ZRANGEBYLEX / ZREMRANGEBYLEX / ZPOPMIN act on exact numeric ranges. The arithmetic
 * the checks need (value + window, value − window) is done by the caller with bigints.
 */

const PRELUDE = `
local function fmt(x) return string.format('%.17g', x) end

local function pair(s)
  local i = string.find(s, ':', 1, true)
  return tonumber(string.sub(s, 1, i - 1)), tonumber(string.sub(s, i + 1))
end

-- GCRA (limits/gcra.ts). Returns allowed, tat ms, tat rem, remaining, resetMs, retryAfterMs.
local function gcra(key, now, limit, windowMs, cost)
  local ms, rem = now, 0
  local stored = redis.call('GET', key)
  if stored then
    local sms, srem = pair(stored)
    if sms > now or (sms == now and srem > 0) then
      ms = sms
      rem = srem
    end
  end
  local horizon = windowMs * limit
  local total = rem + cost * windowMs
  local newMs = ms + math.floor(total / limit)
  local newRem = math.fmod(total, limit)
  local ahead = (newMs - now) * limit + newRem
  if ahead <= horizon then
    return true, newMs, newRem, math.floor((horizon - ahead) / windowMs), math.ceil(ahead / limit), 0
  end
  local currentAhead = (ms - now) * limit + rem
  return false, ms, rem, math.max(0, math.floor((horizon - currentAhead) / windowMs)),
    math.ceil(currentAhead / limit), math.ceil((ahead - horizon) / limit)
end

local function setTat(key, ms, rem, ttl)
  redis.call('SET', key, fmt(ms) .. ':' .. fmt(rem), 'PX', ttl)
end

-- A strike for the address (banKey holds "until:count", or nothing); too many within the window,
-- a ban that doubles each time (its count remembered for banMemory after it ends). Returns the
-- ban's end, or -1.
local function strike(banKey, strikeKey, now, strikes, strikeWindow, banBase, banMax, banMemory, margin)
  local sok, sms, srem, _, sreset = gcra(strikeKey, now, strikes, strikeWindow, 1)
  if sok then
    setTat(strikeKey, sms, srem, sreset + margin)
    return -1
  end
  local count = 1
  local ban = redis.call('GET', banKey)
  if ban then
    local banUntil, banCount = pair(ban)
    if now - banUntil < banMemory then count = banCount + 1 end
  end
  local bannedUntil = now + math.min(banBase * 2 ^ (count - 1), banMax)
  redis.call('SET', banKey, fmt(bannedUntil) .. ':' .. fmt(count), 'PX', bannedUntil - now + banMemory)
  return bannedUntil
end
`;

/**
 * ADMIT
 *   KEYS[1] ban ("until:count"), KEYS[2] strike TAT, KEYS[3 .. 2+n] the charges' TATs, then the
 *   replay claim's keys: a nonce key, or a sequence's hash and sorted set; last, when the request
 *   is signed with a session, the session's logout marker.
 *   ARGV[1] now, [2] n, [3] strikes, [4] strikeWindowMs, [5] banBaseMs, [6] banMaxMs,
 *   [7] banMemoryMs, [8] expiry margin ms, [9] "1" when a session marker is the last key,
 *   [10 .. 9+3n] limit, windowMs, cost per charge, then
 *   [10+3n] the replay kind ("" none, "n" nonce, "f" fenced, "q" sequence) and its arguments:
 *   nonce ("n"): expiresAt; fenced nonce ("f"): nothing (refused at this step); sequence ("q"):
 *   value, value + window, value − window ("" when negative), "1" when window > 0, the per-key
 *   limit of remembered values, the key's floor ("" none: values at or below it are too low).
 * Reply (integers):
 *   {0, remaining1, reset1, …}                             admitted
 *   {1, index, retryAfterMs, bannedUntil|-1, remaining1, reset1, … up to the refusing charge}
 *   {2, until}                                             banned
 *   {3, 1 replayed | 2 too-low | 3 fenced}                 replay refused
 *   {4}                                                    the session was logged out
 *   {5}                                                    the epoch marker is not the caller's
 * KEYS end with the epoch marker key, ARGV with its expected value ("runId:startedAt"): checked
 * first, so a Redis that lost its memory (a restart, FLUSHALL, a failover) decides nothing.
 */
export const ADMIT_LUA = `${PRELUDE}
-- Encoded sequence values: byte order is numeric order (see the module comment).
local function lt(a, b)
  local la, lb = #a, #b
  if la ~= lb then return la < lb end
  for i = 1, la do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return false
end

-- Remembers v, forgetting the lowest remembered value (which becomes the floor) at capacity.
local function remember(qk, rk, v, cap)
  if redis.call('ZCARD', rk) >= cap then
    local popped = redis.call('ZPOPMIN', rk)
    local low = popped[1]
    if low then
      local f = redis.call('HGET', qk, 'f')
      if (not f) or lt(f, low) then redis.call('HSET', qk, 'f', low) end
    end
  end
  redis.call('ZADD', rk, 0, v)
end

-- memory/sequences.ts. 0 fresh, 1 replayed, 2 too-low.
local function sequence(qk, rk, v, vw, lo, windowed, cap)
  local h = redis.call('HGET', qk, 'h')
  if not h then
    redis.call('HSET', qk, 'h', v)
    return 0
  end
  if lt(h, v) then
    if windowed then
      -- Forget what the new highest puts out of the window, then remember the old highest
      -- (unless it is itself out of the window).
      if lo ~= '' then redis.call('ZREMRANGEBYLEX', rk, '-', '(' .. lo) end
      if lo == '' or not lt(h, lo) then remember(qk, rk, h, cap) end
    end
    redis.call('HSET', qk, 'h', v)
    return 0
  end
  if v == h then return 1 end
  if lt(vw, h) then return 2 end
  local f = redis.call('HGET', qk, 'f')
  if f and not lt(f, v) then return 2 end
  if redis.call('ZSCORE', rk, v) then return 1 end
  remember(qk, rk, v, cap)
  return 0
end

local now = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local margin = tonumber(ARGV[8])

local ban = redis.call('GET', KEYS[1])
local banUntil, banCount = 0, 0
if ban then
  banUntil, banCount = pair(ban)
  if banUntil > now then return {2, banUntil} end
end

-- The epoch marker (the last key and argument): gone or changed, this Redis is not the memory
-- the caller's fence was computed for (a restart, FLUSHALL, a failover): nothing is decided.
if redis.call('GET', KEYS[#KEYS]) ~= ARGV[#ARGV] then return {5} end

if ARGV[9] == '1' then
  local ended = redis.call('GET', KEYS[#KEYS - 1])
  if ended and tonumber(ended) > now then return {4} end
end

local states = {}
local tats = {}
for i = 1, n do
  local a = 7 + 3 * i
  local ok, ms, rem, remaining, reset, retry =
    gcra(KEYS[2 + i], now, tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]))
  states[#states + 1] = remaining
  states[#states + 1] = reset
  if not ok then
    -- A strike for the address; too many, a ban that doubles each time (remembered a while).
    local bannedUntil = strike(KEYS[1], KEYS[2], now, tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]),
      tonumber(ARGV[6]), tonumber(ARGV[7]), margin)
    local out = {1, i - 1, retry, bannedUntil}
    for j = 1, #states do out[4 + j] = states[j] end
    return out
  end
  tats[i] = {ms, rem, reset}
end

local r = 10 + 3 * n
local kind = ARGV[r]
if kind == 'n' then
  local key = KEYS[3 + n]
  local stored = redis.call('GET', key)
  if stored and tonumber(stored) > now then return {3, 1} end
  local ttl = math.ceil(tonumber(ARGV[r + 1]) - now)
  if ttl < 1 then ttl = 1 end
  redis.call('SET', key, ARGV[r + 1], 'PX', ttl + margin)
elseif kind == 'f' then
  return {3, 3}
elseif kind == 'q' then
  local fl = ARGV[r + 6]
  if fl ~= '' and not lt(fl, ARGV[r + 1]) then return {3, 2} end
  local code = sequence(KEYS[3 + n], KEYS[4 + n], ARGV[r + 1], ARGV[r + 2], ARGV[r + 3], ARGV[r + 4] == '1',
    tonumber(ARGV[r + 5]))
  if code ~= 0 then return {3, code} end
end

for i = 1, n do
  local t = tats[i]
  setTat(KEYS[2 + i], t[1], t[2], t[3] + margin)
end
local out = {0}
for j = 1, #states do out[1 + j] = states[j] end
return out
`;

/**
 * EPOCH: the marker of the Redis run's epoch, set once per run (compare-and-set).
 *   KEYS[1] the marker; ARGV[1] the run id (INFO), ARGV[2] the proposed start (ms).
 * Reply: the marker's value, "runId:startedAt" — the one already there when it names this run
 * (another gateway established the epoch first), else the proposed one, now stored.
 */
export const EPOCH_LUA = `
local m = redis.call('GET', KEYS[1])
local prefix = ARGV[1] .. ':'
if m and string.sub(m, 1, #prefix) == prefix then return m end
local v = prefix .. ARGV[2]
redis.call('SET', KEYS[1], v)
return v
`;

/**
 * FAILURE
 *   KEYS[1] the address's failure TAT, KEYS[2] (optional) the key's for this address.
 *   ARGV[1] now, [2] failures per address, [3] failures per key, [4] windowMs, [5] margin.
 * Reply: {address refused 0|1, key refused 0|1}.
 */
export const FAILURE_LUA = `${PRELUDE}
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[4])
local margin = tonumber(ARGV[5])
local out = {0, 0}
local ok, ms, rem, _, reset = gcra(KEYS[1], now, tonumber(ARGV[2]), window, 1)
if ok then setTat(KEYS[1], ms, rem, reset + margin) else out[1] = 1 end
if #KEYS > 1 then
  ok, ms, rem, _, reset = gcra(KEYS[2], now, tonumber(ARGV[3]), window, 1)
  if ok then setTat(KEYS[2], ms, rem, reset + margin) else out[2] = 1 end
end
return out
`;

/**
 * STRIKE
 *   KEYS[1] ban ("until:count"), KEYS[2] strike TAT (the same keys as ADMIT's).
 *   ARGV[1] now, [2] strikes, [3] strikeWindowMs, [4] banBaseMs, [5] banMaxMs, [6] banMemoryMs,
 *   [7] expiry margin ms.
 * Reply: {bannedUntil | -1} (an address already banned answers its ban, unchanged).
 */
export const STRIKE_LUA = `${PRELUDE}
local now = tonumber(ARGV[1])
local ban = redis.call('GET', KEYS[1])
if ban then
  local banUntil = pair(ban)
  if banUntil > now then return {banUntil} end
end
return {strike(KEYS[1], KEYS[2], now, tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]),
  tonumber(ARGV[6]), tonumber(ARGV[7]))}
`;
